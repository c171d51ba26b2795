"""The model being trained and what it is trained for: its configuration and starting weights,
the forward call, the loss and the learning-rate schedule.

Loss: L1 on the image; FBCNN adds 0.1 x L1 between its predicted quality and the label (skipped
for samples without a label, e.g. double JPEG). Adam with cosine (or step) learning-rate decay.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from vsjpegfix.models import build_model
from vsjpegfix.training.errors import TrainingError
from vsjpegfix.training.options import TrainOptions

QUALITY_LOSS_WEIGHT = 0.1


def model_config(arch: str, channels: int, config: dict[str, Any], frames: int = 1) -> dict[str, Any]:
    """Fill the channel and frame counts into a model config (``channels`` or FBCNN's ``in_nc``/``out_nc``)."""
    config = dict(config)
    if int(config.setdefault("frames", frames)) != frames:
        raise TrainingError(f"--config frames={config['frames']} contradicts --frames {frames}")
    if arch == "fbcnn":
        config.setdefault("out_nc", channels)
        config.setdefault("in_nc", channels * frames)
        if config["out_nc"] != channels:
            raise TrainingError(f"--config out_nc={config['out_nc']} contradicts --channels {channels}")
    else:
        config.setdefault("channels", channels)
        if config["channels"] != channels:
            raise TrainingError(f"--config channels={config['channels']} contradicts --channels {channels}")
    return config


def forward(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Run ``model``; returns ``(image, predicted quality or None)``."""
    out = model(x)
    if isinstance(out, (tuple, list)):
        return out[0], out[1]
    return out, None


def loss_fn(img: torch.Tensor, q: torch.Tensor | None, target: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
    """L1 image loss, plus FBCNN's quality loss (weight 0.1) on the samples with a label."""
    loss = F.l1_loss(img.float(), target)
    if q is not None:
        mask = ~torch.isnan(label)
        if bool(mask.any()):
            loss = loss + QUALITY_LOSS_WEIGHT * F.l1_loss(q.float()[mask], label[mask])
    return loss


def learning_rate(step: int, options: TrainOptions, elapsed_s: float = 0.0) -> float:
    """Learning rate at ``step``: linear warm-up, then cosine to ``lr * min_lr`` or step decay.

    With ``--max-minutes`` the cosine runs on the larger of the step progress and the time
    progress, so a run that is stopped by the time limit still ends annealed.
    """
    if options.warmup and step < options.warmup:
        return options.lr * (step + 1) / options.warmup
    if options.schedule == "cosine":
        t = (step - options.warmup) / max(1, options.steps - options.warmup)
        if options.max_minutes:
            t = max(t, elapsed_s / (60.0 * options.max_minutes))
        t = min(1.0, t)
        return options.lr * (options.min_lr + (1 - options.min_lr) * 0.5 * (1 + math.cos(math.pi * t)))
    if options.schedule == "step":
        return options.lr * (0.5 ** (step // max(1, options.decay_every)))
    return options.lr


def initial_model(options: TrainOptions, log: Callable[[str], None] = lambda msg: None) -> nn.Module:
    """The model at step 0 (before any resume): built from ``options.arch`` and ``config``, the last
    layer of a residual model scaled by ``tail_init_scale`` (near-identity start), then ``init``'s
    weights when given. A single-frame ``init`` file for a T-frame model is made temporal
    (:func:`vsjpegfix.models.temporal.make_temporal`: neighbour weights zero, so it starts exactly at
    the single-frame model); a T-frame file loads as it is."""
    config = model_config(options.arch, options.channels, options.config, options.frames)
    model = build_model(options.arch, config)
    if options.tail_init_scale != 1.0 and getattr(model, "residual", False):
        tail = model.reconstruct if hasattr(model, "reconstruct") else model.m_tail  # ARCNN family / FBCNN
        with torch.no_grad():  # near-identity at step 0: the network only learns the correction
            tail.weight.mul_(options.tail_init_scale)
            tail.bias.zero_()
    if options.init is not None:
        from vsjpegfix.weights.store import WeightsError, load_file

        try:
            start = load_file(options.init)
        except WeightsError as exc:
            raise TrainingError(f"--init: {exc}") from None
        how = ""
        if type(start) is type(model) and getattr(start, "frames", 1) == 1 and options.frames > 1:
            from vsjpegfix.models.temporal import make_temporal

            start = make_temporal(start, options.frames)  # neighbour weights zero: the single-frame model exactly
            how = f" (single-frame weights made {options.frames}-frame)"
        if type(start) is not type(model) or start.config != model.config:
            raise TrainingError(f"--init {options.init} holds {type(start).__name__} {start.config}, "
                                f"not {options.arch} {model.config}")
        model.load_state_dict(start.state_dict())
        log(f"initialised from {options.init}{how}")
    return model


def check_folders(train: Path, val: Path) -> tuple[Path, Path]:
    """The resolved training and validation folders; refused when one contains the other (or they are one)."""
    train_dir, val_dir = train.resolve(), val.resolve()
    if train_dir == val_dir or val_dir.is_relative_to(train_dir) or train_dir.is_relative_to(val_dir):
        raise TrainingError(f"training folder {train_dir} and validation folder {val_dir} overlap")
    return train_dir, val_dir
