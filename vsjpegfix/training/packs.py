"""Packs of training data: a compact copy of the image folders to take to a GPU machine, and clip
packs of H.264/HEVC training clips encoded once (:mod:`vsjpegfix.training.clip_pack`).

Image pack (:func:`pack_train`, :func:`pack_val`): JPEG files copied byte for byte (they are
already compact), other images as lossless WebP crops; pixels are never altered, so training on
the pack sees the same clean pixels as training on the folders, minus what the crops leave out.

Clip pack (:func:`build_clip_pack`): clip ``i`` is what temporal training makes on the fly
(:func:`vsjpegfix.training.data.make_clip_sample` from the random stream ``(seed, i)``), so the pack
is the same whatever the number of worker processes.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import shutil
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
from PIL import Image

from vsjpegfix.training.clip_pack import write_pack
from vsjpegfix.training.data import (
    IMAGE_SUFFIXES,
    clip_min_side,
    list_images,
    load_images,
    make_clip_sample,
)
from vsjpegfix.training.degrade_video import QP_RANGE

JPEG_SUFFIXES = (".jpg", ".jpeg")


def image_files(folder: Path) -> list[Path]:
    """Image files under ``folder`` (recursive, sorted); none when the folder is missing."""
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def save_webp(arr: np.ndarray, path: Path) -> int:
    """Write ``arr`` as lossless WebP (creating the folder); returns the bytes written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path, "WEBP", lossless=True, quality=100, method=6)
    return path.stat().st_size


def pack_train(src: Path, dest: Path, crop: int, crops_per_image: int, seed: int) -> int:
    """Copy the JPEGs of ``src`` to ``dest`` (same relative paths), crop the other images to
    ``crops_per_image`` lossless WebP crops of ``crop`` pixels (random positions from ``seed``,
    named ``STEM_I.webp``); returns the bytes written."""
    rng = np.random.default_rng(seed)
    total = 0
    for p in image_files(src):
        rel = p.relative_to(src)
        if p.suffix.lower() in JPEG_SUFFIXES:
            out = dest / rel
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(p, out)
            total += out.stat().st_size
            continue
        with Image.open(p) as im:
            img = np.array(im.convert("RGB"))
        h, w = img.shape[:2]
        ch, cw = min(crop, h), min(crop, w)
        for i in range(crops_per_image):
            y = int(rng.integers(0, h - ch + 1))
            x = int(rng.integers(0, w - cw + 1))
            total += save_webp(img[y : y + ch, x : x + cw], dest / rel.parent / f"{rel.stem}_{i}.webp")
    return total


def pack_val(src: Path, dest: Path, n: int) -> int:
    """The first ``n`` validation images (sorted, as the validators take them), whole, lossless WebP."""
    total = 0
    for p in image_files(src)[:n]:
        with Image.open(p) as im:
            img = np.array(im.convert("RGB"))
        total += save_webp(img, dest / f"{p.stem}.webp")
    return total


_IMAGES: list[np.ndarray] = []  # the training images of a clip-pack worker process


def _init_worker(paths: list[Path], min_side: int) -> None:
    global _IMAGES
    _IMAGES = load_images(paths, 3, min_side)


def _make_clip(job: tuple[int, int, int, int, tuple[str, ...], float]) -> tuple[int, np.ndarray, np.ndarray, float]:
    seed, i, size, frames, codecs, intra = job
    rng = np.random.default_rng([seed, i])
    img = _IMAGES[int(rng.integers(len(_IMAGES)))]
    deg, clean, label = make_clip_sample(img, rng, size, frames, codecs, intra)
    return i, deg, clean, label


def build_clip_pack(train: Path, out: Path, count: int, size: int, frames: int, codecs: tuple[str, ...],
                    intra_fraction: float, seed: int, workers: int = 1,
                    log: Callable[[str], None] = lambda msg: None) -> dict[str, Any]:
    """Encode ``count`` clips of ``frames`` x ``size`` x ``size`` pixels from the images under ``train``
    into a clip pack in ``out``; returns the pack's metadata. ``workers`` > 1 uses spawned processes
    (forking a process whose OpenMP threads are running can deadlock)."""
    paths = list_images(train)
    min_side = clip_min_side(size)
    t0 = time.perf_counter()
    degraded = np.zeros((count, frames, size, size, 3), np.uint8)
    clean = np.zeros((count, size, size, 3), np.uint8)
    label = np.zeros(count, np.float32)
    jobs = [(seed, i, size, frames, tuple(codecs), intra_fraction) for i in range(count)]
    with contextlib.ExitStack() as stack:
        if workers == 1:
            _init_worker(paths, min_side)
            results = map(_make_clip, jobs)
        else:
            pool = stack.enter_context(
                multiprocessing.get_context("spawn").Pool(workers, initializer=_init_worker, initargs=(paths, min_side))
            )
            results = pool.imap_unordered(_make_clip, jobs, chunksize=8)
        for done, (i, d, c, lab) in enumerate(results, 1):
            degraded[i], clean[i], label[i] = d, c, lab
            if done % max(1, count // 20) == 0:
                log(f"[pack] {done}/{count} clips, {time.perf_counter() - t0:.0f} s")
    meta = {
        "source": str(train), "codecs": list(codecs), "qp_range": list(QP_RANGE),
        "intra_fraction": intra_fraction, "seed": seed, "seconds": round(time.perf_counter() - t0, 1),
    }
    write_pack(out, degraded, clean, label, meta)
    return meta
