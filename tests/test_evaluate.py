"""scripts/evaluate.py end to end on a tiny image folder, a tiny random model and 3 video frames."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from vsjpegfix.models import FBCNN
from vsjpegfix.weights import save_weights

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "evaluate.py"
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
    out = tmp / "eval.json"
    md = tmp / "eval.md"
    cmd = [sys.executable, str(SCRIPT), "--quick", "--images", str(images), "--models", str(weights),
           "--video", "--frames", "3", "--json", str(out), "--markdown", str(md)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(out.read_text()), proc.stdout, md.read_text()


def _rows(table, method):
    return [r for r in table["rows"] if r["method"] == method]


def test_header_and_markdown(result):
    data, stdout, md = result
    meta = data["meta"]
    assert stdout == md
    assert stdout.startswith("# vsjpegfix evaluation")
    for key in ("date", "commit", "machine", "models", "classical"):
        assert key in meta
    assert [m["label"] for m in meta["models"]] == ["tiny"]
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


def test_video_table(result):
    table = result[0]["tables"]["video"]
    for codec in ("x264", "x265"):
        inp = [r for r in _rows(table, "input") if r["setting"]["codec"] == codec]
        assert [r["setting"]["qp"] for r in inp] == [27, 32, 37, 42]
        values = [r["psnr_y"] for r in inp]
        assert values == sorted(values, reverse=True)
        assert all(r["n"] == 3 and r["delta_psnr_y"] == 0 and r["kbps"] > 0 for r in inp)
        for method in ("classical", "tiny"):
            rows = [r for r in _rows(table, method) if r["setting"]["codec"] == codec]
            assert len(rows) == 4 and all({"psnr_y", "ssim_y", "delta_psnr_y"} <= set(r) for r in rows)
    real = result[0]["tables"]["carphone"]
    assert [r["method"] for r in real["rows"]] == ["input", "classical", "tiny"]
    assert 20 < real["rows"][0]["psnr_y"] < 40
