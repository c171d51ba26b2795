#!/usr/bin/env python3
"""Fit a model's content-adaptive strength rule on the video set: one command, on the CPU.

    python scripts/fit_strength.py                        # build the cache if needed, fit arcnn, print the held-out table
    python scripts/fit_strength.py --write-manifest       # ... and store the rule in weights/manifest.json

Steps (every result cached under ``--cache``, outside the repository; a rerun only computes what is
missing): the sequences of ``--video-dir`` (default ``../shared/data/video``) cropped, encoded with
libx264/libx265 at QP 22/27/32/37/42 and CRF 18/23/28 and restored by the model
(:mod:`vsjpegfix.training.video_set`, ``--workers`` processes); the rule (frame level, the terms of
the shipped rule, run-time features) fitted per codec with a safety margin chosen by leave-one-
sequence-out, and scored with that whole procedure nested in a second leave-one-sequence-out
(:mod:`vsjpegfix.training.strength_fit`). Prints the held-out table (Markdown) on stdout, progress on
stderr. ``--write-manifest`` stores the rule fitted on every sequence as ``quality_profile.predictor``
of the model (atomically; refused when the weights file is not the one the manifest names).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Sequence

_REPO = Path(__file__).resolve().parent.parent
if str(_REPO) not in sys.path:
    sys.path.insert(0, str(_REPO))

from vsjpegfix.engine.device import EngineError  # noqa: E402
from vsjpegfix.training.errors import TrainingError  # noqa: E402
from vsjpegfix.training.video_set import CODECS, POINTS, parse_points  # noqa: E402
from vsjpegfix.weights.store import WeightsError, read_manifest, sha256_file, shipped_dir  # noqa: E402

DEFAULT_VIDEO = _REPO.parent / "shared" / "data" / "video"
DEFAULT_CACHE = Path(os.environ.get("VSJPEGFIX_VIDEO_SET_CACHE", Path.home() / ".cache" / "vsjpegfix" / "video_set"))


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--video-dir", type=Path, default=DEFAULT_VIDEO, help=f"clean sequences (default {DEFAULT_VIDEO})")
    p.add_argument("--cache", type=Path, default=DEFAULT_CACHE,
                   help="cache folder (default $VSJPEGFIX_VIDEO_SET_CACHE or ~/.cache/vsjpegfix/video_set)")
    p.add_argument("--model", default="arcnn", help="shipped model whose rule is fitted (default arcnn)")
    p.add_argument("--sequences", nargs="+", default=None, help="file stems of --video-dir (default: all)")
    p.add_argument("--crop", type=int, default=256, help="centred crop, at most NxN (default 256)")
    p.add_argument("--frames", type=int, default=20, help="frames encoded per sequence (default 20)")
    p.add_argument("--eval-frames", type=int, default=8, help="frames restored and scored per encode (default 8)")
    p.add_argument("--codecs", nargs="+", choices=CODECS, default=list(CODECS), help="encoders (default both)")
    p.add_argument("--points", nargs="+", default=None, metavar="POINT",
                   help="rate-control points like qp37 crf23 (default: QP 22 27 32 37 42, CRF 18 23 28)")
    p.add_argument("--workers", type=int, default=2, help="processes that build the cache (default 2)")
    p.add_argument("--threads", type=int, default=1, help="torch threads of the fit (default 1: fastest on a busy CPU)")
    p.add_argument("--write-manifest", action="store_true", help="store the rule in the weights manifest")
    p.add_argument("--json", type=Path, default=None, help="write the held-out report and the rules as JSON")
    p.add_argument("--markdown", type=Path, default=None, help="write the Markdown table to a file too")
    args = p.parse_args(argv)
    if min(args.crop, args.frames, args.eval_frames, args.workers, args.threads) < 1:
        p.error("--crop, --frames, --eval-frames, --workers and --threads must be >= 1")
    try:
        args.points = parse_points(args.points) if args.points else None
    except TrainingError as exc:
        p.error(str(exc))
    return args


def run(args: argparse.Namespace) -> int:
    import torch

    from vsjpegfix.training import strength_fit, strength_rule, video_set, video_set_build

    torch.set_num_threads(args.threads)
    entry = read_manifest().get(args.model)
    if entry is None or entry.quality_profile is None:
        raise TrainingError(f"{args.model} is not a shipped model with a quality profile")
    sha = sha256_file(shipped_dir() / entry.file) if (shipped_dir() / entry.file).is_file() else "missing"
    if sha != entry.sha256:  # the rule belongs to the weights the manifest names
        raise TrainingError(f"{shipped_dir() / entry.file}: sha256 {sha[:12]}, the manifest names {entry.sha256[:12]}")
    cfg = video_set.VideoSetConfig(args.video_dir, args.cache, crop=args.crop, enc_frames=args.frames,
                                   eval_frames=args.eval_frames, sequences=tuple(args.sequences) if args.sequences else None,
                                   codecs=tuple(args.codecs), points=args.points or POINTS)
    t0 = time.perf_counter()
    log(f"cache {cfg.root}: building what is missing ({args.workers} processes)")
    video_set_build.build(cfg, [args.model], classical=False, workers=args.workers, log=log)
    log(f"cache ready ({time.perf_counter() - t0:.0f} s)")
    encodes = video_set_build.load_set(cfg, [args.model])
    t1 = time.perf_counter()
    held = strength_fit.held_out_rules(encodes, args.model)
    log(f"leave-one-sequence-out rules with nested margins ({time.perf_counter() - t1:.0f} s)")
    final = strength_fit.final_rules(encodes, args.model)
    engine = video_set_build.engine_for(args.model)
    profile = engine.quality_profile
    report = strength_rule.held_out_report(encodes, args.model, held, profile)
    report["strength_vs_manifest"] = strength_rule.strength_differences(encodes, args.model, final, profile.predictor)
    markdown = strength_rule.report_markdown(report, final, profile.predictor if profile is not None else None)
    seconds = time.perf_counter() - t0
    markdown += f"\nTotal time: {seconds:.0f} s (cache {cfg.root}).\n"
    sys.stdout.write(markdown)
    sys.stdout.flush()
    if args.markdown:
        args.markdown.write_text(markdown, encoding="utf-8")
    sequences = len({e.seq for e in encodes if not e.extra})
    note = strength_rule.calibration_note(cfg, sha, sequences)
    if args.json:
        payload = {"config": {"video_dir": str(cfg.video_dir), "cache": str(cfg.root), "crop": cfg.crop, "frames": cfg.enc_frames,
                              "eval_frames": cfg.frame_indices().tolist()}, "seconds": seconds, "calibration": note,
                   "final": {c: r.as_dict() for c, r in final.items()}, **report}
        args.json.write_text(json.dumps(payload, indent=1), encoding="utf-8")
    if args.write_manifest:
        path = strength_rule.write_rule(args.model, final, note)
        log(f"rule of {args.model} written to {path}")
    log(f"done in {seconds:.0f} s")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return run(args)
    except (TrainingError, WeightsError, EngineError) as exc:
        raise SystemExit(f"error: {exc}") from None


if __name__ == "__main__":
    raise SystemExit(main())
