"""Mapping an H.264/HEVC quantiser (QP) to FBCNN's quality control (a JPEG quality factor), and
other codecs' quantisers onto the H.264 QP scale (:func:`codec_qp`).

Both codecs quantise (near-)orthonormal DCT coefficients. H.264's step size is
``Qstep(QP) = 0.625 * 2 ** (QP / 6)``; a JPEG encoder at quality QF scales its base table by
``S = 5000 / QF`` (QF < 50) or ``S = 200 - 2 * QF`` (QF >= 50), percent. Matching the H.264 step
with the JPEG luminance step in the low-frequency region that dominates blocking (about 20 at
QF 50) gives ``S / 100 = 2 ** ((QP - QP_AT_QF50) / 6)`` with ``QP_AT_QF50 = 30``: QP 30 ~ QF 50,
each +6 QP halves the QF below 50 (QP 36 ~ QF 25, QP 42 ~ QF 12.5), and QP 24 ~ QF 75,
QP 18 ~ QF 87.5. H.264's in-loop deblocking makes its artifacts milder than JPEG's at the same
step, so the mapping errs on the side of gentle restoration; ``qf_offset`` shifts it.
"""

from __future__ import annotations

import functools
import importlib
import json
import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np

QP_AT_QF50 = 30.0


def qp_to_qf(qp: float) -> float:
    """JPEG-equivalent quality factor (1..100) of an H.264/HEVC quantiser ``qp`` (0..51)."""
    scale = 100.0 * 2.0 ** ((float(qp) - QP_AT_QF50) / 6.0)
    qf = 5000.0 / scale if scale > 100.0 else (200.0 - scale) / 2.0
    return float(min(100.0, max(1.0, qf)))


def qf_to_qp(qf: float) -> float:
    """Inverse of :func:`qp_to_qf` (for QF in 1..100)."""
    qf = min(100.0, max(1.0, float(qf)))
    scale = 5000.0 / qf if qf < 50 else 200.0 - 2.0 * qf
    return QP_AT_QF50 + 6.0 * math.log2(max(scale, 1e-6) / 100.0)


# ----------------------------------------------------------------------------- other codecs -> H.264 QP

#: The calibrated tables (``scripts/calibrate_codecs.py``): per codec, ``points`` = ``[[native value,
#: H.264-equivalent QP], ...]`` sorted by native value, and how they were made (``calibration``).
CODEC_TABLE_PATH = Path(__file__).with_name("codec_qp.json")

_FIRST_ORDER = {"mpeg1video": "mpeg2", "mpeg2video": "mpeg2", "mpeg4": "mpeg4", "mjpeg": "mjpeg", "vp9": "vp9"}
#: Codecs whose quantiser is on another codec's scale and take its table: MPEG-1 MPEG-2's; the H.263
#: family (FFmpeg's decoder names: MS-MPEG4 v1-3, H.263, Sorenson H.263 ``flv``, WMV 7/8, RealVideo 1/2; ``QUANT`` as
#: MPEG-4 Part 2's ``vop_quant``) MPEG-4's.
H263_FAMILY = frozenset({"h263", "h263i", "flv", "msmpeg4v1", "msmpeg4v2", "msmpeg4", "wmv1", "wmv2", "rv10", "rv20"})
SAME_SCALE = {"mpeg1video": "mpeg2video", **{c: "mpeg4" for c in sorted(H263_FAMILY)}}


@functools.lru_cache(maxsize=1)
def codec_tables() -> dict[str, dict[str, Any]]:
    """The calibrated native-quantiser -> H.264-QP tables by FFmpeg codec name (empty if none are shipped)."""
    try:
        data = json.loads(CODEC_TABLE_PATH.read_text())
    except (OSError, ValueError):
        return {}
    return {k: v for k, v in data.items() if isinstance(v, dict) and v.get("points")}


def first_order_qp(codec: str, value: float) -> float:
    """H.264 QP of the same quantiser step as ``value`` in ``codec``'s own scale (the readers'
    ``equivalent_h264_qp``: step sizes alone, before calibration)."""
    module = _FIRST_ORDER.get(SAME_SCALE.get(codec, codec))
    if module is None:
        raise ValueError(f"no quantiser mapping for {codec}")
    return float(importlib.import_module(f"vsjpegfix.quantisers.{module}").equivalent_h264_qp(value))


def codec_qp(codec: str, value: float, points: Sequence[Sequence[float]] | None = None) -> float:
    """H.264-equivalent QP of a frame whose ``codec`` quantiser (its own scale) is ``value``.

    H.264 and HEVC: the value itself (both use the same step-size scale). MPEG-1/2 ``quantiser_scale``,
    MPEG-4 Part 2 ``vop_quant``, MJPEG's quality factor and VP9's ``base_q_idx``: the calibrated table
    (:data:`CODEC_TABLE_PATH`, interpolated linearly in the native value, end values held beyond
    its ends; MPEG-1 uses MPEG-2's, the H.263 family MPEG-4's: :data:`SAME_SCALE`), else the first-order
    step-size equivalence. ``points``: another
    table (``[[native value, QP], ...]``, sorted by native value) instead of the shipped one.
    """
    if codec in ("h264", "hevc"):
        return float(value)
    if points is None:
        table = codec_tables().get(SAME_SCALE.get(codec, codec))
        if table is None:
            return first_order_qp(codec, value)
        points = table["points"]
    xs = [float(p[0]) for p in points]
    ys = [float(p[1]) for p in points]
    return float(np.interp(float(value), xs, ys))
