"""One pass of the engine over a group of frames: planes to the model's space, the model, and the
model's correction back onto the original samples, times each frame's strength.

The strength of a frame is the caller's (``strength``: the per-QP profile, ``--strength``, or 1),
or, where the model's quality profile has a content-adaptive rule for the frames' codec (``rule``,
:mod:`vsjpegfix.engine.strength`), measured here from the frame and the model's correction of it
before the correction is applied.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from vsjpegfix.engine.formats import PlaneFormat
from vsjpegfix.engine.planes import (
    QualityArg,
    apply_delta,
    centre_frames,
    correction_planes,
    plane_to_unit,
    stack_frames,
    unit_to_code,
)
from vsjpegfix.engine.strength import predicted_strengths
from vsjpegfix.quantisers.stream import FrameQuantiser
from vsjpegfix.weights.predictor import FramePredictor


def restore_planes(engine: Any, planes: list[torch.Tensor], fmt: PlaneFormat, n: int, t: int, qf: QualityArg,
                   strength: torch.Tensor | None = None, rule: FramePredictor | None = None,
                   quantisers: Sequence[FrameQuantiser] | None = None, scale: float | None = None):
    """Restore the centre frames of ``planes``: ``(planes, predicted QF, used QF, strengths from the rule or None)``.

    ``engine`` is the :class:`~vsjpegfix.engine.core.Engine` calling (its model runner, colour steps
    and options).

    The model's correction (output minus its input, in exact code values, times the frame's
    strength) is added to the original samples, so whatever the model leaves alone (out-of-range
    values, chroma detail lost by resampling) is kept exactly. With a ``rule`` the strengths come
    from it (times ``scale``, capped at 1) and ``strength`` is not used.
    """
    centre = [p.reshape(n, t, *p.shape[1:])[:, t // 2] for p in planes]
    applied = None

    def from_rule(luma: torch.Tensor, correction: torch.Tensor) -> torch.Tensor:
        nonlocal applied
        applied = predicted_strengths(rule, luma, correction, fmt, quantisers, scale)
        return torch.as_tensor(applied, dtype=torch.float32, device=correction.device).reshape(n, 1, 1)

    if engine.channels == 1:
        # A gray model restores each plane on its own (Y only in luma-only mode).
        out, pred, used = [], None, None
        for i, plane in enumerate(planes):
            if i > 0 and (engine.luma_only or fmt.family == "gray"):
                out.append(centre[i].clone())
                continue
            unit = plane_to_unit(plane, fmt, i).clamp(0, 1)
            y, p_qf, u_qf = engine.restore_tensor(stack_frames(unit, n, t), qf)
            if i == 0:
                pred, used = p_qf, u_qf
            x = centre_frames(unit, n, t)
            delta = unit_to_code(y, fmt, i) - unit_to_code(x, fmt, i)
            if i == 0 and rule is not None and fmt.family != "rgb":
                strength = from_rule(centre[0], delta)
            out.append(apply_delta(centre[i], delta if strength is None else delta * strength, fmt))
        return out, pred, used, applied
    rgb = engine.colour.to_rgb(planes, fmt)  # clamped to [0, 1]: the model's input
    model_in = rgb.expand(-1, 3, -1, -1) if fmt.family == "gray" else rgb
    y, pred, used = engine.restore_tensor(stack_frames(model_in, n, t), qf)
    x = centre_frames(rgb, n, t)
    if fmt.family == "gray":
        y = y.mean(dim=1, keepdim=True)
    if rule is None:
        out = engine.colour.corrected(y, x, centre, fmt, strength)
    else:
        deltas = correction_planes(y, x, fmt)
        if fmt.family == "rgb":
            strength = from_rule(torch.stack([c.float() for c in centre], 1), torch.stack(deltas, 1))
        else:
            strength = from_rule(centre[0], deltas[0])
        out = [apply_delta(c, d * strength, fmt) for c, d in zip(centre, deltas)]
    if engine.luma_only and fmt.family == "yuv":
        out = [out[0], *[p.clone() for p in centre[1:]]]
    return out, pred, used, applied


def strengths_list(values: np.ndarray | None) -> list[float] | None:
    """Strengths as plain floats for a :class:`~vsjpegfix.engine.accel.RestoreResult` (None stays None)."""
    return None if values is None else [float(v) for v in values]
