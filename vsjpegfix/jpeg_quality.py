"""What a JPEG file says about its own quality, and traces of an earlier compression.

* :func:`estimate_qf` derives the quality factor from the quantisation tables a file states:
  exact for tables made by the IJG (libjpeg) quality scaling, the nearest equivalent for others.
* :func:`detect_double_jpeg` looks for an earlier, stronger compression on a shifted 8x8 grid
  (the usual result of cropping and re-saving): it finds the grid with the strongest blocking
  and the earlier quality by re-compressing at candidate qualities on that grid and taking the
  one that changes the image least (a "JPEG ghost"). FBCNN-D's dominant-QF correction then
  controls the restoration with the smaller of the two QFs.
"""

from __future__ import annotations

import io
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


def estimate_qf(quantization: dict[int, list[int]] | list[list[int]]) -> QualityEstimate:
    """Quality factor from quantisation tables (Pillow's ``image.quantization``).

    Table 0 is compared with the scaled standard luminance table and table 1 (if any) with the
    chrominance table; the QF with identical tables is exact, otherwise the QF whose tables are
    nearest in log scale (a fair equivalent for encoders with their own tables).
    """
    tables = [np.asarray(t, dtype=np.float64).reshape(-1) for t in (quantization.values() if isinstance(quantization, dict) else quantization)]
    if not tables or any(t.size != 64 for t in tables):
        raise ValueError("quantisation tables must have 64 entries")
    luma = tables[0]
    chroma = tables[1] if len(tables) > 1 else None
    for idx in range(100):
        if np.array_equal(luma, _LUMA_TABLES[idx]) and (chroma is None or np.array_equal(chroma, _CHROMA_TABLES[idx])):
            # several qualities can share tables (e.g. at the top end); report the highest such QF
            last = idx
            while last + 1 < 100 and np.array_equal(luma, _LUMA_TABLES[last + 1]) and (
                chroma is None or np.array_equal(chroma, _CHROMA_TABLES[last + 1])
            ):
                last += 1
            return QualityEstimate(float(idx + 1 if last == idx else (idx + last + 2) / 2), True, 0.0)
    err = np.abs(np.log(np.maximum(luma, 1))[None] - np.log(_LUMA_TABLES)).mean(axis=1)
    if chroma is not None:
        err = (2 * err + np.abs(np.log(np.maximum(chroma, 1))[None] - np.log(_CHROMA_TABLES)).mean(axis=1)) / 3
    best = int(np.argmin(err))
    return QualityEstimate(float(best + 1), False, float(err[best]))


def read_jpeg_quality(path: Path | str) -> QualityEstimate | None:
    """Quality estimate of a JPEG file, or None for other formats."""
    with Image.open(path) as im:
        if im.format != "JPEG":
            return None
        return estimate_qf(im.quantization)


@dataclass(frozen=True)
class DoubleJpegEstimate:
    """Evidence of an earlier compression on a shifted grid."""

    detected: bool
    shift: tuple[int, int]  # (dy, dx) of the earlier grid relative to the image origin
    qf1: float | None  # earlier quality factor
    strength: float  # blockiness ratio of the earlier grid against the others


def _phase_blockiness(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean absolute step across row and column boundaries of each 8x8 grid phase.

    ``rows[p]`` is the step between rows ``8k + p - 1`` and ``8k + p`` (a grid whose blocks start
    at row ``p`` mod 8); ``cols[p]`` likewise for columns. Phase 0 is the image's own grid.
    """
    y = y.astype(np.float64)
    dv = np.abs(np.diff(y, axis=0))  # dv[i]: between rows i and i+1
    dh = np.abs(np.diff(y, axis=1))
    rows = np.array([dv[(p - 1) % 8 :: 8, :].mean() for p in range(8)])
    cols = np.array([dh[:, (p - 1) % 8 :: 8].mean() for p in range(8)])
    return rows, cols


def _outlier_phase(values: np.ndarray) -> tuple[int, float]:
    """The non-zero phase standing out most, and how much (ratio to the median of the others)."""
    others = values[1:]
    p = int(np.argmax(others)) + 1
    rest = np.delete(others, p - 1)
    return p, float(values[p] / max(np.median(rest), 1e-9))


def _luma(img: np.ndarray) -> np.ndarray:
    if img.ndim == 2:
        return img.astype(np.float64)
    return img[..., :3].astype(np.float64) @ np.array([0.299, 0.587, 0.114])


def detect_double_jpeg(img: np.ndarray, *, candidates: range = range(5, 100, 5), crop: int = 256, threshold: float = 1.25, knee: float = 4.0) -> DoubleJpegEstimate:
    """Look for an earlier JPEG compression on a grid shifted from the image's own.

    ``img`` is the decoded (last) JPEG, uint8 gray or RGB. Along each axis the 8x8 grid phase
    other than the image's own with the strongest blocking is found; it counts when its
    blockiness exceeds ``threshold`` times the median of the remaining phases. The earlier QF is
    the lowest candidate at which re-compressing a central crop on that grid shows a
    knee of the change (a JPEG ghost): steep before, flat after (``knee`` is the ratio of the drops).
    """
    rows, cols = _phase_blockiness(_luma(img))
    py, ry = _outlier_phase(rows)
    px, rx = _outlier_phase(cols)
    dy = py if ry > threshold else 0
    dx = px if rx > threshold else 0
    strength = max(ry if dy else 1.0, rx if dx else 1.0)
    if dy == 0 and dx == 0:
        return DoubleJpegEstimate(False, (0, 0), None, max(ry, rx))
    h, w = img.shape[:2]
    top = max(0, (h - crop) // 2) // 8 * 8 + dy
    left = max(0, (w - crop) // 2) // 8 * 8 + dx
    region = np.ascontiguousarray(img[top : top + crop, left : left + crop])
    region = region[: region.shape[0] // 8 * 8, : region.shape[1] // 8 * 8]
    cands = list(candidates)
    errs = []
    for qf in cands:
        buf = io.BytesIO()
        Image.fromarray(region).save(buf, format="JPEG", quality=int(qf))
        again = np.asarray(Image.open(io.BytesIO(buf.getvalue())))
        errs.append(float(np.mean((again.astype(np.float64) - region.astype(np.float64)) ** 2)))
    # The ghost is a knee: the change falls steeply up to the earlier quality and barely after it.
    # Qualities whose steps divide the earlier ones show knees too, so the lowest strong knee wins.
    for i in range(1, len(cands) - 1):
        drop_before = errs[i - 1] - errs[i]
        drop_after = max(errs[i] - errs[i + 1], 1e-9)
        if drop_before > 0 and drop_before / drop_after >= knee:
            return DoubleJpegEstimate(True, (dy, dx), float(cands[i]), strength)
    return DoubleJpegEstimate(True, (dy, dx), None, strength)


def dominant_qf(qf2: float, double: DoubleJpegEstimate | None) -> float:
    """FBCNN-D's correction: the smaller (dominant) QF when an earlier compression was found."""
    if double is None or not double.detected or double.qf1 is None:
        return qf2
    return min(qf2, double.qf1)
