"""ARCNN and Fast ARCNN (Dong et al., "Compression Artifacts Reduction by a Deep Convolutional Network").

ARCNN: 9x9 conv (64) - 7x7 conv (32) - 1x1 conv (16) - 5x5 conv (out), PReLU activations.
Fast ARCNN: 9x9 stride-2 conv (64) - 1x1 (32) - 7x7 (32) - 1x1 (64) - 9x9 stride-2 transposed conv.

Both optionally predict a residual (``residual=True``: output = input + network), which makes
near-clean input map to near-identity; the layer structure and parameter count are those of the
paper either way. Frame stacks (``frames > 1``) take ``channels * frames`` input channels and
restore the centre frame.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class _CompressionNet(nn.Module):
    """Shared plumbing: channel/frame bookkeeping, padding and the optional global residual."""

    pad_multiple = 1
    input_layer = "features"
    has_quality = False

    def __init__(self, channels: int, frames: int, residual: bool) -> None:
        super().__init__()
        if channels not in (1, 3):
            raise ValueError(f"{type(self).__name__}: channels must be 1 or 3, got {channels}")
        if frames < 1 or frames % 2 == 0:
            raise ValueError(f"{type(self).__name__}: frames must be a positive odd number, got {frames}")
        self.channels, self.frames, self.residual = channels, frames, residual

    @property
    def config(self) -> dict:
        """Constructor arguments, as stored in weight manifests."""
        return {"channels": self.channels, "frames": self.frames, "residual": self.residual}

    def _centre(self, x: torch.Tensor) -> torch.Tensor:
        c, t = self.channels, self.frames
        return x[:, c * (t // 2) : c * (t // 2 + 1)]

    def body(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Restore ``x`` (N, channels*frames, H, W in [0, 1]); returns (N, channels, H, W)."""
        expected = self.channels * self.frames
        if x.shape[1] != expected:
            raise ValueError(f"{type(self).__name__}: expected {expected} input channels, got {x.shape[1]}")
        h, w = x.shape[-2:]
        m = self.pad_multiple
        ph, pw = -h % m, -w % m
        padded = F.pad(x, (0, pw, 0, ph), mode="replicate") if ph or pw else x
        y = self.body(padded)[..., :h, :w]
        return y + self._centre(x) if self.residual else y


class ARCNN(_CompressionNet):
    """Artifact Reduction CNN (4 layers, 117,734 parameters for RGB)."""

    def __init__(self, channels: int = 3, frames: int = 1, residual: bool = True) -> None:
        super().__init__(channels, frames, residual)
        self.features = nn.Conv2d(channels * frames, 64, 9, padding=4)
        self.act1 = nn.PReLU()
        self.enhance = nn.Conv2d(64, 32, 7, padding=3)
        self.act2 = nn.PReLU()
        self.mapping = nn.Conv2d(32, 16, 1)
        self.act3 = nn.PReLU()
        self.reconstruct = nn.Conv2d(16, channels, 5, padding=2)

    def body(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act1(self.features(x))
        x = self.act2(self.enhance(x))
        x = self.act3(self.mapping(x))
        return self.reconstruct(x)


class FastARCNN(_CompressionNet):
    """Fast ARCNN: strided first layer, shrinking, transposed-conv reconstruction (85,575 params for RGB)."""

    pad_multiple = 2

    def __init__(self, channels: int = 3, frames: int = 1, residual: bool = True) -> None:
        super().__init__(channels, frames, residual)
        self.features = nn.Conv2d(channels * frames, 64, 9, stride=2, padding=4)
        self.act1 = nn.PReLU()
        self.shrink = nn.Conv2d(64, 32, 1)
        self.act2 = nn.PReLU()
        self.enhance = nn.Conv2d(32, 32, 7, padding=3)
        self.act3 = nn.PReLU()
        self.expand = nn.Conv2d(32, 64, 1)
        self.act4 = nn.PReLU()
        self.reconstruct = nn.ConvTranspose2d(64, channels, 9, stride=2, padding=4, output_padding=1)

    def body(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act1(self.features(x))
        x = self.act2(self.shrink(x))
        x = self.act3(self.enhance(x))
        x = self.act4(self.expand(x))
        return self.reconstruct(x)
