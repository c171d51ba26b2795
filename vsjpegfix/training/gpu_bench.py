"""Stage 1 of the GPU run (``scripts/gpu_run.py``): engine speed per model, precision, batch and speed option.

Every case runs :meth:`vsjpegfix.engine.core.Engine.restore_iter` end to end on YUV 4:2:0 8-bit frames
held in host memory (upload, colour conversion, model, correction, download), frames made by resizing
real decoded footage (``frames.npz`` of :mod:`vsjpegfix.training.gpu_data`) to the case's size. A
case reports frames per second after its warm-up (compilation and graph capture included there,
and timed separately), achieved TFLOP/s (model FLOP per frame, counted by
:class:`torch.utils.flop_counter.FlopCounterMode` on the meta device, x fps) and the fraction of
:data:`~vsjpegfix.training.gpu_cases.PEAK_TFLOPS`, peak GPU memory, and how far its output is from the eager engine's at the same
precision (PSNR over all planes; identical output is reported as ``inf``).

Per model, fp16 and bf16 eager output are also compared with fp32 on the real frames at their own
sizes (:func:`precision_check`); a setting counts as correct when both its precision and its
output against eager reach 50 dB; :func:`~vsjpegfix.training.gpu_cases.best_settings` names the fastest correct
setting per model at the main size, which is what the engine defaults can be set from (the
official-size FBCNN has random weights, its checkpoint being too large to travel: its precision
is judged by the compact FBCNN's check).

Results are rewritten to one JSON file after every case, so a stage that is stopped keeps what it
measured; a case that fails or is refused is recorded with its one-line error and the next runs.
"""

from __future__ import annotations

import copy
import itertools
import json
import math
import os
import time
import traceback
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vsjpegfix.engine.colour import PlaneFormat
from vsjpegfix.engine.core import Engine
from vsjpegfix.models import ARCHITECTURES, build_model, count_parameters
from vsjpegfix.training.errors import TrainingError
from vsjpegfix.training.gpu_cases import (
    MIN_PSNR_DB,
    MODELS,
    PEAK_TFLOPS,
    TARGET_FPS,
    Case,
    best_settings,
    plan,
)
from vsjpegfix.training.gpu_data import SampleSet

FORMAT = PlaneFormat("yuv", 8, subsampling=(1, 1), matrix="bt709")  # what a decoder gives the engine


# ------------------------------------------------------------------------------------ models, frames, FLOP


def load_bench_model(name: str) -> nn.Module:
    """The model to time: shipped weights by name, except ``fbcnn`` (official size, random weights:
    its 288 MB checkpoint does not travel; only the architecture matters for speed)."""
    if name == "fbcnn":
        torch.manual_seed(0)
        return build_model("fbcnn", {}).eval()
    from vsjpegfix.weights.store import load_model

    return load_model(name)


def arch_of(model: nn.Module) -> str:
    """Registry name of a model's architecture."""
    for name, spec in ARCHITECTURES.items():
        if type(model) is spec.cls:
            return name
    raise TrainingError(f"{type(model).__name__} is not a registered architecture")


def flops_per_frame(model: nn.Module, width: int, height: int) -> int:
    """FLOP of one model call on one ``width`` x ``height`` frame (1 multiply-accumulate = 2), counted on meta
    (:func:`vsjpegfix.training.bench_flops.counted_call_flops`)."""
    from vsjpegfix.training.bench_flops import counted_call_flops

    with torch.device("meta"):
        meta = build_model(arch_of(model), model.config).eval()
    return counted_call_flops(meta, width, height)


def resize_frames(frames: SampleSet, width: int, height: int) -> list[list[np.ndarray]]:
    """Every frame of ``frames`` resized (bilinear) to ``width`` x ``height``, as 4:2:0 planes."""
    out = []
    for planes in zip(frames.y, frames.u, frames.v):
        sized = []
        for i, p in enumerate(planes):
            size = (height, width) if i == 0 else (height // 2, width // 2)
            x = torch.from_numpy(p).float()[None, None]
            sized.append(F.interpolate(x, size=size, mode="bilinear", align_corners=False).round().clamp(0, 255)
                         .byte()[0, 0].numpy())
        out.append(sized)
    return out


def calls_for(frames: list[list[np.ndarray]], batch: int) -> list[list[np.ndarray]]:
    """Engine calls of ``batch`` frames each, cycling through ``frames`` (call 0 starts with frame 0)."""
    n = max(1, len(frames) // batch) if len(frames) >= batch else 1
    cycle = itertools.cycle(frames)
    return [[np.stack(p) for p in zip(*[next(cycle) for _ in range(batch)])] for _ in range(n)]


def plane_psnr(a: Sequence[np.ndarray], b: Sequence[np.ndarray]) -> tuple[float, int]:
    """PSNR (8-bit peak) over all planes of ``a`` against ``b`` (``inf`` when identical), and the largest difference."""
    diffs = [np.abs(x.astype(np.float64) - y.astype(np.float64)) for x, y in zip(a, b)]
    mse = sum(float((d**2).sum()) for d in diffs) / sum(d.size for d in diffs)
    return (math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)), int(max(d.max() for d in diffs))


# ------------------------------------------------------------------------------------------------ measuring


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_engine(engine: Engine, calls: list, seconds: float, min_calls: int, warmup: int) -> dict[str, Any]:
    """Warm up (``warmup`` calls), then run calls through :meth:`Engine.restore_iter` for ``seconds``
    (at least ``min_calls``); returns fps, frames, seconds, warm-up seconds and the first output."""
    t0 = time.perf_counter()
    first = engine.restore(calls[0], FORMAT).planes
    for i in range(1, warmup):
        engine.restore(calls[i % len(calls)], FORMAT)
    _sync(engine.device)
    warm = time.perf_counter() - t0
    frames = 0
    start = time.perf_counter()
    stop = start + seconds

    def feed() -> Iterator[list]:
        for i in itertools.count():
            if i >= min_calls and time.perf_counter() >= stop:
                return
            yield calls[i % len(calls)]

    for result in engine.restore_iter(feed(), FORMAT):
        frames += result.planes[0].shape[0]
    elapsed = time.perf_counter() - start
    return {"fps": frames / elapsed, "frames_timed": frames, "seconds": elapsed, "warmup_s": warm, "first": first}


class Bench:
    """Runs cases and rewrites the results file after each one (see the module docstring)."""

    def __init__(self, out: Path, frames: SampleSet, device: torch.device, log: Callable[[str], None] = print,
                 seconds: float = 1.0, min_calls: int = 3, warmup: int = 2) -> None:
        self.out, self.frames, self.device, self.log = Path(out), frames, device, log
        self.seconds, self.min_calls, self.warmup = seconds, min_calls, warmup
        self.results: dict[str, Any] = json.loads(self.out.read_text()) if self.out.is_file() else {}
        self.results.setdefault("cases", [])
        self.results.setdefault("models", {})
        self.results.setdefault("precision_check", {})
        self.results["peak_tflops"] = PEAK_TFLOPS
        self.results["peak_note"] = "dense fp16/bf16 tensor-core peak of an H100/H200 SXM (989.5 TFLOP/s; NVIDIA datasheet)"
        self.results["targets_fps_1080p"] = TARGET_FPS
        self.models: dict[str, nn.Module] = {}
        self.sized: dict[tuple[int, int], list] = {}
        self.references: dict[tuple, list] = {}
        self.flops: dict[tuple, int] = {}

    def save(self) -> None:
        self.results["best"] = best_settings(self.results)
        tmp = self.out.with_name(f".{self.out.name}.part")
        tmp.write_text(json.dumps(self.results, indent=1, default=str) + "\n")
        os.replace(tmp, self.out)

    def model(self, name: str) -> nn.Module:
        if name not in self.models:
            m = self.models[name] = load_bench_model(name)
            self.results["models"][name] = {
                "params": count_parameters(m), "arch": arch_of(m), "config": m.config,
                "weights": "random (official size; architecture only)" if name == "fbcnn" else f"shipped {name}",
                "gflop_per_frame_1080p": flops_per_frame(m, 1920, 1080) / 1e9,
            }
        return self.models[name]

    def engine(self, case: Case) -> Engine:
        torch.backends.cudnn.benchmark = case.cudnn_benchmark  # process-wide: set for every case
        if case.compile_mode or case.compile_colour:
            torch._dynamo.reset()  # fresh caches: earlier cases' compilations must not fill dynamo's cache limit
        return Engine(copy.deepcopy(self.model(case.model)), device=self.device, **case.engine_options())

    def frames_at(self, width: int, height: int) -> list:
        if (width, height) not in self.sized:
            self.sized[(width, height)] = resize_frames(self.frames, width, height)
        return self.sized[(width, height)]

    def reference(self, case: Case) -> list:
        """The eager engine's output for the case's first frame (same model, precision and size)."""
        key = (case.model, case.precision, case.width, case.height, case.tile)
        if key not in self.references:
            eager = self.engine(Case(case.model, case.precision, 1, case.width, case.height, case.tile))
            frame = calls_for(self.frames_at(case.width, case.height), 1)[0]
            self.references[key] = eager.restore(frame, FORMAT).planes
            del eager
        return self.references[key]

    def precision_check(self, name: str, precisions: Sequence[str]) -> None:
        """fp16/bf16 eager output against fp32 on every real frame at its own size (min and mean PSNR)."""
        if name in self.results["precision_check"]:
            return
        entry: dict[str, Any] = {}
        calls = [[p[None] for p in planes] for planes in zip(self.frames.y, self.frames.u, self.frames.v)]
        try:
            fp32 = self.engine(Case(name, "fp32"))
            want = [fp32.restore(c, FORMAT).planes for c in calls]
            del fp32
            for p in precisions:  # (fp32 against itself in the dry run, where only fp32 exists)
                try:
                    eng = self.engine(Case(name, p))
                    scores = [plane_psnr(eng.restore(c, FORMAT).planes, w)[0] for c, w in zip(calls, want)]
                    entry[p] = {"psnr_db_min": min(scores), "psnr_db_mean": float(np.mean(scores)), "frames": len(scores),
                                "ok": min(scores) >= MIN_PSNR_DB}
                except Exception as exc:  # noqa: BLE001  (recorded; the stage goes on)
                    entry[p] = {"error": _one_line(exc)}
        except Exception as exc:  # noqa: BLE001
            entry["error"] = _one_line(exc)
        self.results["precision_check"][name] = entry
        self.log(f"[bench] precision check {name}: {json.dumps(entry)}")
        self.save()

    def run(self, cases: Sequence[Case], deadline: float, reserve: float = 2.0) -> None:
        """Measure ``cases`` in order; those that cannot start ``reserve`` seconds before ``deadline`` are skipped."""
        for case in cases:
            record: dict[str, Any] = {"label": case.label, **asdict(case)}
            if time.time() + reserve > deadline:
                record.update(status="skipped", error="stage time budget spent")
            else:
                record.update(self.measure(case))
            self.results["cases"].append(record)
            shown = {k: record.get(k) for k in ("status", "fps", "tflops", "peak_fraction", "psnr_vs_eager_db", "warmup_s", "error")}
            self.log(f"[bench] {case.label}: {json.dumps({k: v for k, v in shown.items() if v is not None}, default=str)}")
            self.save()

    def measure(self, case: Case) -> dict[str, Any]:
        try:
            engine = self.engine(case)
        except Exception as exc:  # noqa: BLE001  (e.g. a CUDA-only option on the CPU)
            return {"status": "refused", "error": _one_line(exc)}
        try:
            if self.device.type == "cuda":
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats(self.device)
            calls = calls_for(self.frames_at(case.width, case.height), case.batch)
            timing = time_engine(engine, calls, self.seconds, self.min_calls, self.warmup)
            first = timing.pop("first")
            psnr, diff = plane_psnr([p[:1] for p in first], self.reference(case))
            key = (case.model, case.width, case.height)
            if key not in self.flops:
                self.flops[key] = flops_per_frame(self.model(case.model), case.width, case.height)
            gflop = self.flops[key] / 1e9
            tflops = gflop * timing["fps"] / 1000
            out = {"status": "ok", **timing, "gflop_per_frame": gflop, "tflops": tflops,
                   "peak_fraction": tflops / PEAK_TFLOPS if self.device.type == "cuda" else None,
                   "psnr_vs_eager_db": psnr, "max_diff_vs_eager": diff}
            if self.device.type == "cuda":
                out["peak_mem_mib"] = torch.cuda.max_memory_allocated(self.device) / 2**20
            return out
        except Exception as exc:  # noqa: BLE001
            self.log(traceback.format_exc(limit=3))
            return {"status": "failed", "error": _one_line(exc)}
        finally:
            del engine
            if self.device.type == "cuda":
                torch.cuda.empty_cache()


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return f"{type(exc).__name__}: {text[:300]}"


def bench_stage(data: Path, out_json: Path, device: str, phase: str, deadline: float, size: tuple[int, int],
                big: tuple[int, int], tile: int, precisions: Sequence[str], seconds: float, models: Sequence[str] = MODELS,
                modes: Sequence[str] | None = None, log: Callable[[str], None] = print) -> None:
    """One phase of stage 1 (``scripts/gpu_run.py stage bench``): precision checks (``main``), then the cases until ``deadline``."""
    from vsjpegfix.training.gpu_data import read_samples
    from vsjpegfix.training.gpu_stages import device_info

    dev = torch.device(device)
    bench = Bench(out_json, read_samples(Path(data) / "frames.npz"), dev, log, seconds=seconds,
                  min_calls=2 if dev.type == "cpu" else 3)
    bench.results.setdefault("device", device_info(dev))
    cases = plan(phase, models, size, big, tile, precisions, modes, cuda=dev.type == "cuda")
    log(f"[bench] {phase}: {len(cases)} cases, {deadline - time.time():.0f} s")
    if phase == "main":
        for m in models:
            bench.precision_check(m, precisions)
    bench.run(cases, deadline, reserve=2.0 if phase == "main" else 8.0)
