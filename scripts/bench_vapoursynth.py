#!/usr/bin/env python3
"""Benchmark: the VapourSynth plugin under ``vspipe`` against the engine alone, on the same frames.

(a) engine: frames/s of ``Engine.restore`` over 1280x720 YUV420P8 frames of real content, read
into memory beforehand, in a fresh process; (b) vspipe: a ``.vpy`` script running
``vsjpegfix.fastarcnn`` on the same source graph. The ratio (b) / (a) is the plugin's efficiency
(target: >= 90%). How each side is timed is documented in :mod:`vsjpegfix.vapoursynth.bench`,
which does the work (benchmark code of the plugin's layer: it drives the plugin through vspipe);
this script parses the options and prints.

Usage: python scripts/bench_vapoursynth.py [--frames 24] [--threads N] [--num-streams 1]
       [--batch-size 1] [--weights PATH_OR_NAME] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from vsjpegfix.vapoursynth.bench import BenchError, measure, prepare_engine  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=24, help="frames to restore (default 24)")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch and VapourSynth threads (default: all CPUs)")
    ap.add_argument("--num-streams", type=int, default=1, help="plugin num_streams (default 1)")
    ap.add_argument("--batch-size", type=int, default=1, help="frames per model call, both sides (default 1)")
    ap.add_argument("--weights", help="Fast ARCNN weights (path or shipped name); default shipped or random")
    ap.add_argument("--json", action="store_true", help="print the results as JSON")
    ap.add_argument("--engine-only", action="store_true", help=argparse.SUPPRESS)  # child process: time the engine
    ap.add_argument("--cache", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.frames < 2:
        ap.error("--frames must be at least 2")
    if args.engine_only:
        measure_fps, content = prepare_engine(args.weights, args.frames, args.threads, args.batch_size, args.cache)
        print(json.dumps({"main": measure_fps("main"), "worker": measure_fps("worker"), "content": content}))
        return 0
    try:
        bench = measure(args.frames, args.threads, args.num_streams, args.batch_size, args.weights)
    except BenchError as exc:
        raise SystemExit(str(exc)) from None
    print(json.dumps(bench.result, indent=2) if args.json else "\n".join(bench.lines()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
