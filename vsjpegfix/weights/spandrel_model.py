"""Use any 1x restoration model that spandrel can load (DRUNet/DPIR, SCUNet, SwinIR JPEG, ...)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class SpandrelModel(nn.Module):
    """Wraps a spandrel ``ImageModelDescriptor`` in vsjpegfix's model interface (single frame, no quality)."""

    has_quality = False
    frames = 1

    def __init__(self, descriptor) -> None:  # spandrel.ImageModelDescriptor
        super().__init__()
        if getattr(descriptor, "scale", 1) != 1:
            raise ValueError(f"{descriptor.architecture.name}: only 1x restoration models are supported (scale {descriptor.scale})")
        if descriptor.input_channels != descriptor.output_channels or descriptor.input_channels not in (1, 3):
            raise ValueError(
                f"{descriptor.architecture.name}: needs 1 or 3 channels in and out, "
                f"has {descriptor.input_channels} in, {descriptor.output_channels} out"
            )
        self.descriptor = descriptor
        self.net = descriptor.model
        self.channels = descriptor.input_channels
        req = descriptor.size_requirements
        self.pad_multiple = max(1, int(getattr(req, "multiple_of", 1) or 1))
        self.min_size = int(getattr(req, "minimum", 0) or 0)
        self.arch_name = descriptor.architecture.name

    @property
    def config(self) -> dict:
        return {"spandrel": self.arch_name, "channels": self.channels}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        m = self.pad_multiple
        ph = max(-h % m, self.min_size - h)
        pw = max(-w % m, self.min_size - w)
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph), mode="replicate")
        return self.net(x)[..., :h, :w]
