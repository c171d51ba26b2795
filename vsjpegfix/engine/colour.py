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

from typing import Sequence

import torch

from vsjpegfix.engine.formats import (
    MATRIX_COEFFICIENTS,
    MATRIX_FROM_VS,
    PlaneFormat,
    chroma_scale_offset,
    luma_scale_offset,
    storage_dtype,
)
from vsjpegfix.engine.resample import (
    CATMULL_ROM,
    CHROMA_FILTER,
    BicubicFilter,
    downsample_chroma,
    filter_taps,
    resample_1d,
    upsample_chroma,
)

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
        s, o = luma_scale_offset(fmt)
        out = torch.stack([_plane_to_float(p, s, o, fmt, cdtype) for p in planes], dim=-3)
    else:
        kr, kb = MATRIX_COEFFICIENTS[fmt.matrix]  # type: ignore[index]
        kg = 1.0 - kr - kb
        ys, yo = luma_scale_offset(fmt)
        cs, co = chroma_scale_offset(fmt)
        y = _plane_to_float(planes[0], ys, yo, fmt, cdtype)
        u = upsample_chroma(_plane_to_float(planes[1], cs, co, fmt, cdtype), fmt, height, width, chroma_filter)
        v = upsample_chroma(_plane_to_float(planes[2], cs, co, fmt, cdtype), fmt, height, width, chroma_filter)
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
        s, o = luma_scale_offset(fmt)
        return [_float_to_plane(x[..., i, :, :], s, o, fmt, out_dtype, rounded) for i in range(channels)]

    kr, kb = MATRIX_COEFFICIENTS[fmt.matrix]  # type: ignore[index]
    kg = 1.0 - kr - kb
    r, g, b = x[..., 0, :, :], x[..., 1, :, :], x[..., 2, :, :]
    y = kr * r + kg * g + kb * b
    u = (b - y) * (0.5 / (1.0 - kb))
    v = (r - y) * (0.5 / (1.0 - kr))
    u = downsample_chroma(u, fmt, chroma_filter)
    v = downsample_chroma(v, fmt, chroma_filter)
    ys, yo = luma_scale_offset(fmt)
    cs, co = chroma_scale_offset(fmt)
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
    s, o = luma_scale_offset(fmt)
    return _plane_to_float(y, s, o, fmt, _compute_dtype(dtype)).to(dtype)


def unit_to_luma(x: torch.Tensor, fmt: PlaneFormat, *, out_dtype: torch.dtype | None = None, rounded: bool = True) -> torch.Tensor:
    """Inverse of :func:`luma_to_unit`: round and clamp to the storage range (integer) or pass through (float)."""
    _check_luma_format(fmt)
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise TypeError("x must be a floating point torch tensor")
    s, o = luma_scale_offset(fmt)
    cdtype = torch.float64 if x.dtype == torch.float64 else torch.float32
    return _float_to_plane(x.to(cdtype), s, o, fmt, out_dtype or storage_dtype(fmt), rounded)
