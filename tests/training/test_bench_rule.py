"""vsjpegfix.training.bench_rule and ``scripts/bench.py --rule-overhead`` on small frames: the shipped arcnn with and
without its strength rule, the rule's own cost."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from vsjpegfix.training.bench_rule import overhead_markdown, rule_overhead
from vsjpegfix.training.errors import TrainingError
from vsjpegfix.weights.store import read_manifest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "bench.py"
pytest.importorskip("skimage")


def test_rule_overhead_times_both_paths():
    r = rule_overhead("arcnn", "128x96", 2, threads=1)
    assert r["torch_threads"] == 1 and len(r["samples_rule"]) == 2 and len(r["samples_profile"]) == 2
    profile = read_manifest()["arcnn"].profile()
    assert 0.0 < r["rule_strength"] < 1.0 and r["profile_strength"] == profile.for_qp(37.0)[1]
    assert r["s_per_frame_rule"] > 0 and r["s_per_frame_profile"] > 0 and 0 < r["rule_alone_s"] < r["s_per_frame_rule"]
    assert r["overhead"] == pytest.approx(r["s_per_frame_rule"] / r["s_per_frame_profile"] - 1)
    md = overhead_markdown(r)
    assert "| rule (" in md and "the rule's own work alone" in md and "128x96" in md
    with pytest.raises(TrainingError, match="no strength rule"):
        rule_overhead("fastarcnn", "64x64", 1)


def test_bench_script_rule_overhead(tmp_path):
    out = tmp_path / "rule.json"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--rule-overhead", "--resolutions", "96x64", "--frames", "1",
                           "--threads", "1", "--json", str(out)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Rule overhead: `arcnn`, 96x64" in proc.stdout
    assert json.loads(out.read_text())["model"] == "arcnn"
