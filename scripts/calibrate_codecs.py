#!/usr/bin/env python3
"""Calibrate the archive codecs' quantisers (MPEG-2, MPEG-4 Part 2, MJPEG, VP9) onto the H.264 QP scale.

For each codec and fixed quantiser, clips of training stills are encoded by FFmpeg's encoder and the
model restores them at the profile setting of every candidate H.264 QP; the QP that restores best is
the codec value's equivalent (:mod:`vsjpegfix.training.codec_calibration`). The tables go to
``vsjpegfix/quantisers/codec_qp.json`` with ``--write-table`` (the one the transcoder and the
VapourSynth filters read), the full report to ``--out``. CPU, about 10 minutes for ``arcnn``.

    python scripts/calibrate_codecs.py --codec mpeg2video mpeg4 mjpeg vp9 --model arcnn --out codecs.json --write-table
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Sequence

import torch

_REPO = Path(__file__).resolve().parent.parent
if str(_REPO) not in sys.path:
    sys.path.insert(0, str(_REPO))

from vsjpegfix.engine.core import Engine  # noqa: E402
from vsjpegfix.engine.device import EngineError  # noqa: E402
from vsjpegfix.frames.safe_write import atomic_output  # noqa: E402
from vsjpegfix.quantisers.mapping import CODEC_TABLE_PATH  # noqa: E402
from vsjpegfix.training.calibration_data import load_images, still_clips  # noqa: E402
from vsjpegfix.training.codec_calibration import CODEC_SETTINGS, calibrate_codecs  # noqa: E402
from vsjpegfix.training.errors import TrainingError  # noqa: E402
from vsjpegfix.weights.store import WeightsError, read_manifest  # noqa: E402


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--codec", nargs="+", choices=sorted(CODEC_SETTINGS), default=sorted(CODEC_SETTINGS))
    p.add_argument("--model", default="arcnn", help="shipped model whose H.264 profile is matched (default arcnn)")
    p.add_argument("--images", type=Path, default=_REPO.parent / "shared" / "data" / "images" / "train")
    p.add_argument("--count", type=int, default=8, help="training images to use (default 8)")
    p.add_argument("--size", type=int, default=96, help="clip size in pixels (default 96)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    p.add_argument("--out", type=Path, default=None, help="JSON report (default: stdout)")
    p.add_argument("--write-table", action="store_true", help=f"merge the tables into {CODEC_TABLE_PATH.name}")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        manifest = read_manifest()
        engine = Engine(args.model, device="cpu", precision="fp32")
        images = load_images(args.images, args.count, args.seed)
        clips = still_clips(images, args.size, args.seed)
        sha = manifest[args.model].sha256[:12] if args.model in manifest else "?"
        note = (f"scripts/calibrate_codecs.py --model {args.model} (weights {sha}), {len(images)} training images, "
                f"{args.size}px, seed {args.seed}, {time.strftime('%Y-%m-%d')}")
        tables = calibrate_codecs(args.codec, clips, engine, note)
    except (TrainingError, WeightsError, EngineError, RuntimeError, ValueError) as exc:
        raise SystemExit(f"calibrate_codecs: {exc}") from None
    text = json.dumps(tables, indent=2)
    if args.out:
        args.out.write_text(text + "\n")
    else:
        print(text)
    if args.write_table:
        current = json.loads(CODEC_TABLE_PATH.read_text()) if CODEC_TABLE_PATH.exists() else {}
        current.update({k: {"model": v["model"], "calibration": v["calibration"], "points": v["points"]} for k, v in tables.items()})
        with atomic_output(CODEC_TABLE_PATH, overwrite=True) as tmp:
            tmp.write_text(json.dumps(current, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
