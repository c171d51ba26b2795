"""Model set-up, loss and schedule of a training run (vsjpegfix.training.objective)."""

import math

import pytest
import torch

from vsjpegfix.training.errors import TrainingError
from vsjpegfix.training.objective import (
    check_folders,
    initial_model,
    learning_rate,
    loss_fn,
    model_config,
)
from vsjpegfix.training.options import TrainOptions


def _options(**kw) -> TrainOptions:
    return TrainOptions(train="a", val="b", **kw)


def test_learning_rate_schedules():
    o = _options(lr=1.0, warmup=10, steps=110, min_lr=0.1)
    assert learning_rate(0, o) == pytest.approx(0.1) and learning_rate(9, o) == pytest.approx(1.0)
    assert learning_rate(10, o) == pytest.approx(1.0)
    assert learning_rate(60, o) == pytest.approx(0.55)  # half way down the cosine
    assert learning_rate(110, o) == pytest.approx(0.1) and learning_rate(500, o) == pytest.approx(0.1)
    # with a time budget the cosine follows the larger of step and time progress
    timed = _options(lr=1.0, warmup=0, steps=1000, min_lr=0.0, max_minutes=1.0)
    assert learning_rate(10, timed, elapsed_s=30.0) == pytest.approx(0.5)
    assert learning_rate(10, timed, elapsed_s=60.0) == pytest.approx(0.0, abs=1e-12)
    step = _options(lr=1.0, warmup=0, schedule="step", decay_every=5)
    assert [learning_rate(s, step) for s in (0, 4, 5, 10)] == [1.0, 1.0, 0.5, 0.25]
    assert learning_rate(3, _options(lr=0.3, warmup=0, schedule="constant")) == 0.3


def test_model_config_fills_and_checks():
    assert model_config("fbcnn", 1, {"nb": 1}, 3) == {"nb": 1, "frames": 3, "out_nc": 1, "in_nc": 3}
    assert model_config("arcnn", 3, {}) == {"frames": 1, "channels": 3}
    with pytest.raises(TrainingError, match="contradicts --channels 3"):
        model_config("fastarcnn", 3, {"channels": 1})
    with pytest.raises(TrainingError, match="contradicts --frames 1"):
        model_config("fastarcnn", 3, {"frames": 3})


def test_loss_skips_missing_quality_labels():
    img, target = torch.zeros(2, 3, 4, 4), torch.full((2, 3, 4, 4), 0.5)
    assert loss_fn(img, None, target, torch.zeros(2, 1)).item() == pytest.approx(0.5)
    q, label = torch.tensor([[0.2], [0.9]]), torch.tensor([[0.4], [math.nan]])
    assert loss_fn(img, q, target, label).item() == pytest.approx(0.5 + 0.1 * 0.2)
    assert loss_fn(img, q, target, torch.full((2, 1), math.nan)).item() == pytest.approx(0.5)


def test_initial_model_starts_near_identity_and_from_init(tmp_path):
    from vsjpegfix.weights.store import save_weights

    exact = initial_model(_options(tail_init_scale=0.0))
    assert not exact.reconstruct.weight.any() and not exact.reconstruct.bias.any()
    save_weights(exact, tmp_path / "single.safetensors", arch="fastarcnn")
    logged = []
    t3 = initial_model(_options(frames=3, init=tmp_path / "single.safetensors"), logged.append)
    assert t3.frames == 3 and "made 3-frame" in logged[0]
    with pytest.raises(TrainingError, match="holds FastARCNN"):
        initial_model(_options(arch="arcnn", init=tmp_path / "single.safetensors"))


def test_overlapping_folders_are_refused(tmp_path):
    (tmp_path / "t" / "v").mkdir(parents=True)
    assert check_folders(tmp_path / "t", tmp_path / "v") == ((tmp_path / "t").resolve(), (tmp_path / "v").resolve())
    for train, val in ((tmp_path / "t", tmp_path / "t" / "v"), (tmp_path / "t" / "v", tmp_path / "t"), (tmp_path, tmp_path)):
        with pytest.raises(TrainingError, match="overlap"):
            check_folders(train, val)
