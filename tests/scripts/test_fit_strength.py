"""scripts/fit_strength.py end to end on three small real sequences (64x64 crops, 4 frames, two points):
the held-out table, the rule written into a copy of the manifest, refusals as one-line errors."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from vsjpegfix.weights.store import MANIFEST_NAME, read_manifest, shipped_dir

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "fit_strength.py"
VIDEO = Path(__file__).resolve().parents[3] / "shared" / "data" / "video"
SEQUENCES = ("reds000_lr_320x180_21f", "spmcs_amvtg004_lr_240x134_31f", "talkinghead_384x384_60f")
pytestmark = pytest.mark.skipif(not all((VIDEO / f"{s}.mkv").is_file() for s in SEQUENCES), reason="no shared/data/video")


def _run(tmp: Path, *extra: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(SCRIPT), "--cache", str(tmp / "cache"), "--crop", "64", "--frames", "4", "--eval-frames", "2",
           "--points", "qp37", "crf23", "--workers", "1", "--sequences", *SEQUENCES, *extra]
    env = dict(os.environ, VSJPEGFIX_WEIGHTS_DIR=str(tmp / "weights"))
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fit_strength")
    (tmp / "weights").mkdir()
    for name in (MANIFEST_NAME, "arcnn.safetensors"):
        shutil.copy(shipped_dir() / name, tmp / "weights" / name)
    proc = _run(tmp, "--write-manifest", "--json", str(tmp / "fit.json"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return tmp, proc, json.loads((tmp / "fit.json").read_text())


def test_prints_the_held_out_table(fitted):
    _, proc, report = fitted
    out = proc.stdout
    assert "## x264" in out and "## x265" in out and "| held-out rule |" in out and "| oracle-32 |" in out
    schemes = {(r["codec"], r["point"], r["scheme"]) for r in report["rows"]}
    assert {(c, p, s) for c in ("x264", "x265") for p in ("qp37", "crf23")
            for s in ("profile", "held-out rule", "oracle-frame", "oracle-32")} == schemes
    assert set(report["held_out"]) == set(SEQUENCES)
    for r in report["rows"]:
        assert r["n"] == 3 and r["worst"] <= r["mean"]
    by = {(r["codec"], r["point"], r["scheme"]): r["mean"] for r in report["rows"]}
    assert all(by[(c, p, "oracle-32")] >= by[(c, p, "oracle-frame")] - 1e-9 for c in ("x264", "x265") for p in ("qp37", "crf23"))


def test_writes_the_rule_for_the_manifests_weights(fitted):
    tmp, _, report = fitted
    rule = read_manifest(tmp / "weights")["arcnn"].profile().predictor
    shipped = read_manifest(shipped_dir())["arcnn"].profile().predictor
    assert rule.calibration.startswith("scripts/fit_strength.py on weights 3ef79ceaf2fc: 3 real sequences")
    for codec in ("h264", "hevc"):
        assert rule.for_codec(codec).terms == shipped.for_codec(codec).terms
        assert list(rule.for_codec(codec).theta) == pytest.approx(report["final"][codec]["theta"], abs=5e-7)
        assert rule.for_codec(codec).theta != shipped.for_codec(codec).theta  # fitted on this tiny set


def test_refusals_are_one_line_errors(fitted):
    tmp = fitted[0]
    before = (tmp / "weights" / MANIFEST_NAME).read_bytes()
    with open(tmp / "weights" / "arcnn.safetensors", "ab") as f:
        f.write(b"\0")  # other weights than the manifest names
    proc = _run(tmp, "--write-manifest")
    assert proc.returncode != 0 and "sha256" in proc.stderr and "Traceback" not in proc.stderr
    assert (tmp / "weights" / MANIFEST_NAME).read_bytes() == before
    shutil.copy(shipped_dir() / "arcnn.safetensors", tmp / "weights" / "arcnn.safetensors")
    proc = _run(tmp, "--video-dir", str(tmp / "none"))
    assert proc.returncode != 0 and "no video folder" in proc.stderr and "Traceback" not in proc.stderr
    proc = _run(tmp, "--model", "nothing")
    assert proc.returncode != 0 and "nothing" in proc.stderr and "Traceback" not in proc.stderr
    proc = _run(tmp, "--points", "qp99")
    assert proc.returncode != 0 and "bad point" in proc.stderr
