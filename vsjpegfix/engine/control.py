"""Quality control of video frames from what their bitstream states: the one rule the transcoder, the
segment workers, ``compare`` and the VapourSynth filters share.

For each frame the mode gives ``(qf, strength)`` for :meth:`vsjpegfix.engine.core.Engine.restore`:

* ``profile``: the model's calibrated quality profile at the frame's quantiser
  (:meth:`vsjpegfix.weights.profile.QualityProfile.for_qp`, on the H.264 QP scale of
  :attr:`vsjpegfix.quantisers.stream.FrameQuantiser.qp`): the strength and, for FBCNN models, the
  control QF (a group with a blind point runs blind);
* ``qp``: :func:`vsjpegfix.quantisers.mapping.qp_to_qf` as FBCNN's control, at full strength;
* anything else (``auto``, ``blind``): the engine's own control (None, None).

A group with a frame whose quantiser is unknown also gets the engine's own control. A ``scale``
(``--strength`` / ``strength=``) multiplies the strength (or is the strength where none applies),
capped at 1 (:func:`vsjpegfix.weights.profile.scale_strength`).

In ``profile`` mode, where the model's profile has a content-adaptive rule for the frames' codec
(:mod:`vsjpegfix.weights.predictor`), the strength is the rule's, measured by the engine on each
frame (:func:`restore_arguments` hands it the quantisers); the per-QP strength is the fallback.
"""

from __future__ import annotations

from typing import Any, Sequence

from vsjpegfix.quantisers.mapping import qp_to_qf
from vsjpegfix.quantisers.stream import FrameQuantiser
from vsjpegfix.weights.profile import QualityProfile, control_for_qps, scale_strength


def video_control(
    profile: QualityProfile | None,
    has_quality: bool,
    quantisers: Sequence[FrameQuantiser | None],
    mode: str,
    scale: float | None = None,
) -> tuple[list[float] | None, list[float] | None]:
    """``(qf per frame or None, strength per frame or None)`` for frames with these quantisers.

    ``profile`` and ``has_quality`` describe the engine's model (``Engine.quality_profile``,
    ``Engine.has_quality``); ``mode`` is ``profile``, ``qp`` or the engine's own control.
    """
    qf, strength = None, None
    qps = [q.qp if q is not None else None for q in quantisers]
    if mode in ("qp", "profile") and qps and all(q is not None for q in qps):
        if mode == "qp":
            qf = [qp_to_qf(q) for q in qps]
        elif profile is not None:
            qf, strength = control_for_qps(profile, qps, has_quality)
    if scale is not None:
        strength = [scale_strength(v, scale) for v in (strength or [None] * len(qps))]
    return qf, strength


def restore_arguments(engine: Any, quantisers: Sequence[FrameQuantiser | None], mode: str, scale: float | None = None) -> dict[str, Any]:
    """Keyword arguments of :meth:`vsjpegfix.engine.core.Engine.restore` for frames with these quantisers.

    ``engine``: the :class:`~vsjpegfix.engine.core.Engine`. In ``profile`` mode with a
    content-adaptive rule for the frames' codec the engine gets the quantisers and the ``scale``
    (and chooses each frame's strength itself); otherwise ``qf`` and ``strength`` from
    :func:`video_control`.
    """
    qf, strength = video_control(engine.quality_profile, engine.has_quality, quantisers, mode, scale)
    if mode == "profile" and engine.strength_rule(quantisers) is not None:
        return {"qf": qf, "quantisers": list(quantisers), "strength_scale": scale}
    return {"qf": qf, "strength": strength}
