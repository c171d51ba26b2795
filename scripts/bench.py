#!/usr/bin/env python3
"""Benchmark the restoration models: size, compute per frame, engine throughput and memory.

For each model (default: the official-size FBCNN, a compact FBCNN ``fbcnn-s``, ARCNN and
Fast ARCNN, all with random weights: only the architecture matters for speed) and each
resolution (default 480p = 854x480, 720p, 1080p) it reports

* parameters;
* GFLOP per frame, counted with :class:`torch.utils.flop_counter.FlopCounterMode` on the
  ``meta`` device (no compute is spent) and cross-checked against an analytic count of the
  convolutions and linear layers (1 multiply-accumulate = 2 FLOP; activations, biases,
  element-wise additions, padding and colour conversion are not counted), and the TFLOP/s
  that 30 fps video needs;
* measured throughput of :meth:`vsjpegfix.engine.core.Engine.restore` on YUV 4:2:0 8-bit frames
  (frames per second, warm-up excluded), within a per-case time budget: when a frame would not
  fit the budget, the time per frame is estimated from a smaller run and the case is reported
  as ``skipped (est. N s/frame)``;
* achieved TFLOP/s (GFLOP per frame x fps) and, when the device's peak is known (built-in table
  for a few NVIDIA GPUs, or ``--peak-tflops``), the fraction of that peak;
* peak memory: on CUDA ``torch.cuda.max_memory_allocated``; on the CPU the increase of the peak
  RSS (``ru_maxrss``) of a child process that runs only that case.

Every case runs in a child process of this script (``bench.py --single MODEL --resolution
WxH ...``), which keeps memory figures per case and lets the parent kill a case that overruns
its budget, so the benchmark never hangs.

``--rule-overhead`` measures instead what a model's content-adaptive strength rule costs the engine
per frame (:mod:`vsjpegfix.training.bench_rule`: the shipped model, default ``arcnn``, on the CPU at
the first resolution, default 720p, with and without its rule, interleaved).

Examples::

    python scripts/bench.py                                   # full table on the default device
    python scripts/bench.py --device cpu --budget 10 --json bench.json
    python scripts/bench.py --models fastarcnn arcnn --resolutions 720p 1920x1080 --device cuda \\
        --precision fp16 --batch-size 4
    python scripts/bench.py --rule-overhead --frames 4             # arcnn at 720p on the CPU, with vs without its rule

The work is done by :mod:`vsjpegfix.training.bench_report` (the whole run and its report),
:mod:`vsjpegfix.training.bench_engine` (one case, in a child process) and
:mod:`vsjpegfix.training.bench_flops` (FLOP counts); this script parses the options and prints.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

_REPO = Path(__file__).resolve().parent.parent
if str(_REPO) not in sys.path:
    sys.path.insert(0, str(_REPO))

from vsjpegfix.engine.device import EngineError  # noqa: E402
from vsjpegfix.training.bench_engine import RESULT_MARKER, CaseSettings, measure_case, parse_resolution  # noqa: E402
from vsjpegfix.training.bench_flops import DEFAULT_MODELS  # noqa: E402
from vsjpegfix.training.bench_report import run_benchmark  # noqa: E402
from vsjpegfix.training.errors import TrainingError  # noqa: E402
from vsjpegfix.weights.store import WeightsError  # noqa: E402

DEFAULT_RESOLUTIONS = ("480p", "720p", "1080p")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS), help=f"models to benchmark (default: {' '.join(DEFAULT_MODELS)})")
    p.add_argument("--resolutions", nargs="+", default=list(DEFAULT_RESOLUTIONS), help="WxH or presets like 480p (854x480), 720p, 1080p (default: 480p 720p 1080p)")
    p.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda or cuda:N")
    p.add_argument("--precision", default="auto", help="auto (fp16 on CUDA, fp32 on CPU), fp32, fp16 or bf16")
    p.add_argument("--batch-size", type=int, default=1, help="frames per model call (default 1)")
    p.add_argument("--frames", type=int, default=8, help="frames to time per case, after warm-up (default 8; rounded up to whole batches)")
    p.add_argument("--budget", type=float, default=20.0, help="seconds per case for probing, warm-up and timing (default 20)")
    p.add_argument("--threads", type=int, default=0, help="torch intra-op threads (default: torch's choice)")
    p.add_argument("--tile", type=int, default=0, help="engine tile size in pixels (default 0: whole frames)")
    p.add_argument("--content", choices=("photo", "random"), default="photo", help="frame content: upscaled skimage photo or noise")
    p.add_argument("--peak-tflops", type=float, default=None, help="device peak TFLOP/s for the '%% of peak' column (default: built-in table for some GPUs)")
    p.add_argument("--rule-overhead", action="store_true",
                   help="measure the strength rule's cost instead: a shipped model (default arcnn) at the first resolution "
                        "(default 720p) on the CPU, --frames frames with and without its rule")
    p.add_argument("--json", type=Path, default=None, metavar="PATH", help="also write the results as JSON")
    p.add_argument("--single", metavar="MODEL", help=argparse.SUPPRESS)  # child mode: one case
    p.add_argument("--resolution", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.batch_size < 1 or args.frames < 1 or args.budget <= 0 or args.threads < 0:
        p.error("--batch-size and --frames must be >= 1, --budget > 0, --threads >= 0")
    try:
        args.parsed_resolutions = [parse_resolution(r) for r in args.resolutions]
    except TrainingError as exc:
        p.error(str(exc))
    return args


def rule_overhead_main(args: argparse.Namespace) -> int:
    """``--rule-overhead``: the rule's cost per frame (Markdown on stdout, JSON with ``--json``)."""
    from vsjpegfix.training.bench_rule import overhead_markdown, rule_overhead

    model = args.models[0] if args.models != list(DEFAULT_MODELS) else "arcnn"
    resolution = args.resolutions[0] if args.resolutions != list(DEFAULT_RESOLUTIONS) else "720p"
    try:
        result = rule_overhead(model, resolution, args.frames, threads=args.threads)
    except (EngineError, TrainingError, WeightsError) as exc:
        raise SystemExit(f"bench: {exc}") from None
    print(overhead_markdown(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: the full benchmark, or one case with ``--single``."""
    args = parse_args(argv)
    if args.rule_overhead:
        return rule_overhead_main(args)
    settings = CaseSettings(precision=args.precision, batch_size=args.batch_size, frames=args.frames, budget=args.budget,
                            threads=args.threads, tile=args.tile, content=args.content)
    try:
        if args.single:  # one case in this process (what the child processes do)
            print(RESULT_MARKER + json.dumps(measure_case(args.single, args.resolution, args.device, settings)), flush=True)
            return 0
        result = run_benchmark(args.models, args.parsed_resolutions, args.device, settings, args.peak_tflops)
    except (EngineError, TrainingError) as exc:
        raise SystemExit(f"bench: {exc}") from None
    print(result.markdown())
    if args.json:
        args.json.write_text(json.dumps(result.report, indent=2) + "\n", encoding="utf-8")
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
