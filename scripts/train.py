#!/usr/bin/env python3
"""Train an artifact-removal network (Fast ARCNN, ARCNN, FBCNN) on folders of clean images.

Image folders in, weights out::

    python scripts/train.py --arch fastarcnn --channels 3 --degrade mix \\
        --steps 8000 --max-minutes 35 --batch 16 --crop 48 --out out/fastarcnn \\
        --export weights/fastarcnn.safetensors --name fastarcnn

Data: every ``*.png``/``*.jpg``/``*.jpeg``/``*.bmp`` under ``--train`` (recursive) is decoded
once and cached in RAM as uint8. Each training sample is a random patch whose origin is a
multiple of 16 pixels (the JPEG 8x8 grid and 4:2:0 16x16 macroblock grid line up as in a real
file), flipped/rotated, then degraded on the fly (``vsjpegfix.training.degrade.DEGRADATIONS``) with a
16-pixel margin that is cut off afterwards, so patch borders see the codec as the inside of an
image does. Batches are a pure function of ``(--seed, step)``: a resumed run sees exactly the
batches the uninterrupted run would have seen, whatever the number of loader workers.

Temporal models (``--frames T``, T odd > 1): each sample is a clip of T frames made by moving
a camera over a patch of a training image and coding it with libx264/libx265 at constant QP
(``vsjpegfix.training.degrade_video.random_clip``: ``--codecs``, QP uniform 22..51, ``--intra-fraction``
intra-only, the rest with P/B frames), cut to ``--crop`` pixels like the image patches. The
input is the T decoded frames on the channel axis, frame-major as the engine stacks them
(``(N, T*3, H, W)``); the target is the clean centre frame; FBCNN's quality label is the
clip's (from its QP). ``--init`` with single-frame weights starts from
``vsjpegfix.models.make_temporal`` of them (neighbour weights zero: exactly the single-frame
model); T-frame weights load as they are. ``--clips DIR`` takes the clips from a pack encoded once
by ``scripts/pack_video_clips.py`` instead (random crops, flips/rotations; with a single-frame
model ``--clips-fraction`` of each batch, the rest from ``--degrade`` on the images), so that the
encoder does not bound the training speed. Colour (``--channels 3``) only::

    python scripts/train.py --arch fastarcnn --frames 3 --init weights/fastarcnn.safetensors \\
        --batch 8 --crop 64 --steps 4000 --out out/fastarcnn-t3 --export weights/fastarcnn-t3.safetensors

Loss: L1 on the image; FBCNN adds 0.1 x L1 between its predicted quality and the label (skipped
for samples without a label, e.g. double JPEG). Adam with cosine (or step) learning-rate decay.

Validation (``--val-every``): the first ``--val-n`` images of ``--val`` (sorted), centre crops of
``--val-crop`` pixels, JPEG at ``--val-qf``; logged as RGB PSNR of the JPEG input, of the model
output and the gain. Temporal models (and single-frame ones with ``--val-video``) are validated
on fixed clips instead: one 7-frame clip per validation image (camera motion from a fixed seed,
at most ``--val-crop`` pixels square), libx264 at QP ``--val-qp`` (37) with P/B frames; logged is
the RGB PSNR of the centre frame as decoded and as restored (model output clamped, not rounded),
and the gain. A T-frame model sees the T frames around the centre, a single-frame one the centre
frame alone: the same pixels are scored, so the two are comparable. The validation folder is
never read for training (overlap is refused).

Outputs in ``--out``: ``last.pt`` (model, optimizer, step, RNG state, elapsed time; resume
with ``--resume``), ``best.pt`` (best validation gain), ``log.jsonl`` (train and val records),
and with ``--export PATH --name NAME`` an fp16 safetensors file plus its manifest entry
(``config.frames`` = T; task ``video`` for T > 1), printed as JSON on stdout and written to
``OUT/export.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

_REPO = Path(__file__).resolve().parent.parent
if str(_REPO) not in sys.path:
    sys.path.insert(0, str(_REPO))

import vsjpegfix.training.degrade_video  # noqa: E402,F401  (registers the h264 / hevc / jpeg_video_mix degradations)
from vsjpegfix.models import build_model, count_parameters  # noqa: E402
from vsjpegfix.training import clip_pack  # noqa: E402
from vsjpegfix.training.augment import dihedral  # noqa: E402
from vsjpegfix.training.clip_pack import ClipPack, PackError  # noqa: E402
from vsjpegfix.training.degrade import DEGRADATIONS, Degraded, jpeg  # noqa: E402
from vsjpegfix.training.degrade_video import CODECS, QP_RANGE, fixed_clip, random_clip  # noqa: E402
from vsjpegfix.training.metrics import psnr  # noqa: E402

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
GRID = 16  # patch origins on the 16x16 macroblock grid (covers the 8x8 DCT grid)
MARGIN = 16  # codec context around each patch, cut off after degrading
QUALITY_LOSS_WEIGHT = 0.1
CHECKPOINT = "last.pt"
BEST = "best.pt"
LOG = "log.jsonl"
VAL_CLIP_FRAMES = 7  # validation clips are this long (or --frames if longer); models see the centre frames
VAL_CLIP_SEED = 20251  # fixed: every run, whatever its --seed, validates on the same clips
VAL_CODEC = "h264"


# --------------------------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------------------------
def list_images(folder: Path) -> list[Path]:
    """Image files under ``folder`` (recursive), sorted for determinism."""
    if not folder.is_dir():
        raise SystemExit(f"error: image folder not found: {folder}")
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise SystemExit(f"error: no images ({', '.join(IMAGE_SUFFIXES)}) under {folder}")
    return files


def load_image(path: Path, channels: int) -> np.ndarray:
    """Decode ``path`` to uint8 RGB (``HxWx3``) or gray (``HxW``, ITU-R 601 luma)."""
    with Image.open(path) as im:
        return np.array(im.convert("RGB" if channels == 3 else "L"))  # a writable copy


def load_images(paths: list[Path], channels: int, min_side: int) -> list[np.ndarray]:
    """Decode all images once (RAM cache); images smaller than ``min_side`` are skipped."""
    images = []
    for p in paths:
        img = load_image(p, channels)
        if min(img.shape[:2]) >= min_side:
            images.append(img)
    if not images:
        raise SystemExit(f"error: no training image is at least {min_side} pixels on its short side")
    return images


def make_sample(img: np.ndarray, rng: np.random.Generator, crop: int, degrade: str) -> Degraded:
    """One training pair of ``crop`` x ``crop`` pixels from ``img``.

    The clean patch (``crop`` + margins, origin on the 16-pixel grid) is flipped/rotated, then
    degraded; the result is cut to ``crop`` pixels at an offset of ``MARGIN`` (a multiple of 16,
    so the codec's block grid stays aligned with the patch origin).
    """
    h, w = img.shape[:2]
    size = crop + 2 * MARGIN
    need = size if min(h, w) >= size else crop
    margin = MARGIN if need == size else 0
    # room for a double-JPEG shift: 8 extra pixels when the image allows it
    extra = 8 if min(h, w) >= need + 8 else 0
    side = need + extra
    y0 = GRID * int(rng.integers(0, (h - side) // GRID + 1))
    x0 = GRID * int(rng.integers(0, (w - side) // GRID + 1))
    patch = dihedral(img[y0 : y0 + side, x0 : x0 + side], int(rng.integers(0, 8)))
    out = DEGRADATIONS[degrade](patch, rng)
    if min(out.clean.shape[:2]) < margin + crop:  # a degradation cropped more than we padded
        margin = 0
    sl = (slice(margin, margin + crop), slice(margin, margin + crop))
    return Degraded(out.clean[sl], out.degraded[sl], out.label, out.info)


def make_batch(
    images: list[np.ndarray], seed: int, step: int, batch: int, crop: int, degrade: str
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Batch of step ``step``: ``(degraded, clean, label)``, float tensors in [0, 1] (labels NaN = none)."""
    rng = np.random.default_rng([seed, step])
    xs, ys, labels = [], [], []
    for _ in range(batch):
        img = images[int(rng.integers(0, len(images)))]
        s = make_sample(img, rng, crop, degrade)
        xs.append(s.degraded)
        ys.append(s.clean)
        labels.append(s.label)

    def to_tensor(arrs: list[np.ndarray]) -> torch.Tensor:
        a = np.stack(arrs)
        if a.ndim == 3:
            a = a[..., None]
        return torch.from_numpy(a).permute(0, 3, 1, 2).float().div_(255.0).contiguous()

    return to_tensor(xs), to_tensor(ys), torch.tensor(labels, dtype=torch.float32)[:, None]


def clip_min_side(crop: int) -> int:
    """Smallest training image a clip of ``crop`` pixels is made from (room for the camera motion)."""
    return crop + 16


def make_clip_sample(
    img: np.ndarray, rng: np.random.Generator, crop: int, frames: int, codecs: tuple[str, ...], intra_fraction: float
) -> tuple[np.ndarray, np.ndarray, float]:
    """One temporal training sample: ``(degraded (T, crop, crop, 3), clean centre frame (crop, crop, 3), label)``.

    A square patch of ``img`` (origin on the 16-pixel grid, flipped/rotated) is the still that
    :func:`vsjpegfix.training.degrade_video.random_clip` moves a camera over (random pan/zoom/jitter; codec
    from ``codecs``; QP uniform in 22..51; intra-only with probability ``intra_fraction``, else
    P/B frames). The clip is ``crop + 2 * MARGIN`` pixels when the image allows it and cut to
    ``crop`` afterwards, so patch borders see the codec (and its motion compensation) as the
    inside of a frame does.
    """
    h, w = img.shape[:2]
    short = min(h, w)
    margin = MARGIN if short >= crop + 2 * MARGIN + 16 else 0
    size = crop + 2 * margin
    side = min(short, size + 16 + 8 * (frames - 1))  # room for the motion (random_clip halves it if short)
    y0 = GRID * int(rng.integers(0, (h - side) // GRID + 1))
    x0 = GRID * int(rng.integers(0, (w - side) // GRID + 1))
    patch = dihedral(img[y0 : y0 + side, x0 : x0 + side], int(rng.integers(0, 8)))
    clip = random_clip(patch, rng, size=(size, size), frames=frames, codecs=codecs, intra_fraction=intra_fraction)
    sl = (slice(None), slice(margin, margin + crop), slice(margin, margin + crop))
    return clip.degraded[sl], clip.clean[frames // 2][sl[1:]], clip.label


def stack_frames(frames: np.ndarray) -> torch.Tensor:
    """(T, H, W, C) uint8 -> (T*C, H, W) float in [0, 1], frames in order on the channel axis (the engine's layout)."""
    t, h, w, c = frames.shape
    return torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).reshape(t * c, h, w).float().div_(255.0)


def make_clip_batch(
    images: list[np.ndarray], seed: int, step: int, batch: int, crop: int, frames: int,
    codecs: tuple[str, ...] = ("h264", "hevc"), intra_fraction: float = 0.2,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Temporal batch of step ``step``: ``(degraded (N, T*3, H, W), clean centre (N, 3, H, W), label (N, 1))``."""
    rng = np.random.default_rng([seed, step])
    xs, ys, labels = [], [], []
    for _ in range(batch):
        img = images[int(rng.integers(0, len(images)))]
        x, y, label = make_clip_sample(img, rng, crop, frames, codecs, intra_fraction)
        xs.append(stack_frames(x))
        ys.append(stack_frames(y[None]))
        labels.append(label)
    return torch.stack(xs), torch.stack(ys), torch.tensor(labels, dtype=torch.float32)[:, None]


def make_pack_batch(
    pack: ClipPack, seed: int, step: int, batch: int, crop: int, frames: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Batch of step ``step`` from a pre-encoded clip pack (:func:`vsjpegfix.training.clip_pack.sample`):
    ``(degraded (N, frames*3, H, W), clean centre (N, 3, H, W), label (N, 1))``."""
    rng = np.random.default_rng([seed, step, 1])
    xs, ys, labels = [], [], []
    for _ in range(batch):
        x, y, label = clip_pack.sample(pack, rng, crop, frames)
        xs.append(stack_frames(x))
        ys.append(stack_frames(y[None]))
        labels.append(label)
    return torch.stack(xs), torch.stack(ys), torch.tensor(labels, dtype=torch.float32)[:, None]


class BatchStream(torch.utils.data.IterableDataset):
    """Batches for steps ``start .. stop - 1`` (each a pure function of ``(seed, step)``).

    ``frames`` > 1 makes clip batches (:func:`make_clip_batch`) instead of image batches. With a
    clip ``pack``, ``round(batch * pack_fraction)`` samples of every batch come from it
    (:func:`make_pack_batch`; all of them for ``frames`` > 1) and the rest are image samples.
    """

    def __init__(
        self, images: list[np.ndarray], seed: int, start: int, stop: int, batch: int, crop: int, degrade: str,
        frames: int = 1, codecs: tuple[str, ...] = ("h264", "hevc"), intra_fraction: float = 0.2,
        pack: ClipPack | None = None, pack_fraction: float = 1.0,
    ):
        super().__init__()
        self.images, self.seed, self.start, self.stop = images, seed, start, stop
        self.batch, self.crop, self.degrade = batch, crop, degrade
        self.frames, self.codecs, self.intra_fraction = frames, tuple(codecs), intra_fraction
        self.pack, self.pack_fraction = pack, pack_fraction

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        if torch.utils.data.get_worker_info() is not None:
            torch.set_num_threads(1)  # leave the cores to the training process
        for step in range(self.start, self.stop):
            if self.pack is not None:
                n = self.batch if self.frames > 1 else int(round(self.batch * self.pack_fraction))
                parts = [make_pack_batch(self.pack, self.seed, step, n, self.crop, self.frames)] if n else []
                if n < self.batch:
                    parts.append(make_batch(self.images, self.seed, step, self.batch - n, self.crop, self.degrade))
                yield tuple(torch.cat(ts) for ts in zip(*parts))
            elif self.frames > 1:
                yield make_clip_batch(
                    self.images, self.seed, step, self.batch, self.crop, self.frames, self.codecs, self.intra_fraction
                )
            else:
                yield make_batch(self.images, self.seed, step, self.batch, self.crop, self.degrade)


# --------------------------------------------------------------------------------------------
# model helpers
# --------------------------------------------------------------------------------------------
def model_config(arch: str, channels: int, config: dict[str, Any], frames: int = 1) -> dict[str, Any]:
    """Fill the channel and frame counts into a model config (``channels`` or FBCNN's ``in_nc``/``out_nc``)."""
    config = dict(config)
    if int(config.setdefault("frames", frames)) != frames:
        raise SystemExit(f"error: --config frames={config['frames']} contradicts --frames {frames}")
    if arch == "fbcnn":
        config.setdefault("out_nc", channels)
        config.setdefault("in_nc", channels * frames)
        if config["out_nc"] != channels:
            raise SystemExit(f"error: --config out_nc={config['out_nc']} contradicts --channels {channels}")
    else:
        config.setdefault("channels", channels)
        if config["channels"] != channels:
            raise SystemExit(f"error: --config channels={config['channels']} contradicts --channels {channels}")
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


def learning_rate(step: int, args: argparse.Namespace, elapsed_s: float = 0.0) -> float:
    """Learning rate at ``step``: linear warm-up, then cosine to ``lr * min_lr`` or step decay.

    With ``--max-minutes`` the cosine runs on the larger of the step progress and the time
    progress, so a run that is stopped by the time limit still ends annealed.
    """
    if args.warmup and step < args.warmup:
        return args.lr * (step + 1) / args.warmup
    if args.schedule == "cosine":
        t = (step - args.warmup) / max(1, args.steps - args.warmup)
        if args.max_minutes:
            t = max(t, elapsed_s / (60.0 * args.max_minutes))
        t = min(1.0, t)
        return args.lr * (args.min_lr + (1 - args.min_lr) * 0.5 * (1 + math.cos(math.pi * t)))
    if args.schedule == "step":
        return args.lr * (0.5 ** (step // max(1, args.decay_every)))
    return args.lr


def to_uint8(t: torch.Tensor) -> np.ndarray:
    """(1, C, H, W) float in [0, 1] -> HxWxC / HxW uint8."""
    a = t[0].float().clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).cpu().numpy()
    return a[..., 0] if a.shape[2] == 1 else a


def to_tensor(a: np.ndarray) -> torch.Tensor:
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


# --------------------------------------------------------------------------------------------
# checkpoints, log, export
# --------------------------------------------------------------------------------------------
def save_checkpoint(path: Path, model: nn.Module, optimizer: torch.optim.Optimizer, step: int, state: dict[str, Any]) -> None:
    """Write a resumable checkpoint atomically (only tensors and plain data: loads with weights_only)."""
    obj = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "step": step,
        "torch_rng": torch.get_rng_state(),
        **state,
    }
    tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def log_record(out: Path, record: dict[str, Any]) -> None:
    with open(out / LOG, "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")


def describe_data(train_dir: Path, paths: list[Path], n_used: int) -> str:
    """e.g. ``"332 images: bsds500 (232), urban100 (100)"`` (top-level subfolders of the training folder)."""
    groups: dict[str, int] = {}
    for p in paths:
        rel = p.relative_to(train_dir).parts
        key = rel[0] if len(rel) > 1 else "."
        groups[key] = groups.get(key, 0) + 1
    parts = ", ".join(f"{k} ({v})" for k, v in sorted(groups.items()))
    skipped = f"; {len(paths) - n_used} smaller than the crop skipped" if n_used < len(paths) else ""
    return f"{n_used} images: {parts}{skipped}"


def export(model: nn.Module, args: argparse.Namespace, state: dict[str, Any]) -> dict[str, Any]:
    """Write ``--export`` (fp16 safetensors, mode 0644) and return its manifest entry (also in OUT/export.json)."""
    from vsjpegfix.weights.store import save_weights

    path = Path(args.export)
    path.parent.mkdir(parents=True, exist_ok=True)
    degradations = {
        "jpeg": "single JPEG (Pillow/libjpeg, 4:2:0 for colour), QF from FBCNN's distribution "
        "(75% uniform 10..60, 25% uniform 8..96)",
        "double_jpeg": "double JPEG, both QFs from FBCNN's distribution, shift uniform 0..7 px per axis",
        "mix": "75% single JPEG with QF from FBCNN's distribution (75% uniform 10..60, 25% uniform 8..96), "
        "25% double JPEG (two such QFs, shift uniform 0..7 px per axis); Pillow/libjpeg, 4:2:0 for colour",
        "mix_hq": "10% near-clean single JPEG (QF uniform 85..100); otherwise 75% single JPEG with QF from FBCNN's "
        "distribution (75% uniform 10..60, 25% uniform 8..96), 25% double JPEG (two such QFs, shift uniform 0..7 px "
        "per axis); Pillow/libjpeg, 4:2:0 for colour",
        "jpeg_video_mix": "50% the JPEG mix (see mix), 50% the centre frame of 5-frame clips made by a moving camera "
        "over the patch, coded by libx264/libx265 (veryfast) at constant QP uniform 22..51 (80% with P/B frames)",
        "jpeg_video_mix_hq": "50% the JPEG mix with 10% near-clean JPEG (see mix_hq), 50% the centre frame of 5-frame "
        "clips made by a moving camera over the patch, coded by libx264/libx265 (veryfast) at constant QP uniform "
        "22..51 (80% with P/B frames)",
    }.get(args.degrade, args.degrade)
    if args.frames > 1:
        degradations = (
            f"clips of {args.frames} frames made by a moving camera (pan up to 3 px/frame, zoom up to 1 %/frame, "
            f"jitter) over flipped/rotated patches of still images, coded with {'/'.join(CODECS[c][0] for c in args.codecs)} "
            f"(veryfast) at constant QP uniform {QP_RANGE[0]}..{QP_RANGE[1]}, {1 - args.intra_fraction:.0%} with P/B frames, "
            f"{args.intra_fraction:.0%} intra-only; BT.709 limited-range 4:2:0; target the clean centre frame"
        )
    training = {
        "data": state.get("data", ""),
        "degradations": degradations,
        "steps": int(state["step"]),
        "batch": args.batch,
        "crop": args.crop,
        "hardware": args.hardware,
        "time_min": round(state.get("elapsed_s", 0.0) / 60.0, 1),
    }
    best = state.get("last_val")
    if best is not None:
        training[f"val_psnr_gain_{val_label(best)}_db"] = round(best["val_gain_db"], 3)
    metadata = {"name": args.name, "training": training}
    sha = save_weights(model.cpu(), path, arch=args.arch, half=True, metadata=metadata)
    path.chmod(0o644)  # a shipped file: readable by everyone
    colour = "colour" if args.channels == 3 else "gray"
    if args.frames > 1:
        default_description = f"{args.arch} ({colour}, {args.frames}-frame stack) for H.264/HEVC artifact removal"
    else:
        default_description = f"{args.arch} ({colour}) for JPEG artifact removal"
    entry = {
        "name": args.name,
        "file": path.name,
        "arch": args.arch,
        "config": model.config,
        "sha256": sha,
        "description": args.description or default_description,
        "task": args.task or ("video" if args.frames > 1 else "jpeg"),
        "training": training,
    }
    (args.out / "export.json").write_text(json.dumps(entry, indent=2) + "\n", encoding="utf-8")
    return entry


# --------------------------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    shared = _REPO.parent / "shared" / "data" / "images"
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--arch", choices=["fastarcnn", "arcnn", "fbcnn"], default="fastarcnn")
    ap.add_argument("--config", default="{}", help="model config: JSON text or a JSON file (e.g. '{\"nc\": [32,64,128,256], \"nb\": 2}')")
    ap.add_argument("--channels", type=int, choices=[1, 3], default=3)
    ap.add_argument("--train", type=Path, default=shared / "train", help="clean training images (recursive)")
    ap.add_argument("--val", type=Path, default=shared / "val" / "cbsd68", help="clean validation images")
    ap.add_argument("--steps", type=int, default=1000, help="total optimisation steps (also the end of the LR schedule)")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--crop", type=int, default=64, help="training patch size (multiple of 8)")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--schedule", choices=["cosine", "step", "constant"], default="cosine")
    ap.add_argument("--min-lr", type=float, default=0.02, help="cosine floor, as a fraction of --lr")
    ap.add_argument("--decay-every", type=int, default=2000, help="step schedule: halve the LR every N steps")
    ap.add_argument("--warmup", type=int, default=100, help="linear warm-up steps")
    ap.add_argument("--degrade", choices=sorted(DEGRADATIONS), default="mix", help="image degradation (single-frame models)")
    ap.add_argument("--frames", type=int, default=1,
                    help="input frames T (odd); T > 1 trains a temporal model on H.264/HEVC clips (T degraded frames "
                    "stacked on the channel axis -> clean centre frame); --degrade is then unused")
    ap.add_argument("--codecs", default="h264,hevc", help="clip codecs for --frames > 1 (comma-separated: h264, hevc)")
    ap.add_argument("--intra-fraction", type=float, default=0.2,
                    help="--frames > 1: fraction of clips coded intra-only (the rest with P/B frames)")
    ap.add_argument("--clips", type=Path, default=None,
                    help="pre-encoded clip pack (scripts/pack_video_clips.py) instead of encoding clips on the fly")
    ap.add_argument("--clips-fraction", type=float, default=1.0,
                    help="single-frame models with --clips: share of each batch from the pack (the rest: --degrade on images)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cpu", help="cpu or cuda[:N] (mixed precision with autocast on CUDA)")
    ap.add_argument("--no-amp", action="store_true", help="disable mixed precision on CUDA")
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    ap.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=True,
                    help="channels-last memory format (about 15%% faster on CPU)")
    ap.add_argument("--workers", type=int, default=1, help="DataLoader worker processes (0 = make batches in the main process)")
    ap.add_argument("--out", type=Path, default=Path("out/train"), help="output folder (checkpoints, log)")
    ap.add_argument("--resume", action="store_true", help=f"continue from OUT/{CHECKPOINT}")
    ap.add_argument("--save-every", type=int, default=500)
    ap.add_argument("--log-every", type=int, default=50)
    ap.add_argument("--val-every", type=int, default=1000, help="validate every N steps (0: only at the end)")
    ap.add_argument("--val-qf", type=int, default=10, help="JPEG quality of the single-frame validation")
    ap.add_argument("--val-video", action="store_true",
                    help="validate a single-frame model on the temporal models' H.264 clips (centre frame) instead of JPEG")
    ap.add_argument("--val-qp", type=int, default=37, help="x264 QP of the validation clips (--frames > 1 or --val-video)")
    ap.add_argument("--val-n", type=int, default=10, help="validate on the first N images of --val")
    ap.add_argument("--val-crop", type=int, default=256, help="centre crop of validation images")
    ap.add_argument("--max-minutes", type=float, default=0,
                    help="stop (and save) after this much training time, the cosine schedule ending then (0: no limit)")
    ap.add_argument("--stop-at", type=int, default=0,
                    help="stop (and save) at this step without changing the schedule; continue later with --resume")
    ap.add_argument("--init", type=Path, default=None,
                    help="start from these weights (a .safetensors/.pth of the same architecture and config), e.g. to train "
                    "longer; with --frames T > 1 a single-frame file is made temporal (neighbour weights zero: starts "
                    "exactly at the single-frame model) and a T-frame file loads as it is")
    ap.add_argument("--tail-init-scale", type=float, default=0.1,
                    help="scale the initial last layer of residual models (ARCNN, Fast ARCNN, FBCNN with residual=true): near-identity start; 0 = exact identity")
    ap.add_argument("--export", type=Path, help="write the final model as fp16 safetensors here")
    ap.add_argument("--name", help="model name for the manifest entry (default: file stem)")
    ap.add_argument("--description", default="")
    ap.add_argument("--task", default=None, help="manifest task (default: video when --frames > 1, else jpeg)")
    ap.add_argument("--hardware", default=None, help="hardware note for the manifest (default: from --device)")
    ap.add_argument("--no-progress", action="store_true", help="no tqdm progress bar")
    args = ap.parse_args(argv)
    if args.crop < 8 or args.crop % 8:
        ap.error("--crop must be a positive multiple of 8")
    if args.batch < 1 or args.steps < 0:
        ap.error("--batch must be >= 1 and --steps >= 0")
    if args.frames < 1 or args.frames % 2 == 0:
        ap.error(f"--frames must be a positive odd number (the centre frame is restored), got {args.frames}")
    args.codecs = tuple(c.strip() for c in args.codecs.split(",") if c.strip())
    if not args.codecs or any(c not in CODECS for c in args.codecs):
        ap.error(f"--codecs: choose from {', '.join(CODECS)}")
    if not 0.0 <= args.intra_fraction <= 1.0:
        ap.error("--intra-fraction must be in 0..1")
    if not 0.0 <= args.clips_fraction <= 1.0:
        ap.error("--clips-fraction must be in 0..1")
    if args.clips is not None and args.channels != 3:
        ap.error("--clips needs --channels 3 (the clips are RGB)")
    if not 0 <= args.val_qp <= 51:
        ap.error("--val-qp must be in 0..51")
    args.val_video = args.val_video or args.frames > 1
    if args.channels != 3 and args.val_video:
        ap.error("--frames > 1 and --val-video need --channels 3 (the clips are RGB)")
    try:
        text = Path(args.config).read_text() if args.config.strip().endswith(".json") else args.config
        args.config = json.loads(text)
    except (OSError, ValueError) as exc:
        ap.error(f"--config: {exc}")
    if not isinstance(args.config, dict):
        ap.error("--config must be a JSON object")
    if args.name is None and args.export is not None:
        args.name = args.export.stem
    if args.hardware is None:
        args.hardware = "CUDA GPU" if args.device.startswith("cuda") else f"{os.cpu_count()}-core CPU"
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(max(1, args.threads))
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("error: --device cuda but CUDA is not available")
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed batch shapes: let cuDNN pick the fastest kernels
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    train_dir, val_dir = args.train.resolve(), args.val.resolve()
    if train_dir == val_dir or val_dir.is_relative_to(train_dir) or train_dir.is_relative_to(val_dir):
        raise SystemExit(f"error: training folder {train_dir} and validation folder {val_dir} overlap")
    args.out.mkdir(parents=True, exist_ok=True)

    torch.manual_seed(args.seed)
    config = model_config(args.arch, args.channels, args.config, args.frames)
    model = build_model(args.arch, config)
    if args.tail_init_scale != 1.0 and getattr(model, "residual", False):
        tail = model.reconstruct if hasattr(model, "reconstruct") else model.m_tail  # ARCNN family / FBCNN
        with torch.no_grad():  # near-identity at step 0: the network only learns the correction
            tail.weight.mul_(args.tail_init_scale)
            tail.bias.zero_()
    if args.init is not None:
        from vsjpegfix.weights.store import WeightsError, load_file

        try:
            start = load_file(args.init)
        except WeightsError as exc:
            raise SystemExit(f"error: --init: {exc}") from None
        how = ""
        if type(start) is type(model) and getattr(start, "frames", 1) == 1 and args.frames > 1:
            from vsjpegfix.models.temporal import make_temporal

            start = make_temporal(start, args.frames)  # neighbour weights zero: the single-frame model exactly
            how = f" (single-frame weights made {args.frames}-frame)"
        if type(start) is not type(model) or start.config != model.config:
            raise SystemExit(f"error: --init {args.init} holds {type(start).__name__} {start.config}, not {args.arch} {model.config}")
        model.load_state_dict(start.state_dict())
        print(f"initialised from {args.init}{how}", file=sys.stderr)
    model.to(device)
    if args.channels_last:
        model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    step, state = 0, {"elapsed_s": 0.0, "best_gain": -math.inf, "last_val": None}
    ckpt_path = args.out / CHECKPOINT
    if args.resume:
        if not ckpt_path.is_file():
            raise SystemExit(f"error: --resume but {ckpt_path} does not exist")
        ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True)
        if ckpt.get("arch") != args.arch or ckpt.get("config") != model.config:
            raise SystemExit(f"error: {ckpt_path} holds {ckpt.get('arch')} {ckpt.get('config')}, not {args.arch} {model.config}")
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        torch.set_rng_state(ckpt["torch_rng"])
        step = int(ckpt["step"])
        state.update({k: ckpt[k] for k in ("elapsed_s", "best_gain", "last_val") if k in ckpt})
        print(f"resumed from {ckpt_path} at step {step}", file=sys.stderr)

    pack = None
    if args.clips is not None:
        try:
            pack = clip_pack.load_pack(args.clips)
            clip_pack.sample(pack, np.random.default_rng(0), args.crop, args.frames)  # fits the model and crop?
        except PackError as exc:
            raise SystemExit(f"error: --clips: {exc}") from None
        print(f"clip pack {args.clips}: {pack.count} clips of {pack.frames} frames, {pack.size} px", file=sys.stderr)
    # with a pack, every sample of a temporal batch (and all of them at --clips-fraction 1) comes from it
    needs_images = pack is None or (args.frames == 1 and round(args.batch * args.clips_fraction) < args.batch)
    paths = list_images(train_dir) if needs_images else []
    t0 = time.perf_counter()
    images = load_images(paths, args.channels, clip_min_side(args.crop) if args.frames > 1 else args.crop) if paths else []
    state["data"] = describe_data(train_dir, paths, len(images)) if needs_images else ""
    if pack is not None:
        state["data"] += ("; " if needs_images else "") + (
            f"clip pack {args.clips.name}: {pack.count} clips of {pack.frames} frames at {pack.size} px "
            f"({', '.join(pack.meta.get('codecs', []))}, seed {pack.meta.get('seed')})")
    cached = (f"{len(images)} training images cached ({sum(i.nbytes for i in images) / 2**20:.0f} MiB, "
              f"{time.perf_counter() - t0:.1f} s)") if needs_images else "every sample from the clip pack (no images read)"
    print(f"{args.arch} {model.config}: {count_parameters(model):,} parameters; {cached}", file=sys.stderr)
    if args.val_n <= 0:
        validator = None
    elif args.val_video:
        validator = VideoValidator(val_dir, args.val_n, args.val_qp, args.val_crop, args.frames)
    else:
        validator = Validator(val_dir, args.val_n, args.val_qf, args.val_crop, args.channels)

    use_amp = device.type == "cuda" and not args.no_amp
    amp_dtype = torch.bfloat16 if use_amp and torch.cuda.is_bf16_supported() else torch.float16
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp and amp_dtype == torch.float16)

    def checkpoint(path: Path = ckpt_path) -> None:
        save_checkpoint(path, model, optimizer, step, {"arch": args.arch, "config": model.config, "args": _plain(vars(args)), **_plain(state)})

    def validate() -> None:
        if validator is None:
            return
        res = validator(model, device)
        state["last_val"] = res
        log_record(args.out, {"step": step, **res})
        if "val_qp" in res:
            before = f"val {VAL_CODEC} QP{res['val_qp']} centre frame {res['val_psnr_degraded']:.3f} dB"
        else:
            before = f"val QF{res['val_qf']} JPEG {res['val_psnr_jpeg']:.3f} dB"
        print(f"step {step}: {before} -> model {res['val_psnr_model']:.3f} dB (gain {res['val_gain_db']:+.3f} dB)", file=sys.stderr)
        if res["val_gain_db"] > state["best_gain"]:
            state["best_gain"] = res["val_gain_db"]
            checkpoint(args.out / BEST)

    if step < args.steps:
        if step == 0 and validator is not None and args.val_every:
            validate()
        model.train()
        stream = BatchStream(
            images, args.seed, step, args.steps, args.batch, args.crop, args.degrade, args.frames, args.codecs,
            args.intra_fraction, pack, args.clips_fraction,
        )
        loader = torch.utils.data.DataLoader(
            stream, batch_size=None, num_workers=args.workers, pin_memory=device.type == "cuda",
            persistent_workers=False, prefetch_factor=4 if args.workers else None,
        )
        from tqdm import tqdm

        bar = tqdm(total=args.steps, initial=step, file=sys.stderr, disable=args.no_progress, dynamic_ncols=True, unit="step")
        running, n_running = 0.0, 0
        last_t = time.perf_counter()
        for x, y, label in loader:
            lr = learning_rate(step, args, state["elapsed_s"])
            for group in optimizer.param_groups:
                group["lr"] = lr
            x, y, label = (t.to(device, non_blocking=True) for t in (x, y, label))
            if args.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device_type=device.type, dtype=amp_dtype, enabled=use_amp):
                img, q = forward(model, x)
            loss = loss_fn(img, q, y, label)
            if not torch.isfinite(loss):
                raise SystemExit(f"error: non-finite loss {loss.item()} at step {step}")
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            step += 1
            now = time.perf_counter()
            state["elapsed_s"] += now - last_t
            last_t = now
            running += loss.item()
            n_running += 1
            bar.update(1)
            if step % args.log_every == 0 or step == args.steps:
                log_record(args.out, {"step": step, "loss": running / n_running, "lr": lr, "elapsed_s": round(state["elapsed_s"], 2)})
                bar.set_postfix(loss=f"{running / n_running:.5f}", lr=f"{lr:.2e}")
                running, n_running = 0.0, 0
            stop = (bool(args.max_minutes) and state["elapsed_s"] >= 60 * args.max_minutes) or step == args.stop_at
            if (args.val_every and step % args.val_every == 0) or step == args.steps or stop:
                validate()
                last_t = time.perf_counter()  # validation time is not training time
            if step % args.save_every == 0 or step == args.steps or stop:
                checkpoint()
                last_t = time.perf_counter()
            if stop:
                print(f"stopping at step {step} after {state['elapsed_s'] / 60:.1f} min", file=sys.stderr)
                break
        bar.close()
        del loader
    elif state["last_val"] is None:
        validate()

    if args.export is not None:
        entry = export(model, args, {**state, "step": step})
        print(json.dumps(entry, indent=2))
    return 0


def _plain(obj: Any) -> Any:
    """Paths -> str, recursively, so the checkpoint loads with ``weights_only=True``."""
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj


if __name__ == "__main__":
    sys.exit(main())
