"""A model's content-adaptive strength predictor: part of its quality profile.

A per-QP profile (:mod:`vsjpegfix.weights.profile`) gives every frame of one quantiser the same
strength, but the right strength also depends on the content: a flat, blocky frame wants all of the
model's correction, fine texture at the same QP much less (the model smooths detail). The predictor
gives each frame its strength from what the decoder and the frame itself say::

    s = clip(theta . phi, 0, 1)

where ``phi`` are the *terms* below, computed from the frame's features (measured at run time by
:func:`vsjpegfix.engine.strength.frame_features`, never from the clean frame):

* ``qp``: the frame's quantiser on the H.264 scale (H.264: the area-weighted mean macroblock QP;
  HEVC: the slice QP), used as ``q = (qp - 32) / 10``;
* ``I`` / ``B``: the picture type (P is the base);
* ``tex``: mean absolute step between neighbouring decoded luma samples (8-bit code values);
* ``rd``: the RMS of the model's luma correction (8-bit code values);
* ``blk``: blockiness, the mean step across the 8-pixel grid over the mean step inside it
  (``(across + 0.5) / (inside + 0.5)``);
* ``aq``: 1 when the stream quantises adaptively within frames (x264/x265 CRF or ABR: the frame
  QP is then only a base quantiser), else 0.

The coefficients are fitted per codec (``h264``, ``hevc``; the archive codecs use the ``h264`` rule,
:data:`H264_SCALE_CODECS`) by weighted least squares on the
restored error of real footage, with a safety margin subtracted from the intercept
(``scripts/fit_strength.py``); they are stored in ``weights/manifest.json`` under
``quality_profile.predictor`` and checked on load (version, known terms, one coefficient each).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from vsjpegfix.quantisers.mapping import SAME_SCALE

#: The predictor format this code reads (``quality_profile.predictor.version``).
PREDICTOR_VERSION = 1

#: Codecs whose quantisers reach the rule on the H.264 scale through their calibrated tables
#: (:func:`vsjpegfix.quantisers.mapping.codec_qp`): without a rule of their own they take the ``h264`` one.
#: Held out on the video set re-encoded with each (``scripts/evaluate_codecs.py``) it never loses more than
#: 0.02 dB and gains more than the per-QP profile at every quantiser (docs/evaluation.md).
H264_SCALE_CODECS = frozenset({"mpeg2video", "mpeg4", "mjpeg", "vp9"} | set(SAME_SCALE))

#: The features a predictor's terms are made of (what the engine measures per frame).
FEATURES = ("qp", "tex", "rd", "blk", "I", "B", "aq")


def _q(f: Mapping[str, np.ndarray]) -> np.ndarray:
    return (np.asarray(f["qp"], np.float64) - 32.0) / 10.0


def _lratio(f: Mapping[str, np.ndarray]) -> np.ndarray:
    return np.log((np.asarray(f["rd"], np.float64) + 0.05) / (np.asarray(f["tex"], np.float64) + 0.5))


#: Term name -> its value from the features (arrays of one value per frame).
TERMS = {
    "1": lambda f: np.ones_like(np.asarray(f["qp"], np.float64)),
    "q": _q,
    "q2": lambda f: _q(f) ** 2,
    "I": lambda f: np.asarray(f["I"], np.float64),
    "B": lambda f: np.asarray(f["B"], np.float64),
    "lrd": lambda f: np.log(np.asarray(f["rd"], np.float64) + 0.05),
    "ltex": lambda f: np.log(np.asarray(f["tex"], np.float64) + 0.5),
    "lratio": _lratio,
    "blk": lambda f: np.log(np.asarray(f["blk"], np.float64)),
    "qlratio": lambda f: _q(f) * _lratio(f),
    "qltex": lambda f: _q(f) * np.log(np.asarray(f["tex"], np.float64) + 0.5),
    "aq": lambda f: np.asarray(f["aq"], np.float64),
    "aqq": lambda f: np.asarray(f["aq"], np.float64) * _q(f),
    "aqlratio": lambda f: np.asarray(f["aq"], np.float64) * _lratio(f),
}


class PredictorError(ValueError):
    """A malformed strength predictor in a manifest."""


def design(features: Mapping[str, Any], terms: Sequence[str]) -> np.ndarray:
    """``(frames, len(terms))`` matrix of the named :data:`TERMS` for per-frame ``features``."""
    return np.stack([np.atleast_1d(TERMS[t](features)) for t in terms], axis=-1)


@dataclass(frozen=True)
class FramePredictor:
    """One codec's rule: ``strength = clip(theta . terms(features), 0, 1)`` per frame."""

    terms: tuple[str, ...]
    theta: tuple[float, ...]
    margin: float = 0.0  # the safety margin already subtracted from the intercept (for the record)

    def strengths(self, features: Mapping[str, Any]) -> np.ndarray:
        """The strength of each frame (an array, one value per frame)."""
        return np.clip(design(features, self.terms) @ np.asarray(self.theta, np.float64), 0.0, 1.0)

    def as_dict(self) -> dict[str, Any]:
        return {"terms": list(self.terms), "theta": [float(t) for t in self.theta], "margin": self.margin}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], codec: str = "") -> FramePredictor:
        """Build and check one codec's entry (known terms, one finite coefficient per term)."""
        try:
            terms = tuple(str(t) for t in data["terms"])
            theta = tuple(float(t) for t in data["theta"])
            margin = float(data.get("margin", 0.0))
        except (KeyError, TypeError, ValueError):
            raise PredictorError(f"strength predictor {codec}: needs 'terms' and 'theta' lists") from None
        unknown = [t for t in terms if t not in TERMS]
        if unknown:
            raise PredictorError(f"strength predictor {codec}: unknown terms {unknown} (known: {', '.join(TERMS)})")
        if len(theta) != len(terms) or not terms:
            raise PredictorError(f"strength predictor {codec}: {len(theta)} coefficients for {len(terms)} terms")
        if not all(math.isfinite(t) for t in theta):
            raise PredictorError(f"strength predictor {codec}: coefficients must be finite")
        return cls(terms, theta, margin)


@dataclass(frozen=True)
class StrengthPredictor:
    """The predictors of a model, by FFmpeg codec name, and how they were fitted."""

    codecs: Mapping[str, FramePredictor]
    calibration: str = ""

    def for_codec(self, codec: str) -> FramePredictor | None:
        """The rule for frames of ``codec``: its own, else for the archive codecs (:data:`H264_SCALE_CODECS`)
        the ``h264`` rule, else None (the per-QP profile applies)."""
        rule = self.codecs.get(codec)
        if rule is None and codec in H264_SCALE_CODECS:
            rule = self.codecs.get("h264")
        return rule

    def as_dict(self) -> dict[str, Any]:
        return {"version": PREDICTOR_VERSION, "level": "frame", "codecs": {c: p.as_dict() for c, p in self.codecs.items()},
                "calibration": self.calibration}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StrengthPredictor:
        """Build and check the manifest's ``quality_profile.predictor`` object."""
        if not isinstance(data, Mapping):
            raise PredictorError("strength predictor must be an object")
        if data.get("version") != PREDICTOR_VERSION:
            raise PredictorError(f"strength predictor version {data.get('version')!r} is not supported (this vsjpegfix reads {PREDICTOR_VERSION})")
        if data.get("level", "frame") != "frame":
            raise PredictorError(f"strength predictor level {data.get('level')!r} is not supported (frame only)")
        codecs = data.get("codecs")
        if not isinstance(codecs, Mapping) or not codecs:
            raise PredictorError("strength predictor needs 'codecs': {codec: {terms, theta}}")
        return cls({str(c): FramePredictor.from_dict(p, str(c)) for c, p in codecs.items()}, str(data.get("calibration", "")))
