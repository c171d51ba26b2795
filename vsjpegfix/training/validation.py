"""Validation during training: fixed JPEG crops (single-frame models) or fixed H.264 clips (temporal
models, and single-frame ones with ``val_video``), scored as the PSNR gain of the model over its input.

Single-frame validation: the first ``n`` images of the validation folder (sorted), centre crops on
the 16-pixel grid, JPEG at one QF; RGB (or gray) PSNR of the JPEG input, of the model output and
the gain. Clip validation: see :class:`VideoValidator`. The validation folder is never read for
training (:func:`vsjpegfix.training.objective.check_folders`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from vsjpegfix.training.data import GRID, list_images, load_image, stack_frames
from vsjpegfix.training.degrade import jpeg
from vsjpegfix.training.degrade_video import fixed_clip
from vsjpegfix.training.metrics import psnr
from vsjpegfix.training.objective import forward

VAL_CLIP_FRAMES = 7  # validation clips are this long (or --frames if longer); models see the centre frames
VAL_CLIP_SEED = 20251  # fixed: every run, whatever its --seed, validates on the same clips
VAL_CODEC = "h264"


def to_uint8(t: torch.Tensor) -> np.ndarray:
    """(1, C, H, W) float in [0, 1] -> HxWxC / HxW uint8."""
    a = t[0].float().clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).cpu().numpy()
    return a[..., 0] if a.shape[2] == 1 else a


def to_tensor(a: np.ndarray) -> torch.Tensor:
    """HxW / HxWxC uint8 -> (1, C, H, W) float in [0, 1]."""
    if a.ndim == 2:
        a = a[..., None]
    return torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)[None].float().div(255.0)


def centre_crop(img: np.ndarray, size: int) -> np.ndarray:
    """Centre crop of at most ``size`` pixels per side, origin on the 16-pixel grid."""
    h, w = img.shape[:2]
    ch, cw = min(size, h - h % GRID or h), min(size, w - w % GRID or w)
    y0 = ((h - ch) // 2) // GRID * GRID
    x0 = ((w - cw) // 2) // GRID * GRID
    return img[y0 : y0 + ch, x0 : x0 + cw]


class Validator:
    """PSNR of JPEG vs model on fixed crops of the first ``n`` validation images at one QF."""

    def __init__(self, folder: Path, n: int, qf: int, crop: int, channels: int):
        self.pairs = []
        for p in list_images(folder)[:n]:
            clean = centre_crop(load_image(p, channels), crop)
            self.pairs.append((clean, jpeg(clean, qf)))
        self.qf = qf
        self.psnr_jpeg = float(np.mean([psnr(c, d) for c, d in self.pairs]))

    @torch.no_grad()
    def __call__(self, model: nn.Module, device: torch.device) -> dict[str, float]:
        was_training = model.training
        model.eval()
        scores = []
        for clean, degraded in self.pairs:
            img, _ = forward(model, to_tensor(degraded).to(device))
            scores.append(psnr(clean, to_uint8(img)))
        model.train(was_training)
        out = float(np.mean(scores))
        return {"val_qf": self.qf, "val_psnr_jpeg": self.psnr_jpeg, "val_psnr_model": out, "val_gain_db": out - self.psnr_jpeg}


def stack_window(clip: np.ndarray, frames: int) -> torch.Tensor:
    """The ``frames`` frames around the centre of ``clip`` (T, H, W, 3) as a (1, frames*3, H, W) model input."""
    mid = clip.shape[0] // 2
    return stack_frames(clip[mid - frames // 2 : mid + frames // 2 + 1])[None]


class VideoValidator:
    """RGB PSNR gain of the centre frame on fixed H.264 clips made from the first ``n`` validation images.

    Each image gives one clip of ``max(7, frames)`` frames (camera motion from a fixed seed, the
    same in every run), at most ``crop`` pixels square, coded by libx264 (veryfast) at constant QP
    ``qp`` with P/B frames; the centre frame (an inter frame) is scored. A T-frame model sees the
    T frames around the centre, a single-frame model the centre frame alone, so single-frame and
    temporal models of up to 7 frames are compared on the same clips and the same pixels.

    Metric: RGB PSNR (8-bit peak, all pixels and channels) of the clamped model output against
    the clean centre frame, minus the PSNR of the decoded centre frame; the model output is not
    rounded to 8 bits (so equal models give equal numbers to ~1e-6 dB whatever the layout).
    """

    def __init__(self, folder: Path, n: int, qp: int, crop: int, frames: int):
        self.qp, self.frames = qp, frames
        length = max(VAL_CLIP_FRAMES, frames)
        self.clips = []
        for i, p in enumerate(list_images(folder)[:n]):
            img = load_image(p, 3)
            side = max(16, min(crop, min(img.shape[:2]) * 3 // 4 // GRID * GRID))
            rng = np.random.default_rng([VAL_CLIP_SEED, i])
            self.clips.append(fixed_clip(img, rng, size=(side, side), frames=length, codec=VAL_CODEC, qp=qp))
        mid = length // 2
        self.psnr_degraded = float(np.mean([psnr(c.clean[mid], c.degraded[mid]) for c in self.clips]))

    @torch.no_grad()
    def __call__(self, model: nn.Module, device: torch.device) -> dict[str, Any]:
        was_training = model.training
        model.eval()
        scores = []
        for clip in self.clips:
            img, _ = forward(model, stack_window(clip.degraded, self.frames).to(device))
            out = img[0].float().clamp(0, 1).mul(255).permute(1, 2, 0).cpu().numpy().astype(np.float64)
            scores.append(psnr(clip.clean[clip.clean.shape[0] // 2].astype(np.float64), out, peak=255.0))
        model.train(was_training)
        score = float(np.mean(scores))
        return {
            "val_video": f"{VAL_CODEC} qp{self.qp}",
            "val_qp": self.qp,
            "val_psnr_degraded": self.psnr_degraded,
            "val_psnr_model": score,
            "val_gain_db": score - self.psnr_degraded,
        }


def val_label(res: dict[str, Any]) -> str:
    """``qf10`` (JPEG validation) or ``h264_qp37`` (clip validation), for log lines and manifest keys."""
    return f"{VAL_CODEC}_qp{res['val_qp']}" if "val_qp" in res else f"qf{res['val_qf']}"
