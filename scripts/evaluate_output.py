#!/usr/bin/env python3
"""Evaluate how much of the restoration survives the output encoder (the default CRF vs lossless vs CRF 16).

The video validation set's sequences (centred crops) through libx264 at constant QPs, restored by
``vsjpegfix.video.transcode.transcode`` with the default model into FFV1, the default libx264 output and
a fixed CRF 16 (:mod:`vsjpegfix.training.evaluation.output_tables`); prints a Markdown table.

    python scripts/evaluate_output.py --json runs/output.json
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
from vsjpegfix.training.evaluation.output_tables import output_markdown, output_rows  # noqa: E402
from vsjpegfix.weights.store import default_model_name  # noqa: E402


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--videos", type=Path, default=_REPO.parent / "shared" / "data" / "video", help="folder of clean .mkv sequences")
    p.add_argument("--qps", type=int, nargs="+", default=[22, 27, 32, 37], help="x264 constant QPs of the inputs")
    p.add_argument("--frames", type=int, default=12, help="first frames of each sequence (default 12)")
    p.add_argument("--crop", type=int, default=256, help="centred crop (default 256)")
    p.add_argument("--limit", type=int, default=None, help="first N sequences only")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    p.add_argument("--json", type=Path, default=None, help="also write the rows as JSON")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    paths = sorted(a.videos.glob("*.mkv"))[: a.limit]
    if not paths:
        raise SystemExit(f"evaluate_output: no .mkv sequences in {a.videos}")
    started = time.perf_counter()
    engine = Engine(default_model_name("video-qp"), device="cpu")
    rows = output_rows(paths, engine, a.qps, frames=a.frames, crop=a.crop)
    print(output_markdown(rows))
    print(f"\n{len(paths)} sequences, {a.frames} frames, crops <= {a.crop}, model {default_model_name('video-qp')}, "
          f"{(time.perf_counter() - started) / 60:.1f} min on the CPU")
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
