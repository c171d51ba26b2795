"""Image quality metrics as used to evaluate FBCNN (Jiang et al., ICCV 2021).

The definitions follow the KAIR code base (``utils/utils_image.py``) that the
FBCNN paper was evaluated with:

* :func:`psnr` - PSNR over all pixels and channels, computed in float64.
* :func:`ssim` - Wang et al. SSIM with an 11x11 Gaussian window (sigma 1.5),
  *valid* filtering (no padding: the 5-pixel margin where the window would
  leave the image is not scored), ``C1 = (0.01 L)^2``, ``C2 = (0.03 L)^2``;
  colour images score the mean of the per-channel SSIMs.
* :func:`psnrb` - PSNR-B (Yim & Bovik, 2011): ``MSE`` is replaced by
  ``MSE + BEF(test image)``, the blocking-effect factor measured across the
  8x8 block boundaries of the image under test.
* :func:`psnr_y`, :func:`ssim_y`, :func:`psnrb_y` - the same metrics on a single
  luma plane, and :func:`rgb_to_y` to derive that plane from RGB when nothing
  better is available.

Conventions shared by every function:

* Inputs are numpy arrays (anything ``np.asarray`` accepts), ``HxW`` or
  ``HxWxC`` with channels last; ``HxWx1`` is treated as ``HxW``. Both images
  must have the same shape, else ``ValueError`` naming both shapes.
* ``a`` is the reference (ground truth), ``b`` the image under test. PSNR and
  SSIM are symmetric; PSNR-B is not: its BEF term is measured on ``b``.
* ``peak`` is the dynamic range ``L`` (maximum possible pixel value). When it is
  ``None`` it is derived from the dtype: 255 for ``uint8``, 65535 for
  ``uint16`` (generally the maximum of an unsigned integer type) and **1.0 for
  floating-point arrays** (i.e. float images are assumed to be normalised to
  ``[0, 1]``; pass ``peak=255.0`` for float images holding 0..255 values).
  If the two inputs imply different peaks (e.g. ``uint8`` against float),
  ``peak`` must be given explicitly. Signed integer and boolean arrays always
  need an explicit ``peak``.
* ``border`` crops that many pixels from every edge of both images before
  anything is computed (KAIR's ``border`` / ``shave``). Like KAIR, PSNR-B then
  places its 8x8 grid at the top-left corner of the *cropped* image, so use a
  multiple of 8 to keep the grid aligned with the codec's.

Video: score the Y plane exactly as it is stored in the decoded YUV frame
(pass it to the ``*_y`` functions). Do not convert YUV -> RGB -> Y: the round
trip (chroma upsampling, clipping, rounding) changes the numbers. Use
:func:`rgb_to_y` only when the material only exists as RGB (e.g. the PNG test
sets of the paper).
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "blocking_effect_factor",
    "psnr",
    "psnr_y",
    "psnrb",
    "psnrb_y",
    "rgb_to_y",
    "ssim",
    "ssim_y",
]

PsnrbVariant = Literal["kair", "fbcnn"]

_BLOCK = 8
_SSIM_RADIUS = 5  # 11x11 window
_SSIM_SIGMA = 1.5
# BT.601 studio-range luma weights for RGB in [0, 255] (MATLAB rgb2ycbcr, KAIR
# rgb2ycbcr(only_y=True) / bgr2ycbcr with the channel order reversed).
_Y_WEIGHTS = np.array([65.481, 128.553, 24.966], dtype=np.float64) / 255.0
_Y_OFFSET = 16.0 / 255.0  # as a fraction of the peak


# --------------------------------------------------------------------------
# input handling
# --------------------------------------------------------------------------
def _dtype_peak(dtype: np.dtype) -> float | None:
    if dtype == np.bool_:
        return None
    if np.issubdtype(dtype, np.unsignedinteger):
        return float(np.iinfo(dtype).max)
    if np.issubdtype(dtype, np.floating):
        return 1.0
    return None


def _resolve_peak(a: NDArray, b: NDArray, peak: float | None) -> float:
    if peak is not None:
        peak = float(peak)
        if not (peak > 0 and math.isfinite(peak)):
            raise ValueError(f"peak must be a positive finite number, got {peak!r}")
        return peak
    pa, pb = _dtype_peak(a.dtype), _dtype_peak(b.dtype)
    if pa is None or pb is None:
        raise ValueError(
            f"cannot derive the peak value from dtypes {a.dtype} / {b.dtype}; pass peak= explicitly"
        )
    if pa != pb:
        raise ValueError(
            f"dtypes {a.dtype} and {b.dtype} imply different peak values ({pa:g} vs {pb:g}); "
            "pass peak= explicitly"
        )
    return pa


def _prepare(
    a: ArrayLike, b: ArrayLike, peak: float | None, border: int
) -> tuple[NDArray[np.float64], NDArray[np.float64], float]:
    """Validate, crop and convert a pair of images to float64 HxWxC."""
    a = np.asarray(a)
    b = np.asarray(b)
    if a.shape != b.shape:
        raise ValueError(f"input images must have the same shape, got {a.shape} and {b.shape}")
    if a.ndim not in (2, 3):
        raise ValueError(f"expected HxW or HxWxC images, got shape {a.shape}")
    if a.ndim == 3 and a.shape[2] < 1:
        raise ValueError(f"image has no channels: shape {a.shape}")
    L = _resolve_peak(a, b, peak)
    border = int(border)
    if border < 0:
        raise ValueError(f"border must be >= 0, got {border}")
    h, w = a.shape[:2]
    if 2 * border >= h or 2 * border >= w:
        raise ValueError(f"border={border} crops away the whole {h}x{w} image")
    if border:
        a = a[border : h - border, border : w - border]
        b = b[border : h - border, border : w - border]
    if a.ndim == 2:
        a = a[:, :, None]
        b = b[:, :, None]
    return a.astype(np.float64), b.astype(np.float64), L


def _as_plane(x: ArrayLike, name: str) -> NDArray:
    x = np.asarray(x)
    if x.ndim == 3 and x.shape[2] == 1:
        x = x[:, :, 0]
    if x.ndim != 2:
        raise ValueError(
            f"{name} must be a single HxW plane (e.g. the Y plane of a YUV frame), got shape "
            f"{x.shape}; use rgb_to_y() to derive Y from RGB"
        )
    return x


def _psnr_from_mse(mse: float, peak: float) -> float:
    if mse == 0:
        return math.inf
    return 10.0 * math.log10(peak * peak / mse)


# --------------------------------------------------------------------------
# PSNR
# --------------------------------------------------------------------------
def psnr(a: ArrayLike, b: ArrayLike, *, peak: float | None = None, border: int = 0) -> float:
    """PSNR in dB between reference ``a`` and test ``b`` over all pixels and channels.

    ``10*log10(peak**2 / MSE)`` with the MSE in float64 (KAIR ``calculate_psnr``).
    Returns ``math.inf`` for identical images.
    """
    x, y, L = _prepare(a, b, peak, border)
    mse = float(np.mean((x - y) ** 2))
    return _psnr_from_mse(mse, L)


# --------------------------------------------------------------------------
# SSIM
# --------------------------------------------------------------------------
def _gaussian_kernel() -> NDArray[np.float64]:
    t = np.arange(-_SSIM_RADIUS, _SSIM_RADIUS + 1, dtype=np.float64)
    g = np.exp(-(t * t) / (2.0 * _SSIM_SIGMA * _SSIM_SIGMA))
    return g / g.sum()


def _filter_valid(x: NDArray[np.float64], k: NDArray[np.float64]) -> NDArray[np.float64]:
    """Separable 'valid' correlation of a 2-D array with the 1-D kernel ``k`` on both axes."""
    n = k.size
    x = np.lib.stride_tricks.sliding_window_view(x, n, axis=0) @ k  # (H-n+1, W)
    return np.lib.stride_tricks.sliding_window_view(x, n, axis=1) @ k  # (H-n+1, W-n+1)


def _ssim_plane(x: NDArray[np.float64], y: NDArray[np.float64], L: float) -> float:
    c1 = (0.01 * L) ** 2
    c2 = (0.03 * L) ** 2
    k = _gaussian_kernel()
    mu_x = _filter_valid(x, k)
    mu_y = _filter_valid(y, k)
    mu_xx = mu_x * mu_x
    mu_yy = mu_y * mu_y
    mu_xy = mu_x * mu_y
    var_x = _filter_valid(x * x, k) - mu_xx
    var_y = _filter_valid(y * y, k) - mu_yy
    cov = _filter_valid(x * y, k) - mu_xy
    ssim_map = ((2.0 * mu_xy + c1) * (2.0 * cov + c2)) / ((mu_xx + mu_yy + c1) * (var_x + var_y + c2))
    return float(ssim_map.mean())


def ssim(a: ArrayLike, b: ArrayLike, *, peak: float | None = None, border: int = 0) -> float:
    """SSIM between ``a`` and ``b`` as in KAIR ``calculate_ssim``.

    11x11 Gaussian window (sigma 1.5), 'valid' filtering (the SSIM map covers only
    positions where the whole window lies inside the image), ``C1 = (0.01*peak)**2``,
    ``C2 = (0.03*peak)**2``, computed in float64. For ``HxWxC`` input the result is
    the mean of the per-channel SSIMs. Images (after ``border``) must be at least
    11x11.
    """
    x, y, L = _prepare(a, b, peak, border)
    n = 2 * _SSIM_RADIUS + 1
    if x.shape[0] < n or x.shape[1] < n:
        raise ValueError(f"SSIM needs images of at least {n}x{n}, got {x.shape[0]}x{x.shape[1]}")
    return float(np.mean([_ssim_plane(x[:, :, c], y[:, :, c], L) for c in range(x.shape[2])]))


# --------------------------------------------------------------------------
# PSNR-B
# --------------------------------------------------------------------------
def _bef_plane(img: NDArray[np.float64], variant: PsnrbVariant) -> float:
    h, w = img.shape
    if min(h, w) < 2 * _BLOCK:
        raise ValueError(f"PSNR-B needs images of at least {2 * _BLOCK}x{2 * _BLOCK}, got {h}x{w}")
    dh = (img[:, :-1] - img[:, 1:]) ** 2  # differences between columns j and j+1
    dv = (img[:-1, :] - img[1:, :]) ** 2  # differences between rows i and i+1
    col_b = np.arange(w - 1) % _BLOCK == _BLOCK - 1  # j = 7, 15, ... (block boundary)
    row_b = np.arange(h - 1) % _BLOCK == _BLOCK - 1
    sum_b = float(dh[:, col_b].sum() + dv[row_b, :].sum())
    sum_bc = float(dh[:, ~col_b].sum() + dv[~row_b, :].sum())
    # Pair counts exactly as the reference code (Yim & Bovik's formulas, which
    # assume dimensions divisible by 8): KAIR uses floor division, the FBCNN
    # repository true division. For other sizes neither matches the number of
    # pairs actually summed, which inflates the boundary average.
    if variant == "kair":
        n_hb = h * (w // _BLOCK - 1)
        n_vb = w * (h // _BLOCK - 1)
    else:
        n_hb = h * (w / _BLOCK - 1)
        n_vb = w * (h / _BLOCK - 1)
    n_hbc = h * (w - 1) - n_hb
    n_vbc = w * (h - 1) - n_vb
    d_b = sum_b / (n_hb + n_vb)
    d_bc = sum_bc / (n_hbc + n_vbc)
    if d_b <= d_bc:
        return 0.0
    eta = math.log2(_BLOCK) / math.log2(min(h, w))
    return eta * (d_b - d_bc)


def _check_variant(variant: str) -> None:
    if variant not in ("kair", "fbcnn"):
        raise ValueError(f"variant must be 'kair' or 'fbcnn', got {variant!r}")


def blocking_effect_factor(img: ArrayLike, *, variant: PsnrbVariant = "kair") -> float:
    """Blocking-effect factor (BEF) of a single ``HxW`` plane over an 8x8 grid at (0, 0).

    ``eta * (D_B - D_Bc)`` if the mean squared difference across block boundaries
    ``D_B`` exceeds the one across non-boundary neighbours ``D_Bc``, else 0, with
    ``eta = log2(8) / log2(min(H, W))``. The result is in squared pixel units (the
    image's own scale, like an MSE). ``variant`` picks how boundary pairs are
    counted for sizes not divisible by 8 (see :func:`psnrb`). Needs ``H, W >= 16``.
    """
    _check_variant(variant)
    plane = _as_plane(img, "img").astype(np.float64)
    return _bef_plane(plane, variant)


def psnrb(
    a: ArrayLike,
    b: ArrayLike,
    *,
    peak: float | None = None,
    border: int = 0,
    variant: PsnrbVariant = "kair",
) -> float:
    """PSNR-B in dB of test image ``b`` against reference ``a``.

    ``10*log10(peak**2 / (MSE(a, b) + BEF(b)))``; the BEF is measured on the
    image under test ``b`` only (a reference image full of block edges does not
    lower the score, a blocky ``b`` does even when ``a == b``, so identical images
    give ``inf`` only if ``b`` shows no blocking).

    ``variant="kair"`` (default) follows KAIR ``calculate_psnrb``: every channel
    gets its own MSE and BEF, and the per-channel PSNR-B values (in dB) are
    averaged. KAIR's function takes the test image *first*
    (``calculate_psnrb(output, img_gt)``); here it is the second argument.

    ``variant="fbcnn"`` follows the FBCNN repository's own ``calculate_psnrb(img_H,
    img_E)`` used for the paper's colour tables: one MSE over all RGB channels
    plus a single BEF measured on the BT.601 luma of ``b`` (see :func:`rgb_to_y`,
    rounded for integer input); the boundary counts use true instead of floor
    division. For single-plane images the two variants agree whenever ``H`` and
    ``W`` are multiples of 8.
    """
    _check_variant(variant)
    x, y, L = _prepare(a, b, peak, border)
    if variant == "fbcnn" and y.shape[2] == 3:
        mse = float(np.mean((x - y) ** 2))
        b_int = np.asarray(b)
        h, w = b_int.shape[:2]
        if border:
            b_int = b_int[border : h - border, border : w - border]
        # rgb_to_y on the original dtype so integer input is rounded like KAIR
        luma = rgb_to_y(b_int, peak=L).astype(np.float64)
        return _psnr_from_mse(mse + _bef_plane(luma, variant), L)
    values = []
    for c in range(x.shape[2]):
        mse = float(np.mean((x[:, :, c] - y[:, :, c]) ** 2))
        values.append(_psnr_from_mse(mse + _bef_plane(y[:, :, c], variant), L))
    return float(np.mean(values))


# --------------------------------------------------------------------------
# Y channel
# --------------------------------------------------------------------------
def rgb_to_y(rgb: ArrayLike, *, peak: float | None = None) -> NDArray:
    """BT.601 studio-range luma of an ``HxWx3`` RGB image (MATLAB ``rgb2ycbcr``).

    ``Y = (65.481 R + 128.553 G + 24.966 B) / 255 + 16`` for 0..255 values, as KAIR
    ``rgb2ycbcr(img, only_y=True)`` (``bgr2ycbcr`` for BGR order); channel order
    here is RGB. For other ranges everything scales with ``peak`` (offset
    ``16/255*peak``; for uint16 that is 16*257, not 16<<8). Integer input is
    rounded and returned in its own dtype (KAIR rounds uint8); float input returns
    unrounded float64 (``peak`` defaults to 1.0, giving Y in [16/255, 235/255]).

    Prefer the Y plane of the decoded YUV frame for video; this is for RGB-only
    material.
    """
    arr = np.asarray(rgb)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 RGB image, got shape {arr.shape}")
    L = _resolve_peak(arr, arr, peak)
    y = arr.astype(np.float64) @ _Y_WEIGHTS + _Y_OFFSET * L
    if np.issubdtype(arr.dtype, np.integer):
        info = np.iinfo(arr.dtype)
        return np.clip(np.round(y), info.min, info.max).astype(arr.dtype)
    return y


def psnr_y(a_y: ArrayLike, b_y: ArrayLike, *, peak: float | None = None, border: int = 0) -> float:
    """:func:`psnr` on single luma planes (``HxW``; e.g. Y read directly from a YUV frame)."""
    return psnr(_as_plane(a_y, "a_y"), _as_plane(b_y, "b_y"), peak=peak, border=border)


def ssim_y(a_y: ArrayLike, b_y: ArrayLike, *, peak: float | None = None, border: int = 0) -> float:
    """:func:`ssim` on single luma planes (``HxW``; e.g. Y read directly from a YUV frame)."""
    return ssim(_as_plane(a_y, "a_y"), _as_plane(b_y, "b_y"), peak=peak, border=border)


def psnrb_y(
    a_y: ArrayLike,
    b_y: ArrayLike,
    *,
    peak: float | None = None,
    border: int = 0,
    variant: PsnrbVariant = "kair",
) -> float:
    """:func:`psnrb` on single luma planes; ``a_y`` reference, ``b_y`` under test (BEF on ``b_y``)."""
    return psnrb(_as_plane(a_y, "a_y"), _as_plane(b_y, "b_y"), peak=peak, border=border, variant=variant)
