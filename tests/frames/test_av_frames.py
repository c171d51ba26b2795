"""vsjpegfix.frames.av_frames: PyAV frames <-> engine planes, formats, odd sizes, colour tags, display matrix."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest
from media import decoded_frames, make_video

from vsjpegfix.frames.av_frames import (
    FrameFormatError,
    colour_description,
    colour_tags,
    crop_planes,
    default_matrix,
    display_matrix,
    format_name,
    layout_of,
    make_frame,
    pad_to_subsampling,
    plain_format,
    planar_format,
    read_planes,
)


def _random_frame(pix_fmt: str, w: int, h: int, seed: int = 0) -> tuple[av.VideoFrame, list[np.ndarray]]:
    """A frame of ``pix_fmt`` filled with random samples through make_frame, and the planes it holds."""
    layout = layout_of(pix_fmt)
    rng = np.random.default_rng(seed)
    template = av.VideoFrame(w, h, pix_fmt)
    planes = []
    for index in layout.plane_order:
        p = template.planes[index]
        planes.append(rng.integers(0, 1 << layout.bits, (p.height, p.width)).astype(layout.dtype))
    template.pts, template.time_base = 7, Fraction(1, 25)
    return make_frame(planes, layout, template), planes


@pytest.mark.parametrize(
    "pix_fmt,size",
    [
        ("yuv420p", (64, 48)), ("yuv420p", (65, 49)), ("yuv420p10le", (37, 21)), ("yuv422p", (33, 16)),
        ("yuv444p16le", (17, 9)), ("yuv440p", (16, 15)), ("gray", (31, 7)), ("gray10le", (30, 8)),
        ("gbrp", (19, 11)), ("gbrp12le", (8, 8)), ("yuvj420p", (64, 48)),
    ],
)
def test_read_and_make_frame_round_trip(pix_fmt, size):
    w, h = size
    frame, planes = _random_frame(pix_fmt, w, h)
    assert (frame.width, frame.height, frame.format.name) == (w, h, pix_fmt)
    assert frame.pts == 7 and frame.time_base == Fraction(1, 25)
    back = read_planes(frame, layout_of(pix_fmt))
    assert len(back) == len(planes)
    for a, b in zip(back, planes):
        assert a.dtype == b.dtype and a.flags.c_contiguous and np.array_equal(a, b)  # line padding removed


def test_gbr_planes_are_in_rgb_order():
    layout = layout_of("gbrp")
    assert layout.family == "rgb" and layout.plane_order == (2, 0, 1)  # AV planes are G, B, R
    frame = av.VideoFrame.from_ndarray(np.dstack([np.full((4, 4), v, np.uint8) for v in (10, 20, 30)]), format="rgb24")
    r, g, b = read_planes(frame.reformat(format="gbrp"), layout)
    assert (r[0, 0], g[0, 0], b[0, 0]) == (10, 20, 30)


def test_layouts():
    assert layout_of("yuv420p10le").bits == 10 and layout_of("yuv420p10le").subsampling == (1, 1)
    assert layout_of("yuv422p").subsampling == (1, 0) and layout_of("yuv440p").subsampling == (0, 1)
    assert layout_of("yuvj444p").jpeg_range and not layout_of("yuv444p").jpeg_range
    assert layout_of("gray16le").dtype == np.uint16 and layout_of("gray").dtype == np.uint8
    for bad in ("yuv420p10be", "yuv411p", "nv12", "rgb24", "p010le"):
        with pytest.raises(FrameFormatError):
            layout_of(bad)


def test_planar_plain_and_names():
    assert planar_format("nv12") == "yuv420p" and planar_format("p010le") == "yuv420p10le"
    assert planar_format("rgb24") == "gbrp" and planar_format("bgr0") == "gbrp" and planar_format("yuv420p") == "yuv420p"
    with pytest.raises(FrameFormatError):
        planar_format("bayer_rggb8")
    assert plain_format("yuvj420p") == "yuv420p" and plain_format("yuv420p10le") == "yuv420p10le"
    for name in ("yuv420p", "yuv422p10le", "yuv444p12le", "yuv440p", "gray", "gray10le", "gbrp", "gbrp16le"):
        lay = layout_of(name)
        assert format_name(lay.family, lay.bits, lay.subsampling) == name


@pytest.mark.parametrize("pix_fmt", ["nv12", "p010le", "rgb24", "yuyv422", "bgr0"])
def test_packed_and_semi_planar_frames_convert_losslessly(pix_fmt):
    rgb = np.random.default_rng(0).integers(0, 255, (16, 24, 3), dtype=np.uint8)
    frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format=pix_fmt)
    planar = planar_format(pix_fmt)
    once = frame.reformat(format=planar)
    twice = once.reformat(format=pix_fmt).reformat(format=planar)
    for a, b in zip(read_planes(once, layout_of(planar)), read_planes(twice, layout_of(planar))):
        assert np.array_equal(a, b)
    if pix_fmt in ("nv12", "rgb24", "yuyv422"):  # formats numpy can read directly: the same samples
        assert np.array_equal(once.reformat(format=pix_fmt).to_ndarray(), frame.to_ndarray())


def test_odd_sizes_pad_and_crop():
    layout = layout_of("yuv420p")
    frame, planes = _random_frame("yuv420p", 65, 49)
    assert [p.shape for p in planes] == [(49, 65), (25, 33), (25, 33)]
    padded = pad_to_subsampling(planes, layout)
    assert [p.shape for p in padded] == [(50, 66), (25, 33), (25, 33)]
    assert np.array_equal(padded[0][:49, :65], planes[0])
    assert np.array_equal(padded[0][49, :65], planes[0][48]) and np.array_equal(padded[0][:49, 65], planes[0][:, 64])
    stacked = [np.stack([p, p]) for p in padded]  # (N, h, w) batches too
    for a, b in zip(crop_planes(stacked, layout, 65, 49), planes):
        assert np.array_equal(a[1], b)
    assert pad_to_subsampling(planes[:1], layout_of("gray")) is not None
    even = [np.zeros((4, 6)), np.zeros((2, 3)), np.zeros((2, 3))]
    assert pad_to_subsampling(even, layout) is even
    # 4:2:2: only the width is subsampled
    _, planes = _random_frame("yuv422p", 33, 15)
    assert [p.shape for p in pad_to_subsampling(planes, layout_of("yuv422p"))] == [(15, 34), (15, 17), (15, 17)]


def test_colour_tags_description_and_make_frame_override(tmp_path):
    colour = {"color_range": 2, "colorspace": 1, "color_primaries": 1, "color_trc": 1}
    src = make_video(tmp_path / "c.mp4", frames=1, colour=colour, rotation=90)
    frame = decoded_frames(src)[0]
    tags = colour_tags(frame)
    assert {k: tags[k] for k in colour} == colour
    layout = layout_of(planar_format(frame.format.name))
    fmt = colour_description(frame, layout, matrix=None)
    assert fmt.matrix == "bt709" and fmt.full_range and fmt.subsampling == (1, 1)
    planes = read_planes(frame, layout)
    copy = make_frame(planes, layout_of("yuv420p"), frame, colour={**tags, "color_range": 1, "colorspace": 5})
    assert copy.format.name == "yuv420p" and copy.color_range == 1 and copy.colorspace == 5
    assert colour_tags(make_frame(planes, layout, frame)) == tags
    # the rotation as a full display matrix (a 90 degree turn)
    m = display_matrix(frame)
    assert m is not None and len(m) == 9 and frame.rotation == 90
    assert display_matrix(decoded_frames(make_video(tmp_path / "n.mp4", frames=1))[0]) is None


def test_untagged_and_unsupported_matrices():
    frame, _ = _random_frame("yuv420p", 16, 16)
    layout = layout_of("yuv420p")
    assert colour_description(frame, layout, matrix="bt601").matrix == "bt601"  # untagged: the caller's guess
    with pytest.raises(FrameFormatError, match="--matrix"):
        colour_description(frame, layout, matrix=None)
    frame.colorspace = 9
    assert colour_description(frame, layout, matrix="bt601").matrix == "bt2020"  # a tag wins
    assert default_matrix(1920, 1080) == "bt709" and default_matrix(720, 576) == "bt601" and default_matrix(1280, 720) == "bt709"
    gray = colour_description(_random_frame("gray", 8, 8)[0], layout_of("gray"), matrix=None)
    assert gray.family == "gray" and gray.matrix is None
