"""vsjpegfix.video.probe: output planning - pixel formats the encoder can write, odd sizes, bit depth,
RGB input, untagged matrices, HEVC in and out.
"""

from __future__ import annotations

import av
import numpy as np
import pytest
from media import (
    assert_same_pictures,
    decoded_frames,
    frame_times,
    identity_engine,
    make_video,
    opts,
)

from vsjpegfix.video.probe import choose_output_format
from vsjpegfix.video.transcode import transcode


def test_untagged_sd_video_is_assumed_bt601_and_stays_untagged(tmp_path, engine):
    src = make_video(tmp_path / "in.mp4", frames=4)
    report = transcode(src, tmp_path / "out.mp4", engine, opts())
    assert any("assuming bt601" in w for w in report.warnings)
    with av.open(str(tmp_path / "out.mp4")) as c:
        assert c.streams.video[0].codec_context.colorspace == 2  # unspecified, as the input


def test_odd_size_420_keeps_its_size(tmp_path, engine):
    src = make_video(tmp_path / "odd.mkv", frames=5, size=(65, 49), codec="ffv1")
    assert decoded_frames(src)[0].format.name == "yuv420p"
    # libx264 cannot encode odd 4:2:0: written as 4:4:4, same size, with a warning
    report = transcode(src, tmp_path / "x264.mkv", engine, opts())
    assert report.pix_fmt == "yuv444p"
    assert any("odd size" in w for w in report.warnings)
    out = decoded_frames(tmp_path / "x264.mkv")
    assert len(out) == 5 and (out[0].width, out[0].height) == (65, 49) and out[0].format.name == "yuv444p"
    # FFV1 takes odd 4:2:0 as it is: bit-exact round trip through the identity model
    report = transcode(src, tmp_path / "ffv1.mkv", engine, opts(codec="ffv1"))
    assert report.pix_fmt == "yuv420p" and not report.warnings[1:]
    assert_same_pictures(src, tmp_path / "ffv1.mkv")
    # and the RGB model path (chroma resampled to 4:4:4 and back) takes the padded frames too
    transcode(src, tmp_path / "rgb.mkv", identity_engine(3), opts(codec="ffv1"))
    assert_same_pictures(src, tmp_path / "rgb.mkv")


@pytest.mark.parametrize(
    "codec,pix_fmt",
    [("libx264", "yuv420p"), ("libx264", "yuv420p10le"), ("libx265", "yuv420p10le"), ("libx265", "yuv420p")],
)
def test_ffv1_output_equals_decoded_input(tmp_path, engine, codec, pix_fmt):
    src = make_video(tmp_path / "in.mp4", frames=6, codec=codec, pix_fmt=pix_fmt, options={"crf": "10"} if codec == "libx264" else None)
    dst = tmp_path / "out.mkv"
    report = transcode(src, dst, engine, opts(codec="ffv1"))
    assert report.pix_fmt == pix_fmt
    assert decoded_frames(dst)[0].format.name == pix_fmt
    assert_same_pictures(src, dst)
    if codec == "libx265":  # the RGB (3-channel) model path too
        transcode(src, tmp_path / "rgb.mkv", identity_engine(3), opts(codec="ffv1"))
        assert_same_pictures(src, tmp_path / "rgb.mkv")


def test_ten_bit_stays_ten_bit_by_default(tmp_path, engine):
    src = make_video(tmp_path / "in.mkv", frames=4, codec="libx265", pix_fmt="yuv420p10le")
    for codec in ("libx264", "libx265"):
        dst = tmp_path / f"out-{codec}.mkv"
        report = transcode(src, dst, engine, opts(codec=codec))
        assert report.pix_fmt == "yuv420p10le" and not [w for w in report.warnings if "cannot" in w]
        frames = decoded_frames(dst)
        assert len(frames) == 4 and frames[0].format.name == "yuv420p10le"


def test_choose_output_format():
    x264 = av.codec.Codec("libx264", "w")
    assert choose_output_format(x264, "yuv420p10le", 64, 48) == ("yuv420p10le", None)
    assert choose_output_format(x264, "yuv420p", 65, 48)[0] == "yuv444p"
    assert choose_output_format(x264, "yuv420p10le", 64, 47)[0] == "yuv444p10le"
    assert choose_output_format(x264, "yuv420p12le", 64, 48)[0] == "yuv420p10le"
    assert choose_output_format(x264, "gbrp", 64, 48)[0] == "yuv444p"
    assert choose_output_format(av.codec.Codec("ffv1", "w"), "yuv420p", 65, 49) == ("yuv420p", None)
    assert choose_output_format(av.codec.Codec("ffv1", "w"), "gbrp", 64, 48) == ("bgr0", None)  # 8-bit RGB, packed
    assert choose_output_format(av.codec.Codec("libx264rgb", "w"), "gbrp", 64, 48)[0] == "bgr0"


def test_rgb_input_is_written_as_tagged_bt709_yuv(tmp_path, engine):
    src = make_video(tmp_path / "rgb.mkv", frames=4, codec="ffv1", pix_fmt="bgr0")
    report = transcode(src, tmp_path / "ffv1.mkv", engine, opts(codec="ffv1"))  # RGB stays RGB, losslessly
    assert report.pix_fmt == "bgr0" and not report.warnings
    assert_same_pictures(src, tmp_path / "ffv1.mkv")
    report = transcode(src, tmp_path / "x264.mkv", engine, opts())
    assert report.pix_fmt == "yuv444p" and any("cannot write gbrp" in w for w in report.warnings)
    # the conversion alone (lossless FFV1, --pix-fmt yuv444p): BT.709-tagged YUV that decodes to the same RGB
    transcode(src, tmp_path / "out.mkv", engine, opts(codec="ffv1", pix_fmt="yuv444p"))
    for path in (tmp_path / "x264.mkv", tmp_path / "out.mkv"):
        with av.open(str(path)) as c:
            assert c.streams.video[0].codec_context.colorspace == 1
    want = [f.to_ndarray(format="rgb24").astype(int) for f in decoded_frames(src)]
    got = [f.to_ndarray(format="rgb24").astype(int) for f in decoded_frames(tmp_path / "out.mkv")]
    assert len(got) == 4 and max(np.abs(a - b).mean() for a, b in zip(got, want)) < 1


def test_hevc_input_and_x265_output(tmp_path, engine):
    src = make_video(tmp_path / "in.mp4", frames=6, codec="libx265")
    report = transcode(src, tmp_path / "out.mp4", engine, opts(codec="libx265"))
    assert report.frames == 6 and frame_times(src) == frame_times(tmp_path / "out.mp4")
