"""The training loop as a library (vsjpegfix.training.trainer): a callback per checkpoint that can stop the run,
a time budget, resume, and the export of a stored checkpoint (CPU, a tiny Fast ARCNN, a few steps)."""

import json

import pytest
import torch
from PIL import Image
from skimage import data

from vsjpegfix.training.checkpoints import export_checkpoint, read_log, validation_curve
from vsjpegfix.training.errors import TrainingError
from vsjpegfix.training.options import TrainOptions
from vsjpegfix.training.trainer import train
from vsjpegfix.weights.store import load_file


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("trainer")
    img = data.astronaut()
    (root / "train").mkdir()
    (root / "val").mkdir()
    for i, (y, x) in enumerate([(0, 0), (200, 240)]):
        Image.fromarray(img[y : y + 64, x : x + 64]).save(root / "train" / f"t{i}.png")
    Image.fromarray(img[300:332, 100:132]).save(root / "val" / "v.png")
    return root / "train", root / "val"


def _options(folders, out, **kw) -> TrainOptions:
    base = dict(train=folders[0], val=folders[1], out=out, batch=2, crop=16, warmup=1, degrade="jpeg", val_n=1,
                val_crop=32, val_every=0, log_every=1, save_every=2, threads=1, workers=0, no_progress=True, seed=1)
    return TrainOptions(**{**base, **kw})


def test_callback_per_checkpoint_stops_the_run_and_resume_continues(folders, tmp_path):
    out = tmp_path / "run"
    seen = []

    def on_checkpoint(ck):
        seen.append((ck.step, ck.path.name, ck.state["elapsed_s"] > 0))
        return ck.step == 4  # a session's own deadline: stop at the second checkpoint

    result = train(_options(folders, out, steps=10), on_checkpoint=on_checkpoint, log=lambda msg: None)
    assert seen == [(2, "last.pt", True), (4, "last.pt", True)]
    assert result.step == 4 and result.entry is None
    assert torch.load(out / "last.pt", map_location="cpu", weights_only=True)["step"] == 4
    assert [r["step"] for r in read_log(out) if "loss" in r] == [1, 2, 3, 4]

    logged = []
    again = train(_options(folders, out, steps=6, resume=True), log=logged.append)
    assert again.step == 6 and any("resumed from" in m and "at step 4" in m for m in logged)
    assert [r["step"] for r in read_log(out) if "loss" in r] == [1, 2, 3, 4, 5, 6]
    # the final validation of a finished run (val_every 0: only at the end)
    panel, steps, gains = validation_curve(out)
    assert panel == "JPEG QF 10" and steps == [6] and len(gains) == 1


def test_time_budget_stops_and_saves(folders, tmp_path):
    out = tmp_path / "budget"
    logged = []
    result = train(_options(folders, out, steps=1000, max_minutes=1e-9, save_every=500), log=logged.append)
    assert result.step == 1  # the first step already spends the budget
    assert torch.load(out / "last.pt", map_location="cpu", weights_only=True)["step"] == 1
    assert any(m.startswith("stopping at step 1") for m in logged)


def test_export_of_a_stored_checkpoint(folders, tmp_path):
    out = tmp_path / "run"
    train(_options(folders, out, steps=2, description="tiny"), log=lambda msg: None)
    entry, ckpt = export_checkpoint(out / "last.pt", tmp_path / "w" / "tiny.safetensors", "tiny")
    assert ckpt["step"] == 2 and ckpt["args"]["description"] == "tiny"
    assert entry["name"] == "tiny" and entry["description"] == "tiny" and entry["training"]["steps"] == 2
    assert entry["training"]["data"] == "2 images: . (2)" and entry["training"]["crop"] == 16
    assert json.loads((out / "export.json").read_text()) == entry
    model = load_file(tmp_path / "w" / "tiny.safetensors", sha256=entry["sha256"])
    state = torch.load(out / "last.pt", map_location="cpu", weights_only=True)["model"]
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v.float(), state[k].half().float())  # the fp16 copy of the trained weights


def test_bad_runs_are_refused_with_one_line(folders, tmp_path):
    with pytest.raises(TrainingError, match="overlap"):
        train(_options((folders[0], folders[0]), tmp_path / "o", steps=1))
    with pytest.raises(TrainingError, match="--resume but .* does not exist"):
        train(_options(folders, tmp_path / "new", steps=1, resume=True), log=lambda msg: None)
    with pytest.raises(TrainingError, match="image folder not found"):
        train(_options((tmp_path / "missing", folders[1]), tmp_path / "m", steps=1), log=lambda msg: None)
