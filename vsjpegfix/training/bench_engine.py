"""One case of the engine benchmark - a model at one resolution - measured in its own process.

:func:`measure_case` times :meth:`vsjpegfix.engine.core.Engine.restore` on YUV 4:2:0 8-bit frames
(frames per second, warm-up excluded) within a per-case time budget: large frames are first probed
on two smaller sizes (fit: time = fixed cost + FLOPs / rate); when not even one full-size call is
estimated to fit, the case is skipped with that estimate. Peak memory: on CUDA
``torch.cuda.max_memory_allocated``, on the CPU the increase of the peak RSS (``ru_maxrss``) of the
process, which is why every case runs in a child process (``python -m
vsjpegfix.training.bench_engine SETTINGS_JSON``, see :func:`case_command`): memory figures per
case, and a case that overruns can be killed, so the benchmark never hangs.
"""

from __future__ import annotations

import json
import math
import resource
import sys
import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from vsjpegfix.training.bench_flops import (
    SUBSAMPLING,
    analytic_call_flops,
    build_meta,
    counted_call_flops,
    engine_frame_flops,
    resolve_model_spec,
)
from vsjpegfix.training.errors import TrainingError
from vsjpegfix.training.machine import LoadMeter

RESULT_MARKER = "BENCH_RESULT "
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
PROBE_AREA = 64 * 64  # pixels of the first (tiny) probe used to estimate the cost of a full frame


@dataclass(frozen=True)
class CaseSettings:
    """How every case is measured: engine precision, batch size and tile (0: whole frames), frames
    to time, seconds of budget, torch threads (0: torch's choice) and frame content (``photo``
    or ``random``)."""

    precision: str = "auto"
    batch_size: int = 1
    frames: int = 8
    budget: float = 20.0
    threads: int = 0
    tile: int = 0
    content: str = "photo"


def parse_resolution(text: str) -> tuple[str, int, int]:
    """``480p``-style presets or ``WxH``; returns (label, width, height). 4:2:0 needs even sizes
    (:class:`~vsjpegfix.training.errors.TrainingError` otherwise)."""
    key = text.strip().lower()
    if key in RESOLUTION_PRESETS:
        w, h = RESOLUTION_PRESETS[key]
        return key, w, h
    try:
        w_text, h_text = key.split("x")
        w, h = int(w_text), int(h_text)
    except ValueError:
        raise TrainingError(f"bad resolution {text!r}: use WxH (e.g. 1280x720) or one of {', '.join(RESOLUTION_PRESETS)}") from None
    if w < 2 or h < 2 or w % 2 or h % 2:
        raise TrainingError(f"bad resolution {text!r}: YUV 4:2:0 needs even width and height >= 2")
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


def yuv420() -> Any:
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


def measure_case(model_name: str, resolution: str, device_name: str, settings: CaseSettings) -> dict[str, Any]:
    """Measure one (model, resolution) case in this process; returns a JSON-able result (``status``
    ``ok`` with ``fps``, ``s_per_frame``, ``achieved_tflops``, ``peak_mem_mib``..., or ``skipped``
    with the estimate). Sets torch's thread count when ``settings.threads``."""
    from vsjpegfix.engine.core import Engine

    if settings.threads:
        torch.set_num_threads(settings.threads)
    _, width, height = parse_resolution(resolution)
    spec = resolve_model_spec(model_name)
    device = torch.device(device_name)
    is_cuda = device.type == "cuda"
    meta_model = build_meta(spec)
    config = dict(getattr(meta_model, "config", spec.config))

    def frame_flops(w: int, h: int) -> int:
        try:
            return engine_frame_flops(meta_model, w, h, lambda a, b: counted_call_flops(meta_model, a, b))
        except Exception:
            return engine_frame_flops(meta_model, w, h, lambda a, b: analytic_call_flops(spec.arch, config, a, b) or 0)

    full_flops = frame_flops(width, height)
    make_frames(16, 16, 1, 1, settings.content)  # imports (skimage, colour conversion)
    with torch.inference_mode():  # load the CPU kernels and start the thread pool before the baseline
        torch.nn.functional.conv2d(torch.ones(1, 2, 8, 8), torch.ones(2, 2, 3, 3))
    rss_before = peak_rss_mib()  # baseline: everything but the case itself
    if is_cuda:
        torch.zeros(1, device=device)  # initialise the CUDA context: the memory-stat calls need it
        torch.cuda.reset_peak_memory_stats(device)
    model = spec.build()
    engine = Engine(model, device=device, precision=settings.precision, batch_size=settings.batch_size, tile=settings.tile or None)
    fmt = yuv420()
    batch = settings.batch_size
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

    budget = float(settings.budget)
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
        planes = make_frames(pw, ph, batch, t_frames, settings.content)
        warm = timed_call(planes)
        t1 = timed_call(planes)
        f1 = frame_flops(pw, ph)
        estimate_s = t1 * full_flops / max(1, f1)  # FLOP-scaled: an upper bound when there is a fixed per-call cost
        probes.append({"size": f"{pw}x{ph}", "flops": f1, "warmup_s": warm, "s_per_call": t1, "est_full_s_per_call": estimate_s})
        area = min(max(4 * pw * ph, pw * ph * (budget / 8) / max(t1, 1e-6)), width * height / 4)
        if area >= 3 * pw * ph and t1 * area / (pw * ph) <= remaining() / 2:
            pw, ph = scaled_size(width, height, area)
            planes = make_frames(pw, ph, batch, t_frames, settings.content)
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
    planes = make_frames(width, height, batch, t_frames, settings.content)
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
    while len(times) * batch < settings.frames:
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
        budget_limited=frames_done < settings.frames,
        full_warmup=full_warmup,
    )
    if is_cuda:
        result.update(peak_mem_mib=torch.cuda.max_memory_allocated(device) / 2**20, mem_kind="torch.cuda.max_memory_allocated")
    else:
        result.update(peak_mem_mib=peak_rss_mib() - rss_before, mem_kind="peak RSS increase of the child process")
    return result


def case_command(model: str, resolution: str, device: str, settings: CaseSettings) -> list[str]:
    """The command line of a child process that measures one case and prints
    ``RESULT_MARKER + JSON`` on its stdout (this module run with ``python -m``)."""
    case = {"model": model, "resolution": resolution, "device": device, "settings": asdict(settings)}
    return [sys.executable, "-m", "vsjpegfix.training.bench_engine", json.dumps(case)]


def main(argv: list[str] | None = None) -> int:
    """Child process: measure the case given as JSON (see :func:`case_command`), print the marked result."""
    case = json.loads((sys.argv[1:] if argv is None else argv)[0])
    result = measure_case(case["model"], case["resolution"], case["device"], CaseSettings(**case["settings"]))
    print(RESULT_MARKER + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
