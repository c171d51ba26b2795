"""A model's calibrated quality profile: how hard to restore a frame whose source quality is known.

Blind models over-correct good-quality input. When the source's quality is known - a JPEG file's
QF (from its quantisation tables), a video frame's mean quantiser (H.264: from the decoder's side
data; HEVC: the slice QP from its headers, on the same step-size scale, read through the H.264 points) -
the profile gives, for that quality, the ``strength`` (the fraction of the model's correction that
is applied: 0 leaves the frame as decoded, 1 applies all of it) and, for FBCNN models on video, the
quality control (``qf``) that restores best. ``scripts/calibrate.py`` measures the points on
training images; the shipped ones are in ``weights/manifest.json`` (``quality_profile``).
Between points the values are interpolated linearly; beyond the ends the end values hold.

A profile may also carry a content-adaptive strength predictor for video
(:mod:`vsjpegfix.weights.predictor`): where it has a rule for the stream's codec, the engine uses it
instead of the per-QP strength.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from vsjpegfix.weights.predictor import PredictorError, StrengthPredictor


class ProfileError(ValueError):
    """A malformed quality profile."""


def _interp(x: float, xs: Sequence[float], ys: Sequence[float]) -> float:
    if x <= xs[0]:
        return float(ys[0])
    for (x0, y0), (x1, y1) in zip(zip(xs, ys), zip(xs[1:], ys[1:])):
        if x <= x1:
            return float(y0 + (y1 - y0) * (x - x0) / (x1 - x0)) if x1 > x0 else float(y1)
    return float(ys[-1])


@dataclass(frozen=True)
class QualityProfile:
    """Calibrated points: ``h264_qp`` = ``(qp, control qf or None, strength)``, ``jpeg_qf`` = ``(qf, strength)``."""

    h264_qp: tuple[tuple[float, float | None, float], ...] = ()
    jpeg_qf: tuple[tuple[float, float], ...] = ()
    calibration: str = ""
    predictor: StrengthPredictor | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> QualityProfile:
        """Build from the manifest's ``quality_profile`` object (checked: sorted points, strengths 0..1)."""
        try:
            video = tuple((float(p[0]), None if p[1] is None else float(p[1]), float(p[2])) for p in data.get("h264_qp", ()))
            jpeg = tuple((float(p[0]), float(p[1])) for p in data.get("jpeg_qf", ()))
        except (TypeError, IndexError, ValueError):
            raise ProfileError("quality_profile points must be [qp, qf|null, strength] and [qf, strength]") from None
        for name, pts, s_index in (("h264_qp", video, 2), ("jpeg_qf", jpeg, 1)):
            xs = [p[0] for p in pts]
            if xs != sorted(xs):
                raise ProfileError(f"quality_profile {name} points must be sorted")
            if any(not 0.0 <= p[s_index] <= 1.0 for p in pts):
                raise ProfileError(f"quality_profile {name} strengths must be in 0..1")
        if any(p[1] is not None and not 0.0 <= p[1] <= 100.0 for p in video):
            raise ProfileError("quality_profile h264_qp control QFs must be in 0..100")
        predictor = None
        if data.get("predictor") is not None:
            try:
                predictor = StrengthPredictor.from_dict(data["predictor"])
            except PredictorError as exc:
                raise ProfileError(f"quality_profile {exc}") from None
        return cls(video, jpeg, str(data.get("calibration", "")), predictor)

    def as_dict(self) -> dict[str, Any]:
        out = {"h264_qp": [list(p) for p in self.h264_qp], "jpeg_qf": [list(p) for p in self.jpeg_qf],
               "calibration": self.calibration}
        if self.predictor is not None:
            out["predictor"] = self.predictor.as_dict()
        return out

    @property
    def has_qp(self) -> bool:
        return bool(self.h264_qp)

    @property
    def has_qf(self) -> bool:
        return bool(self.jpeg_qf)

    def for_qp(self, qp: float) -> tuple[float | None, float]:
        """``(control qf or None for blind, strength)`` for an H.264 frame of mean quantiser ``qp``.

        The control is interpolated between neighbouring points that both have one; next to a blind
        point the nearer point's control is used.
        """
        if not self.h264_qp:
            return None, 1.0
        xs = [p[0] for p in self.h264_qp]
        strength = _interp(qp, xs, [p[2] for p in self.h264_qp])
        return self._control(qp), strength

    def _control(self, qp: float) -> float | None:
        pts = self.h264_qp
        if qp <= pts[0][0]:
            return pts[0][1]
        if qp >= pts[-1][0]:
            return pts[-1][1]
        for a, b in zip(pts, pts[1:]):
            if qp <= b[0]:
                if a[1] is None or b[1] is None:
                    return a[1] if qp - a[0] <= b[0] - qp else b[1]
                return _interp(qp, [a[0], b[0]], [a[1], b[1]])
        return pts[-1][1]  # pragma: no cover - the loop always returns

    def for_jpeg_qf(self, qf: float) -> float:
        """Strength for a JPEG of quality ``qf`` (1.0 when the profile has no JPEG points)."""
        if not self.jpeg_qf:
            return 1.0
        return _interp(qf, [p[0] for p in self.jpeg_qf], [p[1] for p in self.jpeg_qf])


def control_for_qps(profile: QualityProfile, qps: Sequence[float], has_quality: bool) -> tuple[list[float] | None, list[float]]:
    """Engine arguments for frames of mean quantisers ``qps``: ``(qf per frame or None, strength per frame)``.

    The control is None (the model's own, blind) for a model without quality control, and for the
    whole group when any frame's point is blind (the engine takes one kind of control per call).
    """
    points = [profile.for_qp(q) for q in qps]
    controls = [c for c, _ in points]
    qf = None if not has_quality or any(c is None for c in controls) else [float(c) for c in controls]
    return qf, [s for _, s in points]


#: The largest ``--strength``: above 1 it only raises strengths a profile sets below 1 (the result is capped at 1).
MAX_STRENGTH_SCALE = 2.0


def scale_strength(strength: float | None, scale: float | None) -> float | None:
    """The ``--strength`` option applied to a frame's strength (None: full strength, no profile applies).

    ``scale`` None (``auto``) keeps ``strength``; a number multiplies it (or is the strength itself
    where none is given) and the result is capped at 1, the model's whole correction.
    """
    if scale is None:
        return strength
    return min(1.0, (1.0 if strength is None else float(strength)) * float(scale))


def profile_of(model: Any) -> QualityProfile | None:
    """The profile attached to a model by :func:`vsjpegfix.weights.store.load_model` (shipped models), or None."""
    profile = getattr(model, "quality_profile", None)
    return profile if isinstance(profile, QualityProfile) else None
