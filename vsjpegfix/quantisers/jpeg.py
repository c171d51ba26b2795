"""What a JPEG file says about its own quality, and traces of an earlier compression.

* :func:`estimate_qf` derives the quality factor from the quantisation tables a file states:
  exact for tables made by the IJG (libjpeg) quality scaling, the nearest equivalent for others.
* :func:`detect_double_jpeg` looks for an earlier, stronger compression on a shifted 8x8 grid
  (the usual result of cropping and re-saving) with a JPEG ghost: on the earlier grid, and at the
  earlier quality, re-quantising changes the image far less than on any other grid. FBCNN-D's
  dominant-QF correction (:func:`dominant_qf`) then controls the restoration with the smaller
  of the two QFs.

Measured on CBSD68 photos (see ``tests/quantisers/test_jpeg.py``): the earlier grid and QF (within
+-2) are found for earlier QFs well below the last one (e.g. 10 or 30 then 50..90), with no
detection on single JPEGs at QF 10..95 or on uncompressed images; an earlier QF at or above the
last one leaves too little trace and is not detected (it does not change the dominant QF).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

# ITU-T T.81 Annex K example tables (natural row-major order, as Pillow reports them)
STD_LUMA = np.array([
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55,
    14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62,
    18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99,
], dtype=np.int64)
STD_CHROMA = np.array([
    17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99,
    24, 26, 56, 99, 99, 99, 99, 99, 47, 66, 99, 99, 99, 99, 99, 99,
    99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99,
    99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99,
], dtype=np.int64)


def ijg_scale(quality: int) -> int:
    """libjpeg's ``jpeg_quality_scaling``: percentage applied to the base tables."""
    q = min(100, max(1, int(quality)))
    return 5000 // q if q < 50 else 200 - 2 * q


def ijg_table(base: np.ndarray, quality: int, *, baseline: bool = True) -> np.ndarray:
    """Quantisation table libjpeg writes for ``quality`` (``force_baseline`` clamps to 255)."""
    t = (base * ijg_scale(quality) + 50) // 100
    return np.clip(t, 1, 255 if baseline else 32767)


@dataclass(frozen=True)
class QualityEstimate:
    """Quality factor stated by a file's tables; ``exact`` when they are IJG tables for that QF."""

    qf: float
    exact: bool
    mismatch: float  # mean |log(table / IJG table)| at the chosen QF (0 when exact)


_LUMA_TABLES = np.stack([ijg_table(STD_LUMA, q) for q in range(1, 101)])
_CHROMA_TABLES = np.stack([ijg_table(STD_CHROMA, q) for q in range(1, 101)])
# libjpeg without force_baseline (e.g. ``cjpeg -quality 10``) writes 16-bit tables at low qualities
_LUMA_TABLES_16 = np.stack([ijg_table(STD_LUMA, q, baseline=False) for q in range(1, 101)])
_CHROMA_TABLES_16 = np.stack([ijg_table(STD_CHROMA, q, baseline=False) for q in range(1, 101)])


def _as_tables(quantization: dict[int, list[int]] | list[list[int]]) -> list[np.ndarray]:
    if isinstance(quantization, dict):
        quantization = [quantization[k] for k in sorted(quantization)]  # by table id, not file order
    tables = [np.asarray(t, dtype=np.float64).reshape(-1) for t in quantization]
    if not tables or any(t.size != 64 for t in tables):
        raise ValueError("quantisation tables must have 64 entries")
    if any(t.min() < 1 for t in tables):
        raise ValueError("quantisation table entries must be >= 1")
    return tables


def estimate_qf(quantization: dict[int, list[int]] | list[list[int]]) -> QualityEstimate:
    """Quality factor from quantisation tables (Pillow's ``image.quantization``, natural order).

    Table 0 is compared with the scaled standard (ITU-T T.81 Annex K) luminance table and table 1,
    if any, with the chrominance table, as libjpeg's ``jpeg_set_quality`` scales them (8-bit
    "baseline" tables clamped to 255, or 16-bit ones).

    * Identical tables: that QF, ``exact=True``. The luminance tables of QF 1..100 are all
      different, so every IJG-made file reads back its own QF exactly; only the chrominance tables
      coincide (all 255 for QF 1..3), and the luminance table tells those apart. Were several QFs
      to match, the middle of their range would be reported (still exact).
    * Other tables (other encoders, Pillow ``qtables=`` or its presets, cameras): the QF whose
      tables are nearest in log scale, luminance weighted twice, ``exact=False`` - a fair
      equivalent strength for FBCNN's quality control. ``mismatch`` says how far off they are.
    """
    tables = _as_tables(quantization)
    luma = tables[0]
    chroma = tables[1] if len(tables) > 1 else None
    for luma_set, chroma_set in ((_LUMA_TABLES, _CHROMA_TABLES), (_LUMA_TABLES_16, _CHROMA_TABLES_16)):
        match = (luma_set == luma).all(axis=1)
        if chroma is not None:
            match &= (chroma_set == chroma).all(axis=1)
        if match.any():
            qs = np.flatnonzero(match) + 1
            return QualityEstimate(float((qs.min() + qs.max()) / 2), True, 0.0)
    wide = max(t.max() for t in tables) > 255
    luma_set, chroma_set = (_LUMA_TABLES_16, _CHROMA_TABLES_16) if wide else (_LUMA_TABLES, _CHROMA_TABLES)
    err = np.abs(np.log(luma)[None] - np.log(luma_set)).mean(axis=1)
    if chroma is not None:
        err = (2 * err + np.abs(np.log(chroma)[None] - np.log(chroma_set)).mean(axis=1)) / 3
    best = int(np.argmin(err))
    return QualityEstimate(float(best + 1), False, float(err[best]))


def read_jpeg_quality(path: Path | str) -> QualityEstimate | None:
    """Quality estimate of a JPEG file, or None for other formats."""
    with Image.open(path) as im:
        if im.format not in ("JPEG", "MPO") or not getattr(im, "quantization", None):
            return None
        return estimate_qf(im.quantization)


@dataclass(frozen=True)
class DoubleJpegEstimate:
    """Evidence of an earlier compression on a shifted grid.

    ``shift`` is the phase ``(dy, dx)`` of the earlier 8x8 grid: its blocks start at rows
    ``dy + 8k`` and columns ``dx + 8k`` of the analysed image. An image made by
    :func:`vsjpegfix.training.degrade.double_jpeg` with ``shift=(sy, sx)`` (``sy`` rows and ``sx`` columns
    cropped between the two compressions) has its earlier grid at ``((8 - sy) % 8, (8 - sx) % 8)``.
    ``strength`` is the ghost contrast: how many times smaller the re-compression error is on that
    grid at ``qf1`` than on the other grids of its kind (1 = no trace); ``sharpness`` is the error at
    ``qf1`` over that at qualities 2..5 away (< 1: a dip at one quality, the mark of a real table).
    """

    detected: bool
    shift: tuple[int, int]
    qf1: float | None  # earlier quality factor (IJG scale)
    strength: float
    sharpness: float = 1.0
    qf2: float | None = None  # the last QF the search was limited by (given, or read from the own grid)


# DCT-II basis of JPEG (orthonormal for 8x8 blocks, so coefficient error == pixel error)
_X = np.arange(8)
_DCT = np.sqrt(2 / 8) * np.cos((2 * _X[None] + 1) * _X[:, None] * np.pi / 16)
_DCT[0] /= np.sqrt(2)
_DCT = _DCT.astype(np.float32)
_LUMA_F32 = _LUMA_TABLES.astype(np.float32)
#: qualities tried on every grid phase to pick the earlier grid (every quality is then tried on it)
COARSE_QUALITIES = (5, 8, 11, 15, 20, 25, 30, 36, 43, 50, 60, 70, 80, 90)
_PHASES = [(dy, dx) for dy in range(8) for dx in range(8) if (dy, dx) != (0, 0)]


def _kind(phase: tuple[int, int]) -> str:
    """Grids aligned with the image's own in rows ("rows"), in columns ("cols") or in neither ("both")."""
    return "rows" if phase[0] == 0 else "cols" if phase[1] == 0 else "both"


_KINDS = {k: [p for p in _PHASES if _kind(p) == k] for k in ("rows", "cols", "both")}


def _luma(img: np.ndarray) -> np.ndarray:
    img = np.asarray(img)
    if img.ndim == 2:
        return img.astype(np.float32)
    if img.ndim == 3 and img.shape[2] == 1:
        return img[..., 0].astype(np.float32)
    return img[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)


def _block_positions(h: int, w: int, max_blocks: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-left corners (on the image's own grid) of up to ``max_blocks`` blocks spread over the
    image, leaving room for a shift of up to 7 pixels."""
    by, bx = (h - 8) // 8, (w - 8) // 8
    ny = max(1, min(by, int(np.sqrt(max_blocks * by / max(bx, 1))) + 1))
    nx = max(1, min(bx, max_blocks // ny))
    ys = np.unique(np.linspace(0, by - 1, ny).round().astype(int)) * 8
    xs = np.unique(np.linspace(0, bx - 1, nx).round().astype(int)) * 8
    return ys, xs


def _coefficients(y: np.ndarray, ys: np.ndarray, xs: np.ndarray, phase: tuple[int, int]) -> np.ndarray:
    """DCT coefficients (blocks, 64), natural order, of the blocks at ``ys, xs`` moved by ``phase``."""
    iy = (ys[:, None] + phase[0] + _X[None]).reshape(-1)
    ix = (xs[:, None] + phase[1] + _X[None]).reshape(-1)
    b = y[np.ix_(iy, ix)].reshape(len(ys), 8, len(xs), 8).transpose(0, 2, 1, 3).reshape(-1, 8, 8) - 128.0
    return (_DCT @ b @ _DCT.T).reshape(-1, 64)


def _ghost(coefs: np.ndarray, qualities) -> np.ndarray:
    """Mean squared error per pixel of re-quantising ``coefs`` with the IJG luma table of each quality."""
    t = _LUMA_F32[np.asarray(qualities, dtype=np.int64) - 1][:, None, :]
    r = coefs[None] * (1.0 / t)
    np.rint(r, out=r)
    r *= t
    np.subtract(coefs[None], r, out=r)
    r *= r
    return r.sum(axis=(1, 2)) / (coefs.shape[0] * 64)


def _own_quality(coefs: dict, own: np.ndarray, blocks: int = 256) -> float | None:
    """The last compression's quality, read from the image's own grid: the quality whose table
    leaves its coefficients nearly unchanged (a deep, single-quality dip against shifted grids),
    or None when there is no such dip (not JPEG-compressed on this grid)."""
    step = max(1, own.shape[0] // blocks)
    qualities = np.arange(1, 101)
    refs = np.stack([_ghost(coefs[p][::step], qualities) for p in _KINDS["rows"][:: 2] + _KINDS["cols"][:: 2]])
    ratio = _ghost(own[::step], qualities) / np.maximum(np.median(refs, axis=0), 1e-9)
    i = int(np.argmin(ratio))
    return float(qualities[i]) if ratio[i] < 0.25 else None


#: reference grids for the fine search of a grid aligned in neither direction (a spread subset)
_BOTH_REFERENCE = [(dy, dx) for dy in (2, 3, 5, 6) for dx in (2, 3, 5, 6)]


def detect_double_jpeg(
    img: np.ndarray,
    *,
    qf2: float | None = None,
    max_blocks: int = 1024,
    threshold: float = 1.35,
    max_sharpness: float = 0.975,
    max_qf1: int = 90,
) -> DoubleJpegEstimate:
    """Look for an earlier JPEG compression on an 8x8 grid shifted from the image's own.

    ``img`` is the decoded (last) JPEG, uint8 gray or RGB, in its stored orientation (the grid of
    a rotated image is elsewhere). The method is the JPEG ghost (Farid 2009), computed in the DCT
    domain: up to ``max_blocks`` blocks spread over the image are re-quantised with the IJG luma
    table of a quality on each of the 63 shifted grids. On the earlier grid at the earlier quality
    the coefficients already lie on the quantiser's steps, so the error is far below that of the
    other grids of the same kind (aligned with the image's own grid in rows, in columns, or in
    neither; each kind is compared with its own median because partly aligned grids share some of
    the last compression's steps). A coarse search over :data:`COARSE_QUALITIES` picks the grid;
    every quality is then tried on it, and the deepest dip gives ``qf1`` (qualities whose steps
    divide the earlier ones dip too, less deeply). An earlier compression is reported when

    * the error there is at least ``threshold`` times below the median (``strength``), and
    * it is a dip at that quality (``sharpness`` <= ``max_sharpness``), not a smooth trend.

    ``qf2`` (the file's own QF) limits the search to earlier qualities at least 3 below it: only
    an earlier compression stronger than the last one changes the dominant QF, and partly
    aligned grids show (false) dips at and above the last quality. When it is not given it is
    read from the image's own grid the same way (the deepest dip there); images without one
    (never compressed on this grid) are searched up to ``max_qf1``.

    Not detected: aligned double compression (shift 0), and usually an earlier compression
    weaker than or close to the last one (its traces are re-quantised away). Cost: about 0.3 s
    per image on one CPU core, whatever its size (only ``max_blocks`` blocks are analysed).
    """
    y = _luma(img)
    h, w = y.shape
    if h < 24 or w < 24:
        return DoubleJpegEstimate(False, (0, 0), None, 1.0)
    ys, xs = _block_positions(h, w, max_blocks)
    coefs = {p: _coefficients(y, ys, xs, p) for p in _PHASES}
    if qf2 is None:
        qf2 = _own_quality(coefs, _coefficients(y, ys, xs, (0, 0)))
    top = min(max_qf1, int(np.ceil(qf2)) - 3) if qf2 is not None else max_qf1
    if top < 1:
        return DoubleJpegEstimate(False, (0, 0), None, 1.0, qf2=qf2)
    coarse = [q for q in COARSE_QUALITIES if q <= top] or [top]
    errs = {p: _ghost(c, coarse) for p, c in coefs.items()}
    best, best_ratio = (0, 0), np.inf
    for phases in _KINDS.values():
        median = np.maximum(np.median(np.stack([errs[p] for p in phases]), axis=0), 1e-9)
        for p in phases:
            low = float((errs[p] / median).min())
            if low < best_ratio:
                best, best_ratio = p, low
    # every quality on the best grid, against the median of other grids of its kind
    fine = np.arange(1, top + 1)
    refs = [p for p in (_BOTH_REFERENCE if _kind(best) == "both" else _KINDS[_kind(best)]) if p != best]
    median = np.maximum(np.median(np.stack([_ghost(coefs[p], fine) for p in refs]), axis=0), 1e-9)
    ratio = _ghost(coefs[best], fine) / median
    i = int(np.argmin(ratio))
    near = ratio[[j for j in range(len(fine)) if 2 <= abs(j - i) <= 5]]
    sharpness = float(ratio[i] / np.median(near)) if near.size else 1.0
    strength = float(1.0 / max(ratio[i], 1e-9))
    if strength >= threshold and sharpness <= max_sharpness:
        return DoubleJpegEstimate(True, best, float(fine[i]), strength, sharpness, qf2)
    return DoubleJpegEstimate(False, (0, 0), None, strength, sharpness, qf2)


def dominant_qf(qf2: float, double: DoubleJpegEstimate | None) -> float:
    """FBCNN-D's correction: the smaller (dominant) QF when an earlier compression was found."""
    if double is None or not double.detected or double.qf1 is None:
        return qf2
    return min(qf2, double.qf1)
