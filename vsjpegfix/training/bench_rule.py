"""The cost of a model's content-adaptive strength rule in the engine (``scripts/bench.py --rule-overhead``).

Same model, same frames: :meth:`vsjpegfix.engine.core.Engine.restore` one frame per call (the CLI's
batch of 1) with the per-QP strength the transcoder used before the rule (``strength=``) and with the
rule (``quantisers=``: the engine measures each frame's features and its strength,
:mod:`vsjpegfix.engine.strength`), calls interleaved so that load from other jobs hits both alike;
the median seconds per frame of each and their ratio. Because two multi-second medians on a shared
machine differ by noise of a few per cent, the rule's own work is also timed alone
(:func:`vsjpegfix.engine.strength.predicted_strengths` on a frame's luma and the model's correction:
the only step the rule adds, since both paths compute the correction and round it onto the frame).
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import torch

from vsjpegfix.engine.planes import correction_planes
from vsjpegfix.engine.strength import predicted_strengths
from vsjpegfix.quantisers.stream import FrameQuantiser
from vsjpegfix.training.bench_engine import make_frames, parse_resolution, yuv420
from vsjpegfix.training.errors import TrainingError
from vsjpegfix.training.machine import LoadMeter

TARGET_OVERHEAD = 0.05  # the limit: the rule may cost at most 5 % of the engine's time per frame


def rule_overhead(model: str = "arcnn", resolution: str = "720p", frames: int = 4, *, codec: str = "h264", qp: float = 37.0,
                  threads: int = 0) -> dict[str, Any]:
    """Seconds per frame of the engine (CPU, fp32) without and with ``model``'s rule for ``codec`` at ``qp``
    (``frames`` timed calls of each, interleaved, after one warm-up call of each) and of the rule alone."""
    from vsjpegfix.engine.core import Engine

    if threads:
        torch.set_num_threads(threads)
    label, width, height = parse_resolution(resolution)
    engine = Engine(model, device="cpu", batch_size=1)
    quantiser = FrameQuantiser(codec, qp, qp, "P")
    rule = engine.strength_rule([quantiser])
    if rule is None:
        raise TrainingError(f"{model} has no strength rule for {codec} (its quality profile's predictor)")
    strength = engine.quality_profile.for_qp(qp)[1]
    fmt = yuv420()
    planes = make_frames(width, height, 1, 1, "photo")
    with_rule: list[float] = []
    without: list[float] = []
    load = LoadMeter()
    applied = None
    for i in range(frames + 1):  # the first call of each is the warm-up
        for kind in ("rule", "profile") if i % 2 else ("profile", "rule"):
            t0 = time.perf_counter()
            if kind == "rule":
                applied = engine.restore(planes, fmt, quantisers=[quantiser]).strength
            else:
                engine.restore(planes, fmt, strength=strength)
            if i:
                (with_rule if kind == "rule" else without).append(time.perf_counter() - t0)
        if i == 0:
            load.start()
    tensors = [torch.from_numpy(p) for p in planes]
    rgb = engine.colour.to_rgb(tensors, fmt)
    with torch.inference_mode():
        y, _, _ = engine.restore_tensor(rgb)
        delta = correction_planes(y, rgb, fmt)[0]
        alone = []
        for _ in range(max(10, frames)):
            t0 = time.perf_counter()
            predicted_strengths(rule, tensors[0], delta, fmt, [quantiser])
            alone.append(time.perf_counter() - t0)
    t_rule, t_profile, t_alone = statistics.median(with_rule), statistics.median(without), statistics.median(alone)
    return {
        "model": model, "resolution": label, "width": width, "height": height, "frames": frames, "codec": codec, "qp": qp,
        "torch_threads": torch.get_num_threads(), "profile_strength": strength, "rule_strength": None if applied is None else applied[0],
        "s_per_frame_profile": t_profile, "s_per_frame_rule": t_rule, "overhead": t_rule / t_profile - 1.0,
        "rule_alone_s": t_alone, "rule_alone_fraction": t_alone / t_profile, "samples_profile": without, "samples_rule": with_rule,
        "other_load_cores": load.other_cores(), "target": TARGET_OVERHEAD,
        "met": bool(t_alone / t_profile <= TARGET_OVERHEAD and t_rule / t_profile - 1.0 <= TARGET_OVERHEAD),
    }


def overhead_markdown(r: dict[str, Any]) -> str:
    """The measurement as a few lines of Markdown."""
    load = r.get("other_load_cores")
    return "\n".join([
        f"Rule overhead: `{r['model']}`, {r['resolution']} ({r['width']}x{r['height']}), CPU fp32, {r['torch_threads']} torch threads, "
        f"{r['frames']} frames of each kind interleaved, {r['codec']} QP {r['qp']:g} (P frame)"
        + (f", other load {load:.1f} cores" if load is not None else ""), "",
        "| engine per frame | seconds (median) |", "|---|--:|",
        f"| per-QP strength ({r['profile_strength']:.3f}) | {r['s_per_frame_profile']:.3f} (spread {sample_spread(r['samples_profile']):.0%}) |",
        f"| rule ({r['rule_strength']:.3f}) | {r['s_per_frame_rule']:.3f} (spread {sample_spread(r['samples_rule']):.0%}) |",
        f"| the rule's own work alone (features + strength) | {r['rule_alone_s']:.4f} |", "",
        f"With the rule: {100 * r['overhead']:+.1f} % per frame end to end (noise of the shared machine included); the rule's "
        f"own work is {100 * r['rule_alone_fraction']:.2f} % of the engine's time (target <= {100 * r['target']:.0f} %: "
        f"{'met' if r['met'] else 'missed'}).", ""])


def sample_spread(samples: list[float]) -> float:
    """Relative spread (max - min) / median of timing samples: how noisy a median is."""
    return float((max(samples) - min(samples)) / statistics.median(samples)) if samples else float("nan")
