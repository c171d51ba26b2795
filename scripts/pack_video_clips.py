#!/usr/bin/env python3
"""Encode H.264/HEVC training clips once into a clip pack (see :mod:`vsjpegfix.training.clip_pack`).

Each clip is what ``scripts/train.py --frames T`` makes on the fly (:func:`train.make_clip_sample`:
a camera moved over a random patch of a random training image, coded by libx264/libx265 at a
constant QP uniform in 22..51, intra-only with probability ``--intra-fraction``, else with P/B
frames), here ``--size`` pixels square and ``--frames`` long; clip ``i`` is a pure function of
``(--seed, i)``, whatever ``--workers``. Train from it with ``scripts/train.py --clips DIR``::

    python scripts/pack_video_clips.py --out out/clips --count 20000 --size 96 --frames 5 --workers 16

Size: about ``count * (frames + 1) * size^2 * 3`` bytes (20,000 clips of 5 frames at 96 px: 1.1 GB).
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import sys
import time
from pathlib import Path

import numpy as np

_HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(_HERE.parent))
sys.path.insert(0, str(_HERE))

import train  # noqa: E402  (scripts/train.py: the same clip maker as on-the-fly training)

from vsjpegfix.training.clip_pack import write_pack  # noqa: E402
from vsjpegfix.training.degrade_video import CODECS, QP_RANGE  # noqa: E402

_IMAGES: list[np.ndarray] = []


def _init(paths: list[Path], min_side: int) -> None:
    global _IMAGES
    _IMAGES = train.load_images(paths, 3, min_side)


def _make(job: tuple[int, int, int, int, tuple[str, ...], float]):
    seed, i, size, frames, codecs, intra = job
    rng = np.random.default_rng([seed, i])
    img = _IMAGES[int(rng.integers(len(_IMAGES)))]
    deg, clean, label = train.make_clip_sample(img, rng, size, frames, codecs, intra)
    return i, deg, clean, label


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--train", type=Path, default=_HERE.parent.parent / "shared" / "data" / "images" / "train",
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
    paths = train.list_images(args.train)
    min_side = train.clip_min_side(args.size)
    t0 = time.perf_counter()
    n, t, s = args.count, args.frames, args.size
    degraded = np.zeros((n, t, s, s, 3), np.uint8)
    clean = np.zeros((n, s, s, 3), np.uint8)
    label = np.zeros(n, np.float32)
    jobs = [(args.seed, i, s, t, args.codecs, args.intra_fraction) for i in range(n)]
    with contextlib.ExitStack() as stack:
        if args.workers == 1:
            _init(paths, min_side)
            results = map(_make, jobs)
        else:  # spawned, not forked: forking a process whose OpenMP threads are running can deadlock
            pool = stack.enter_context(
                multiprocessing.get_context("spawn").Pool(args.workers, initializer=_init, initargs=(paths, min_side))
            )
            results = pool.imap_unordered(_make, jobs, chunksize=8)
        for done, (i, d, c, lab) in enumerate(results, 1):
            degraded[i], clean[i], label[i] = d, c, lab
            if done % max(1, n // 20) == 0:
                print(f"[pack] {done}/{n} clips, {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    write_pack(args.out, degraded, clean, label, {
        "source": str(args.train), "codecs": list(args.codecs), "qp_range": list(QP_RANGE),
        "intra_fraction": args.intra_fraction, "seed": args.seed, "seconds": round(time.perf_counter() - t0, 1),
    })
    print(f"[pack] {n} clips of {t}x{s}x{s} in {args.out} ({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
