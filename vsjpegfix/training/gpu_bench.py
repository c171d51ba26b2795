"""Stage 1 of the GPU run (``scripts/gpu_run.py``): engine speed per model, precision, batch and speed option.

Every case runs :meth:`vsjpegfix.engine.core.Engine.restore_iter` end to end on YUV 4:2:0 8-bit frames
held in host memory (upload, colour conversion, model, correction, download), frames made by resizing
real decoded footage (``frames.npz`` of :mod:`vsjpegfix.training.gpu_data`) to the case's size. A
case reports frames per second after its warm-up (compilation and graph capture included there,
and timed separately), achieved TFLOP/s (model FLOP per frame, counted by
:class:`torch.utils.flop_counter.FlopCounterMode` on the meta device, x fps) and the fraction of
:data:`PEAK_TFLOPS`, peak GPU memory, and how far its output is from the eager engine's at the same
precision (PSNR over all planes; identical output is reported as ``inf``).

Per model, fp16 and bf16 eager output are also compared with fp32 on the real frames at their own
sizes (:func:`precision_check`); a setting counts as correct when both its precision and its
output against eager reach :data:`MIN_PSNR_DB`. :func:`best_settings` names the fastest correct
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
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vsjpegfix.engine.accel import GRAPHING_COMPILE_MODES, Acceleration
from vsjpegfix.engine.colour import PlaneFormat
from vsjpegfix.engine.core import Engine
from vsjpegfix.models import ARCHITECTURES, build_model, count_parameters
from vsjpegfix.training.gpu_data import SampleSet

#: dense fp16/bf16 tensor-core peak of an H100 or H200 SXM (NVIDIA datasheets; 1979 with sparsity)
PEAK_TFLOPS = 989.5
TARGET_FPS = {"fbcnn": 40.0, "fbcnn-s": 150.0, "arcnn": 300.0, "fastarcnn": 600.0}  # 1080p, H200, in the engine
MODELS = ("fastarcnn", "arcnn", "fbcnn-s", "fbcnn")
MIN_PSNR_DB = 50.0
#: whose fp16/bf16-vs-fp32 check stands for a model's (random weights say little about precision loss)
PRECISION_PROXY = {"fbcnn": "fbcnn-s"}
FORMAT = PlaneFormat("yuv", 8, subsampling=(1, 1), matrix="bt709")  # what a decoder gives the engine


@dataclass(frozen=True)
class Case:
    """One measurement: model, precision, batch, frame size (tile) and the engine's speed options."""

    model: str
    precision: str = "fp16"
    batch: int = 1
    width: int = 1920
    height: int = 1080
    tile: int | None = None
    compile_mode: str | None = None
    cuda_graphs: bool = False
    pinned: bool = False
    num_streams: int = 1
    cudnn_benchmark: bool = False
    compile_colour: bool = False

    def accel(self) -> Acceleration:
        return Acceleration(self.compile_mode, self.cuda_graphs, self.pinned, self.num_streams, self.cudnn_benchmark,
                            self.compile_colour)

    def engine_options(self) -> dict[str, Any]:
        """Keyword arguments of :class:`Engine` for this case's settings."""
        return {"precision": self.precision, "batch_size": self.batch, "tile": self.tile, **asdict(self.accel())}

    @property
    def label(self) -> str:
        tile = f" tile{self.tile}" if self.tile else ""
        return f"{self.model} {self.width}x{self.height}{tile} {self.precision} b{self.batch} {self.accel().describe()}"


OPTION_SETS: dict[str, dict[str, Any]] = {
    "eager": {},
    "cudnn": {"cudnn_benchmark": True},
    "graphs": {"cudnn_benchmark": True, "cuda_graphs": True},
    "streams": {"cudnn_benchmark": True, "pinned": True, "num_streams": 2},
    "all": {"cudnn_benchmark": True, "cuda_graphs": True, "pinned": True, "num_streams": 2},
    "colour": {"compile_colour": True},
    "all+colour": {"cudnn_benchmark": True, "cuda_graphs": True, "pinned": True, "num_streams": 2, "compile_colour": True},
}


def plan(phase: str, models: Sequence[str], size: tuple[int, int], big: tuple[int, int], tile: int,
         precisions: Sequence[str] = ("fp16", "bf16"), modes: Sequence[str] | None = None, cuda: bool = True) -> list[Case]:
    """The cases of a phase, most informative first (a stage stopped by its time budget keeps those).

    ``main``: per model eager (batch 1 and 4), cuDNN autotuning (4), CUDA graphs (1), pinned transfers
    on 2 streams (4), all of them (1 and 4), in the first precision; eager and everything in the
    second; FBCNN at
    ``big`` with tiles. ``compile`` (models in order for each setting, so every model gets the first
    ones): compiled colour steps alone and with everything else (eager model), the model compiled
    with the first of ``modes`` (default: default, max-autotune-no-cudagraphs, reduce-overhead) with
    cuDNN autotuning, then with everything, then the other modes (batch 4, or 1 for the modes that
    capture graphs themselves), then the second precision with everything. Off CUDA (the dry run) cuDNN autotuning is
    left out, so that compiled and eager cases run there while graphs, pinned memory and streams are
    refused and recorded as such. Duplicates (e.g. one precision only) are dropped.
    """
    first, *others = precisions
    w, h = size
    cases: list[Case] = []
    if phase == "main":
        for m in models:
            for name, batch in (("eager", 1), ("eager", 4), ("cudnn", 4), ("graphs", 1), ("streams", 4), ("all", 1),
                                ("all", 4)):
                cases.append(Case(m, first, batch, w, h, **OPTION_SETS[name]))
            for p in others:
                cases += [Case(m, p, 1, w, h), Case(m, p, 4, w, h, **OPTION_SETS["all"])]
        if "fbcnn" in models:
            cases += [Case("fbcnn", first, 1, *big, tile=tile), Case("fbcnn", first, 1, *big, tile=tile, **OPTION_SETS["all"])]
    elif phase == "compile":
        modes = list(modes or ("default", "max-autotune-no-cudagraphs", "reduce-overhead"))
        specs = [(first, None, "colour"), (first, None, "all+colour"), (first, modes[0], "cudnn"),
                 (first, modes[0], "all+colour")]  # every model gets these first
        specs += [(first, mode, "cudnn") for mode in modes[1:]] + [(p, modes[0], "all+colour") for p in others]
        for precision, mode, options in specs:
            for m in models:
                batch = 1 if mode in GRAPHING_COMPILE_MODES else 4  # graphed by inductor: the latency case
                cases.append(Case(m, precision, batch, w, h, compile_mode=mode, **OPTION_SETS[options]))
    else:
        raise ValueError(f"unknown phase {phase!r}; use main or compile")
    if not cuda:
        cases = [replace(c, cudnn_benchmark=False) for c in cases]
    unique = {c.label: c for c in cases}
    return list(unique.values())


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
    raise ValueError(f"{type(model).__name__} is not a registered architecture")


def flops_per_frame(model: nn.Module, width: int, height: int) -> int:
    """FLOP of one model call on one ``width`` x ``height`` frame (1 multiply-accumulate = 2), counted on meta."""
    from torch.utils.flop_counter import FlopCounterMode

    with torch.device("meta"):
        meta = build_model(arch_of(model), model.config)
        x = torch.empty(1, model.channels * getattr(model, "frames", 1), height, width)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        meta(x)
    return int(counter.get_total_flops())


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


def is_correct(case: dict[str, Any], checks: dict[str, Any]) -> bool:
    """Output within :data:`MIN_PSNR_DB` of eager, and the precision within it of fp32 (fp32 always is;
    the random-weight official-size FBCNN is judged by the trained compact one, :data:`PRECISION_PROXY`)."""
    if case.get("status") != "ok" or case.get("psnr_vs_eager_db", 0) < MIN_PSNR_DB:
        return False
    model = PRECISION_PROXY.get(case["model"], case["model"])
    return case["precision"] == "fp32" or bool(checks.get(model, {}).get(case["precision"], {}).get("ok"))


def best_settings(results: dict[str, Any]) -> dict[str, Any]:
    """Per model, the fastest correct case at the most common (main) frame size, with its engine options."""
    cases = [c for c in results.get("cases", []) if c.get("status") == "ok" and not c.get("tile")]
    if not cases:
        return {}
    sizes = [(c["width"], c["height"]) for c in cases]
    main = max(set(sizes), key=sizes.count)
    best: dict[str, Any] = {}
    for c in cases:
        if (c["width"], c["height"]) != main or not is_correct(c, results.get("precision_check", {})):
            continue
        if c["model"] not in best or c["fps"] > best[c["model"]]["fps"]:
            settings = Case(**{k: c[k] for k in Case.__dataclass_fields__}).engine_options()
            target = TARGET_FPS.get(c["model"])
            best[c["model"]] = {"label": c["label"], "fps": c["fps"], "engine_options": settings, "target_fps": target,
                                "meets_target": None if target is None else c["fps"] >= target}
    return best
