"""vsjpegfix.weights.predictor: the content-adaptive strength rule stored with a model's profile."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vsjpegfix.weights.predictor import (
    TERMS,
    FramePredictor,
    PredictorError,
    StrengthPredictor,
    design,
)
from vsjpegfix.weights.profile import ProfileError, QualityProfile

FEATURES = {"qp": np.array([22.0, 37.0, 47.0]), "tex": np.array([2.0, 8.0, 1.0]), "rd": np.array([0.5, 1.5, 3.0]),
            "blk": np.array([1.0, 1.2, 1.6]), "I": np.array([1.0, 0.0, 0.0]), "B": np.array([0.0, 0.0, 1.0]),
            "aq": np.array([0.0, 1.0, 1.0])}


def test_terms_are_the_documented_formulas():
    q = (FEATURES["qp"] - 32) / 10
    lratio = np.log((FEATURES["rd"] + 0.05) / (FEATURES["tex"] + 0.5))
    expected = {"1": np.ones(3), "q": q, "q2": q * q, "I": FEATURES["I"], "B": FEATURES["B"], "lrd": np.log(FEATURES["rd"] + 0.05),
                "ltex": np.log(FEATURES["tex"] + 0.5), "lratio": lratio, "blk": np.log(FEATURES["blk"]), "qlratio": q * lratio,
                "qltex": q * np.log(FEATURES["tex"] + 0.5), "aq": FEATURES["aq"], "aqq": FEATURES["aq"] * q,
                "aqlratio": FEATURES["aq"] * lratio}
    assert set(expected) == set(TERMS)
    for name, values in expected.items():
        np.testing.assert_allclose(design(FEATURES, [name])[:, 0], values, err_msg=name)


def test_strengths_are_the_clipped_linear_rule():
    rule = FramePredictor(("1", "q", "B", "blk"), (0.5, 0.6, -0.2, 1.0))
    raw = 0.5 + 0.6 * (FEATURES["qp"] - 32) / 10 - 0.2 * FEATURES["B"] + np.log(FEATURES["blk"])
    np.testing.assert_allclose(rule.strengths(FEATURES), np.clip(raw, 0, 1))
    assert rule.strengths(FEATURES)[0] == 0.0 and 0 < rule.strengths(FEATURES)[1] < 1  # QP 22 clipped to 0


def test_profile_round_trip_and_checks():
    data = {"h264_qp": [[30.0, None, 0.5]], "predictor": {"version": 1, "level": "frame", "calibration": "test",
                                                          "codecs": {"h264": {"terms": ["1", "q"], "theta": [0.4, 0.3], "margin": 0.1}}}}
    profile = QualityProfile.from_dict(data)
    assert profile.predictor.for_codec("h264").theta == (0.4, 0.3) and profile.predictor.for_codec("hevc") is None
    assert QualityProfile.from_dict(profile.as_dict()) == profile
    bad = [
        ({"version": 2, "codecs": {"h264": {"terms": ["1"], "theta": [1]}}}, "version 2"),
        ({"version": 1, "level": "block", "codecs": {"h264": {"terms": ["1"], "theta": [1]}}}, "level"),
        ({"version": 1, "codecs": {}}, "codecs"),
        ({"version": 1, "codecs": {"h264": {"terms": ["1", "magic"], "theta": [1, 2]}}}, "unknown terms"),
        ({"version": 1, "codecs": {"h264": {"terms": ["1", "q"], "theta": [1]}}}, "1 coefficients for 2 terms"),
        ({"version": 1, "codecs": {"h264": {"terms": ["1"], "theta": [math.nan]}}}, "finite"),
        ({"version": 1, "codecs": {"h264": {"theta": [1]}}}, "needs 'terms'"),
    ]
    for predictor, message in bad:
        with pytest.raises(ProfileError, match=message):
            QualityProfile.from_dict({"predictor": predictor})
    with pytest.raises(PredictorError):
        StrengthPredictor.from_dict([1, 2])


def test_the_shipped_default_video_model_has_a_rule_per_codec():
    from vsjpegfix.weights.store import read_manifest

    profile = read_manifest()["arcnn"].profile()
    for codec in ("h264", "hevc"):
        rule = profile.predictor.for_codec(codec)
        assert rule is not None and rule.terms[0] == "1" and rule.margin > 0
        s = rule.strengths(FEATURES)
        assert np.all((s >= 0) & (s <= 1))
    assert "weights 3ef79ceaf2fc" in profile.predictor.calibration  # fitted to these weights (sha256 prefix)


def test_codecs_on_the_h264_scale_borrow_the_h264_rule():
    from vsjpegfix.weights.predictor import H264_SCALE_CODECS

    h264, own = FramePredictor(("1",), (0.5,)), FramePredictor(("1",), (0.2,))
    predictor = StrengthPredictor({"h264": h264, "mpeg2video": own})
    assert {"mpeg2video", "mpeg4", "mjpeg", "vp9", "msmpeg4", "flv", "wmv2"} <= H264_SCALE_CODECS
    assert predictor.for_codec("mpeg4") is h264 and predictor.for_codec("msmpeg4") is h264
    assert predictor.for_codec("mpeg2video") is own  # a codec's own rule wins
    assert predictor.for_codec("hevc") is None and predictor.for_codec("vp8") is None  # not on the H.264 scale / no quantiser
    assert StrengthPredictor({"hevc": own}).for_codec("mpeg4") is None  # nothing to borrow
