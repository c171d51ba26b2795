"""vsjpegfix.engine.colour against VapourSynth's own resize (zimg), real core, real content.

Note on VapourSynth R81: frame properties (_Matrix, _Range, _ChromaLocation)
take precedence over the ``*_in`` arguments of ``resize``; the arguments only
apply when the property is absent.  Every YUV clip built here therefore gets
its properties set to match the PlaneFormat under test (``tag``), and the
``*_in`` arguments are passed as well for readability.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

vs = pytest.importorskip("vapoursynth")
skdata = pytest.importorskip("skimage.data")

from vsjpegfix.engine.colour import (
    CATMULL_ROM,
    CHROMA_FILTER,
    MATRIX_FROM_VS,
    BicubicFilter,
    PlaneFormat,
    filter_taps,
    luma_to_unit,
    planes_to_rgb,
    resample_1d,
    rgb_to_planes,
    storage_dtype,
    unit_to_luma,
)

core = vs.core

# Same filter as the module: Catmull-Rom (also VapourSynth's Bicubic default).
KW = dict(filter_param_a=CHROMA_FILTER.b, filter_param_b=CHROMA_FILTER.c)
VS_MATRIX = {"bt601": "170m", "bt709": "709", "bt2020": "2020ncl"}
VS_MATRIX_CODE = {"bt601": 6, "bt709": 1, "bt2020": 9}
VS_CHROMALOC = {"left": "left", "center": "center", "topleft": "top_left"}
VS_CHROMALOC_CODE = {"left": 0, "center": 1, "topleft": 2}

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


# ---------------------------------------------------------------- helpers


def _clip_from_planes(planes: list[np.ndarray], fmt_id: int):
    h, w = planes[0].shape
    blank = core.std.BlankClip(format=fmt_id, width=w, height=h, length=1)

    def fill(n, f):
        f = f.copy()
        for i, p in enumerate(planes):
            np.asarray(f[i])[...] = p
        return f

    return core.std.ModifyFrame(blank, blank, fill)


def _planes(clip) -> list[np.ndarray]:
    f = clip.get_frame(0)
    return [np.array(f[i]) for i in range(f.format.num_planes)]


def _rgb(clip) -> np.ndarray:
    return np.stack(_planes(clip))


def _vs_format(fmt: PlaneFormat) -> int:
    family = {"gray": vs.GRAY, "yuv": vs.YUV, "rgb": vs.RGB}[fmt.family]
    st = vs.FLOAT if fmt.is_float else vs.INTEGER
    return core.query_video_format(family, st, fmt.bits, fmt.subsampling[0], fmt.subsampling[1]).id


def _tag(clip, fmt: PlaneFormat):
    """Set the frame props VapourSynth R81 actually honours (see module docstring)."""
    props = dict(_Range=1 if fmt.full_range else 0)
    if fmt.family == "yuv":
        props.update(_Matrix=VS_MATRIX_CODE[fmt.matrix], _ChromaLocation=VS_CHROMALOC_CODE[fmt.chroma_location])
    return core.std.SetFrameProps(clip, **props)


def _to_vs_yuv(rgb_clip, fmt: PlaneFormat):
    """RGB clip -> YUV/GRAY clip in ``fmt`` by VapourSynth, tagged."""
    if fmt.family == "gray":
        yuv = core.resize.Bicubic(
            rgb_clip, format=vs.YUV444PS, matrix_s="709", **KW
        )
        out = core.resize.Bicubic(
            core.std.ShufflePlanes(yuv, 0, vs.GRAY), format=_vs_format(fmt),
            range_s="full" if fmt.full_range else "limited",
        )
    else:
        out = core.resize.Bicubic(
            rgb_clip, format=_vs_format(fmt), matrix_s=VS_MATRIX[fmt.matrix],
            range_s="full" if fmt.full_range else "limited",
            chromaloc_s=VS_CHROMALOC[fmt.chroma_location], **KW,
        )
    return _tag(out, fmt)


def _to_vs_rgb(yuv_clip, fmt: PlaneFormat, out_format: int):
    kw = dict(KW, range_in_s="full" if fmt.full_range else "limited")
    if fmt.family == "yuv":
        kw.update(matrix_in_s=VS_MATRIX[fmt.matrix], chromaloc_in_s=VS_CHROMALOC[fmt.chroma_location])
    return core.resize.Bicubic(_tag(yuv_clip, fmt), format=out_format, **kw)


def _tensors(planes: list[np.ndarray], device="cpu") -> list[torch.Tensor]:
    out = []
    for p in planes:
        if p.dtype == np.uint16:
            p = p.view(np.int16)  # the engine's storage for > 8 bit
        out.append(torch.from_numpy(np.ascontiguousarray(p))[None].to(device))
    return out


def _codes(t: torch.Tensor) -> np.ndarray:
    a = t.cpu().numpy()
    if a.dtype == np.int16:
        a = a.view(np.uint16)
    return a.astype(np.int64)


def _maxdiff_planes(mine: list[torch.Tensor], ref: list[np.ndarray]) -> int:
    return max(int(np.abs(_codes(m[0]) - r.astype(np.int64)).max()) for m, r in zip(mine, ref))


def _unit_rgb(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255.0


# ---------------------------------------------------------------- content

_IMG = skdata.astronaut()  # 512x512 RGB, real photographic content
IMG = np.ascontiguousarray(_IMG[96:288, 128:384])  # 192 x 256 (h x w): face, edges, flat areas
IMG_ODD = np.ascontiguousarray(_IMG[150:187, 200:251])  # 37 x 51: odd height and width


@pytest.fixture(scope="module")
def rgb_clip():
    return _clip_from_planes([IMG[..., i] for i in range(3)], vs.RGB24)


@pytest.fixture(scope="module")
def rgb_clip_odd():
    return _clip_from_planes([IMG_ODD[..., i] for i in range(3)], vs.RGB24)


SUBSAMPLINGS = {"420": (1, 1), "444": (0, 0)}


# ---------------------------------------------------------------- 8-bit YUV vs VapourSynth


@pytest.mark.parametrize("full", [False, True], ids=["limited", "full"])
@pytest.mark.parametrize("matrix", ["bt601", "bt709"])
@pytest.mark.parametrize("ss", list(SUBSAMPLINGS), ids=list(SUBSAMPLINGS))
def test_rgb_to_yuv_8bit_matches_vapoursynth(rgb_clip, ss, matrix, full):
    fmt = PlaneFormat("yuv", 8, subsampling=SUBSAMPLINGS[ss], matrix=matrix, full_range=full)
    ref = _planes(_to_vs_yuv(rgb_clip, fmt))
    mine = rgb_to_planes(_unit_rgb(IMG), fmt)
    assert [tuple(m.shape[1:]) for m in mine] == [r.shape for r in ref]
    assert all(m.dtype == torch.uint8 for m in mine)
    assert _maxdiff_planes(mine, ref) <= 1


@pytest.mark.parametrize("full", [False, True], ids=["limited", "full"])
@pytest.mark.parametrize("matrix", ["bt601", "bt709"])
@pytest.mark.parametrize("ss", list(SUBSAMPLINGS), ids=list(SUBSAMPLINGS))
def test_yuv_to_rgb_8bit_matches_vapoursynth(rgb_clip, ss, matrix, full):
    fmt = PlaneFormat("yuv", 8, subsampling=SUBSAMPLINGS[ss], matrix=matrix, full_range=full)
    yuv = _to_vs_yuv(rgb_clip, fmt)
    planes = _tensors(_planes(yuv))

    rgb = planes_to_rgb(planes, fmt)
    assert rgb.shape == (1, 3, 192, 256) and rgb.dtype == torch.float32
    assert float(rgb.min()) >= 0.0 and float(rgb.max()) <= 1.0
    ref24 = _rgb(_to_vs_rgb(yuv, fmt, vs.RGB24)).astype(np.int64)
    mine24 = torch.round(rgb[0] * 255).numpy().astype(np.int64)
    assert np.abs(mine24 - ref24).max() <= 1

    # Unclamped float output against RGBS: checks chroma geometry exactly.
    refs = _rgb(_to_vs_rgb(yuv, fmt, vs.RGBS))
    mines = planes_to_rgb(planes, fmt, clamp=False)[0].numpy()
    assert np.abs(mines - refs).max() <= 1e-5


@pytest.mark.parametrize(
    "ss,loc",
    [((1, 1), "center"), ((1, 1), "topleft"), ((1, 0), "left"), ((1, 0), "center"), ((0, 1), "topleft")],
    ids=["420-center", "420-topleft", "422-left", "422-center", "440-topleft"],
)
def test_chroma_locations_match_vapoursynth(rgb_clip, ss, loc):
    fmt = PlaneFormat("yuv", 8, subsampling=ss, matrix="bt709", chroma_location=loc)
    yuv = _to_vs_yuv(rgb_clip, fmt)
    ref = _planes(yuv)
    assert _maxdiff_planes(rgb_to_planes(_unit_rgb(IMG), fmt), ref) <= 1
    refs = _rgb(_to_vs_rgb(yuv, fmt, vs.RGBS))
    assert np.abs(planes_to_rgb(_tensors(ref), fmt, clamp=False)[0].numpy() - refs).max() <= 1e-5


@pytest.mark.parametrize("ss", [(0, 0), (1, 0)], ids=["444", "422"])
def test_odd_sizes_match_vapoursynth(rgb_clip_odd, ss):
    img = IMG_ODD if ss == (0, 0) else IMG_ODD[:, :50]  # 4:2:2 needs an even width, odd height is fine
    clip = rgb_clip_odd if ss == (0, 0) else core.std.Crop(rgb_clip_odd, right=1)
    fmt = PlaneFormat("yuv", 8, subsampling=ss, matrix="bt601")
    yuv = _to_vs_yuv(clip, fmt)
    ref = _planes(yuv)
    assert _maxdiff_planes(rgb_to_planes(_unit_rgb(img), fmt), ref) <= 1
    rgb = planes_to_rgb(_tensors(ref), fmt)
    assert rgb.shape == (1, 3) + img.shape[:2]
    ref24 = _rgb(_to_vs_rgb(yuv, fmt, vs.RGB24)).astype(np.int64)
    assert np.abs(torch.round(rgb[0] * 255).numpy().astype(np.int64) - ref24).max() <= 1


def test_vapoursynth_default_bicubic_is_catmull_rom(rgb_clip):
    """Our filter choice equals resize.Bicubic without filter_param_a/b (b=0, c=0.5)."""
    fmt = PlaneFormat("yuv", 8, subsampling=(1, 1), matrix="bt709")
    yuv = _to_vs_yuv(rgb_clip, fmt)
    ref = _rgb(core.resize.Bicubic(yuv, format=vs.RGBS))
    planes = _tensors(_planes(yuv))
    assert CHROMA_FILTER == CATMULL_ROM
    assert np.abs(planes_to_rgb(planes, fmt, clamp=False)[0].numpy() - ref).max() <= 1e-5
    mitchell = planes_to_rgb(planes, fmt, clamp=False, chroma_filter=BicubicFilter(1 / 3, 1 / 3))
    assert np.abs(mitchell[0].numpy() - ref).max() > 1e-3
    # and the filter parameter is really threaded through: Mitchell matches Mitchell
    ref_m = _rgb(core.resize.Bicubic(yuv, format=vs.RGBS, filter_param_a=1 / 3, filter_param_b=1 / 3))
    assert np.abs(mitchell[0].numpy() - ref_m).max() <= 1e-5


def test_vapoursynth_frame_props_override_in_arguments(rgb_clip):
    """Guards this file's assumption: in R81 _Matrix beats matrix_in_s, so clips must be tagged."""
    fmt601 = PlaneFormat("yuv", 8, subsampling=(1, 1), matrix="bt601")
    yuv = _to_vs_yuv(rgb_clip, fmt601)  # tagged _Matrix=6
    out = _rgb(core.resize.Bicubic(yuv, format=vs.RGBS, matrix_in_s="709"))
    mine601 = planes_to_rgb(_tensors(_planes(yuv)), fmt601, clamp=False)[0].numpy()
    assert np.abs(out - mine601).max() <= 1e-5


# ---------------------------------------------------------------- high bit depth


def test_10bit_420_matches_vapoursynth(rgb_clip):
    fmt = PlaneFormat("yuv", 10, subsampling=(1, 1), matrix="bt709")
    rgbs = core.resize.Bicubic(rgb_clip, format=vs.RGBS)
    yuv = _to_vs_yuv(rgbs, fmt)
    ref = _planes(yuv)
    mine = rgb_to_planes(_unit_rgb(IMG), fmt)
    assert all(m.dtype == torch.int16 for m in mine)
    assert _maxdiff_planes(mine, ref) <= 1

    planes = _tensors(ref)
    rgb = planes_to_rgb(planes, fmt)
    ref30 = _rgb(_to_vs_rgb(yuv, fmt, core.query_video_format(vs.RGB, vs.INTEGER, 10, 0, 0).id))
    assert np.abs(torch.round(rgb[0] * 1023).numpy().astype(np.int64) - ref30.astype(np.int64)).max() <= 1
    refs = _rgb(_to_vs_rgb(yuv, fmt, vs.RGBS))
    assert np.abs(planes_to_rgb(planes, fmt, clamp=False)[0].numpy() - refs).max() <= 1e-5


def test_16bit_full_range_int16_storage(rgb_clip):
    """16-bit codes above 32767 travel as int16 bit patterns, both ways."""
    fmt = PlaneFormat("yuv", 16, subsampling=(1, 1), matrix="bt2020", full_range=True)
    yuv = _to_vs_yuv(core.resize.Bicubic(rgb_clip, format=vs.RGBS), fmt)
    ref = _planes(yuv)
    assert ref[0].max() > 32767
    mine = rgb_to_planes(_unit_rgb(IMG), fmt)
    assert mine[0].dtype == torch.int16 and int(mine[0].min()) < 0
    assert _maxdiff_planes(mine, ref) <= 1
    refs = _rgb(_to_vs_rgb(yuv, fmt, vs.RGBS))
    assert np.abs(planes_to_rgb(_tensors(ref), fmt, clamp=False)[0].numpy() - refs).max() <= 1e-5
    # the same codes as int32 / uint16 give the same result
    as32 = [torch.from_numpy(p.astype(np.int32))[None] for p in ref]
    assert torch.equal(planes_to_rgb(as32, fmt), planes_to_rgb(_tensors(ref), fmt))
    m32 = rgb_to_planes(_unit_rgb(IMG), fmt, out_dtype=torch.int32)
    assert all(np.array_equal(_codes(a), _codes(b)) for a, b in zip(m32, mine))


# ---------------------------------------------------------------- gray


@pytest.mark.parametrize("full", [False, True], ids=["limited", "full"])
def test_gray_matches_vapoursynth(rgb_clip, full):
    fmt = PlaneFormat("gray", 8, full_range=full)
    gray = _to_vs_yuv(rgb_clip, fmt)
    y = _planes(gray)[0]
    refs = _planes(core.resize.Bicubic(gray, format=vs.GRAYS, range_in_s="full" if full else "limited"))[0]

    unit = planes_to_rgb([torch.from_numpy(y)[None]], fmt, clamp=False)
    assert unit.shape == (1, 1, 192, 256)
    assert np.abs(unit[0, 0].numpy() - refs).max() <= 1e-6
    assert np.abs(luma_to_unit(torch.from_numpy(y), fmt).numpy() - refs).max() <= 1e-6

    back_ref = _planes(
        core.resize.Bicubic(
            core.std.SetFrameProps(_clip_from_planes([refs], vs.GRAYS), _Range=1),
            format=vs.GRAY8, range_s="full" if full else "limited",
        )
    )[0]
    back = rgb_to_planes(unit, fmt)
    assert len(back) == 1 and back[0].dtype == torch.uint8
    assert np.abs(_codes(back[0][0]) - back_ref.astype(np.int64)).max() <= 1
    assert np.array_equal(_codes(unit_to_luma(luma_to_unit(torch.from_numpy(y), fmt), fmt)), y.astype(np.int64))


def test_limited_gray_normalisation_constants():
    for bits in (8, 10, 16):
        fmt = PlaneFormat("gray", bits)
        k = 1 << (bits - 8)
        codes = torch.tensor([16 * k, 235 * k, 0, (1 << bits) - 1], dtype=torch.int32)
        u = luma_to_unit(codes, fmt, dtype=torch.float64)
        assert u[0] == 0 and u[1] == 1
        assert u[2] < 0 and u[3] > 1  # foot/headroom preserved, not clamped
        assert torch.equal(_codes_t(unit_to_luma(u, fmt, out_dtype=torch.int32)), codes)


def _codes_t(t: torch.Tensor) -> torch.Tensor:
    return t.to(torch.int32) & 0xFFFF if t.dtype == torch.int16 else t.to(torch.int32)


# ---------------------------------------------------------------- float formats


@pytest.mark.parametrize("ss", [(0, 0), (1, 1)], ids=["444", "420"])
def test_float_yuv_matches_vapoursynth(rgb_clip, ss):
    fmt = PlaneFormat("yuv", 32, is_float=True, subsampling=ss, matrix="bt709")
    yuv = _to_vs_yuv(rgb_clip, fmt)
    ref = _planes(yuv)
    mine = rgb_to_planes(_unit_rgb(IMG), fmt)
    assert all(m.dtype == torch.float32 for m in mine)
    assert max(float(np.abs(m[0].numpy() - r).max()) for m, r in zip(mine, ref)) <= 1e-5
    assert float(mine[1].min()) < 0  # U/V centred on 0, like VapourSynth
    refs = _rgb(_to_vs_rgb(yuv, fmt, vs.RGBS))
    assert np.abs(planes_to_rgb(_tensors(ref), fmt, clamp=False)[0].numpy() - refs).max() <= 1e-5
    clamped = planes_to_rgb(_tensors(ref), fmt)[0].numpy()
    assert np.abs(clamped - np.clip(refs, 0, 1)).max() <= 1e-5


def test_float_rgb_and_integer_rgb():
    x = _unit_rgb(IMG)
    fmt_s = PlaneFormat("rgb", 32, is_float=True)
    planes = rgb_to_planes(x, fmt_s)
    assert len(planes) == 3 and planes[0].dtype == torch.float32
    assert torch.equal(planes_to_rgb(planes, fmt_s), x)
    fmt_8 = PlaneFormat("rgb", 8)
    p8 = rgb_to_planes(x, fmt_8)
    assert np.array_equal(np.stack([p[0].numpy() for p in p8], -1), IMG)
    assert torch.allclose(planes_to_rgb(p8, fmt_8), x, atol=1e-6)
    fmt_h = PlaneFormat("rgb", 16, is_float=True)
    ph = rgb_to_planes(x, fmt_h)
    assert ph[0].dtype == torch.float16
    assert torch.allclose(planes_to_rgb(ph, fmt_h), x, atol=1e-3)


# ---------------------------------------------------------------- round trips, dtypes, devices


@pytest.mark.parametrize("full", [False, True], ids=["limited", "full"])
@pytest.mark.parametrize("matrix", ["bt601", "bt709", "bt2020"])
def test_round_trip_444_within_one_code(rgb_clip, matrix, full):
    fmt = PlaneFormat("yuv", 8, matrix=matrix, full_range=full)
    ref = _planes(_to_vs_yuv(rgb_clip, fmt))
    back = rgb_to_planes(planes_to_rgb(_tensors(ref), fmt), fmt)
    assert _maxdiff_planes(back, ref) <= 1
    exact = rgb_to_planes(planes_to_rgb(_tensors(ref), fmt, clamp=False), fmt)
    assert _maxdiff_planes(exact, ref) == 0


@pytest.mark.parametrize("device", DEVICES)
def test_dtypes_shapes_devices(device):
    n, h, w = 2, 32, 48
    gen = torch.Generator().manual_seed(0)
    fmt = PlaneFormat("yuv", 8, subsampling=(1, 1), matrix="bt709")
    planes = [
        torch.randint(16, 236, (n, h, w), generator=gen, dtype=torch.uint8),
        torch.randint(16, 241, (n, h // 2, w // 2), generator=gen, dtype=torch.uint8),
        torch.randint(16, 241, (n, h // 2, w // 2), generator=gen, dtype=torch.uint8),
    ]
    planes = [p.to(device) for p in planes]
    for dtype in (torch.float32, torch.float16, torch.float64):
        rgb = planes_to_rgb(planes, fmt, dtype=dtype)
        assert rgb.shape == (n, 3, h, w) and rgb.dtype == dtype and rgb.device.type == device
    rgb = planes_to_rgb(planes, fmt)
    out = rgb_to_planes(rgb, fmt)
    assert [tuple(p.shape) for p in out] == [(n, h, w), (n, h // 2, w // 2), (n, h // 2, w // 2)]
    assert all(p.dtype == torch.uint8 and p.device.type == device for p in out)
    # batch items are independent
    single = planes_to_rgb([p[1:2] for p in planes], fmt)
    assert torch.allclose(single, rgb[1:2], atol=1e-6)
    assert rgb_to_planes(rgb, fmt, out_dtype=torch.float32)[0].dtype == torch.float32
    fmt10 = PlaneFormat("yuv", 10, subsampling=(1, 1), matrix="bt709")
    p10 = rgb_to_planes(rgb, fmt10)
    assert all(p.dtype == torch.int16 and p.device.type == device for p in p10)
    assert all(int(p.min()) >= 0 and int(p.max()) <= 1023 for p in p10)
    y = luma_to_unit(planes[0], fmt)
    assert y.shape == (n, h, w) and y.dtype == torch.float32 and y.device.type == device
    assert torch.equal(unit_to_luma(y, fmt), planes[0])


def test_storage_range_clamp_only():
    """Integer outputs clamp to 0..2^b-1, not to the nominal 16..235 limited range."""
    fmt = PlaneFormat("yuv", 8, matrix="bt709")
    rgb = torch.tensor([-1.0, -0.02, 1.02, 2.0]).view(1, 1, 1, 4).expand(1, 3, 1, 4).contiguous()
    y = rgb_to_planes(rgb, fmt)[0][0, 0].tolist()
    assert y == [0, 12, 239, 255]
    fmt_g = PlaneFormat("gray", 10)
    assert unit_to_luma(torch.tensor([-1.0, 0.0, 1.0, 9.0]), fmt_g).tolist() == [0, 64, 940, 1023]


def test_storage_dtype():
    assert storage_dtype(PlaneFormat("yuv", 8, matrix="bt709")) == torch.uint8
    assert storage_dtype(PlaneFormat("yuv", 10, matrix="bt709")) == torch.int16
    assert storage_dtype(PlaneFormat("gray", 16)) == torch.int16
    assert storage_dtype(PlaneFormat("rgb", 32, is_float=True)) == torch.float32
    assert storage_dtype(PlaneFormat("rgb", 16, is_float=True)) == torch.float16


# ---------------------------------------------------------------- resampler


def test_filter_taps_properties():
    idx, w = filter_taps(64, 128, 0.25)  # 4:2:0 "left" upsampling
    assert idx.shape == w.shape == (128, 4)
    assert np.allclose(w.sum(1), 1.0)
    assert idx.min() == 0 and idx.max() == 63
    # left-sited chroma: every even luma sample is co-sited with a chroma sample -> weight 1
    assert np.allclose(w[0::2].max(1), 1.0)
    idx_d, w_d = filter_taps(128, 64, -0.5)  # downsampling widens the kernel
    assert idx_d.shape == (64, 8) and np.allclose(w_d.sum(1), 1.0)
    assert filter_taps(64, 128, 0.25) is filter_taps(64, 128, 0.25)  # cached
    x = torch.arange(10, dtype=torch.float32)[None]
    assert torch.equal(resample_1d(x, -1, 10), x)
    # edges mirror half-sample symmetrically: a constant stays constant
    c = torch.full((3, 7), 0.3)
    assert torch.allclose(resample_1d(c, -1, 14, 0.25), torch.full((3, 14), 0.3))
    assert torch.allclose(resample_1d(c, -2, 2, -0.5), torch.full((2, 7), 0.3))
    # planes narrower than the kernel still work (zimg refuses these)
    assert resample_1d(torch.ones(1, 2), -1, 4, 0.25).shape == (1, 4)


# ---------------------------------------------------------------- validation


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(family="yuv", bits=8), "matrix"),
        (dict(family="yuv", bits=8, matrix="bt470m"), "matrix"),
        (dict(family="gray", bits=7), "8..16"),
        (dict(family="gray", bits=17), "8..16"),
        (dict(family="rgb", bits=8, is_float=True), "16 or 32"),
        (dict(family="yuv", bits=8, matrix="bt709", subsampling=(2, 2)), "subsampling"),
        (dict(family="yuv", bits=8, matrix="bt709", subsampling=(2, 0)), "subsampling"),
        (dict(family="rgb", bits=8, subsampling=(1, 1)), "subsampled"),
        (dict(family="yuv", bits=8, matrix="bt709", chroma_location="bottom"), "chroma_location"),
        (dict(family="xyz", bits=8), "family"),
    ],
)
def test_validate_errors(kwargs, match):
    fmt = PlaneFormat(**kwargs)
    with pytest.raises(ValueError, match=match):
        fmt.validate()
    with pytest.raises(ValueError, match=match):
        rgb_to_planes(torch.zeros(1, 3, 4, 4), fmt)


def test_validate_ok_and_num_planes():
    for fmt, n in [
        (PlaneFormat("gray", 8), 1),
        (PlaneFormat("gray", 16, full_range=True), 1),
        (PlaneFormat("yuv", 10, subsampling=(1, 1), matrix="bt2020"), 3),
        (PlaneFormat("yuv", 32, is_float=True, subsampling=(1, 0), matrix="bt601", chroma_location="center"), 3),
        (PlaneFormat("rgb", 16, is_float=True), 3),
    ]:
        fmt.validate()
        assert fmt.num_planes == n


def test_plane_shape_errors():
    fmt = PlaneFormat("yuv", 8, subsampling=(1, 1), matrix="bt709")
    y = torch.zeros(1, 6, 8, dtype=torch.uint8)
    with pytest.raises(ValueError, match="plane 1"):
        planes_to_rgb([y, torch.zeros(1, 3, 3, dtype=torch.uint8), torch.zeros(1, 3, 4, dtype=torch.uint8)], fmt)
    with pytest.raises(ValueError, match="divisible"):
        planes_to_rgb([torch.zeros(1, 5, 8, dtype=torch.uint8)] + [torch.zeros(1, 2, 4, dtype=torch.uint8)] * 2, fmt)
    with pytest.raises(ValueError, match="divisible"):
        rgb_to_planes(torch.zeros(1, 3, 6, 7), fmt)
    with pytest.raises(ValueError, match="3 planes"):
        planes_to_rgb([y], fmt)
    with pytest.raises(ValueError, match="luma"):
        luma_to_unit(y, PlaneFormat("rgb", 8))


def test_matrix_from_vs():
    assert MATRIX_FROM_VS[1] == "bt709"
    assert MATRIX_FROM_VS[5] == MATRIX_FROM_VS[6] == "bt601"
    assert MATRIX_FROM_VS[9] == "bt2020"
    assert 0 not in MATRIX_FROM_VS and 2 not in MATRIX_FROM_VS
