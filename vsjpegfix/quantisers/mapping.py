"""Mapping an H.264/HEVC quantiser (QP) to FBCNN's quality control (a JPEG quality factor).

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

import math

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
