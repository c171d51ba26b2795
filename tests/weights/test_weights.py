"""Weights: safetensors with manifest and checksum, .pth loading without unpickling, spandrel by path."""

import json
import pickle
from pathlib import Path

import pytest
import torch

from vsjpegfix.engine.core import Engine
from vsjpegfix.models import ARCNN, FBCNN, FastARCNN
from vsjpegfix.weights.store import (
    WeightsError,
    default_model_name,
    load_file,
    load_model,
    read_manifest,
    save_weights,
    sha256_file,
)


@pytest.fixture
def weights_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("VSJPEGFIX_WEIGHTS_DIR", str(tmp_path))
    return tmp_path


def _publish(folder, name, model, arch):
    sha = save_weights(model, folder / f"{name}.safetensors", arch=arch)
    entry = {"name": name, "file": f"{name}.safetensors", "arch": arch, "config": model.config, "sha256": sha}
    (folder / "manifest.json").write_text(json.dumps({"models": [entry]}))
    return folder / f"{name}.safetensors"


def test_safetensors_roundtrip_fp16(tmp_path):
    model = FastARCNN(channels=3).eval()
    path = tmp_path / "m.safetensors"
    sha = save_weights(model, path, arch="fastarcnn", metadata={"steps": 5})
    assert sha == sha256_file(path)
    loaded = load_file(path)
    assert isinstance(loaded, FastARCNN) and loaded.config == model.config
    x = torch.rand(1, 3, 24, 24)
    with torch.no_grad():
        assert torch.allclose(loaded(x), model(x), atol=2e-3)  # fp16 storage
    assert not list(tmp_path.glob("*.part"))


def test_manifest_name_loads_and_verifies_checksum(weights_dir):
    path = _publish(weights_dir, "tiny", FBCNN(nc=(8, 16, 24, 32), nb=1), "fbcnn")
    assert set(read_manifest()) == {"tiny"}
    assert default_model_name() == "tiny"  # the only one
    assert isinstance(load_model("tiny"), FBCNN)
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="checksum mismatch"):
        load_model("tiny")


def test_truncated_file_is_a_clear_error(tmp_path):
    path = tmp_path / "m.safetensors"
    save_weights(FastARCNN(), path, arch="fastarcnn")
    path.write_bytes(path.read_bytes()[:500])
    with pytest.raises(WeightsError, match="not a valid safetensors"):
        load_file(path)


def test_pth_state_dict_is_detected(tmp_path):
    model = FBCNN(in_nc=1, out_nc=1, nc=(8, 16, 24, 32), nb=2)
    path = tmp_path / "fbcnn_small.pth"
    torch.save(model.state_dict(), path)
    loaded = load_model(path)
    assert isinstance(loaded, FBCNN) and loaded.config == model.config
    torch.save({"params": model.state_dict()}, tmp_path / "wrapped.pth")
    assert isinstance(load_file(tmp_path / "wrapped.pth"), FBCNN)


class _Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_pth_with_arbitrary_objects_is_refused(tmp_path, capsys):
    path = tmp_path / "evil.pth"
    with open(path, "wb") as f:
        pickle.dump({"x": _Evil()}, f)
    with pytest.raises(WeightsError, match="weights-only"):
        load_file(path)
    assert "pwned" not in capsys.readouterr().out


def test_shape_mismatch_names_the_tensor(tmp_path):
    state = FastARCNN(channels=3).state_dict()
    state["enhance.weight"] = torch.zeros(32, 32, 5, 5)
    torch.save(state, tmp_path / "bad.pth")
    with pytest.raises(WeightsError, match="enhance.weight"):
        load_file(tmp_path / "bad.pth")


def test_default_model_per_kind_of_input(weights_dir):
    entries = []
    models = [("fastarcnn", FastARCNN(channels=3), "fastarcnn"), ("fbcnn-s", FBCNN(nc=(8, 8, 8, 8), nb=1), "fbcnn"),
              ("fbcnn-s-video", FBCNN(nc=(8, 8, 8, 8), nb=1), "fbcnn"), ("arcnn", ARCNN(channels=3), "arcnn")]
    for name, model, arch in models:
        sha = save_weights(model, weights_dir / f"{name}.safetensors", arch=arch)
        entries.append({"name": name, "file": f"{name}.safetensors", "arch": arch, "config": model.config, "sha256": sha})
    cases = [  # shipped subset -> (H.264/HEVC video default, other video default, image default)
        ((0, 1, 2, 3), ("arcnn", "fbcnn-s", "fbcnn-s")),
        ((0, 1, 2), ("fbcnn-s", "fbcnn-s", "fbcnn-s")),
        ((0, 2), ("fastarcnn", "fbcnn-s-video", "fastarcnn")),
        ((2,), ("fbcnn-s-video", "fbcnn-s-video", "fbcnn-s-video")),
        ((0,), ("fastarcnn", "fastarcnn", "fastarcnn")),
    ]
    for subset, (video_qp, video, image) in cases:
        (weights_dir / "manifest.json").write_text(json.dumps({"models": [entries[i] for i in subset]}))
        assert default_model_name("video-qp") == video_qp, subset
        assert default_model_name() == default_model_name("video") == video, subset
        assert default_model_name("image") == image, subset
    with pytest.raises(ValueError, match="kind must be"):
        default_model_name("audio")


def test_unknown_names_and_missing_files(weights_dir):
    with pytest.raises(WeightsError, match="unknown model 'nope'"):
        load_model("nope")
    with pytest.raises(WeightsError, match="not found"):
        load_model("missing/file.safetensors")
    with pytest.raises(WeightsError, match="vsjpegfix weights download fbcnn_color"):
        load_model("fbcnn_color")
    with pytest.raises(WeightsError, match="no shipped weights"):
        default_model_name()


def test_any_spandrel_model_by_path(tmp_path):
    dncnn = pytest.importorskip("spandrel.architectures.DnCNN.__arch.network_dncnn")
    net = dncnn.DnCNN(in_nc=3, out_nc=3, nc=16, nb=9, act_mode="R")
    path = tmp_path / "dncnn_random.pth"
    torch.save(net.state_dict(), path)
    model = load_model(path)
    assert model.channels == 3 and model.frames == 1 and not model.has_quality
    engine = Engine(model, device="cpu")
    x = torch.rand(1, 3, 29, 35)
    y, pred, used = engine.restore_tensor(x)
    with torch.no_grad():
        expected = net(x).clamp(0, 1)
    assert y.shape == x.shape and pred is None and used is None
    assert torch.allclose(y, expected, atol=1e-5)


def test_installed_package_ships_its_weights(tmp_path):
    """A non-editable install (as in CI) carries weights/ as vsjpegfix/_shipped with its manifest."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VSJPEGFIX_WEIGHTS_DIR")}
    code = "import json, vsjpegfix.weights.store as w; print(json.dumps([str(w.shipped_dir()), sorted(w.read_manifest())]))"
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    if "No module named 'vsjpegfix'" in proc.stderr:
        pytest.skip("vsjpegfix is not installed in this environment (only the checkout is on sys.path)")
    assert proc.returncode == 0, proc.stderr
    folder, names = json.loads(proc.stdout)
    repo_manifest = json.loads((Path(__file__).resolve().parents[2] / "weights" / "manifest.json").read_text())
    assert names == sorted(m["name"] for m in repo_manifest["models"])
    if "site-packages" in folder:
        assert folder.endswith("_shipped")
