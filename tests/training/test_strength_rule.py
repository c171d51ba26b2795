"""vsjpegfix.training.strength_rule: the rule written into a copy of the weights manifest (atomically, only for
the weights the manifest names), its calibration note."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from vsjpegfix.training.errors import TrainingError
from vsjpegfix.training.strength_rule import calibration_note, write_rule
from vsjpegfix.training.video_set import VideoSetConfig
from vsjpegfix.weights.predictor import FramePredictor
from vsjpegfix.weights.store import MANIFEST_NAME, read_manifest, shipped_dir

RULES = {"h264": FramePredictor(("1", "q"), (0.5, 0.25), 0.1), "hevc": FramePredictor(("1", "B"), (0.4, -0.1), 0.05)}
LONG = {"h264": FramePredictor(("1", "q"), (0.123456789, -0.25), 0.1)}


@pytest.fixture
def weights(tmp_path) -> Path:
    folder = tmp_path / "weights"
    folder.mkdir()
    for name in (MANIFEST_NAME, "arcnn.safetensors"):
        shutil.copy(shipped_dir() / name, folder / name)
    return folder


def test_writes_the_rule_and_nothing_else(weights):
    before = json.loads((weights / MANIFEST_NAME).read_text())
    write_rule("arcnn", RULES, "note 1", weights)
    after = json.loads((weights / MANIFEST_NAME).read_text())
    rule = read_manifest(weights)["arcnn"].profile().predictor
    assert rule.calibration == "note 1" and rule.for_codec("h264") == RULES["h264"] and rule.for_codec("hevc") == RULES["hevc"]
    for b, a in zip(before["models"], after["models"]):
        if b["name"] == "arcnn":
            b["quality_profile"].pop("predictor"), a["quality_profile"].pop("predictor")
        assert a == b
    assert sorted(p.name for p in weights.iterdir()) == sorted([MANIFEST_NAME, "arcnn.safetensors"])  # no temporary left
    write_rule("arcnn", LONG, "note 2", weights)
    assert read_manifest(weights)["arcnn"].profile().predictor.for_codec("h264").theta == (0.123457, -0.25)


def test_refuses_other_weights_and_unknown_models(weights):
    before = (weights / MANIFEST_NAME).read_bytes()
    with open(weights / "arcnn.safetensors", "ab") as f:
        f.write(b"\0")
    with pytest.raises(TrainingError, match="sha256"):
        write_rule("arcnn", RULES, "note", weights)
    with pytest.raises(TrainingError, match="no model"):
        write_rule("nothing", RULES, "note", weights)
    with pytest.raises(TrainingError, match="missing"):
        write_rule("fbcnn-s", RULES, "note", weights)  # its weights file is not in the copy
    assert (weights / MANIFEST_NAME).read_bytes() == before


def test_calibration_note_names_the_weights_and_the_set(tmp_path):
    cfg = VideoSetConfig(tmp_path / "video", tmp_path)
    note = calibration_note(cfg, "3ef79ceaf2fc" + "0" * 52, 9, date="2026-11-30")
    folder = "/".join(cfg.video_dir.resolve().parts[-3:])
    assert note.startswith(f"scripts/fit_strength.py on weights 3ef79ceaf2fc: 9 real sequences ({folder}, centred crops <= 256x256")
    assert "QP 22/27/32/37/42 and CRF 18/23/28" in note and "8 scored" in note and note.endswith("2026-11-30")
