"""scripts/evaluate.py end to end on a tiny image folder, tiny random models and 3 video frames.

Models: ``tiny`` (a random FBCNN: blind and dominant-QF rows), ``fast`` (a random FastARCNN) and
``fast3`` (its 3-frame temporal version, neighbour weights perturbed so that the neighbours count),
compared with ``--pair fast=fast3``.
"""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from vsjpegfix.models import FBCNN, FastARCNN, make_temporal
from vsjpegfix.training.evaluation.entries import VIDEO_FMT, ModelEntry
from vsjpegfix.training.evaluation.video_tables import temporal_stats, tmad
from vsjpegfix.weights.store import save_weights

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "evaluate.py"
skimage_data = pytest.importorskip("skimage.data")
pytest.importorskip("skvideo")


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    from PIL import Image

    tmp = tmp_path_factory.mktemp("evaluate")
    images = tmp / "images"
    images.mkdir()
    Image.fromarray(skimage_data.astronaut()[100:228, 150:278]).save(images / "a.png")
    Image.fromarray(skimage_data.coffee()[50:170, 200:340]).save(images / "b.png")
    torch.manual_seed(0)
    weights = tmp / "tiny.safetensors"
    save_weights(FBCNN(nc=(4, 8, 8, 8), nb=1), weights, arch="fbcnn")
    single = FastARCNN()
    save_weights(single, tmp / "fast.safetensors", arch="fastarcnn")
    save_weights(_temporal(single), tmp / "fast3.safetensors", arch="fastarcnn")
    out = tmp / "eval.json"
    md = tmp / "eval.md"
    cmd = [sys.executable, str(SCRIPT), "--quick", "--images", str(images), "--models", str(weights),
           str(tmp / "fast.safetensors"), str(tmp / "fast3.safetensors"), "--pair", "fast=fast3",
           "--video", "--frames", "3", "--json", str(out), "--markdown", str(md)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(out.read_text()), proc.stdout, md.read_text()


def _temporal(single, frames=3):
    """``make_temporal`` of ``single`` with its neighbour weights perturbed (else it ignores them)."""
    model = make_temporal(single, frames)
    with torch.no_grad():
        model.features.weight.add_(0.05 * torch.randn_like(model.features.weight))
    return model


def _rows(table, method):
    return [r for r in table["rows"] if r["method"] == method]


def test_header_and_markdown(result):
    data, stdout, md = result
    meta = data["meta"]
    assert stdout == md
    assert stdout.startswith("# vsjpegfix evaluation")
    for key in ("date", "commit", "machine", "models", "classical"):
        assert key in meta
    assert [m["label"] for m in meta["models"]] == ["tiny", "fast", "fast3"]
    assert [m["frames"] for m in meta["models"]] == [1, 1, 3]
    assert meta["images"]["count"] == 2 and meta["video"]["frames"] == 3
    assert "| QF |" in stdout and "| codec | QP |" in stdout
    assert set(data["tables"]) == {"colour", "gray", "double", "video", "carphone"}
    assert all(t["seconds"] >= 0 for t in data["tables"].values())


@pytest.mark.parametrize("name", ["colour", "gray"])
def test_jpeg_tables(result, name):
    table = result[0]["tables"][name]
    for method in ("input", "classical", "tiny"):
        rows = _rows(table, method)
        assert [r["setting"]["qf"] for r in rows] == [10, 20, 30, 40]
        for r in rows:
            assert r["n"] == 2 and {"psnr", "ssim", "psnrb"} <= set(r)
    inp = _rows(table, "input")
    values = [r["psnr"] for r in inp]
    assert values == sorted(values) and values[0] < values[-1]
    # the classical filter helps on real JPEG at QF 10
    cls = _rows(table, "classical")[0]
    assert cls["psnrb"] > inp[0]["psnrb"]
    assert "pred_qf" in _rows(table, "tiny")[0]  # FBCNN runs blind


def test_double_jpeg_table(result):
    table = result[0]["tables"]["double"]
    settings = {(r["setting"]["qf1"], r["setting"]["qf2"]) for r in _rows(table, "input")}
    assert settings == {(a, b) for a in (10, 30, 50) for b in (10, 30, 50)}
    assert len(_rows(table, "classical")) == 9 and len(_rows(table, "tiny")) == 9
    # FBCNN-D's dominant-QF correction: a second row for the FBCNN model only
    dominant = _rows(table, "tiny dominant-QF")
    assert len(dominant) == 9 and all(r["kind"] == "model-dominant" for r in dominant)
    assert not any(r["method"].startswith("fast") and r["method"].endswith("dominant-QF") for r in table["rows"])
    inputs = {(r["setting"]["qf1"], r["setting"]["qf2"]): r for r in _rows(table, "input")}
    for r in dominant:
        qf1, qf2 = r["setting"]["qf1"], r["setting"]["qf2"]
        assert r["n"] == 2 and {"psnr", "ssim", "psnrb", "control_qf", "detected"} <= set(r)
        assert "pred_qf" not in r  # controlled, not blind
        assert r["control_qf"] <= qf2
        inp = inputs[(qf1, qf2)]
        assert 0 <= inp["detected"] <= 1 and r["detected"] == inp["detected"]
        if inp["detected"] == 0:
            assert r["control_qf"] == qf2
    # a much stronger earlier compression is found (even on 96x96 crops) and controls the restoration
    assert inputs[(10, 50)]["detected"] == 1 and abs(inputs[(10, 50)]["detected_qf1"] - 10) <= 2
    assert [r for r in dominant if r["setting"] == {"qf1": 10, "qf2": 50}][0]["control_qf"] <= 12
    assert inputs[(50, 10)]["detected"] == 0  # a weaker earlier one cannot change the dominant QF
    md = result[2]
    assert "| QF1 | QF2 | detected | input | classical | tiny | tiny dominant-QF | fast | fast3 |" in md


def test_video_table(result):
    table = result[0]["tables"]["video"]
    for codec in ("x264", "x265"):
        inp = [r for r in _rows(table, "input") if r["setting"]["codec"] == codec]
        assert [r["setting"]["qp"] for r in inp] == [27, 32, 37, 42]
        values = [r["psnr_y"] for r in inp]
        assert values == sorted(values, reverse=True)
        assert all(r["n"] == 3 and r["delta_psnr_y"] == 0 and r["kbps"] > 0 for r in inp)
        for method in ("classical", "tiny", "fast", "fast3"):
            rows = [r for r in _rows(table, method) if r["setting"]["codec"] == codec]
            assert len(rows) == 4 and all({"psnr_y", "ssim_y", "delta_psnr_y"} <= set(r) for r in rows)
            assert all(r["sec_per_frame"] > 0 and r["tmad_ratio"] > 0 and r["flicker"] >= 0 for r in rows)
    assert table["metrics"] == ["psnr_y", "delta_psnr_y", "ssim_y", "tmad_ratio"]
    assert table["clean_tmad"] > 0
    for r in table["rows"]:
        assert r["tmad_ratio"] == pytest.approx(r["tmad"] / table["clean_tmad"])
    real = result[0]["tables"]["carphone"]
    assert [r["method"] for r in real["rows"]] == ["input", "classical", "tiny", "fast", "fast3"]
    assert 20 < real["rows"][0]["psnr_y"] < 40
    assert all("tmad_ratio" in r for r in real["rows"])
    md = result[2]
    assert "Cells: Y-PSNR / ΔY-PSNR / Y-SSIM / TMAD ratio." in md
    assert md.count("| ms/frame |") == 2


def test_pair(result):
    data, stdout, _ = result
    (pair,) = data["pairs"]
    assert (pair["single"], pair["temporal"], pair["temporal_frames"]) == ("fast", "fast3", 3)
    assert pair["qps"] == [32, 37]
    assert [(r["setting"]["codec"], r["setting"]["qp"]) for r in pair["rows"]] == [
        ("x264", 32), ("x265", 32), ("x264", 37), ("x265", 37)]
    video = {(json.dumps(r["setting"]), r["method"]): r for r in data["tables"]["video"]["rows"]}
    for r in pair["rows"]:
        s = json.dumps(r["setting"])
        assert r["delta_psnr_y"] == pytest.approx(video[(s, "fast3")]["psnr_y"] - video[(s, "fast")]["psnr_y"])
        assert r["single_tmad_ratio"] == video[(s, "fast")]["tmad_ratio"]
        assert r["temporal_tmad_ratio"] == video[(s, "fast3")]["tmad_ratio"]
        assert r["cost_ratio"] > 0
    assert pair["cost_ratio"] == pytest.approx(pair["temporal_sec_per_frame"] / pair["single_sec_per_frame"])
    assert set(pair["targets"]) == {"gain_qp37", "flickers_less", "cost"}
    assert "## Single-frame vs temporal: `fast` vs `fast3` (3 frames)" in stdout
    assert "| codec | QP | ΔY-PSNR | TMAD ratio | cost ratio |" in stdout
    assert "- targets: gain >= +0.2 dB at QP 37:" in stdout


# --------------------------------------------------------------------------- in-process units

@pytest.fixture(scope="module")
def evaluate():
    spec = importlib.util.spec_from_file_location("evaluate_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(spec.name, None)


def test_pair_arguments(evaluate):
    threads, deterministic = torch.get_num_threads(), torch.backends.cudnn.deterministic
    try:  # main() sets these process-wide
        with pytest.raises(SystemExit, match="--pair: 'a' is not one of the models"):
            evaluate.main(["--quick", "--models", "--tables", "video", "--pair", "a=b"])
    finally:
        torch.set_num_threads(threads)
        torch.backends.cudnn.deterministic = deterministic
    with pytest.raises(SystemExit):
        evaluate.parse_args(["--pair", "fast"])
    args = evaluate.parse_args(["--tables", "gray", "--pair", "fast=fast3"])
    assert args.pair == [("fast", "fast3")] and args.tables == ["gray", "video"]


def test_temporal_model_gets_real_neighbours():
    from vsjpegfix.engine.core import Engine
    from vsjpegfix.engine.temporal import window_indices

    torch.manual_seed(1)
    model = _temporal(FastARCNN(), 3)
    entry = ModelEntry("t3", "t3", Engine(model, device="cpu"), "FastARCNN", 0, batch=2)
    rng = np.random.default_rng(0)
    n = 5
    planes = [rng.integers(16, 236, (n, 32, 32), dtype=np.uint8), rng.integers(16, 241, (n, 16, 16), dtype=np.uint8),
              rng.integers(16, 241, (n, 16, 16), dtype=np.uint8)]
    out, _ = entry.restore_video(planes)
    assert out[0].shape == (n, 32, 32)
    for i in (0, 2, n - 1):  # both clamped ends and the middle
        window = window_indices(i, 1, n)
        real = entry.engine.restore([p[window][None] for p in planes], VIDEO_FMT).planes
        repeated = entry.engine.restore([np.repeat(p[i : i + 1][:, None], 3, axis=1) for p in planes], VIDEO_FMT).planes
        np.testing.assert_array_equal(out[0][i], real[0][0])
        assert not np.array_equal(real[0][0], repeated[0][0])  # the neighbours do count


def test_temporal_stats():
    rng = np.random.default_rng(0)
    clean = rng.integers(0, 256, (4, 8, 8)).astype(np.uint8)
    same = temporal_stats(clean, clean)
    assert same["tmad_ratio"] == pytest.approx(1.0) and same["flicker"] == 0
    frozen = temporal_stats(clean, np.repeat(clean[:1], 4, axis=0))
    assert frozen["tmad"] == 0 and frozen["tmad_ratio"] == 0 and frozen["flicker"] > 0
    assert tmad(clean[:1]) is None
    assert temporal_stats(clean[:1], clean[:1]) == {"tmad": None, "tmad_ratio": None, "flicker": None}


def test_profile_rows_follow_the_known_quality(tmp_path):
    """A shipped model with a calibrated profile gets '+profile' rows: the known QF (images), the H.264 QPs."""
    from PIL import Image

    from vsjpegfix.weights.store import read_manifest

    profile = read_manifest()["fastarcnn"].profile()
    images = tmp_path / "images"
    images.mkdir()
    Image.fromarray(skimage_data.astronaut()[100:228, 150:278]).save(images / "a.png")
    out = tmp_path / "eval.json"
    cmd = [sys.executable, str(SCRIPT), "--quick", "--images", str(images), "--models", "fastarcnn",
           "--tables", "colour", "video", "carphone", "--qfs", "40", "95", "--qps", "37", "--frames", "3",
           "--json", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    tables = json.loads(out.read_text())["tables"]
    colour = {r["setting"]["qf"]: r for r in _rows(tables["colour"], "fastarcnn +profile")}
    assert set(colour) == {40, 95}
    for qf, r in colour.items():
        assert r["kind"] == "model-profile" and r["strength"] == pytest.approx(profile.for_jpeg_qf(qf))
    inputs = {r["setting"]["qf"]: r for r in _rows(tables["colour"], "input")}
    blind = {r["setting"]["qf"]: r for r in _rows(tables["colour"], "fastarcnn")}
    # QF 95: nearly the input (strength ~0.06); the blind model is far worse
    assert abs(colour[95]["psnr"] - inputs[95]["psnr"]) < 0.3 and blind[95]["psnr"] < inputs[95]["psnr"] - 1
    video = _rows(tables["video"], "fastarcnn +profile")
    assert [r["setting"]["codec"] for r in video] == ["x264", "x265"]  # H.264's exported QPs, HEVC's slice QPs
    assert all(r["mean_qp"] > 30 and r["n"] == 3 for r in video)
    real = _rows(tables["carphone"], "fastarcnn +profile")
    assert len(real) == 1 and real[0]["mean_qp"] > 40  # the real distorted clip is H.264 at QP ~50
