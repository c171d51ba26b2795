"""Model architectures and their registry.

Every architecture is a pure ``nn.Module`` exposing ``channels`` (per frame), ``frames`` (temporal
stack length, 1 for single-frame models), ``has_quality`` (FBCNN-style quality control) and
``config`` (the constructor arguments). The registry maps an architecture name to its class and
to a detector that recognises the architecture and its configuration from a bare state dict,
so that checkpoints load without a manifest (like spandrel's registry).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

import torch
from torch import nn

from .arcnn import ARCNN, FastARCNN
from .fbcnn import FBCNN
from .temporal import make_temporal

__all__ = [
    "ARCNN",
    "FastARCNN",
    "FBCNN",
    "ARCHITECTURES",
    "Architecture",
    "build_model",
    "detect_architecture",
    "make_temporal",
    "count_parameters",
]

StateDict = Mapping[str, torch.Tensor]


@dataclass(frozen=True)
class Architecture:
    """A registered architecture: its class and a state-dict detector returning its config or None."""

    name: str
    cls: type[nn.Module]
    detect: Callable[[StateDict], dict[str, Any] | None]
    description: str


def _detect_fbcnn(sd: StateDict) -> dict[str, Any] | None:
    if "m_head.weight" not in sd or "qf_embed.0.weight" not in sd:
        return None
    head = sd["m_head.weight"]
    tail = sd["m_tail.weight"]
    nc = [
        int(head.shape[0]),
        int(sd["m_down1.%d.weight" % _count_blocks(sd, "m_down1")].shape[0]),
        int(sd["m_down2.%d.weight" % _count_blocks(sd, "m_down2")].shape[0]),
        int(sd["m_down3.%d.weight" % _count_blocks(sd, "m_down3")].shape[0]),
    ]
    nb = _count_blocks(sd, "m_body_encoder")
    in_nc, out_nc = int(head.shape[1]), int(tail.shape[0])
    frames = in_nc // out_nc if out_nc and in_nc % out_nc == 0 else 0
    return {"in_nc": in_nc, "out_nc": out_nc, "nc": nc, "nb": nb, "frames": frames}


def _count_blocks(sd: StateDict, prefix: str) -> int:
    """Number of residual blocks ``prefix.<i>.res.0.weight`` (consecutive from 0)."""
    n = 0
    while f"{prefix}.{n}.res.0.weight" in sd:
        n += 1
    return n


def _detect_arcnn(sd: StateDict) -> dict[str, Any] | None:
    if "features.weight" not in sd or "mapping.weight" not in sd or "reconstruct.weight" not in sd:
        return None
    channels = int(sd["reconstruct.weight"].shape[0])
    cin = int(sd["features.weight"].shape[1])
    return {"channels": channels, "frames": cin // channels if cin % channels == 0 else 0}


def _detect_fastarcnn(sd: StateDict) -> dict[str, Any] | None:
    if "features.weight" not in sd or "shrink.weight" not in sd or "reconstruct.weight" not in sd:
        return None
    channels = int(sd["reconstruct.weight"].shape[1])  # ConvTranspose2d weight: (in, out, k, k)
    cin = int(sd["features.weight"].shape[1])
    return {"channels": channels, "frames": cin // channels if cin % channels == 0 else 0}


ARCHITECTURES: dict[str, Architecture] = {
    "fbcnn": Architecture("fbcnn", FBCNN, _detect_fbcnn, "FBCNN (Jiang et al. 2021), blind with quality control"),
    "arcnn": Architecture("arcnn", ARCNN, _detect_arcnn, "ARCNN (Dong et al. 2015)"),
    "fastarcnn": Architecture("fastarcnn", FastARCNN, _detect_fastarcnn, "Fast ARCNN (Dong et al. 2015)"),
}


def build_model(arch: str, config: Mapping[str, Any] | None = None) -> nn.Module:
    """Instantiate architecture ``arch`` with ``config`` (constructor keyword arguments)."""
    try:
        spec = ARCHITECTURES[arch]
    except KeyError:
        raise ValueError(f"unknown architecture {arch!r}; known: {', '.join(sorted(ARCHITECTURES))}") from None
    try:
        return spec.cls(**dict(config or {}))
    except TypeError as exc:
        raise ValueError(f"bad configuration for {arch}: {exc}") from None


def detect_architecture(state_dict: StateDict) -> tuple[str, dict[str, Any]] | None:
    """Recognise a state dict of a registered architecture; returns ``(arch, config)`` or None."""
    for spec in ARCHITECTURES.values():
        config = spec.detect(state_dict)
        if config is not None:
            return spec.name, config
    return None


def count_parameters(model: nn.Module) -> int:
    """Number of parameters of ``model``."""
    return sum(p.numel() for p in model.parameters())
