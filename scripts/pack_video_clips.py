#!/usr/bin/env python3
"""Encode H.264/HEVC training clips once into a clip pack (see :mod:`vsjpegfix.training.clip_pack`).

Each clip is what ``scripts/train.py --frames T`` makes on the fly
(:func:`vsjpegfix.training.data.make_clip_sample`: a camera moved over a random patch of a random
training image, coded by libx264/libx265 at a constant QP uniform in 22..51, intra-only with
probability ``--intra-fraction``, else with P/B frames), here ``--size`` pixels square and
``--frames`` long; clip ``i`` is a pure function of ``(--seed, i)``, whatever ``--workers``
(:func:`vsjpegfix.training.packs.build_clip_pack`). Train from it with ``scripts/train.py --clips DIR``::

    python scripts/pack_video_clips.py --out out/clips --count 20000 --size 96 --frames 5 --workers 16

Size: about ``count * (frames + 1) * size^2 * 3`` bytes (20,000 clips of 5 frames at 96 px: 1.1 GB).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

_REPO = Path(__file__).resolve().parent.parent
if str(_REPO) not in sys.path:
    sys.path.insert(0, str(_REPO))

from vsjpegfix.training.degrade_video import CODECS  # noqa: E402
from vsjpegfix.training.errors import TrainingError  # noqa: E402
from vsjpegfix.training.packs import build_clip_pack  # noqa: E402


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--train", type=Path, default=_REPO.parent / "shared" / "data" / "images" / "train",
                   help="clean training images (recursive); never the validation set")
    p.add_argument("--out", type=Path, required=True, help="pack folder to write")
    p.add_argument("--count", type=int, default=2000)
    p.add_argument("--size", type=int, default=96, help="clip size in pixels (multiple of 16; train with --crop <= size)")
    p.add_argument("--frames", type=int, default=5, help="frames per clip (odd; models of fewer frames take the centre ones)")
    p.add_argument("--codecs", default="h264,hevc")
    p.add_argument("--intra-fraction", type=float, default=0.2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=1)
    args = p.parse_args(argv)
    args.codecs = tuple(c.strip() for c in args.codecs.split(",") if c.strip())
    if not args.codecs or any(c not in CODECS for c in args.codecs):
        p.error(f"--codecs: choose from {', '.join(CODECS)}")
    if args.size < 16 or args.size % 16:
        p.error("--size must be a positive multiple of 16")
    if args.frames < 1 or args.frames % 2 == 0:
        p.error("--frames must be a positive odd number")
    if args.count < 1 or args.workers < 1:
        p.error("--count and --workers must be >= 1")
    if (args.out / "pack.json").exists():
        p.error(f"{args.out} already holds a pack")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    t0 = time.perf_counter()
    try:
        build_clip_pack(args.train, args.out, args.count, args.size, args.frames, args.codecs, args.intra_fraction,
                        args.seed, args.workers, log=lambda msg: print(msg, file=sys.stderr, flush=True))
    except TrainingError as exc:
        raise SystemExit(f"error: {exc}") from None
    print(f"[pack] {args.count} clips of {args.frames}x{args.size}x{args.size} in {args.out} "
          f"({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
