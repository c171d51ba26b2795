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

The work is :func:`vsjpegfix.training.packs.pack_train` and :func:`~vsjpegfix.training.packs.pack_val`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

_REPO = Path(__file__).resolve().parent.parent
if str(_REPO) not in sys.path:
    sys.path.insert(0, str(_REPO))

from vsjpegfix.training.packs import pack_train, pack_val  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    shared = _REPO.parent / "shared" / "data" / "images"
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
