"""Planes <-> the model's unit range, per-frame arguments, and the correction applied in exact code values.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from vsjpegfix.engine.colour import (
    PlaneFormat,
    luma_to_unit,
    rgb_to_planes,
    unit_to_luma,
)
from vsjpegfix.engine.device import (
    EngineError,
)

QualityArg = float | int | Sequence[float] | np.ndarray | torch.Tensor | None


def qf_to_quality(qf: torch.Tensor) -> torch.Tensor:
    """JPEG quality factor (0..100) -> FBCNN model-space quality ``1 - QF/100``."""
    return 1.0 - qf / 100.0


def quality_to_qf(q: torch.Tensor) -> torch.Tensor:
    """FBCNN model-space quality -> JPEG quality factor."""
    return (1.0 - q) * 100.0


def per_frame(values: QualityArg, n: int, name: str, top: float) -> np.ndarray:
    """A scalar or one value per frame as ``n`` float32 values, each checked to lie in 0..``top``."""
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    out = np.asarray(values, dtype=np.float32).reshape(-1)
    if out.size == 1:
        out = np.repeat(out, n)
    if out.size != n:
        raise EngineError(f"got {out.size} {name} values for {n} frames")
    if not np.all((out >= 0) & (out <= top)):
        raise EngineError(f"{name} must be in 0..{top:g}")
    return out


def _gray_view(fmt: PlaneFormat) -> PlaneFormat:
    """Full-range gray description of one RGB channel."""
    return PlaneFormat("gray", fmt.bits, fmt.is_float, full_range=True)


def plane_to_unit(plane: torch.Tensor, fmt: PlaneFormat, index: int) -> torch.Tensor:
    """A single plane (M, h, w) -> (M, 1, h, w) in [0, 1] for a gray model (chroma: grey at 0.5)."""
    if fmt.family == "rgb":
        return luma_to_unit(plane, _gray_view(fmt))[:, None]
    if index == 0:
        return luma_to_unit(plane, fmt)[:, None]
    return _chroma_to_unit(plane, fmt)[:, None]


def unit_to_code(x: torch.Tensor, fmt: PlaneFormat, index: int) -> torch.Tensor:
    """Inverse of :func:`plane_to_unit` in exact (unrounded) code values, (M, h, w) float32."""
    if fmt.family == "rgb":
        return unit_to_luma(x[:, 0], _gray_view(fmt), out_dtype=torch.float32, rounded=False)
    if index == 0:
        return unit_to_luma(x[:, 0], fmt, out_dtype=torch.float32, rounded=False)
    return _unit_to_chroma(x[:, 0], fmt)


def apply_delta(original: torch.Tensor, delta: torch.Tensor, fmt: PlaneFormat) -> torch.Tensor:
    """Add a correction in code values to original samples; round and clamp to the storage range."""
    if fmt.is_float:
        return (original.float() + delta).to(original.dtype)
    peak = (1 << fmt.bits) - 1
    return (original.float() + delta).round_().clamp_(0, peak).to(original.dtype)


def correction_planes(y: torch.Tensor, x: torch.Tensor, fmt: PlaneFormat) -> list[torch.Tensor]:
    """The model's correction per plane, ``rgb_to_planes(y) - rgb_to_planes(x)``, in exact (unrounded) code values."""
    new = rgb_to_planes(y, fmt, out_dtype=torch.float32, rounded=False)
    old = rgb_to_planes(x, fmt, out_dtype=torch.float32, rounded=False)
    return [a - b for a, b in zip(new, old)]


def corrected_planes(y: torch.Tensor, x: torch.Tensor, original: Sequence[torch.Tensor], fmt: PlaneFormat,
                     strength: torch.Tensor | None = None) -> list[torch.Tensor]:
    """The original planes plus the model's correction: ``rgb_to_planes(y) - rgb_to_planes(x)`` in exact
    code values (times ``strength`` (N, 1, 1) per frame when given), rounded and clamped (:func:`apply_delta`)."""
    return [apply_delta(c, d if strength is None else d * strength, fmt) for c, d in zip(original, correction_planes(y, x, fmt))]


def _chroma_to_unit(plane: torch.Tensor, fmt: PlaneFormat) -> torch.Tensor:
    """Chroma plane -> [0, 1] with neutral grey at 0.5, for a gray model."""
    if fmt.is_float:
        return plane.float() + 0.5
    mul = 1 << (fmt.bits - 8)
    if fmt.full_range:
        return plane.float() / ((1 << fmt.bits) - 1)
    return (plane.float() - 16 * mul) / (224 * mul)


def _unit_to_chroma(x: torch.Tensor, fmt: PlaneFormat) -> torch.Tensor:
    """Inverse of :func:`_chroma_to_unit` in exact (unrounded) code values."""
    if fmt.is_float:
        return x - 0.5
    mul = 1 << (fmt.bits - 8)
    if fmt.full_range:
        return x * ((1 << fmt.bits) - 1)
    return x * (224 * mul) + 16 * mul


def centre_frames(x: torch.Tensor, n: int, t: int) -> torch.Tensor:
    """(N*T, C, H, W) -> the centre frames (N, C, H, W)."""
    return x.reshape(n, t, *x.shape[1:])[:, t // 2]


def stack_frames(x: torch.Tensor, n: int, t: int) -> torch.Tensor:
    """(N*T, C, H, W) -> (N, T*C, H, W), frames in order on the channel axis."""
    return x.reshape(n, t * x.shape[1], *x.shape[2:])
