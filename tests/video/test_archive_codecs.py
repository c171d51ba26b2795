"""The transcoder on the codecs of old archives: quantisers read per frame (MPEG-2, MPEG-4 Part 2, MJPEG,
VP9) in the containers they come in, each mapped by its codec's table; MPEG-2 written to MPEG-PS/VOB."""

from __future__ import annotations

from fractions import Fraction

import av
import pytest
import torch
from media import decoded_frames, make_video, opts

from vsjpegfix.engine.core import Engine
from vsjpegfix.models import FastARCNN
from vsjpegfix.quantisers.mapping import codec_qp
from vsjpegfix.video.report import TranscodeError
from vsjpegfix.video.transcode import mpeg_time_base, transcode
from vsjpegfix.weights.profile import QualityProfile

PROFILE = QualityProfile(h264_qp=((20.0, None, 0.0), (44.0, None, 1.0)))


def profiled() -> Engine:
    torch.manual_seed(0)
    engine = Engine(FastARCNN(channels=1, residual=True), device="cpu")
    engine.quality_profile = PROFILE
    return engine


# (encoder, container format, file name, quantiser setting, native value the reader reports)
CASES = [
    ("mpeg2video", "vob", "in.vob", 6, 12.0),  # MPEG-2's quantiser_scale is twice the qscale code
    ("mpeg2video", "mpegts", "in.ts", 20, 40.0),
    ("mpeg2video", "mp4", "in.mp4", 3, 6.0),
    ("mpeg4", "avi", "in.avi", 9, 9.0),
    ("mpeg4", "matroska", "in.mkv", 4, 4.0),
    ("mjpeg", "avi", "in.avi", 8, None),  # a quality factor: checked against the codec's own reading
    ("libvpx-vp9", "webm", "in.webm", 30, 120.0),  # libvpx's quantizer q is base_q_idx 4 q
    # the H.263 family: the decoder's per-macroblock export, read as QUANT (MPEG-4's scale and table)
    ("msmpeg4", "avi", "divx3.avi", 7, 7.0),  # DivX ;-) 3.11 (MS-MPEG4 v3)
    ("flv", "flv", "web.flv", 12, 12.0),  # Sorenson H.263 in Flash video
    ("wmv2", "asf", "old.wmv", 5, 5.0),  # Windows Media Video 8
    ("h263", "3gp", "phone.3gp", 9, 9.0),  # a 3GP phone clip (H.263 takes its picture sizes: 128x96 here)
    ("rv20", "rm", "real.rm", 8, 8.0),  # RealVideo 2
]


@pytest.mark.parametrize("encoder,fmt,name,q,value", CASES)
def test_profile_follows_each_frames_quantiser(tmp_path, encoder, fmt, name, q, value):
    options = {"b": "0", "crf": str(q), "deadline": "realtime", "cpu-used": "8"} if encoder == "libvpx-vp9" else {}
    src = make_video(tmp_path / name, frames=6, codec=encoder, fmt=fmt, pix_fmt="yuvj420p" if encoder == "mjpeg" else "yuv420p",
                     options=options, qscale=q, size=(128, 96) if encoder == "h263" else (64, 48))
    report = transcode(src, tmp_path / "out.mkv", profiled(), opts(codec="ffv1"))
    assert report.qf_mode == "profile" and not any("quantiser" in w for w in report.warnings), report.warnings
    assert report.frames == 6 and len(report.per_frame) == 6
    codec = {"libvpx-vp9": "vp9"}.get(encoder, encoder)
    if value is None:  # MJPEG: FFmpeg's qscale 8 table is IJG quality ~69
        from vsjpegfix.quantisers.readers import stream_quantiser_reader

        with av.open(str(src)) as c:
            reader = stream_quantiser_reader("mjpeg")
            value = reader.packet_qp(bytes(next(p for p in c.demux(video=0) if p.size)))
        assert 55 < value < 80
    qp = codec_qp(codec, value)
    for entry in report.per_frame:
        assert entry["qp"] == pytest.approx(qp, abs=1e-3)
        assert entry["strength"] == pytest.approx(min(1.0, max(0.0, (qp - 20) / 24)), abs=1e-3)


@pytest.mark.parametrize("ext", ["mpg", "vob", "ts"])
def test_mpeg2_into_mpeg_ps_and_vob(tmp_path, engine, ext):
    src = make_video(tmp_path / "in.mkv", frames=10, codec="ffv1", rate=Fraction(30000, 1001))
    report = transcode(src, tmp_path / f"out.{ext}", engine, opts(codec="mpeg2video"))
    assert report.frames == 10
    with av.open(str(tmp_path / f"out.{ext}")) as c:
        assert c.format.name == ("mpegts" if ext == "ts" else "mpeg")
        video = c.streams.video[0]
        assert video.codec_context.name == "mpeg2video" and video.average_rate == Fraction(30000, 1001)
    assert len(decoded_frames(tmp_path / f"out.{ext}")) == 10


def test_mpeg2_at_a_rate_it_cannot_code_is_a_one_line_error(tmp_path, engine):
    src = make_video(tmp_path / "in.mkv", frames=3, codec="ffv1", rate=7)
    with pytest.raises(TranscodeError, match="cannot code 7 frames per second") as err:
        transcode(src, tmp_path / "out.mpg", engine, opts(codec="mpeg2video"))
    assert "\n" not in str(err.value) and not (tmp_path / "out.mpg").exists()


def test_mpeg_time_base_snaps_container_rates():
    assert mpeg_time_base(Fraction(2997, 100)) == Fraction(1001, 30000)
    assert mpeg_time_base(Fraction(25)) == Fraction(1, 25)
    assert mpeg_time_base(Fraction(15)) == Fraction(1, 15)  # MPEG-2 codes 30 * 1/2


def test_a_frame_whose_quantiser_cannot_be_read_is_restored_blind_with_one_warning(tmp_path):
    src = make_video(tmp_path / "in.vob", frames=6, codec="mpeg2video", fmt="vob", qscale=8)
    data = bytearray(src.read_bytes())
    slice_start = data.find(b"\x00\x00\x01\x01", len(data) // 2)  # a slice of a later picture
    data[slice_start + 4] = 0x00  # quantiser_scale_code 0: not a valid quantiser
    (tmp_path / "bad.vob").write_bytes(bytes(data))
    report = transcode(tmp_path / "bad.vob", tmp_path / "out.mkv", profiled(), opts(codec="ffv1"))
    assert report.qf_mode == "profile" and report.frames == 6
    assert [w for w in report.warnings if "no readable quantiser" in w] == [
        "1 frame(s) had no readable quantiser; their groups were restored with the model's own quality control"]
    assert sum("qp" in e for e in report.per_frame) == 5


@pytest.mark.parametrize("encoder,fmt,name", [("mpeg2video", "vob", "in.vob"), ("mpeg4", "avi", "in.avi")])
def test_archive_codecs_follow_the_models_h264_rule(tmp_path, encoder, fmt, name):
    """Their quantisers are on the H.264 scale, so a profile's ``h264`` rule chooses each frame's strength;
    a rule of the codec's own would win; HEVC never borrows it."""
    from vsjpegfix.weights.predictor import FramePredictor, StrengthPredictor

    h264 = FramePredictor(("1", "q", "B", "I"), (0.4, 0.5, -0.3, 0.2))
    src = make_video(tmp_path / name, frames=8, codec=encoder, fmt=fmt, qscale=6)  # I, P and B pictures (GOP 12, 2 B)
    engine = profiled()
    engine.quality_profile = QualityProfile(h264_qp=PROFILE.h264_qp, predictor=StrengthPredictor({"h264": h264}))
    report = transcode(src, tmp_path / "out.mkv", engine, opts(codec="ffv1"))
    assert report.qf_mode == "profile" and len(report.per_frame) == 8
    for entry in report.per_frame:  # the h264 rule at each frame's mapped QP and picture type (report: 3 decimals)
        q = (entry["qp"] - 32) / 10
        expected = {min(1.0, max(0.0, 0.4 + 0.5 * q + d)) for d in (-0.3, 0.0, 0.2)}
        assert any(entry["strength"] == pytest.approx(e, abs=1e-3) for e in expected), entry
    profile_strength = min(1.0, max(0.0, (report.per_frame[0]["qp"] - 20) / 24))
    assert any(e["strength"] != pytest.approx(profile_strength) for e in report.per_frame)  # not the per-QP profile
    own = FramePredictor(("1",), (0.25,))
    engine.quality_profile = QualityProfile(h264_qp=PROFILE.h264_qp, predictor=StrengthPredictor({"h264": h264, encoder: own}))
    report = transcode(src, tmp_path / "own.mkv", engine, opts(codec="ffv1"))
    assert [e["strength"] for e in report.per_frame] == [pytest.approx(0.25)] * 8
    assert StrengthPredictor({"h264": h264}).for_codec("hevc") is None
