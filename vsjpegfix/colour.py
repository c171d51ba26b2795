"""Colour conversion between video planes and normalised RGB, done in torch.

Everything here runs on whatever device the input tensors live on, so on CUDA
only the 8/10/16-bit planes have to cross the bus; the float RGB tensor fed to
the model is built on the GPU.

The conventions follow VapourSynth's ``resize`` filters (zimg) so that results
agree with ``core.resize.Bicubic(..., filter_param_a=0, filter_param_b=0.5)``
to within one code value on integer formats:

* integer <-> float normalisation (zimg's depth conversion)::

      limited luma:   y = (Y - 16 * 2^(b-8)) / (219 * 2^(b-8))
      limited chroma: u = (U - 128 * 2^(b-8)) / (224 * 2^(b-8))
      full luma/RGB:  y = Y / (2^b - 1)
      full chroma:    u = (U - 2^(b-1)) / (2^b - 1)

  Float formats are taken as they are: Y and RGB in [0, 1], U/V in [-0.5, 0.5].
* non-constant-luminance matrices from Kr/Kb (BT.601, BT.709, BT.2020),
* chroma resampling with a separable bicubic filter whose taps, positions and
  edge handling reproduce zimg's ``compute_filter`` (see :func:`filter_taps`),
  with the chroma sample position ("left" = MPEG-2, "center" = MPEG-1/JPEG,
  "topleft") honoured exactly as zimg's graph builder does.

Like zimg, chroma is upsampled (or downsampled) in floating point: there is no
intermediate rounding of the resampled chroma.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal, Sequence

import numpy as np
import torch

__all__ = [
    "PlaneFormat",
    "BicubicFilter",
    "CATMULL_ROM",
    "CHROMA_FILTER",
    "MATRIX_FROM_VS",
    "MATRIX_COEFFICIENTS",
    "planes_to_rgb",
    "rgb_to_planes",
    "luma_to_unit",
    "unit_to_luma",
    "storage_dtype",
    "filter_taps",
    "resample_1d",
]

# --------------------------------------------------------------------------
# Formats
# --------------------------------------------------------------------------

#: (Kr, Kb) of the supported non-constant-luminance matrices.
MATRIX_COEFFICIENTS: dict[str, tuple[float, float]] = {
    "bt601": (0.299, 0.114),
    "bt709": (0.2126, 0.0722),
    "bt2020": (0.2627, 0.0593),
}

#: VapourSynth ``_Matrix`` / ITU-T H.273 matrix codes -> names used here.
#: 0 is RGB (no matrix), 2 is "unspecified": both are deliberately absent, the
#: caller decides what to do with them (e.g. guess from the frame size).
MATRIX_FROM_VS: dict[int, str] = {
    1: "bt709",
    5: "bt601",  # BT.470BG
    6: "bt601",  # SMPTE 170M
    9: "bt2020",  # BT.2020 non-constant luminance
}

_CHROMA_LOCATIONS = ("left", "center", "topleft")


@dataclass(frozen=True)
class PlaneFormat:
    """Description of a planar frame, enough to convert it to RGB and back.

    ``subsampling`` is (log2 horizontal, log2 vertical): (1, 1) is 4:2:0,
    (1, 0) is 4:2:2, (0, 0) is 4:4:4.  ``matrix`` is required for YUV and
    ignored otherwise.  ``full_range`` only matters for integer YUV/GRAY (RGB
    is always full range, float formats have no range).  ``chroma_location``
    is the position of subsampled chroma samples: "left" (MPEG-2, the
    VapourSynth default), "center" (MPEG-1/JPEG) or "topleft".
    """

    family: Literal["gray", "yuv", "rgb"]
    bits: int  # 8..16 for integer, 16 or 32 for float
    is_float: bool = False
    subsampling: tuple[int, int] = (0, 0)
    matrix: str | None = None
    full_range: bool = False
    chroma_location: str = "left"

    def validate(self) -> None:
        """Raise ``ValueError`` with a clear message if the format is unsupported."""
        if self.family not in ("gray", "yuv", "rgb"):
            raise ValueError(f"unknown colour family {self.family!r}; expected 'gray', 'yuv' or 'rgb'")
        if not isinstance(self.bits, (int, np.integer)) or isinstance(self.bits, bool):
            raise ValueError(f"bits must be an int, got {self.bits!r}")
        if self.is_float:
            if self.bits not in (16, 32):
                raise ValueError(f"float formats must have 16 or 32 bits, got {self.bits}")
        elif not 8 <= self.bits <= 16:
            raise ValueError(f"integer formats must have 8..16 bits, got {self.bits}")
        ss = self.subsampling
        if (
            not isinstance(ss, tuple)
            or len(ss) != 2
            or not all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) for s in ss)
        ):
            raise ValueError(f"subsampling must be a tuple of two ints (log2 w, log2 h), got {ss!r}")
        if any(s not in (0, 1) for s in ss):
            raise ValueError(
                f"unsupported subsampling {ss!r}: only 4:4:4 (0, 0), 4:2:2 (1, 0), 4:4:0 (0, 1) "
                "and 4:2:0 (1, 1) are supported"
            )
        if self.family != "yuv" and ss != (0, 0):
            raise ValueError(f"{self.family} formats cannot be subsampled (subsampling={ss!r})")
        if self.family == "yuv":
            if self.matrix is None:
                raise ValueError(
                    "yuv formats need a matrix ('bt601', 'bt709' or 'bt2020'); "
                    "map VapourSynth's _Matrix with MATRIX_FROM_VS"
                )
            if self.matrix not in MATRIX_COEFFICIENTS:
                raise ValueError(
                    f"unsupported matrix {self.matrix!r}; expected one of {sorted(MATRIX_COEFFICIENTS)}"
                )
        if self.chroma_location not in _CHROMA_LOCATIONS:
            raise ValueError(
                f"unsupported chroma_location {self.chroma_location!r}; expected one of {_CHROMA_LOCATIONS}"
            )

    @property
    def num_planes(self) -> int:
        """1 for gray, 3 for yuv and rgb."""
        return 1 if self.family == "gray" else 3


def storage_dtype(fmt: PlaneFormat) -> torch.dtype:
    """Default tensor dtype of a plane of ``fmt``.

    uint8 for 8 bit, int16 for 9..16 bit (16-bit values above 32767 are stored
    as their uint16 bit pattern, i.e. negative; ``.numpy().view(np.uint16)`` or
    a numpy assignment into a uint16 frame array recovers them), float16/32
    for float formats.
    """
    if fmt.is_float:
        return torch.float16 if fmt.bits == 16 else torch.float32
    return torch.uint8 if fmt.bits == 8 else torch.int16


def _luma_scale_offset(fmt: PlaneFormat) -> tuple[float, float]:
    """(scale, offset) with ``code = unit * scale + offset`` for luma/gray/RGB planes."""
    if fmt.is_float:
        return 1.0, 0.0
    b = fmt.bits
    if fmt.family == "rgb" or fmt.full_range:
        return float((1 << b) - 1), 0.0
    return float(219 << (b - 8)), float(16 << (b - 8))


def _chroma_scale_offset(fmt: PlaneFormat) -> tuple[float, float]:
    """(scale, offset) with ``code = unit * scale + offset`` for U/V planes (unit in [-0.5, 0.5])."""
    if fmt.is_float:
        return 1.0, 0.0
    b = fmt.bits
    if fmt.full_range:
        return float((1 << b) - 1), float(1 << (b - 1))
    return float(224 << (b - 8)), float(128 << (b - 8))


# --------------------------------------------------------------------------
# 1-D resampling (zimg-compatible filter construction)
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class BicubicFilter:
    """Mitchell-Netravali family cubic with parameters b and c.

    ``BicubicFilter(0, 0.5)`` is Catmull-Rom, ``BicubicFilter(1/3, 1/3)`` is
    Mitchell (zimg's / VapourSynth's ``resize.Bicubic`` default when no
    ``filter_param_a/b`` is given).  In VapourSynth ``filter_param_a`` is b and
    ``filter_param_b`` is c.
    """

    b: float = 0.0
    c: float = 0.5

    support = 2  # class constant, not a field

    def __call__(self, x: np.ndarray) -> np.ndarray:
        b, c = self.b, self.c
        x = np.abs(np.asarray(x, dtype=np.float64))
        x2, x3 = x * x, x * x * x
        near = ((12 - 9 * b - 6 * c) * x3 + (-18 + 12 * b + 6 * c) * x2 + (6 - 2 * b)) / 6
        far = ((-b - 6 * c) * x3 + (6 * b + 30 * c) * x2 + (-12 * b - 48 * c) * x + (8 * b + 24 * c)) / 6
        return np.where(x < 1, near, np.where(x < 2, far, 0.0))


#: Catmull-Rom: interpolating, sharp, little ringing.
CATMULL_ROM = BicubicFilter(0.0, 0.5)
#: The filter used for chroma up/downsampling.  Pass the same b/c to
#: VapourSynth (``filter_param_a=0, filter_param_b=0.5``) to get matching output.
CHROMA_FILTER = CATMULL_ROM


def _round_halfup(x: np.ndarray) -> np.ndarray:
    # zimg: round(|x|) with the sign restored, i.e. halves away from zero.
    return np.copysign(np.floor(np.abs(x) + 0.5), x)


@lru_cache(maxsize=256)
def _filter_taps_cached(src: int, dst: int, shift: float, filt: BicubicFilter) -> tuple[np.ndarray, np.ndarray]:
    scale = dst / src
    step = min(scale, 1.0)
    support = filt.support / step
    ntaps = max(int(math.ceil(support)) * 2, 1)

    pos = (np.arange(dst, dtype=np.float64) + 0.5) / scale + shift  # output centre on the input grid
    begin = _round_halfup(pos - ntaps / 2.0) + 0.5  # centre of the first tap (always k + 0.5)
    xpos = begin[:, None] + np.arange(ntaps, dtype=np.float64)[None, :]
    weights = filt((xpos - pos[:, None]) * step)
    weights /= weights.sum(axis=1, keepdims=True)

    # Half-sample symmetric extension at both edges (zimg mirrors the tap
    # centre: -0.5 -> 0.5, src + 0.5 -> src - 0.5).  Taking the mirror modulo
    # 2 * src also covers planes narrower than the filter, which zimg rejects.
    period = 2.0 * src
    r = np.mod(xpos, period)
    r = np.where(r >= src, period - r, r)
    idx = np.clip(np.floor(r).astype(np.int64), 0, src - 1)
    idx.setflags(write=False)
    weights.setflags(write=False)
    return idx, weights


def filter_taps(src: int, dst: int, shift: float = 0.0, filt: BicubicFilter = CHROMA_FILTER) -> tuple[np.ndarray, np.ndarray]:
    """Tap indices and weights, each ``(dst, taps)``, for resampling ``src`` samples to ``dst``.

    Mirrors zimg's ``resize::compute_filter``: output sample ``i`` sits at
    ``(i + 0.5) * src / dst + shift`` on the input grid (sample ``j`` centred at
    ``j + 0.5``); when downsampling the kernel is widened by ``src / dst``; the
    taps are ``2 * ceil(support)`` consecutive samples starting at
    ``round_halfup(pos - taps / 2)``; weights are normalised to sum to one and
    taps outside the image are mirrored (half-sample symmetric, edge sample
    repeated).
    """
    if src < 1 or dst < 1:
        raise ValueError(f"resampling needs positive sizes, got {src} -> {dst}")
    return _filter_taps_cached(int(src), int(dst), float(shift), filt)


_TENSOR_CACHE: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}
_TENSOR_CACHE_LOCK = threading.Lock()
_TENSOR_CACHE_MAX = 256


def _taps_tensors(src: int, dst: int, shift: float, filt: BicubicFilter, device: torch.device, dtype: torch.dtype):
    key = (src, dst, shift, filt, device, dtype)
    hit = _TENSOR_CACHE.get(key)
    if hit is not None:
        return hit
    idx, w = filter_taps(src, dst, shift, filt)
    # Column-major (taps, dst) so that idx[t] / w[t] are contiguous.
    tensors = (
        torch.from_numpy(np.ascontiguousarray(idx.T)).to(device),
        torch.from_numpy(np.ascontiguousarray(w.T)).to(device=device, dtype=dtype),
    )
    with _TENSOR_CACHE_LOCK:
        if len(_TENSOR_CACHE) >= _TENSOR_CACHE_MAX:
            _TENSOR_CACHE.clear()
        _TENSOR_CACHE[key] = tensors
    return tensors


def resample_1d(x: torch.Tensor, dim: int, dst: int, shift: float = 0.0, filt: BicubicFilter = CHROMA_FILTER) -> torch.Tensor:
    """Resample float tensor ``x`` along ``dim`` to ``dst`` samples (see :func:`filter_taps`).

    Tap indices/weights are cached per (size, shift, filter, device, dtype).
    """
    dim = dim % x.dim()
    src = x.shape[dim]
    if src == dst and shift == 0.0:
        return x  # an interpolating kernel at integer offsets is the identity
    idx, w = _taps_tensors(src, dst, float(shift), filt, x.device, x.dtype)
    wshape = [1] * x.dim()
    wshape[dim] = dst
    out = None
    for t in range(idx.shape[0]):
        term = x.index_select(dim, idx[t]) * w[t].view(wshape)
        out = term if out is None else out.add_(term)
    return out


def _chroma_shift_raw(loc: str, horizontal: bool) -> float:
    # zimg graphbuilder chroma_shift_raw(): LEFT -> -0.5 horizontally, TOP -> -0.5 vertically.
    if horizontal:
        return -0.5 if loc in ("left", "topleft") else 0.0
    return -0.5 if loc == "topleft" else 0.0


def _upsample_chroma(c: torch.Tensor, fmt: PlaneFormat, height: int, width: int, filt: BicubicFilter) -> torch.Tensor:
    ssw, ssh = fmt.subsampling
    if ssw:
        # Shift in chroma samples: -(1 / 2^ss) * raw, e.g. +0.25 for MPEG-2 "left".
        c = resample_1d(c, -1, width, -_chroma_shift_raw(fmt.chroma_location, True) / (1 << ssw), filt)
    if ssh:
        c = resample_1d(c, -2, height, -_chroma_shift_raw(fmt.chroma_location, False) / (1 << ssh), filt)
    return c


def _downsample_chroma(c: torch.Tensor, fmt: PlaneFormat, filt: BicubicFilter) -> torch.Tensor:
    ssw, ssh = fmt.subsampling
    if ssw:
        # Shift in luma samples: raw * (src / dst of the luma plane) = raw, e.g. -0.5 for "left".
        c = resample_1d(c, -1, c.shape[-1] >> ssw, _chroma_shift_raw(fmt.chroma_location, True), filt)
    if ssh:
        c = resample_1d(c, -2, c.shape[-2] >> ssh, _chroma_shift_raw(fmt.chroma_location, False), filt)
    return c


# --------------------------------------------------------------------------
# Plane <-> float helpers
# --------------------------------------------------------------------------


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def _plane_to_float(p: torch.Tensor, scale: float, offset: float, fmt: PlaneFormat, cdtype: torch.dtype) -> torch.Tensor:
    if not isinstance(p, torch.Tensor):
        raise TypeError(f"planes must be torch tensors, got {type(p).__name__}")
    if p.is_floating_point():
        x = p.to(cdtype)
        if not fmt.is_float:
            # Integer code values held in a float tensor.
            x = (x - offset) * (1.0 / scale) if (scale != 1.0 or offset != 0.0) else x
        return x
    if fmt.is_float:
        raise TypeError(f"float format expects floating point planes, got {p.dtype}")
    if p.dtype == torch.int16:
        p = p.to(torch.int32) & 0xFFFF  # int16 holding uint16 bit patterns
    x = p.to(cdtype)
    return (x - offset) * (1.0 / scale)


def _float_to_plane(
    x: torch.Tensor, scale: float, offset: float, fmt: PlaneFormat, out_dtype: torch.dtype, rounded: bool = True
) -> torch.Tensor:
    if fmt.is_float:
        return x.to(out_dtype)
    if not rounded:
        if not out_dtype.is_floating_point:
            raise ValueError("rounded=False needs a floating point out_dtype")
        return (x * scale + offset).to(out_dtype)
    q = torch.round(x * scale + offset).clamp_(0, (1 << fmt.bits) - 1)
    if out_dtype.is_floating_point:
        return q.to(out_dtype)
    if out_dtype == torch.uint8 and fmt.bits > 8:
        raise ValueError(f"out_dtype uint8 cannot hold {fmt.bits}-bit values")
    if out_dtype == torch.int16 and fmt.bits == 16:
        return q.to(torch.int32).to(torch.int16)  # wraps to the uint16 bit pattern
    if out_dtype == torch.int8 or out_dtype == torch.bool:
        raise ValueError(f"unsupported out_dtype {out_dtype}")
    return q.to(out_dtype)


def _check_planes(planes: Sequence[torch.Tensor], fmt: PlaneFormat) -> tuple[int, int]:
    if len(planes) != fmt.num_planes:
        raise ValueError(f"{fmt.family} format has {fmt.num_planes} planes, got {len(planes)}")
    y = planes[0]
    if y.dim() < 2:
        raise ValueError(f"planes must be at least 2-D (..., h, w), got shape {tuple(y.shape)}")
    height, width = y.shape[-2], y.shape[-1]
    ssw, ssh = fmt.subsampling
    if width % (1 << ssw) or height % (1 << ssh):
        raise ValueError(
            f"frame size {width}x{height} is not divisible by the chroma subsampling {fmt.subsampling}"
        )
    expected = (height >> ssh, width >> ssw) if fmt.family == "yuv" else (height, width)
    for i, p in enumerate(planes[1:], 1):
        if p.shape[:-2] != y.shape[:-2] or tuple(p.shape[-2:]) != expected:
            raise ValueError(
                f"plane {i} has shape {tuple(p.shape)}, expected {tuple(y.shape[:-2]) + expected}"
            )
        if p.device != y.device:
            raise ValueError(f"all planes must be on one device ({y.device} vs {p.device})")
    return height, width


# --------------------------------------------------------------------------
# Public conversions
# --------------------------------------------------------------------------


def planes_to_rgb(
    planes: Sequence[torch.Tensor],
    fmt: PlaneFormat,
    *,
    dtype: torch.dtype = torch.float32,
    clamp: bool = True,
    chroma_filter: BicubicFilter = CHROMA_FILTER,
) -> torch.Tensor:
    """Convert planes to normalised RGB on the planes' device.

    ``planes`` are ``(N, h_i, w_i)`` tensors (any leading dims work): uint8,
    int16 (uint16 bit patterns) / int32 / uint16 for integer formats, float for
    float formats.  Returns ``(N, 3, H, W)`` RGB (``(N, 1, H, W)`` normalised
    luma for gray) in ``dtype``, chroma upsampled to the luma size.

    With ``clamp=True`` (the default, what the models expect) the result is
    clamped to [0, 1]; YUV content can legitimately decode slightly outside
    the RGB gamut (and limited range has foot/headroom), which VapourSynth only
    clips when it writes an integer RGB format.  ``clamp=False`` keeps those
    values, matching VapourSynth's float RGB output.
    """
    fmt.validate()
    _check_planes(planes, fmt)
    height, width = planes[0].shape[-2], planes[0].shape[-1]
    cdtype = _compute_dtype(dtype)

    if fmt.family in ("gray", "rgb"):
        s, o = _luma_scale_offset(fmt)
        out = torch.stack([_plane_to_float(p, s, o, fmt, cdtype) for p in planes], dim=-3)
    else:
        kr, kb = MATRIX_COEFFICIENTS[fmt.matrix]  # type: ignore[index]
        kg = 1.0 - kr - kb
        ys, yo = _luma_scale_offset(fmt)
        cs, co = _chroma_scale_offset(fmt)
        y = _plane_to_float(planes[0], ys, yo, fmt, cdtype)
        u = _upsample_chroma(_plane_to_float(planes[1], cs, co, fmt, cdtype), fmt, height, width, chroma_filter)
        v = _upsample_chroma(_plane_to_float(planes[2], cs, co, fmt, cdtype), fmt, height, width, chroma_filter)
        r = y + (2.0 * (1.0 - kr)) * v
        b = y + (2.0 * (1.0 - kb)) * u
        # G = (Y - Kr R - Kb B) / Kg, expanded in terms of Y, U, V.
        g = y - (2.0 * kb * (1.0 - kb) / kg) * u - (2.0 * kr * (1.0 - kr) / kg) * v
        out = torch.stack([r, g, b], dim=-3)

    if clamp:
        out = out.clamp_(0.0, 1.0)
    return out.to(dtype)


def rgb_to_planes(
    rgb: torch.Tensor,
    fmt: PlaneFormat,
    *,
    out_dtype: torch.dtype | None = None,
    chroma_filter: BicubicFilter = CHROMA_FILTER,
    rounded: bool = True,
) -> list[torch.Tensor]:
    """Inverse of :func:`planes_to_rgb`: ``(N, 3, H, W)`` RGB (``(N, 1, H, W)`` for gray) -> planes of ``fmt``.

    Chroma is computed at full resolution and downsampled (honouring the chroma
    location).  Integer formats are rounded (half to even) and clamped to the
    storage range 0..2^b-1 only: limited-range values below 16 / above 235 are
    legal and kept.  Float formats give Y/RGB in [0, 1] nominal and U/V in
    [-0.5, 0.5] nominal, unclamped, like VapourSynth.  ``out_dtype`` defaults to
    :func:`storage_dtype`; a float ``out_dtype`` on an integer format gives the
    rounded code values as floats, and with ``rounded=False`` the exact (unrounded, unclamped)
    code values.  Outputs are on ``rgb``'s device.
    """
    fmt.validate()
    if not isinstance(rgb, torch.Tensor) or not rgb.is_floating_point():
        raise TypeError("rgb must be a floating point torch tensor")
    channels = 1 if fmt.family == "gray" else 3
    if rgb.dim() < 3 or rgb.shape[-3] != channels:
        raise ValueError(f"{fmt.family} expects (..., {channels}, H, W) input, got shape {tuple(rgb.shape)}")
    height, width = rgb.shape[-2], rgb.shape[-1]
    ssw, ssh = fmt.subsampling
    if width % (1 << ssw) or height % (1 << ssh):
        raise ValueError(f"frame size {width}x{height} is not divisible by the chroma subsampling {fmt.subsampling}")
    if out_dtype is None:
        out_dtype = storage_dtype(fmt)
    cdtype = torch.float64 if rgb.dtype == torch.float64 else torch.float32
    x = rgb.to(cdtype)

    if fmt.family in ("gray", "rgb"):
        s, o = _luma_scale_offset(fmt)
        return [_float_to_plane(x[..., i, :, :], s, o, fmt, out_dtype, rounded) for i in range(channels)]

    kr, kb = MATRIX_COEFFICIENTS[fmt.matrix]  # type: ignore[index]
    kg = 1.0 - kr - kb
    r, g, b = x[..., 0, :, :], x[..., 1, :, :], x[..., 2, :, :]
    y = kr * r + kg * g + kb * b
    u = (b - y) * (0.5 / (1.0 - kb))
    v = (r - y) * (0.5 / (1.0 - kr))
    u = _downsample_chroma(u, fmt, chroma_filter)
    v = _downsample_chroma(v, fmt, chroma_filter)
    ys, yo = _luma_scale_offset(fmt)
    cs, co = _chroma_scale_offset(fmt)
    return [
        _float_to_plane(y, ys, yo, fmt, out_dtype, rounded),
        _float_to_plane(u, cs, co, fmt, out_dtype, rounded),
        _float_to_plane(v, cs, co, fmt, out_dtype, rounded),
    ]


def _check_luma_format(fmt: PlaneFormat) -> None:
    fmt.validate()
    if fmt.family == "rgb":
        raise ValueError("rgb formats have no luma plane")


def luma_to_unit(y: torch.Tensor, fmt: PlaneFormat, *, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Normalise a single luma (Y or gray) plane to [0, 1] nominal, same shape, on its device.

    For the luma-only mode (Y through a gray model, chroma untouched).  Not
    clamped: limited-range foot/headroom maps slightly outside [0, 1].
    """
    _check_luma_format(fmt)
    s, o = _luma_scale_offset(fmt)
    return _plane_to_float(y, s, o, fmt, _compute_dtype(dtype)).to(dtype)


def unit_to_luma(x: torch.Tensor, fmt: PlaneFormat, *, out_dtype: torch.dtype | None = None, rounded: bool = True) -> torch.Tensor:
    """Inverse of :func:`luma_to_unit`: round and clamp to the storage range (integer) or pass through (float)."""
    _check_luma_format(fmt)
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise TypeError("x must be a floating point torch tensor")
    s, o = _luma_scale_offset(fmt)
    cdtype = torch.float64 if x.dtype == torch.float64 else torch.float32
    return _float_to_plane(x.to(cdtype), s, o, fmt, out_dtype or storage_dtype(fmt), rounded)
