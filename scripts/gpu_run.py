#!/usr/bin/env python3
"""The one GPU run (issue #20): engine speed (stage 1) and continued training (stage 2), unattended, <= 9 minutes.

Launch it with the device tool (docs/gpu_run.md has the details). Build the data here first, once::

    .venv/bin/python scripts/gpu_run.py build-data          # -> gpu_data/ (git-ignored; ~23 MiB, checked to fit)

then one call of the device tool's ``run``::

    command:   python3 scripts/gpu_run.py --out "$OUT"
    carry:     ["gpu_data"]
    timeout_s: 600              (the script keeps itself within --budget 540 s)

What travels, what comes back (run.log, results.json, continued weights, checkpoint, curves.png) and the
three stages (bench main, bench compile, continued training of ``--model``) are described in docs/gpu_run.md.

Dry run on the CPU with tiny sizes (tests/scripts/test_gpu_run.py)::

    python scripts/gpu_run.py build-data --tiny --out /tmp/d && python scripts/gpu_run.py --dry-run --data /tmp/d --out /tmp/o
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

SHARED = REPO.parent / "shared" / "data"
TRANSFER_LIMIT = 64 * 2**20


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, required=True, help="output folder (the device tool's $OUT)")
    p.add_argument("--data", type=Path, default=REPO / "gpu_data", help="folder made by build-data")
    p.add_argument("--model", default="arcnn", help="shipped model to continue training (arcnn, fastarcnn, fbcnn-s-video, ...)")
    p.add_argument("--control", choices=["blind", "qp"], default="blind", help="FBCNN: predict quality, or take the clip's QP")
    p.add_argument("--budget", type=float, default=540.0, help="seconds for the whole run")
    p.add_argument("--bench-seconds", type=float, default=150.0, help="seconds for stage 1 (both phases)")
    p.add_argument("--bench-main-seconds", type=float, default=80.0)
    p.add_argument("--dry-run", action="store_true", help="CPU, tiny sizes, a few seconds per stage")
    a = p.parse_args(argv)
    if a.out == Path("."):
        p.error("--out is empty or the current folder ($OUT not set?)")
    a.out.mkdir(parents=True, exist_ok=True)
    if a.dry_run:
        a.device, a.size, a.big, a.tile, a.precisions, a.case_seconds = "cpu", "64x48", "96x64", 64, "fp32", 0.05
        a.compile_models, a.compile_modes, a.train_seconds, a.every = "fastarcnn", "default", 6.0, 2.0
        a.budget, a.bench_seconds, a.bench_main_seconds, a.batch = min(a.budget, 300), 150, 60, 4
    else:
        a.device, a.size, a.big, a.tile, a.precisions, a.case_seconds = "cuda", "1920x1080", "3840x2160", 1024, "fp16,bf16", 0.5
        a.compile_models, a.compile_modes, a.train_seconds, a.every, a.batch = "", "", 0.0, 0.0, 0
    return a


def run(argv: list[str]) -> int:
    from vsjpegfix.training.gpu_cases import MODELS
    from vsjpegfix.training.gpu_stages import RunLog, gpu_snapshot, merge_results, plot_curves, run_stage

    a, t0 = parse(argv), time.time()
    log = RunLog(a.out / "run.log", t0)
    me = [sys.executable, str(Path(__file__).resolve()), "stage"]
    log(f"gpu_run: budget {a.budget:.0f} s, data {a.data}, model {a.model}, dry run {a.dry_run}; GPU: {gpu_snapshot()}")
    try:
        from PIL import features

        log(f"Pillow WebP support (the data's format): {features.check('webp')}")
    except ImportError as exc:
        log(f"Pillow missing: {exc}")
    bundle = a.data / "bundle.json"
    log(f"data: {bundle.read_text() if bundle.is_file() else 'MISSING: run build-data first'}")
    common = ["--data", str(a.data), "--device", a.device]
    bench = [*common, "--out-json", str(a.out / "bench.json"), "--size", a.size, "--big", a.big, "--tile", str(a.tile),
             "--precisions", a.precisions, "--seconds", str(a.case_seconds)]
    stages = []
    left = lambda: a.budget - (time.time() - t0)  # noqa: E731
    bench_end = t0 + min(a.bench_seconds, a.budget)
    main_end = t0 + min(a.bench_main_seconds, a.bench_seconds)
    stages.append(run_stage("bench-main", me + ["bench", "--phase", "main", "--deadline", str(main_end), *bench],
                            main_end - time.time() + 15, log))
    stages.append(run_stage("bench-compile", me + ["bench", "--phase", "compile", "--deadline", str(bench_end), *bench,
                                                   "--models", a.compile_models or ",".join(MODELS), "--modes", a.compile_modes],
                            bench_end - time.time() + 15, log))
    limit = left() - 20  # 20 s for merging and plotting
    seconds = a.train_seconds or max(10.0, limit - 50)  # ~50 s of the stage: start-up, data, validation, export
    every = a.every or 60.0
    stages.append(run_stage("train", me + ["train", *common, "--out", str(a.out), "--model", a.model, "--control", a.control,
                                           "--seconds", str(seconds), "--checkpoint-every", str(every),
                                           "--val-every", str(every / 2), "--log-every", str(every / 12),
                                           "--batch", str(a.batch)], limit, log))
    train = json.loads((a.out / "train.json").read_text()) if (a.out / "train.json").is_file() else None
    drawn = False
    try:
        drawn = plot_curves(train, a.out / "curves.png")
    except Exception as exc:  # noqa: BLE001  (a plot is not worth losing the results)
        log(f"curves.png failed: {exc}")
    run_info = {"argv": argv, "budget_s": a.budget, "seconds": round(time.time() - t0, 1), "stages": stages,
                "curves_png": drawn, "gpu": gpu_snapshot()}
    merged = merge_results(a.out, run_info)
    files = sorted(p.name for p in a.out.iterdir() if not p.name.startswith("."))
    log(f"gpu_run: done in {time.time() - t0:.0f} s; {merged.name}; files: {files}")
    log("headline: " + json.dumps(json.loads(merged.read_text())["headline"], default=str))
    return 0 if all(s["status"] == "ok" for s in stages) else 1


def stage(argv: list[str]) -> int:
    """Child side: ``stage bench ...`` or ``stage train ...`` (run by :func:`run`)."""
    import torch

    p = argparse.ArgumentParser(prog="gpu_run.py stage")
    p.add_argument("which", choices=["bench", "train"])
    for name, default in (("--data", None), ("--device", "cuda"), ("--out-json", None), ("--phase", "main"), ("--size", "1920x1080"),
                          ("--big", "3840x2160"), ("--precisions", "fp16,bf16"), ("--models", ""), ("--modes", ""), ("--out", None),
                          ("--model", "arcnn"), ("--control", "blind")):
        p.add_argument(name, default=default)
    for name, default in (("--deadline", 0.0), ("--tile", 1024), ("--seconds", 1.0), ("--checkpoint-every", 60.0),
                          ("--val-every", 30.0), ("--log-every", 5.0), ("--batch", 0)):
        p.add_argument(name, type=type(default), default=default)
    a = p.parse_args(argv)
    if a.device == "cpu":
        torch.set_num_threads(1)  # the dry run shares a small machine
    log = lambda line: print(line, flush=True)  # noqa: E731  (the parent timestamps and files it)
    if a.which == "train":
        from vsjpegfix.training.gpu_train import train_stage

        train_stage(Path(a.data), Path(a.out), model_name=a.model, seconds=a.seconds, device=a.device, batch=a.batch or None,
                    control=a.control, checkpoint_every=a.checkpoint_every, val_every=a.val_every, log_every=a.log_every, log=log)
        return 0
    from vsjpegfix.training.gpu_bench import bench_stage
    from vsjpegfix.training.gpu_cases import MODELS

    size = lambda s: tuple(int(v) for v in s.split("x"))  # noqa: E731
    split = lambda s: [v for v in s.split(",") if v]  # noqa: E731
    bench_stage(Path(a.data), Path(a.out_json), a.device, a.phase, a.deadline, size(a.size), size(a.big), a.tile,
                split(a.precisions), a.seconds, split(a.models) or MODELS, split(a.modes) or None, log)
    return 0


def build_data(argv: list[str]) -> int:
    """``build-data``: code the clips (PyAV, here) into the folder that travels; refuse it if the transfer would not fit."""
    from vsjpegfix.training.errors import TrainingError
    from vsjpegfix.training.gpu_data import BundleSpec, build_bundle, transfer_bytes

    p = argparse.ArgumentParser(prog="gpu_run.py build-data")
    p.add_argument("--out", type=Path, default=REPO / "gpu_data")
    p.add_argument("--images", type=Path, default=SHARED / "images" / "train")
    p.add_argument("--val-images", type=Path, default=SHARED / "images" / "val" / "cbsd68")
    p.add_argument("--videos", type=Path, default=SHARED / "video")
    p.add_argument("--tiny", action="store_true", help="a few small samples (the dry run's data)")
    p.add_argument("--test-videos", default=None, help="comma-separated names (without .mkv) of --videos for held-out clips")
    p.add_argument("--frame-videos", default=None, help="comma-separated names (without .mkv) of --videos for whole real frames")
    a = p.parse_args(argv)
    if (a.out / "bundle.json").exists():
        raise SystemExit(f"error: {a.out} already holds a bundle; remove it first")
    spec = BundleSpec(train_count=12, val_count=4, val_size=64, test_crop=64, test_videos=("talkinghead_384x384_60f",),
                      frame_videos=("spmcs_amvtg004_lr_240x134_31f",), frames_per_video=1) if a.tiny else BundleSpec()
    names = {k: tuple(v.split(",")) for k, v in (("test_videos", a.test_videos), ("frame_videos", a.frame_videos)) if v}
    spec = dataclasses.replace(spec, **names)
    try:
        build_bundle(a.out, a.images, a.val_images, a.videos, spec, log=lambda s: print(s, file=sys.stderr))
    except (OSError, TrainingError) as exc:
        raise SystemExit(f"error: {exc}") from None
    tree, data = transfer_bytes(REPO, a.out)
    print(f"transfer: tree {tree / 2**20:.1f} MiB + data {data / 2**20:.1f} MiB = {(tree + data) / 2**20:.1f} MiB of 64",
          file=sys.stderr)
    if tree + data > TRANSFER_LIMIT:
        raise SystemExit(f"error: {(tree + data) / 2**20:.1f} MiB would not travel (limit 64 MiB); build fewer training samples")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["build-data"]:
        return build_data(argv[1:])
    if argv[:1] == ["stage"]:
        return stage(argv[1:])
    return run(argv)


if __name__ == "__main__":
    raise SystemExit(main())
