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

Examples::

    python scripts/bench.py                                   # full table on the default device
    python scripts/bench.py --device cpu --budget 10 --json bench.json
    python scripts/bench.py --models fastarcnn arcnn --resolutions 720p 1920x1080 --device cuda \\
        --precision fp16 --batch-size 4
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import os
import platform
import resource
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

_REPO = Path(__file__).resolve().parent.parent
if str(_REPO) not in sys.path:
    sys.path.insert(0, str(_REPO))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from vsjpegfix.models import build_model, count_parameters  # noqa: E402

RESULT_MARKER = "BENCH_RESULT "
DEFAULT_MODELS = ("fbcnn", "fbcnn-s", "arcnn", "fastarcnn")
DEFAULT_RESOLUTIONS = ("480p", "720p", "1080p")
RESOLUTION_PRESETS = {
    "360p": (640, 360),
    "480p": (854, 480),
    "540p": (960, 540),
    "720p": (1280, 720),
    "1080p": (1920, 1080),
    "1440p": (2560, 1440),
    "2160p": (3840, 2160),
    "4k": (3840, 2160),
}
FBCNN_S_DEFAULT = {"nc": [32, 64, 128, 256], "nb": 2}
SUBSAMPLING = (1, 1)  # the benchmark's input: YUV 4:2:0, 8 bit, BT.709, limited range
FPS_TARGET = 30.0
PROBE_AREA = 64 * 64  # pixels of the first (tiny) probe used to estimate the cost of a full frame

# Nominal dense peak TFLOP/s from NVIDIA datasheets: (fp32, tf32, fp16/bf16 tensor cores with
# fp32 accumulation). Matched on the device name, most specific first.
GPU_PEAKS: tuple[tuple[tuple[str, ...], tuple[float, float, float]], ...] = (
    (("H100", "PCIe"), (51.2, 378.0, 756.0)),
    (("H100", "NVL"), (60.0, 417.0, 835.0)),
    (("H100",), (66.9, 494.7, 989.4)),
    (("H200",), (66.9, 494.7, 989.4)),
    (("A100",), (19.5, 156.0, 312.0)),
    (("L40S",), (91.6, 183.0, 362.0)),
    (("L4",), (30.3, 60.0, 121.0)),
    (("A10",), (31.2, 62.5, 125.0)),
    (("RTX 4090",), (82.6, 82.6, 165.2)),
    (("T4",), (8.1, 8.1, 65.0)),
)


# ---------------------------------------------------------------------------------------------
# Models and FLOP counts
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelSpec:
    """A model to benchmark: architecture and constructor configuration (random weights)."""

    name: str
    arch: str
    config: dict[str, Any]
    source: str

    def build(self) -> nn.Module:
        """Instantiate the architecture (random weights) on the current default device."""
        return build_model(self.arch, self.config)


def resolve_model_spec(name: str) -> ModelSpec:
    """Map a benchmark model name to an architecture and configuration.

    ``fbcnn``, ``arcnn`` and ``fastarcnn`` are the paper-sized architectures; ``fbcnn-s`` is the
    compact FBCNN, with the configuration of the shipped ``fbcnn-s`` weights when the manifest has
    them, otherwise ``nc=(32, 64, 128, 256), nb=2``. Any other name of the weights manifest is
    accepted too (its architecture and configuration; the weights themselves are not loaded).
    """
    from vsjpegfix.weights.store import WeightsError, read_manifest

    try:
        manifest = read_manifest()
    except WeightsError as exc:
        print(f"bench: ignoring the weights manifest: {exc}", file=sys.stderr)
        manifest = {}
    if name in ("fbcnn", "arcnn", "fastarcnn"):
        return ModelSpec(name, name, {}, "paper/official size")
    if name == "fbcnn-s":
        if "fbcnn-s" in manifest:
            entry = manifest["fbcnn-s"]
            return ModelSpec(name, entry.arch, dict(entry.config), "config of the shipped fbcnn-s (weights manifest)")
        return ModelSpec(name, "fbcnn", dict(FBCNN_S_DEFAULT), "default compact config (no fbcnn-s in the weights manifest)")
    if name in manifest:
        entry = manifest[name]
        return ModelSpec(name, entry.arch, dict(entry.config), "config from the weights manifest")
    known = sorted({*DEFAULT_MODELS, *manifest})
    raise SystemExit(f"bench: unknown model {name!r}; known: {', '.join(known)}")


def build_meta(spec: ModelSpec) -> nn.Module:
    """Build ``spec`` on the ``meta`` device: shapes only, no memory, no initialisation compute."""
    with torch.device("meta"):
        return spec.build().eval()


def model_input_channels(model: nn.Module) -> int:
    """Channels of one model call's input (channels per frame x frames in the stack)."""
    return int(getattr(model, "channels", 3)) * int(getattr(model, "frames", 1))


def counted_call_flops(model: nn.Module, width: int, height: int) -> int:
    """FLOPs of one blind forward call on a 1 x C x height x width input, by FlopCounterMode.

    ``model`` must live on the ``meta`` device: the forward then only propagates shapes.
    """
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.empty(1, model_input_channels(model), height, width, device="meta")
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(x)
    return int(counter.get_total_flops())


def analytic_call_flops(arch: str, config: Mapping[str, Any], width: int, height: int) -> int | None:
    """FLOPs (2 x multiply-accumulates of convolutions and linear layers) of one blind forward call.

    Follows the layer structure of :mod:`vsjpegfix.models` including each model's input padding.
    Returns None for architectures it does not know.
    """
    if arch in ("arcnn", "fastarcnn"):
        c = int(config.get("channels", 3))
        cin = c * int(config.get("frames", 1))
        if arch == "arcnn":
            macs = width * height * (cin * 64 * 81 + 64 * 32 * 49 + 32 * 16 + 16 * c * 25)
        else:  # padded to even sizes, every layer but the last at half resolution
            hw = ((width + 1) // 2) * ((height + 1) // 2)
            macs = hw * (cin * 64 * 81 + 64 * 32 + 32 * 32 * 49 + 32 * 64 + 64 * c * 81)
        return 2 * macs
    if arch == "fbcnn":
        nc = [int(v) for v in config.get("nc", (64, 128, 256, 512))]
        nb = int(config.get("nb", 4))
        out_nc = int(config.get("out_nc", 3))
        in_nc = int(config.get("in_nc", out_nc * int(config.get("frames", 1))))
        emb = nc[3]
        hp, wp = -(-height // 8) * 8, -(-width // 8) * 8  # padded to multiples of 8
        pixels = [(hp >> level) * (wp >> level) for level in range(4)]

        def block(c: int) -> int:  # one residual block: two 3x3 convolutions c -> c
            return 2 * c * c * 9

        macs = pixels[0] * (in_nc * nc[0] * 9 + nc[0] * out_nc * 9)  # head and tail
        for level in range(3):
            macs += pixels[level] * 2 * nb * block(nc[level])  # encoder and decoder (QF attention) blocks
            macs += pixels[level + 1] * 2 * nc[level] * nc[level + 1] * 4  # 2x2 down conv and 2x2 transposed up conv
        macs += pixels[3] * 3 * nb * block(nc[3])  # body encoder, body decoder, quality predictor
        macs += (2 * emb * emb + emb) + (emb + 2 * emb * emb)  # quality predictor MLP, quality embedding
        macs += 2 * emb * (nc[0] + nc[1] + nc[2])  # gamma and beta projections
        return 2 * macs
    return None


def engine_frame_flops(model: nn.Module, width: int, height: int, call_flops: Callable[[int, int], int]) -> int:
    """FLOPs the engine spends on one YUV 4:2:0 frame: one RGB call, or Y, U and V calls for a gray model."""
    if int(getattr(model, "channels", 3)) == 1:
        ssw, ssh = SUBSAMPLING
        cw, ch = -(-width >> ssw), -(-height >> ssh)
        return call_flops(width, height) + 2 * call_flops(cw, ch)
    return call_flops(width, height)


@dataclass
class ModelInfo:
    """Static facts about a benchmarked model."""

    name: str
    arch: str
    config: dict[str, Any]
    source: str
    params: int
    flops_method: str
    flops_check: str


def describe_model(spec: ModelSpec, resolutions: Sequence[tuple[int, int]]) -> tuple[ModelInfo, dict[tuple[int, int], int]]:
    """Parameters and FLOPs per frame at each resolution (meta device, cross-checked analytically)."""
    model = build_meta(spec)
    config = dict(getattr(model, "config", spec.config))
    flops: dict[tuple[int, int], int] = {}
    method = "FlopCounterMode on meta"
    mismatches = []
    for w, h in resolutions:
        analytic = engine_frame_flops(model, w, h, lambda a, b: analytic_call_flops(spec.arch, config, a, b) or 0)
        try:
            counted = engine_frame_flops(model, w, h, lambda a, b: counted_call_flops(model, a, b))
        except Exception as exc:  # meta kernels missing for some op: fall back to the analytic count
            if not analytic:
                raise SystemExit(f"bench: cannot count FLOPs of {spec.name}: {exc}") from None
            method = f"analytic (FlopCounterMode on meta failed: {type(exc).__name__})"
            flops[(w, h)] = analytic
            continue
        flops[(w, h)] = counted
        if analytic and analytic != counted:
            mismatches.append(f"{w}x{h}: counter {counted} vs analytic {analytic}")
    if method.startswith("analytic"):
        check = "-"
    elif not analytic_call_flops(spec.arch, config, 64, 64):
        check = "no analytic formula for this architecture"
    else:
        check = "matches the analytic count" if not mismatches else "MISMATCH " + "; ".join(mismatches)
    info = ModelInfo(spec.name, spec.arch, config, spec.source, count_parameters(model), method, check)
    return info, flops


# ---------------------------------------------------------------------------------------------
# Machine description and load
# ---------------------------------------------------------------------------------------------


def cpu_model_name() -> str:
    """CPU model from /proc/cpuinfo (``model name``), or what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.lower().startswith(("model name", "hardware", "cpu model")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def busy_cpu_seconds() -> float | None:
    """Busy CPU time of the whole machine since boot (all cores, /proc/stat), or None."""
    try:
        fields = Path("/proc/stat").read_text(encoding="ascii").splitlines()[0].split()[1:]
    except (OSError, IndexError):
        return None
    values = [int(v) for v in fields[:8]]
    idle = values[3] + values[4]  # idle + iowait
    return (sum(values) - idle) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds(children: bool = False) -> float:
    """CPU time (user + system) of this process, plus its waited-for children when asked."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, *((resource.RUSAGE_CHILDREN,) if children else ())):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    return total


class LoadMeter:
    """CPU time used by *other* processes over an interval, in average busy cores."""

    def __init__(self, children: bool = False) -> None:
        self.children = children
        self.start()

    def start(self) -> None:
        """(Re)start the interval."""
        self.t0, self.busy0, self.own0 = time.perf_counter(), busy_cpu_seconds(), own_cpu_seconds(self.children)

    def other_cores(self) -> float | None:
        """Average number of cores kept busy by other processes since :meth:`start`."""
        busy = busy_cpu_seconds()
        wall = time.perf_counter() - self.t0
        if busy is None or self.busy0 is None or wall <= 0:
            return None
        other = (busy - self.busy0) - (own_cpu_seconds(self.children) - self.own0)
        return max(0.0, other / wall)


def load_average() -> str:
    """The 1, 5 and 15 minute load averages."""
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "unknown"


def known_peak_tflops(device_name: str, precision: str) -> float | None:
    """Nominal dense peak TFLOP/s of a known GPU for ``precision`` (fp32 counts TF32 when cuDNN may use it)."""
    for needles, (fp32, tf32, half) in GPU_PEAKS:
        if all(n.lower() in device_name.lower() for n in needles):
            if precision in ("fp16", "bf16"):
                return half
            return tf32 if torch.backends.cudnn.allow_tf32 else fp32
    return None


def describe_machine(device: torch.device, threads: int) -> dict[str, Any]:
    """Facts for the report header."""
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:
        affinity = os.cpu_count() or 0
    mem_gib = None
    try:
        for line in Path("/proc/meminfo").read_text(encoding="ascii").splitlines():
            if line.startswith("MemTotal:"):
                mem_gib = round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    info: dict[str, Any] = {
        "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "cpu": cpu_model_name(),
        "cpu_count": os.cpu_count(),
        "cpu_affinity": affinity,
        "memory_gib": mem_gib,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": threads,
        "gpu": None,
        "loadavg_start": load_average(),
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info["gpu"] = {
            "name": props.name,
            "capability": f"{props.major}.{props.minor}",
            "memory_gib": round(props.total_memory / 2**30, 1),
            "cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version(),
        }
    elif torch.cuda.is_available():
        info["gpu"] = {"name": torch.cuda.get_device_name(0), "note": "present but not benchmarked"}
    return info


# ---------------------------------------------------------------------------------------------
# One case (child process)
# ---------------------------------------------------------------------------------------------


def parse_resolution(text: str) -> tuple[str, int, int]:
    """``480p``-style presets or ``WxH``; returns (label, width, height). 4:2:0 needs even sizes."""
    key = text.strip().lower()
    if key in RESOLUTION_PRESETS:
        w, h = RESOLUTION_PRESETS[key]
        return key, w, h
    try:
        w_text, h_text = key.split("x")
        w, h = int(w_text), int(h_text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad resolution {text!r}: use WxH (e.g. 1280x720) or one of {', '.join(RESOLUTION_PRESETS)}") from None
    if w < 2 or h < 2 or w % 2 or h % 2:
        raise argparse.ArgumentTypeError(f"bad resolution {text!r}: YUV 4:2:0 needs even width and height >= 2")
    return f"{w}x{h}", w, h


def make_frames(width: int, height: int, count: int, frames_per_call: int, content: str) -> list[np.ndarray]:
    """``count`` identical YUV 4:2:0 8-bit BT.709 frames as planes (N, h, w) (or (N, T, h, w) for T > 1).

    ``content="photo"`` upscales skimage's astronaut (bicubic), ``"random"`` is uniform noise.
    """
    from vsjpegfix.engine.colour import rgb_to_planes

    fmt = yuv420()
    rgb: torch.Tensor | None = None
    if content == "photo":
        try:
            from skimage import data

            img = torch.from_numpy(np.ascontiguousarray(data.astronaut())).permute(2, 0, 1)[None].float() / 255
            rgb = torch.nn.functional.interpolate(img, size=(height, width), mode="bicubic", align_corners=False).clamp_(0, 1)
        except ImportError:
            content = "random"
    if rgb is None:
        gen = torch.Generator().manual_seed(0)
        rgb = torch.rand(1, 3, height, width, generator=gen)
    planes = [p.numpy() for p in rgb_to_planes(rgb, fmt)]
    shape_lead = (count, frames_per_call) if frames_per_call > 1 else (count,)
    return [np.broadcast_to(p[0], (*shape_lead, *p.shape[1:])).copy() for p in planes]


def yuv420():
    """The benchmark's frame format."""
    from vsjpegfix.engine.colour import PlaneFormat

    return PlaneFormat("yuv", 8, subsampling=SUBSAMPLING, matrix="bt709")


def scaled_size(width: int, height: int, area: float) -> tuple[int, int]:
    """A size of about ``area`` pixels with the aspect of ``width x height``, in multiples of 16, within it."""
    s = math.sqrt(area / (width * height))
    w = min(width, max(32, int(round(width * s / 16)) * 16))
    h = min(height, max(32, int(round(height * s / 16)) * 16))
    return w - w % 2, h - h % 2


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far (ru_maxrss is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_single(args: argparse.Namespace) -> dict[str, Any]:
    """Measure one (model, resolution) case in this process; returns a JSON-able result."""
    from vsjpegfix.engine.core import Engine

    if args.threads:
        torch.set_num_threads(args.threads)
    _, width, height = parse_resolution(args.resolution)
    spec = resolve_model_spec(args.single)
    device = torch.device(args.device)
    is_cuda = device.type == "cuda"
    meta_model = build_meta(spec)
    config = dict(getattr(meta_model, "config", spec.config))

    def frame_flops(w: int, h: int) -> int:
        try:
            return engine_frame_flops(meta_model, w, h, lambda a, b: counted_call_flops(meta_model, a, b))
        except Exception:
            return engine_frame_flops(meta_model, w, h, lambda a, b: analytic_call_flops(spec.arch, config, a, b) or 0)

    full_flops = frame_flops(width, height)
    make_frames(16, 16, 1, 1, args.content)  # imports (skimage, colour conversion)
    with torch.inference_mode():  # load the CPU kernels and start the thread pool before the baseline
        torch.nn.functional.conv2d(torch.ones(1, 2, 8, 8), torch.ones(2, 2, 3, 3))
    rss_before = peak_rss_mib()  # baseline: everything but the case itself
    if is_cuda:
        torch.zeros(1, device=device)  # initialise the CUDA context: the memory-stat calls need it
        torch.cuda.reset_peak_memory_stats(device)
    model = spec.build()
    engine = Engine(model, device=device, precision=args.precision, batch_size=args.batch_size, tile=args.tile or None)
    fmt = yuv420()
    batch = args.batch_size
    t_frames = int(getattr(model, "frames", 1))
    result: dict[str, Any] = {
        "status": "ok",
        "torch_threads": torch.get_num_threads(),
        "precision": {torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16"}.get(engine.dtype, str(engine.dtype)),
    }

    def sync() -> None:
        if is_cuda:
            torch.cuda.synchronize(device)

    def timed_call(planes: list[np.ndarray]) -> float:
        sync()
        t0 = time.perf_counter()
        engine.restore(planes, fmt)
        sync()
        return time.perf_counter() - t0

    budget = float(args.budget)
    full_flops = frame_flops(width, height)
    load = LoadMeter()
    start = time.perf_counter()

    def remaining() -> float:
        return budget - (time.perf_counter() - start)

    estimate_s: float | None = None  # estimated seconds per call of `batch` full frames
    probes: list[dict[str, Any]] = []
    # Unless the full frame is small, probe on small frames first: a tiny size (warm-up + timed
    # call), then, when the budget allows, one call at a larger size (4x the area or more, up to
    # about budget/8 per call and a quarter of the frame) for a two-point fit.
    if width * height > 4 * PROBE_AREA:
        pw, ph = scaled_size(width, height, PROBE_AREA)
        planes = make_frames(pw, ph, batch, t_frames, args.content)
        warm = timed_call(planes)
        t1 = timed_call(planes)
        f1 = frame_flops(pw, ph)
        estimate_s = t1 * full_flops / max(1, f1)  # FLOP-scaled: an upper bound when there is a fixed per-call cost
        probes.append({"size": f"{pw}x{ph}", "flops": f1, "warmup_s": warm, "s_per_call": t1, "est_full_s_per_call": estimate_s})
        area = min(max(4 * pw * ph, pw * ph * (budget / 8) / max(t1, 1e-6)), width * height / 4)
        if area >= 3 * pw * ph and t1 * area / (pw * ph) <= remaining() / 2:
            pw, ph = scaled_size(width, height, area)
            planes = make_frames(pw, ph, batch, t_frames, args.content)
            t2 = timed_call(planes)  # no separate warm-up: the engine is warm, only the shape is new
            f2 = frame_flops(pw, ph)
            if f2 > f1 and t2 > t1:  # time = fixed cost + FLOPs / rate
                estimate_s = t2 + (t2 - t1) / (f2 - f1) * (full_flops - f2)
            else:
                estimate_s = t2 * full_flops / max(1, f2)
            probes.append({"size": f"{pw}x{ph}", "flops": f2, "s_per_call": t2, "est_full_s_per_call": estimate_s})
    result["probes"] = probes

    def skip(est_call: float, why: str) -> dict[str, Any]:
        result.update(
            status="skipped",
            reason=why,
            est_s_per_frame=est_call / batch,
            est_fps=batch / est_call,
            est_tflops=full_flops / 1e12 * batch / est_call,
            other_load_cores=load.other_cores(),
            probe_peak_mem_mib=(torch.cuda.max_memory_allocated(device) / 2**20) if is_cuda else peak_rss_mib() - rss_before,
        )
        return result

    # Warm up at full size when warm-up + one timed call fit the budget; when only one call fits,
    # the probes (smaller frames, same engine) are the only warm-up and a single call is timed.
    full_warmup = True
    if estimate_s is not None:
        if estimate_s > remaining():
            return skip(estimate_s, f"one call estimated at {estimate_s:.1f} s > {max(0.0, remaining()):.1f} s left of the budget")
        full_warmup = 2 * estimate_s <= remaining()
    planes = make_frames(width, height, batch, t_frames, args.content)
    per_call_guess = estimate_s
    if full_warmup:
        warmup = timed_call(planes)
        result["warmup_s"] = warmup
        per_call_guess = warmup
        if warmup > 2 * max(remaining(), 0.0):
            return skip(warmup, f"warm-up took {warmup:.1f} s, {max(0.0, remaining()):.1f} s left of the budget")
    result["warmup"] = "full-size call" if full_warmup else "probe calls only (smaller frames)"
    load.start()
    times: list[float] = []
    while len(times) * batch < args.frames:
        per_call = sum(times) / len(times) if times else per_call_guess
        if times and per_call > remaining():
            break
        times.append(timed_call(planes))
    elapsed = sum(times)
    frames_done = len(times) * batch
    fps = frames_done / elapsed
    result.update(
        frames_timed=frames_done,
        timed_s=elapsed,
        fps=fps,
        s_per_frame=1 / fps,
        achieved_tflops=full_flops / 1e12 * fps,
        other_load_cores=load.other_cores(),
        budget_limited=frames_done < args.frames,
        full_warmup=full_warmup,
    )
    if is_cuda:
        result.update(peak_mem_mib=torch.cuda.max_memory_allocated(device) / 2**20, mem_kind="torch.cuda.max_memory_allocated")
    else:
        result.update(peak_mem_mib=peak_rss_mib() - rss_before, mem_kind="peak RSS increase of the child process")
    return result


# ---------------------------------------------------------------------------------------------
# The whole benchmark (parent process)
# ---------------------------------------------------------------------------------------------


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


def child_command(args: argparse.Namespace, model: str, resolution: str, device: str) -> list[str]:
    """The command line of the child process that measures one case."""
    cmd = [
        sys.executable, str(Path(__file__).resolve()), "--single", model, "--resolution", resolution,
        "--device", device, "--precision", args.precision, "--batch-size", str(args.batch_size),
        "--frames", str(args.frames), "--budget", str(args.budget), "--content", args.content,
        "--tile", str(args.tile),
    ]  # fmt: skip
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    return cmd


def run_case(args: argparse.Namespace, case: Case, device: str) -> None:
    """Run one case in a child process, with a hard timeout, and store its result in ``case``."""
    timeout = 3 * args.budget + 120  # imports, model construction and one overrunning call
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(
            child_command(args, case.model, case.resolution, device), capture_output=True, text=True, timeout=timeout
        )
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
    p.add_argument("--json", type=Path, default=None, metavar="PATH", help="also write the results as JSON")
    p.add_argument("--single", metavar="MODEL", help=argparse.SUPPRESS)  # child mode: one case
    p.add_argument("--resolution", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.batch_size < 1 or args.frames < 1 or args.budget <= 0 or args.threads < 0:
        p.error("--batch-size and --frames must be >= 1, --budget > 0, --threads >= 0")
    try:
        args.parsed_resolutions = [parse_resolution(r) for r in args.resolutions]
    except argparse.ArgumentTypeError as exc:
        p.error(str(exc))
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: the full benchmark, or one case with ``--single``."""
    args = parse_args(argv)
    if args.single:
        print(RESULT_MARKER + json.dumps(run_single(args)), flush=True)
        return 0

    from vsjpegfix.engine.device import EngineError, resolve_device, resolve_precision

    t_start = time.perf_counter()
    load = LoadMeter(children=True)
    try:
        device = resolve_device(args.device)
        dtype = resolve_precision(args.precision, device)
    except EngineError as exc:
        raise SystemExit(f"bench: {exc}") from None
    if args.threads:
        torch.set_num_threads(args.threads)
    device_str = str(device) if device.type == "cpu" or device.index is not None else "cuda:0"
    precision = {torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16"}[dtype]
    machine = describe_machine(torch.device(device_str), torch.get_num_threads())
    peak, peak_source = args.peak_tflops, "--peak-tflops"
    if peak is None and device.type == "cuda":
        peak = known_peak_tflops(machine["gpu"]["name"], precision)
        peak_source = f"nominal dense {precision} peak of {machine['gpu']['name']} from a built-in datasheet table"

    specs = [resolve_model_spec(name) for name in args.models]
    sizes = [(w, h) for _, w, h in args.parsed_resolutions]
    infos: dict[str, ModelInfo] = {}
    cases: list[Case] = []
    for spec in specs:
        info, flops = describe_model(spec, sizes)
        infos[spec.name] = info
        for label, w, h in args.parsed_resolutions:
            f = flops[(w, h)]
            cases.append(Case(spec.name, label, w, h, info.params, f, f / 1e9, f * FPS_TARGET / 1e12))

    for i, case in enumerate(cases, 1):
        run_case(args, case, device_str)
        if case.status == "ok":
            r = case.result
            if peak:
                case.peak_fraction = r["achieved_tflops"] / peak
            note = f"{r['fps']:.3g} fps ({r['frames_timed']} frames)"
        elif case.status == "skipped":
            note = f"skipped (est. {case.result['est_s_per_frame']:.3g} s/frame)"
        else:
            note = f"{case.status}: {case.error}"
        print(f"[{i}/{len(cases)}] {case.model} {case.resolution}: {note} in {case.wall_s:.1f} s", file=sys.stderr, flush=True)
    threads = next((c.result["torch_threads"] for c in cases if c.result), machine["torch_threads"])
    machine["torch_threads"] = threads

    report: dict[str, Any] = {
        "machine": machine,
        "settings": {
            "device": device_str,
            "precision": precision,
            "batch_size": args.batch_size,
            "frames": args.frames,
            "budget": args.budget,
            "threads": threads,
            "tile": args.tile,
            "content": args.content,
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
    print(render_markdown(report, cases, infos))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 0 if all(c.status in ("ok", "skipped") for c in cases) else 1


if __name__ == "__main__":
    sys.exit(main())
