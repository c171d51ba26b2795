"""Content-adaptive strength: each video frame's strength from its quantiser, its type and its content.

The rule itself (coefficients per codec) belongs to the model's quality profile
(:mod:`vsjpegfix.weights.predictor`); this module measures, on the compute device, the features it
needs from the decoded frame and the model's correction of it, and turns them into one strength per
frame. The same functions serve the engine at run time and the fitting of the rule
(:mod:`vsjpegfix.training`), so what is fitted is exactly what runs.

All features are on the 8-bit limited-range luma scale whatever the input format: integer planes
are divided by ``2 ** (bits - 8)`` (full range also scaled by 219/255), float planes multiplied by
219. For RGB input the luma is BT.601's.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from vsjpegfix.engine.formats import MATRIX_COEFFICIENTS, PlaneFormat, luma_scale_offset
from vsjpegfix.quantisers.stream import FrameQuantiser
from vsjpegfix.weights.predictor import FramePredictor, StrengthPredictor

GRID = 8  # the transform grid whose boundary steps measure blockiness


def luma_code_scale(fmt: PlaneFormat) -> float:
    """Factor from the luma (plane 0) code values of ``fmt`` to 8-bit limited-range code values."""
    scale, _ = luma_scale_offset(fmt)  # code = unit * scale + offset
    return 219.0 / scale


def luma_of_rgb(planes: torch.Tensor, fmt: PlaneFormat) -> torch.Tensor:
    """BT.601 luma of RGB planes ``(N, 3, h, w)`` in the same code units (for RGB input)."""
    kr, kb = MATRIX_COEFFICIENTS["bt601"]
    return kr * planes[:, 0] + (1.0 - kr - kb) * planes[:, 1] + kb * planes[:, 2]


def _boundary_steps(length: int) -> int:
    """Steps ``j -> j + 1`` (0 <= j < length - 1) that cross the 8-pixel grid."""
    return max(0, (length - 1) // GRID)


def frame_statistics(luma: torch.Tensor, correction: torch.Tensor) -> dict[str, np.ndarray]:
    """``tex``, ``blk`` and ``rd`` of each frame (numpy ``(N,)``) from its decoded luma and the model's
    luma correction, both ``(N, h, w)`` in 8-bit code units (see :mod:`vsjpegfix.weights.predictor`)."""
    with torch.inference_mode():
        x = luma.float()
        n, h, w = x.shape
        dh = (x[:, :, 1:] - x[:, :, :-1]).abs()  # the step j -> j + 1, counted at j
        dv = (x[:, 1:, :] - x[:, :-1, :]).abs()
        grad = dh.sum(dim=(1, 2)) + dv.sum(dim=(1, 2))
        across = dh[:, :, GRID - 1 :: GRID].sum(dim=(1, 2)) + dv[:, GRID - 1 :: GRID, :].sum(dim=(1, 2))
        d = correction.float()
        dd = (d * d).sum(dim=(1, 2))
    grad, across, dd = (t.double().cpu().numpy() for t in (grad, across, dd))
    pixels = float(h * w)
    n_across = h * _boundary_steps(w) + w * _boundary_steps(h)
    n_inside = h * (w - 1) + w * (h - 1) - n_across
    inside = grad - across
    blk = (across / max(n_across, 1) + 0.5) / (inside / max(n_inside, 1) + 0.5)
    return {"tex": grad / (2.0 * pixels), "blk": blk, "rd": np.sqrt(dd / pixels)}


def frame_features(luma: torch.Tensor, correction: torch.Tensor, quantisers: Sequence[FrameQuantiser]) -> dict[str, np.ndarray]:
    """Every feature of :data:`vsjpegfix.weights.predictor.FEATURES` for each frame (numpy ``(N,)``).

    ``luma``/``correction``: ``(N, h, w)`` in 8-bit code units; ``quantisers``: one per frame.
    """
    out = frame_statistics(luma, correction)
    out["qp"] = np.array([q.qp for q in quantisers], np.float64)
    out["I"] = np.array([q.picture_type == "I" for q in quantisers], np.float64)
    out["B"] = np.array([q.picture_type == "B" for q in quantisers], np.float64)
    out["aq"] = np.array([bool(q.adaptive) for q in quantisers], np.float64)
    return out


def rule_for(predictor: StrengthPredictor | None, quantisers: Sequence[FrameQuantiser | None] | None) -> FramePredictor | None:
    """The codec rule that applies to a group of frames: all frames have a quantiser of one codec
    the predictor has a rule for; else None (the per-QP profile applies)."""
    if predictor is None or not quantisers or any(q is None for q in quantisers):
        return None
    codecs = {q.codec for q in quantisers}
    return predictor.for_codec(codecs.pop()) if len(codecs) == 1 else None


def predicted_strengths(rule: FramePredictor, luma: torch.Tensor, correction: torch.Tensor, fmt: PlaneFormat,
                        quantisers: Sequence[FrameQuantiser], scale: float | None = None) -> np.ndarray:
    """One strength per frame (0..1): the rule at each frame's features, times ``scale`` (the user's
    ``--strength``; None = 1), capped at 1. ``luma``/``correction`` in ``fmt``'s plane-0 code values
    (``(N, h, w)``; ``(N, 3, h, w)`` for RGB, whose BT.601 luma is used)."""
    if fmt.family == "rgb":
        luma, correction = luma_of_rgb(luma, fmt), luma_of_rgb(correction, fmt)
    k = luma_code_scale(fmt)
    s = rule.strengths(frame_features(luma.float() * k, correction.float() * k, quantisers))
    if scale is not None:
        s = np.minimum(1.0, s * float(scale))
    return s
