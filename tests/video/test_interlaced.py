"""Interlaced archives stay interlaced: restored field by field, written with the input's field order."""

from __future__ import annotations

import av
import numpy as np
import pytest
from media import decoded_frames, frame_planes, make_video, opts

from vsjpegfix.engine.core import Engine
from vsjpegfix.training.evaluation.entries import VIDEO_FMT
from vsjpegfix.video.transcode import transcode


def stream_fields(path) -> tuple[int, list[bool]]:
    """The stream's AVFieldOrder and each decoded frame's interlaced flag."""
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        return int(s.codec_context.field_order), [bool(f.interlaced_frame) for f in c.decode(s)]


WANT = {"tff": 2, "bff": 3}


@pytest.mark.parametrize("field", ["tff", "bff"])
@pytest.mark.parametrize("codec,ext", [("libx264", "mkv"), ("libx264", "mp4"), ("ffv1", "mkv"), ("mpeg2video", "mpg")])
def test_interlaced_mpeg2_keeps_its_field_order(tmp_path, engine, field, codec, ext):
    src = make_video(tmp_path / "in.vob", frames=5, size=(64, 48), codec="mpeg2video", fmt="vob", field=field,
                     options={"flags": "+ilme+ildct"})  # interlaced DCT and motion estimation
    assert stream_fields(src) == (WANT[field], [True] * 5)  # what the test is about
    report = transcode(src, tmp_path / f"out.{ext}", engine, opts(codec=codec))
    assert report.field_order == field and report.frames == 5
    assert stream_fields(tmp_path / f"out.{ext}") == (WANT[field], [True] * 5)


@pytest.mark.parametrize("field", ["tff", "bff"])
def test_interlaced_h264_mbaff_keeps_its_field_order(tmp_path, engine, field):
    # x264 codes interlaced video as MBAFF (it has no PAFF); FFmpeg's decoders flag both alike
    src = make_video(tmp_path / "in.mkv", frames=5, size=(64, 48), field=field, options={"x264-params": f"{field}=1"})
    assert stream_fields(src) == (WANT[field], [True] * 5)
    report = transcode(src, tmp_path / "out.mkv", engine, opts(codec="libx264"))
    assert report.field_order == field
    assert stream_fields(tmp_path / "out.mkv") == (WANT[field], [True] * 5)
    assert report.qf_mode == "auto"  # the identity engine has no profile; the H.264 quantisers are still read fine


def test_encoder_without_interlaced_coding_says_so(tmp_path, engine):
    src = make_video(tmp_path / "in.vob", frames=3, size=(64, 48), codec="mpeg2video", fmt="vob", field="tff",
                     options={"flags": "+ilme+ildct"})
    report = transcode(src, tmp_path / "out.mkv", engine, opts(codec="libx265"))
    assert any("progressive pictures" in w for w in report.warnings)
    assert stream_fields(tmp_path / "out.mkv")[0] == 2  # the container's field order is kept


def test_progressive_input_stays_progressive(tmp_path, engine):
    src = make_video(tmp_path / "in.mpg", frames=3, size=(64, 48), codec="mpeg2video", fmt="vob")
    report = transcode(src, tmp_path / "out.mkv", engine, opts(codec="libx264"))
    assert report.field_order is None
    assert stream_fields(tmp_path / "out.mkv")[1] == [False] * 3


def moving_interlaced(frames: int, w: int, h: int) -> list[np.ndarray]:
    """A camera pan captured interlaced: the bottom field 1/50 s after the top one (6 px further)."""
    from skimage import data

    img = data.astronaut()
    out = []
    for t in range(frames):
        top = img[40:40 + h, 12 * t:12 * t + w]
        bottom = img[40:40 + h, 12 * t + 6:12 * t + 6 + w]
        frame = top.copy()
        frame[1::2] = bottom[1::2]
        out.append(np.ascontiguousarray(frame))
    return out


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(255.0 ** 2 / np.mean((a.astype(np.float64) - b) ** 2)))


def test_field_restoration_beats_woven_restoration_on_motion(tmp_path):
    w, h = 128, 96
    images = moving_interlaced(4, w, h)
    clean = make_video(tmp_path / "clean.mkv", frames=4, size=(w, h), codec="ffv1", images=images)
    src = make_video(tmp_path / "in.vob", frames=4, size=(w, h), codec="mpeg2video", fmt="vob", field="tff", images=images,
                     qscale=14, options={"flags": "+ilme+ildct"})
    engine = Engine("arcnn", device="cpu", precision="fp32")
    transcode(src, tmp_path / "fields.mkv", engine, opts(codec="ffv1", qf="blind"))
    clean_y = [frame_planes(f)[0] for f in decoded_frames(clean)]
    decoded = [frame_planes(f) for f in decoded_frames(src)]
    woven = engine.restore([np.stack([d[p] for d in decoded]) for p in range(3)], VIDEO_FMT).planes[0]
    fields = [frame_planes(f)[0] for f in decoded_frames(tmp_path / "fields.mkv")]
    by_fields = np.mean([psnr(c, o) for c, o in zip(clean_y, fields)])
    by_frame = np.mean([psnr(c, o) for c, o in zip(clean_y, woven)])
    decoded_psnr = np.mean([psnr(c, d[0]) for c, d in zip(clean_y, decoded)])
    assert by_fields > by_frame + 0.1, (by_fields, by_frame, decoded_psnr)
