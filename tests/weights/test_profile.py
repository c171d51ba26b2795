"""vsjpegfix.weights.profile: parsing, interpolation, and the profiles attached to shipped models."""

from __future__ import annotations

import json
import shutil

import pytest

from vsjpegfix.weights.profile import ProfileError, QualityProfile, profile_of
from vsjpegfix.weights.store import WeightsError, load_model, read_manifest, shipped_dir

PROFILE = QualityProfile.from_dict({
    "h264_qp": [[20, 90, 0.0], [30, 60, 0.4], [40, None, 1.0], [50, 10, 1.0]],
    "jpeg_qf": [[50, 1.0], [90, 0.2], [95, 0.0]],
})


def test_interpolates_between_points_and_holds_the_ends():
    assert PROFILE.for_qp(10) == (90, 0.0)
    assert PROFILE.for_qp(25) == pytest.approx((75, 0.2))
    assert PROFILE.for_qp(60) == (10, 1.0)
    assert PROFILE.for_jpeg_qf(10) == 1.0 and PROFILE.for_jpeg_qf(100) == 0.0
    assert PROFILE.for_jpeg_qf(70) == pytest.approx(0.6)


def test_next_to_a_blind_point_the_nearer_control_wins():
    assert PROFILE.for_qp(33)[0] == 60 and PROFILE.for_qp(37)[0] is None
    assert PROFILE.for_qp(44)[0] is None and PROFILE.for_qp(46)[0] == 10
    assert PROFILE.for_qp(35)[1] == pytest.approx(0.7)


def test_empty_profile_is_full_strength_and_round_trips():
    empty = QualityProfile()
    assert empty.for_qp(30) == (None, 1.0) and empty.for_jpeg_qf(99) == 1.0
    assert not empty.has_qp and not empty.has_qf
    assert QualityProfile.from_dict(PROFILE.as_dict()) == PROFILE


@pytest.mark.parametrize("bad", [
    {"h264_qp": [[30, 50, 0.5], [20, 50, 0.5]]},
    {"h264_qp": [[30, 50, 1.5]]},
    {"h264_qp": [[30, 150, 0.5]]},
    {"jpeg_qf": [[50]]},
    {"jpeg_qf": [[50, -0.1]]},
])
def test_malformed_profiles_are_refused(bad):
    with pytest.raises(ProfileError):
        QualityProfile.from_dict(bad)


def test_shipped_models_carry_their_profiles():
    manifest = read_manifest()
    with_profile = [name for name, entry in manifest.items() if entry.quality_profile]
    assert set(with_profile) == set(manifest)  # every shipped model
    for name in with_profile:
        profile = profile_of(load_model(name))
        # colour models restore video too (QP points); the gray one restores gray images only
        assert profile == manifest[name].profile() and profile.has_qp == (manifest[name].channels == 3) and profile.has_qf
        # calibrated to be near-identity on near-clean input and to restore heavily compressed input
        assert profile.for_jpeg_qf(100) < 0.5 and profile.for_jpeg_qf(30) > 0.5
        if profile.has_qp:
            assert profile.for_qp(15)[1] < profile.for_qp(45)[1]


def test_a_bad_profile_in_the_manifest_is_a_corrupt_manifest(tmp_path, monkeypatch):
    folder = tmp_path / "weights"
    shutil.copytree(shipped_dir(), folder)
    data = json.loads((folder / "manifest.json").read_text())
    data["models"][0]["quality_profile"] = {"jpeg_qf": [[90, 2.0]]}
    (folder / "manifest.json").write_text(json.dumps(data))
    monkeypatch.setenv("VSJPEGFIX_WEIGHTS_DIR", str(folder))
    with pytest.raises(WeightsError, match="corrupt weights manifest.*strengths"):
        read_manifest()
