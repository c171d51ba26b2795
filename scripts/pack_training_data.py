#!/usr/bin/env python3
"""Pack a compact copy of the training data to take to a GPU machine.

The GPU machine receives at most a few tens of MB with each call, while the training folder
(``../shared/data/images/train``) holds ~150 MB, mostly lossless PNG. This script writes::

    DEST/train/<subfolder>/...   JPEG files copied byte for byte (they are already compact);
                                 other images as lossless WebP crops of --crop pixels (random
                                 positions, fixed seed), --crops-per-image of them
    DEST/val/<name>/...          the first --val-n validation images, whole, as lossless WebP

and prints the byte total. Pixels are never altered (lossless WebP; JPEG bytes untouched), so
training on the pack sees the same clean pixels as training on the folders, minus what the
crops leave out. ``scripts/train.py`` reads ``.webp`` like the other formats. Example::

    python scripts/pack_training_data.py .devdata --crop 288 --val-n 10
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import numpy as np
from PIL import Image

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
JPEG_SUFFIXES = (".jpg", ".jpeg")


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _save_webp(arr: np.ndarray, path: Path) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path, "WEBP", lossless=True, quality=100, method=6)
    return path.stat().st_size


def pack_train(src: Path, dest: Path, crop: int, crops_per_image: int, seed: int) -> int:
    """Copy JPEGs, crop the rest to lossless WebP; returns the bytes written."""
    rng = np.random.default_rng(seed)
    total = 0
    for p in _images(src):
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
            total += _save_webp(img[y : y + ch, x : x + cw], dest / rel.parent / f"{rel.stem}_{i}.webp")
    return total


def pack_val(src: Path, dest: Path, n: int) -> int:
    """The first ``n`` validation images (sorted, as train.py's validators take them), whole, lossless WebP."""
    total = 0
    for p in _images(src)[:n]:
        with Image.open(p) as im:
            img = np.array(im.convert("RGB"))
        total += _save_webp(img, dest / f"{p.stem}.webp")
    return total


def main(argv: list[str] | None = None) -> int:
    shared = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "images"
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dest", type=Path, help="output folder (must not exist)")
    ap.add_argument("--train", type=Path, default=shared / "train")
    ap.add_argument("--val", type=Path, default=shared / "val" / "cbsd68")
    ap.add_argument("--crop", type=int, default=288, help="crop size for non-JPEG training images")
    ap.add_argument("--crops-per-image", type=int, default=1)
    ap.add_argument("--val-n", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    if args.dest.exists():
        print(f"error: {args.dest} already exists", file=sys.stderr)
        return 2
    train_bytes = pack_train(args.train, args.dest / "train", args.crop, args.crops_per_image, args.seed)
    val_bytes = pack_val(args.val, args.dest / "val" / args.val.name, args.val_n)
    print(f"train {train_bytes / 1e6:.1f} MB, val {val_bytes / 1e6:.1f} MB -> {args.dest}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
