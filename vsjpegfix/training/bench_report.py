"""The engine benchmark as a whole: every (model, resolution) case measured in a child process
(:mod:`vsjpegfix.training.bench_engine`), the report as JSON-able data and as Markdown.

For each model and resolution the report gives the parameters, GFLOP per frame and the TFLOP/s
that 30 fps video needs (:mod:`vsjpegfix.training.bench_flops`), the measured throughput, the
achieved TFLOP/s and, when the device's peak is known (built-in table for a few NVIDIA GPUs, or
``peak_tflops``), the fraction of that peak, and the peak memory.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from vsjpegfix.training.bench_engine import RESULT_MARKER, CaseSettings, case_command
from vsjpegfix.training.bench_flops import ModelInfo, describe_model, resolve_model_spec
from vsjpegfix.training.machine import (
    LoadMeter,
    describe_machine,
    known_peak_tflops,
    load_average,
)

FPS_TARGET = 30.0
#: the folder that holds the package, for the child processes' import path
PACKAGE_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Case:
    """One (model, resolution) row of the report."""

    model: str
    resolution: str
    width: int
    height: int
    params: int
    flops: int
    gflop_per_frame: float
    tflops_for_30fps: float
    status: str = "pending"
    result: dict[str, Any] = field(default_factory=dict)
    peak_fraction: float | None = None
    wall_s: float | None = None
    error: str | None = None


def run_case(settings: CaseSettings, case: Case, device: str) -> None:
    """Run one case in a child process, with a hard timeout, and store its result in ``case``."""
    timeout = 3 * settings.budget + 120  # imports, model construction and one overrunning call
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (str(PACKAGE_ROOT), os.environ.get("PYTHONPATH")) if p))
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(case_command(case.model, case.resolution, device, settings), capture_output=True,
                              text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        case.status, case.error = "timeout", f"killed after {timeout:.0f} s"
        case.wall_s = time.perf_counter() - t0
        return
    case.wall_s = time.perf_counter() - t0
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(RESULT_MARKER)]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"])[-1]
        case.status, case.error = "error", tail
        return
    case.result = json.loads(lines[-1][len(RESULT_MARKER) :])
    case.status = case.result["status"]


def fmt_num(value: float | None, digits: int = 3) -> str:
    """A number with about ``digits`` significant digits, or an en dash."""
    if value is None:
        return "–"
    if value == 0:
        return "0"
    magnitude = int(math.floor(math.log10(abs(value))))
    decimals = max(0, digits - 1 - magnitude)
    return f"{value:,.{decimals}f}"


def contention_note(report: dict[str, Any]) -> list[str]:
    """A warning line when other processes competed with the benchmark's threads for the CPU cores."""
    m, other = report["machine"], report["other_load_cores"]
    if report["settings"]["device"].startswith("cuda") or other is None or other < 0.5:
        return []
    if m["torch_threads"] + other <= m["cpu_affinity"]:
        return []
    return [
        f"- **contention**: {m['torch_threads']} torch threads + {fmt_num(other, 2)} cores busy with other processes on "
        f"{m['cpu_affinity']} cores: threads wait on each other, so the figures are pessimistic and noisy (see --threads)"
    ]


def render_markdown(report: dict[str, Any], cases: list[Case], infos: dict[str, ModelInfo]) -> str:
    """The report: header lines and the Markdown table."""
    m, s = report["machine"], report["settings"]
    gpu = m["gpu"]
    gpu_text = "none" if not gpu else f"{gpu['name']}" + (f" (sm {gpu['capability']}, {gpu['memory_gib']} GiB, CUDA {gpu['cuda']})" if "capability" in gpu else f" ({gpu['note']})")
    out = [
        "## vsjpegfix engine benchmark",
        "",
        f"- date: {m['date']}; total run time {report['run_s']:.0f} s",
        f"- CPU: {m['cpu']}, {m['cpu_count']} logical cores ({m['cpu_affinity']} usable), {m['memory_gib']} GiB RAM",
        f"- torch {m['torch']} (Python {m['python']}), {m['torch_threads']} intra-op threads; GPU: {gpu_text}",
        f"- load: loadavg {m['loadavg_start']} at start, {report['loadavg_end']} at end; other processes kept "
        f"{fmt_num(report['other_load_cores'], 2)} cores busy on average during the run (column 'other load': during each case's timed section)",
        *contention_note(report),
        f"- engine: device {s['device']}, precision {s['precision']}, batch size {s['batch_size']}, "
        f"tile {s['tile'] or 'whole frames'}; input YUV 4:2:0 8-bit BT.709 limited ({s['content']} content), numpy in/out "
        "(colour conversion and transfers included)",
        f"- timing: up to {s['frames']} frames per case after one warm-up call, budget {s['budget']:g} s per case "
        "(process start, imports and model construction not included); "
        "large frames are first probed on two smaller sizes (fit: time = fixed cost + FLOPs / rate); "
        "when not even one full-size call is estimated to fit, the case is skipped with that estimate",
        "- FLOPs: FlopCounterMode on the meta device, convolutions and linear layers, 1 MAC = 2 FLOP, blind FBCNN "
        "(quality predictor included); activations, biases, element-wise ops and colour conversion not counted",
        f"- memory: {'torch.cuda.max_memory_allocated' if s['device'].startswith('cuda') else 'peak RSS increase (ru_maxrss) of the child process running only that case, from after imports and a tiny warm-up conv: weights, frames, activations, kernel workspaces'}",
        f"- peak TFLOP/s for '% of peak': {fmt_num(s['peak_tflops']) + ' (' + s['peak_source'] + ')' if s['peak_tflops'] else 'unknown (pass --peak-tflops)'}",
        "",
        "Models (random weights: architecture only):",
        "",
    ]
    for info in infos.values():
        out.append(f"- `{info.name}`: {info.arch} {json.dumps(info.config)}, {info.params:,} parameters; {info.source}; FLOPs: {info.flops_method}, {info.flops_check}")
    out += [
        "",
        "| model | resolution | params | GFLOP/frame | TFLOP/s for 30 fps | fps | s/frame | achieved TFLOP/s | % of peak | peak mem (MiB) | other load (cores) |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for c in cases:
        r = c.result
        row = [c.model, f"{c.resolution} ({c.width}x{c.height})" if c.resolution != f"{c.width}x{c.height}" else c.resolution,
               f"{c.params:,}", fmt_num(c.gflop_per_frame, 4), fmt_num(c.tflops_for_30fps)]  # fmt: skip
        if c.status == "ok":
            fps_text = fmt_num(r["fps"]) + ("*" if r.get("budget_limited") else "") + ("" if r.get("full_warmup", True) else "†")
            pct = "–" if c.peak_fraction is None else f"{100 * c.peak_fraction:.1f}%"
            row += [fps_text, fmt_num(r["s_per_frame"]), fmt_num(r["achieved_tflops"]), pct, fmt_num(r["peak_mem_mib"], 4), fmt_num(r.get("other_load_cores"), 2)]
        elif c.status == "skipped":
            mark = "‡" if len(r.get("probes", [])) == 1 else ""
            row += [f"skipped (est. {fmt_num(r['est_s_per_frame'])} s/frame{mark})", "–", "–", "–", "–", fmt_num(r.get("other_load_cores"), 2)]
        else:
            row += [f"{c.status}: {c.error}", "–", "–", "–", "–", "–"]
        out.append("| " + " | ".join(row) + " |")
    if any(c.status == "ok" and c.result.get("budget_limited") for c in cases):
        out += ["", "\\* fewer frames than requested were timed: the budget ran out."]
    if any(c.status == "ok" and not c.result.get("full_warmup", True) for c in cases):
        out += ["", "† only one call fitted the budget: warmed up by the probe calls on smaller frames, not at full size."]
    if any(c.status == "skipped" and len(c.result.get("probes", [])) == 1 for c in cases):
        out += ["", "‡ estimated from one tiny probe size only (FLOP-scaled, so its fixed per-call costs are scaled too): pessimistic."]
    return "\n".join(out)


@dataclass
class BenchResult:
    """The benchmark's report (what ``--json`` writes), its cases and the models' facts."""

    report: dict[str, Any]
    cases: list[Case]
    infos: dict[str, ModelInfo]

    @property
    def ok(self) -> bool:
        """Every case measured or skipped by the budget (none failed or timed out)."""
        return all(c.status in ("ok", "skipped") for c in self.cases)

    def markdown(self) -> str:
        """The Markdown report: header lines, the models and the table."""
        return render_markdown(self.report, self.cases, self.infos)


def run_benchmark(models: Sequence[str], resolutions: Sequence[tuple[str, int, int]], device: str = "auto",
                  settings: CaseSettings = CaseSettings(), peak_tflops: float | None = None,
                  log: Callable[[str], None] = lambda msg: print(msg, file=sys.stderr, flush=True)) -> BenchResult:
    """Benchmark every model (:func:`~vsjpegfix.training.bench_flops.resolve_model_spec` names) at every
    resolution (:func:`~vsjpegfix.training.bench_engine.parse_resolution` results), one child process
    per case; one progress line per case goes to ``log``. Sets torch's thread count when
    ``settings.threads``. Raises :class:`~vsjpegfix.engine.device.EngineError` for an unusable device."""
    from vsjpegfix.engine.device import resolve_device, resolve_precision

    t_start = time.perf_counter()
    load = LoadMeter(children=True)
    dev = resolve_device(device)
    dtype = resolve_precision(settings.precision, dev)
    if settings.threads:
        torch.set_num_threads(settings.threads)
    device_str = str(dev) if dev.type == "cpu" or dev.index is not None else "cuda:0"
    precision = {torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16"}[dtype]
    machine = describe_machine(torch.device(device_str), torch.get_num_threads())
    peak, peak_source = peak_tflops, "--peak-tflops"
    if peak is None and dev.type == "cuda":
        peak = known_peak_tflops(machine["gpu"]["name"], precision)
        peak_source = f"nominal dense {precision} peak of {machine['gpu']['name']} from a built-in datasheet table"

    specs = [resolve_model_spec(name) for name in models]
    sizes = [(w, h) for _, w, h in resolutions]
    infos: dict[str, ModelInfo] = {}
    cases: list[Case] = []
    for spec in specs:
        info, flops = describe_model(spec, sizes)
        infos[spec.name] = info
        for label, w, h in resolutions:
            f = flops[(w, h)]
            cases.append(Case(spec.name, label, w, h, info.params, f, f / 1e9, f * FPS_TARGET / 1e12))

    for i, case in enumerate(cases, 1):
        run_case(settings, case, device_str)
        if case.status == "ok":
            r = case.result
            if peak:
                case.peak_fraction = r["achieved_tflops"] / peak
            note = f"{r['fps']:.3g} fps ({r['frames_timed']} frames)"
        elif case.status == "skipped":
            note = f"skipped (est. {case.result['est_s_per_frame']:.3g} s/frame)"
        else:
            note = f"{case.status}: {case.error}"
        log(f"[{i}/{len(cases)}] {case.model} {case.resolution}: {note} in {case.wall_s:.1f} s")
    threads = next((c.result["torch_threads"] for c in cases if c.result), machine["torch_threads"])
    machine["torch_threads"] = threads

    report: dict[str, Any] = {
        "machine": machine,
        "settings": {
            "device": device_str,
            "precision": precision,
            "batch_size": settings.batch_size,
            "frames": settings.frames,
            "budget": settings.budget,
            "threads": threads,
            "tile": settings.tile,
            "content": settings.content,
            "input": "YUV 4:2:0 8-bit BT.709 limited range",
            "peak_tflops": peak,
            "peak_source": peak_source if peak else None,
        },
        "run_s": time.perf_counter() - t_start,
        "loadavg_end": load_average(),
        "other_load_cores": load.other_cores(),
        "models": {name: asdict(info) for name, info in infos.items()},
        "cases": [asdict(c) for c in cases],
    }
    return BenchResult(report, cases, infos)
