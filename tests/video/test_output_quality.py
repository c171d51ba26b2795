"""vsjpegfix.video.output_quality: the default libx264 CRF follows the input's quantiser, so that the
re-encode keeps what the restoration gained (a fixed CRF 16 made fine input worse than it was)."""

from __future__ import annotations

import av
import pytest
import torch
from media import make_video, opts

from vsjpegfix.engine.core import Engine
from vsjpegfix.models import FastARCNN
from vsjpegfix.video.output_quality import AUTO_CRF_MARGIN, auto_crf, input_quantiser
from vsjpegfix.video.report import DEFAULT_CRF
from vsjpegfix.video.transcode import transcode
from vsjpegfix.weights.profile import QualityProfile

CONSTANT_QP = "ipratio=1:pbratio=1:aq-mode=0"  # every frame at the given QP


def profiled() -> Engine:
    torch.manual_seed(0)
    engine = Engine(FastARCNN(channels=1, residual=True), device="cpu")
    engine.quality_profile = QualityProfile(h264_qp=((20.0, None, 0.0), (44.0, None, 1.0)))
    return engine


def x264_options(path) -> str:
    """The options string libx264 writes into its first packet (its SEI)."""
    with av.open(str(path)) as c:
        data = bytes(next(p for p in c.demux(video=0) if p.size))
    start = data.index(b"x264 - core")
    return data[start:data.index(b"\x00", start)].decode("ascii", "replace")


def test_auto_crf_follows_the_input_quantiser():
    assert AUTO_CRF_MARGIN == 26.0
    assert auto_crf("libx264", 37.0) == 11.0 and auto_crf("libx264", 32.4) == 6.0
    assert auto_crf("libx264", 22.0) == 0.0 and auto_crf("libx264", 27.0) == 1.0  # lossless at QP 26 and finer
    assert auto_crf("libx264", 50.0) == DEFAULT_CRF["libx264"] == 16.0  # never coarser than the fixed default
    assert auto_crf("libx264", None) == 16.0 and auto_crf("libx265", 30.0) == DEFAULT_CRF["libx265"]
    assert auto_crf("ffv1", 30.0) is None


def test_the_default_output_is_finer_than_the_input(tmp_path):
    src = make_video(tmp_path / "in.mp4", frames=8, options={"x264-params": f"qp=34:{CONSTANT_QP}"})
    assert input_quantiser(src, 0) == pytest.approx(34.0)
    report = transcode(src, tmp_path / "out.mp4", profiled(), opts())
    assert report.codec == "libx264" and report.input_qp == pytest.approx(34.0) and report.crf == 8.0
    assert "crf=8.0" in x264_options(tmp_path / "out.mp4")
    # the user's --crf wins; without a readable quantiser (blind) the fixed default stays
    named = transcode(src, tmp_path / "named.mp4", profiled(), opts(crf=20))
    assert named.crf == 20 and named.input_qp is None and "crf=20.0" in x264_options(tmp_path / "named.mp4")
    blind = transcode(src, tmp_path / "blind.mp4", profiled(), opts(qf="blind"))
    assert blind.crf == 16.0 and blind.input_qp is None and "crf=16.0" in x264_options(tmp_path / "blind.mp4")
    vp8 = make_video(tmp_path / "vp8.mkv", frames=4, codec="libvpx")  # no quantiser reader
    assert input_quantiser(vp8, 0) is None
    assert transcode(vp8, tmp_path / "vp8_out.mkv", profiled(), opts()).crf == 16.0
