"""Temporal frame-stack variants: T consecutive frames concatenated on the channel axis.

A temporal model restores the centre frame of its stack. :func:`make_temporal` builds one from a
single-frame model so that it starts out equal to it: the input layer's weights for the centre
frame are the single-frame weights and those for the neighbours are zero.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


def make_temporal(model: nn.Module, frames: int) -> nn.Module:
    """Return a ``frames``-frame version of single-frame ``model``, initialised to behave identically.

    The new model has the same architecture and configuration except ``frames``; every
    parameter except the input layer's weight is copied.
    """
    if getattr(model, "frames", None) != 1:
        raise ValueError(f"make_temporal: expected a single-frame model, got frames={getattr(model, 'frames', None)}")
    if frames < 1 or frames % 2 == 0:
        raise ValueError(f"make_temporal: frames must be a positive odd number, got {frames}")
    config = dict(model.config)
    config["frames"] = frames
    if "in_nc" in config:
        config["in_nc"] = config["out_nc"] * frames
    temporal = type(model)(**config)
    state = copy.deepcopy(model.state_dict())
    key = f"{model.input_layer}.weight"
    single = state[key]
    c = model.channels
    stacked = torch.zeros(single.shape[0], c * frames, *single.shape[2:], dtype=single.dtype)
    centre = frames // 2
    stacked[:, c * centre : c * (centre + 1)] = single
    state[key] = stacked
    temporal.load_state_dict(state, strict=True)
    return temporal.to(next(model.parameters()).device)
