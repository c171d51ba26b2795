"""Chroma resampling with zimg's separable bicubic filters (taps, positions and edges as
``compute_filter`` builds them), on the device; see :mod:`vsjpegfix.engine.colour`.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from vsjpegfix.engine.formats import (
    PlaneFormat,
)


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


def upsample_chroma(c: torch.Tensor, fmt: PlaneFormat, height: int, width: int, filt: BicubicFilter) -> torch.Tensor:
    ssw, ssh = fmt.subsampling
    if ssw:
        # Shift in chroma samples: -(1 / 2^ss) * raw, e.g. +0.25 for MPEG-2 "left".
        c = resample_1d(c, -1, width, -_chroma_shift_raw(fmt.chroma_location, True) / (1 << ssw), filt)
    if ssh:
        c = resample_1d(c, -2, height, -_chroma_shift_raw(fmt.chroma_location, False) / (1 << ssh), filt)
    return c


def downsample_chroma(c: torch.Tensor, fmt: PlaneFormat, filt: BicubicFilter) -> torch.Tensor:
    ssw, ssh = fmt.subsampling
    if ssw:
        # Shift in luma samples: raw * (src / dst of the luma plane) = raw, e.g. -0.5 for "left".
        c = resample_1d(c, -1, c.shape[-1] >> ssw, _chroma_shift_raw(fmt.chroma_location, True), filt)
    if ssh:
        c = resample_1d(c, -2, c.shape[-2] >> ssh, _chroma_shift_raw(fmt.chroma_location, False), filt)
    return c
