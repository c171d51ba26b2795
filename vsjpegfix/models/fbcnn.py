"""FBCNN (Jiang et al., ICCV 2021): flexible blind JPEG artifact removal.

The module tree and parameter names follow the official implementation exactly, so that the
official checkpoints (``fbcnn_color.pth``, ``fbcnn_gray.pth``, ``fbcnn_gray_double.pth``) load
with ``strict=True``. Widths (``nc``) and depth (``nb``) are configurable for compact variants;
the quality predictor and the quality embedding follow the widest level (``nc[-1]``, 512 in the
official models).

Quality in model space is ``q = 1 - QF / 100`` (0 = pristine, 1 = worst).
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn


def _conv3(cin: int, cout: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, 1, 1, bias=True)


class _ConvReluConv(nn.Sequential):
    """Conv-ReLU-Conv; parameters named ``0.*`` and ``2.*`` like the official ``B.conv(mode='CRC')``."""

    def __init__(self, channels: int) -> None:
        super().__init__(_conv3(channels, channels), nn.ReLU(inplace=True), _conv3(channels, channels))


class ResBlock(nn.Module):
    """Residual block ``x + conv(relu(conv(x)))``."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.res = _ConvReluConv(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.res(x)


class QFAttention(nn.Module):
    """Residual block modulated by the quality embedding: ``x + gamma * res(x) + beta``."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.res = _ConvReluConv(channels)

    def forward(self, x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
        return x + (gamma[:, :, None, None] * self.res(x) + beta[:, :, None, None])


def _affine(cin: int, cout: int, act: nn.Module) -> nn.Sequential:
    return nn.Sequential(nn.Linear(cin, cout), act)


class FBCNN(nn.Module):
    """Flexible Blind CNN for JPEG artifact removal.

    Args:
        in_nc: input channels (3 colour, 1 gray; ``out_nc * frames`` for temporal stacks).
        out_nc: output channels.
        nc: widths of the four U-Net levels.
        nb: residual blocks per level.
        frames: frames in a temporal stack (odd; the centre frame is restored).
        residual: add the (centre-frame) input to the output, so the network learns only the
            correction. The official FBCNN has no such skip (``False``, for checkpoint
            compatibility); the compact models trained here use it: it starts near identity and
            converges in far fewer steps.
    """

    pad_multiple = 8
    input_layer = "m_head"
    has_quality = True

    def __init__(
        self, in_nc: int = 3, out_nc: int = 3, nc: Sequence[int] = (64, 128, 256, 512), nb: int = 4, frames: int = 1,
        residual: bool = False,
    ) -> None:
        super().__init__()
        nc = [int(c) for c in nc]
        if len(nc) != 4 or min(nc) < 1 or nb < 1:
            raise ValueError(f"FBCNN: nc must be four positive widths and nb >= 1, got nc={nc}, nb={nb}")
        if out_nc not in (1, 3) or frames < 1 or frames % 2 == 0 or in_nc != out_nc * frames:
            raise ValueError(
                f"FBCNN: need out_nc in (1, 3), an odd frame count and in_nc = out_nc * frames; "
                f"got in_nc={in_nc}, out_nc={out_nc}, frames={frames}"
            )
        self.in_nc, self.out_nc, self.nc, self.nb, self.frames = in_nc, out_nc, nc, nb, frames
        self.residual = bool(residual)
        self.channels = out_nc
        emb = nc[3]

        self.m_head = nn.Conv2d(in_nc, nc[0], 3, 1, 1, bias=True)
        self.m_down1 = nn.Sequential(*[ResBlock(nc[0]) for _ in range(nb)], nn.Conv2d(nc[0], nc[1], 2, 2, 0))
        self.m_down2 = nn.Sequential(*[ResBlock(nc[1]) for _ in range(nb)], nn.Conv2d(nc[1], nc[2], 2, 2, 0))
        self.m_down3 = nn.Sequential(*[ResBlock(nc[2]) for _ in range(nb)], nn.Conv2d(nc[2], nc[3], 2, 2, 0))
        self.m_body_encoder = nn.Sequential(*[ResBlock(nc[3]) for _ in range(nb)])
        self.m_body_decoder = nn.Sequential(*[ResBlock(nc[3]) for _ in range(nb)])
        self.m_up3 = nn.ModuleList([nn.ConvTranspose2d(nc[3], nc[2], 2, 2, 0), *[QFAttention(nc[2]) for _ in range(nb)]])
        self.m_up2 = nn.ModuleList([nn.ConvTranspose2d(nc[2], nc[1], 2, 2, 0), *[QFAttention(nc[1]) for _ in range(nb)]])
        self.m_up1 = nn.ModuleList([nn.ConvTranspose2d(nc[1], nc[0], 2, 2, 0), *[QFAttention(nc[0]) for _ in range(nb)]])
        self.m_tail = nn.Conv2d(nc[0], out_nc, 3, 1, 1, bias=True)

        self.qf_pred = nn.Sequential(
            *[ResBlock(nc[3]) for _ in range(nb)],
            nn.AdaptiveAvgPool2d((1, 1)),
            nn.Flatten(),
            nn.Linear(emb, emb),
            nn.ReLU(),
            nn.Linear(emb, emb),
            nn.ReLU(),
            nn.Linear(emb, 1),
            nn.Sigmoid(),
        )
        self.qf_embed = nn.Sequential(
            nn.Linear(1, emb), nn.ReLU(), nn.Linear(emb, emb), nn.ReLU(), nn.Linear(emb, emb), nn.ReLU()
        )
        self.to_gamma_3 = _affine(emb, nc[2], nn.Sigmoid())
        self.to_beta_3 = _affine(emb, nc[2], nn.Tanh())
        self.to_gamma_2 = _affine(emb, nc[1], nn.Sigmoid())
        self.to_beta_2 = _affine(emb, nc[1], nn.Tanh())
        self.to_gamma_1 = _affine(emb, nc[0], nn.Sigmoid())
        self.to_beta_1 = _affine(emb, nc[0], nn.Tanh())

    @property
    def config(self) -> dict:
        """Constructor arguments, as stored in weight manifests."""
        config = {"in_nc": self.in_nc, "out_nc": self.out_nc, "nc": list(self.nc), "nb": self.nb, "frames": self.frames}
        if self.residual:
            config["residual"] = True
        return config

    def _pad(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        ph, pw = -h % self.pad_multiple, -w % self.pad_multiple
        return F.pad(x, (0, pw, 0, ph), mode="replicate") if ph or pw else x

    def _encode(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        x1 = self.m_head(x)
        x2 = self.m_down1(x1)
        x3 = self.m_down2(x2)
        x4 = self.m_down3(x3)
        return x1, x2, x3, x4, self.m_body_encoder(x4)

    def predict_quality(self, x: torch.Tensor) -> torch.Tensor:
        """Predicted quality ``q`` in [0, 1] (shape (N, 1)) without restoring the image."""
        *_, enc = self._encode(self._pad(x))
        return self.qf_pred(enc)

    def forward(
        self,
        x: torch.Tensor,
        qf_input: torch.Tensor | None = None,
        qf_transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Restore ``x`` (N, C, H, W in [0, 1]).

        Args:
            x: input batch.
            qf_input: optional quality override in model space (``1 - QF/100``), shape (N, 1);
                when given, the quality predictor is not run.
            qf_transform: optional function applied to the predicted quality before it controls
                the restoration (e.g. a QF offset); ignored when ``qf_input`` is given.

        Returns:
            ``(restored, q)`` where ``q`` (N, 1) is the predicted quality, or the override.
        """
        h, w = x.shape[-2:]
        inp = x
        x1, x2, x3, x4, x = self._encode(self._pad(x))
        if qf_input is None:
            q = self.qf_pred(x)
            control = q if qf_transform is None else qf_transform(q).to(q.dtype)
        else:
            q = control = qf_input.to(dtype=x.dtype, device=x.device).reshape(x.shape[0], 1)
        x = self.m_body_decoder(x)
        emb = self.qf_embed(control)

        x = self.m_up3[0](x + x4)
        g, b = self.to_gamma_3(emb), self.to_beta_3(emb)
        for block in self.m_up3[1:]:
            x = block(x, g, b)
        x = self.m_up2[0](x + x3)
        g, b = self.to_gamma_2(emb), self.to_beta_2(emb)
        for block in self.m_up2[1:]:
            x = block(x, g, b)
        x = self.m_up1[0](x + x2)
        g, b = self.to_gamma_1(emb), self.to_beta_1(emb)
        for block in self.m_up1[1:]:
            x = block(x, g, b)
        x = self.m_tail(x + x1)[..., :h, :w]
        if self.residual:
            centre = (self.frames // 2) * self.out_nc
            x = x + inp[:, centre : centre + self.out_nc]
        return x, q
