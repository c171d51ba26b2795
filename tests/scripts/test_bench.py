"""scripts/bench.py: a tiny real run as a subprocess, and its FLOP counting."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from vsjpegfix.training import bench_flops
from vsjpegfix.training.bench_engine import parse_resolution

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "bench.py"


def fastarcnn_macs(width: int, height: int, channels: int = 3) -> int:
    """Multiply-accumulates of Fast ARCNN's convolutions, by hand (even sizes).

    9x9 stride-2 conv c->64, 1x1 64->32, 7x7 32->32, 1x1 32->64 all on the half-resolution grid;
    the 9x9 stride-2 transposed conv 64->c scatters each half-resolution pixel to 9x9xc outputs.
    """
    half = (width // 2) * (height // 2)
    features = half * channels * 64 * 9 * 9
    shrink = half * 64 * 32
    enhance = half * 32 * 32 * 7 * 7
    expand = half * 32 * 64
    reconstruct = half * 64 * channels * 9 * 9
    return features + shrink + enhance + expand + reconstruct


def test_tiny_run_json(tmp_path):
    out = tmp_path / "bench.json"
    cmd = [
        sys.executable, str(SCRIPT), "--models", "fastarcnn", "--resolutions", "64x48", "--frames", "2",
        "--device", "cpu", "--threads", "1", "--budget", "10", "--content", "random", "--json", str(out),
    ]  # fmt: skip
    env = dict(os.environ, VSJPEGFIX_WEIGHTS_DIR=str(tmp_path))  # no manifest: architectures only
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(out.read_text())

    assert report["models"]["fastarcnn"]["params"] == 85_575
    (case,) = report["cases"]
    assert (case["model"], case["width"], case["height"]) == ("fastarcnn", 64, 48)
    assert case["params"] == 85_575
    assert case["flops"] == 2 * fastarcnn_macs(64, 48) == 131_137_536
    assert case["gflop_per_frame"] == pytest.approx(2 * fastarcnn_macs(64, 48) / 1e9)
    assert case["tflops_for_30fps"] == pytest.approx(case["gflop_per_frame"] * 30 / 1000)
    assert case["status"] == "ok", case
    result = case["result"]
    assert result["fps"] > 0 and result["frames_timed"] == 2
    assert result["achieved_tflops"] == pytest.approx(case["gflop_per_frame"] / 1000 * result["fps"])
    assert result["peak_mem_mib"] >= 0
    assert report["machine"]["torch_threads"] == 1 and report["machine"]["cpu"]
    # the Markdown table
    assert "| model | resolution | params |" in proc.stdout
    assert "| fastarcnn | 64x48 | 85,575 | 0.1311 |" in proc.stdout


def test_flop_counter_matches_analytic():
    """FlopCounterMode on meta equals the analytic count, padding included (sizes not multiples of 8)."""
    for name in ("fbcnn", "fbcnn-s", "arcnn", "fastarcnn"):
        spec = bench_flops.resolve_model_spec(name) if name != "fbcnn-s" else bench_flops.ModelSpec(
            name, "fbcnn", dict(bench_flops.FBCNN_S_DEFAULT), "test"
        )
        model = bench_flops.build_meta(spec)
        counted = bench_flops.counted_call_flops(model, 70, 38)
        assert counted == bench_flops.analytic_call_flops(spec.arch, model.config, 70, 38), name
    assert bench_flops.analytic_call_flops("fastarcnn", {}, 64, 48) == 2 * fastarcnn_macs(64, 48)


def test_resolution_parsing():
    assert parse_resolution("480p") == ("480p", 854, 480)
    assert parse_resolution("64x48") == ("64x48", 64, 48)
    with pytest.raises(Exception):
        parse_resolution("65x48")  # 4:2:0 needs even sizes
