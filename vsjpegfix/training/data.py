"""Training samples: clean images cached in RAM, random patches degraded on the fly, clips and clip packs.

Each image sample is a random patch whose origin is a multiple of 16 pixels (the JPEG 8x8 grid and
the 4:2:0 16x16 macroblock grid line up as in a real file), flipped/rotated, then degraded
(:data:`vsjpegfix.training.degrade.DEGRADATIONS`) with a 16-pixel margin that is cut off afterwards,
so patch borders see the codec as the inside of an image does. Temporal samples are clips made by
moving a camera over a patch and coding it with libx264/libx265
(:func:`vsjpegfix.training.degrade_video.random_clip`), or windows of a pre-encoded clip pack
(:mod:`vsjpegfix.training.clip_pack`). Every batch is a pure function of ``(seed, step)``: a resumed
run sees exactly the batches the uninterrupted run would have seen, whatever the number of loader
workers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from PIL import Image

import vsjpegfix.training.degrade_video  # noqa: F401  (registers the h264 / hevc / jpeg_video_mix degradations)
from vsjpegfix.training import clip_pack
from vsjpegfix.training.augment import dihedral
from vsjpegfix.training.clip_pack import ClipPack
from vsjpegfix.training.degrade import DEGRADATIONS, Degraded
from vsjpegfix.training.degrade_video import random_clip
from vsjpegfix.training.errors import TrainingError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
GRID = 16  # patch origins on the 16x16 macroblock grid (covers the 8x8 DCT grid)
MARGIN = 16  # codec context around each patch, cut off after degrading

Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


def list_images(folder: Path) -> list[Path]:
    """Image files under ``folder`` (recursive), sorted for determinism."""
    if not folder.is_dir():
        raise TrainingError(f"image folder not found: {folder}")
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise TrainingError(f"no images ({', '.join(IMAGE_SUFFIXES)}) under {folder}")
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
        raise TrainingError(f"no training image is at least {min_side} pixels on its short side")
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
) -> Batch:
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
) -> Batch:
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
) -> Batch:
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

    def __iter__(self) -> Iterator[Batch]:
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
