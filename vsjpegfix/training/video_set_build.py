"""The video set's model corrections and its cache build (:mod:`vsjpegfix.training.video_set`).

:func:`model_correction` computes a model's correction of decoded frames as the engine computes it
(:func:`vsjpegfix.engine.restore_pass.restore_planes` before the strength: the engine's colour
steps, one model call per frame as the transcoder's default batch of 1, FBCNN's control QF from
the model's profile at each frame's quantiser, :func:`vsjpegfix.engine.planes.correction_planes`);
:func:`runtime_features` measures the rule's features with the run-time code
(:func:`vsjpegfix.engine.strength.frame_features`, as
:func:`vsjpegfix.engine.strength.predicted_strengths` calls it), so what is fitted is what runs.
:func:`build` fills the cache in worker processes; :func:`load_set` gives the set in memory.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from vsjpegfix.engine.colour import PlaneFormat
from vsjpegfix.engine.planes import correction_planes
from vsjpegfix.engine.strength import frame_features, luma_code_scale
from vsjpegfix.quantisers.stream import FrameQuantiser
from vsjpegfix.training.errors import TrainingError
from vsjpegfix.training.video_set import (
    FEATURE_KEYS,
    FORMAT,
    Encode,
    Log,
    VideoSetConfig,
    cached,
    load_classical,
    load_clean,
    load_encode,
    point_name,
    quantisers_of,
)
from vsjpegfix.weights.profile import control_for_qps

_ENGINES: dict[str, Any] = {}


def engine_for(model: str) -> Any:
    """The process's CPU engine for a shipped model (fp32, one frame per model call, as the CLI's default)."""
    if model not in _ENGINES:
        from vsjpegfix.engine.core import Engine

        _ENGINES[model] = Engine(model, device="cpu", batch_size=1)
    return _ENGINES[model]


def control_qf(engine: Any, quantisers: Sequence[FrameQuantiser]) -> list[float | None]:
    """Each frame's control QF as the transcoder's profile mode gives it (None: the model's own)."""
    if engine.quality_profile is None or not engine.has_quality:
        return [None] * len(quantisers)
    return [None if qf is None else qf[0] for qf, _ in (control_for_qps(engine.quality_profile, [q.qp], True) for q in quantisers)]


def model_correction(engine: Any, planes: Sequence[np.ndarray], fmt: PlaneFormat, qfs: Sequence[float | None]) -> tuple[list[torch.Tensor], list[float | None]]:
    """The engine's correction of each frame per plane (``(N, h, w)`` float32 code values, as
    :func:`vsjpegfix.engine.restore_pass.restore_planes` computes it before the strength) and the QF
    FBCNN used (None for other models). One model call per frame, with that frame's ``qfs`` value."""
    if engine.channels != 3 or engine.frames != 1:
        raise TrainingError("the video set supports single-frame colour models")
    deltas: list[list[torch.Tensor]] = [[] for _ in planes]
    used: list[float | None] = []
    with torch.inference_mode():
        for k in range(planes[0].shape[0]):
            tensors = [torch.from_numpy(np.ascontiguousarray(p[k : k + 1])).to(engine.device) for p in planes]
            rgb = engine.colour.to_rgb(tensors, fmt)
            y, _, used_qf = engine.restore_tensor(rgb, qfs[k])
            for i, d in enumerate(correction_planes(y, rgb, fmt)):
                deltas[i].append(d.cpu())
            used.append(None if used_qf is None else float(used_qf.reshape(-1)[0]))
    return [torch.cat(d) for d in deltas], used


def runtime_features(luma: np.ndarray | torch.Tensor, correction: np.ndarray | torch.Tensor, fmt: PlaneFormat,
                     quantisers: Sequence[FrameQuantiser]) -> dict[str, np.ndarray]:
    """The rule's features of each frame exactly as the engine measures them (YUV input: luma and its
    correction in 8-bit code units, :func:`vsjpegfix.engine.strength.frame_features`)."""
    k = luma_code_scale(fmt)
    x, d = torch.as_tensor(np.asarray(luma)), torch.as_tensor(np.asarray(correction))
    return frame_features(x.float() * k, d.float() * k, quantisers)


def load_correction(cfg: VideoSetConfig, path: Path, codec: str, point: tuple[str, int], model: str) -> dict[str, np.ndarray]:
    """A model's cached correction of the evaluated frames: ``dy``, ``du``, ``dv`` float32, ``qf`` (the
    control QF used, NaN for none), the runtime features (``tex``, ``blk``, ``rd``, ``qp``, ``I``,
    ``B``, ``aq``) and ``seconds`` (model time per frame)."""

    def compute() -> dict[str, np.ndarray]:
        enc = load_encode(cfg, path, codec, point)
        quantisers = quantisers_of(str(enc["codec_name"]), enc)
        engine = engine_for(model)
        t0 = time.perf_counter()
        deltas, used = model_correction(engine, [enc["y"], enc["u"], enc["v"]], FORMAT, control_qf(engine, quantisers))
        seconds = (time.perf_counter() - t0) / len(quantisers)
        feats = runtime_features(enc["y"], deltas[0], FORMAT, quantisers)
        return {"dy": deltas[0].numpy(), "du": deltas[1].numpy(), "dv": deltas[2].numpy(),
                "qf": np.array([np.nan if q is None else q for q in used]), "seconds": np.array(seconds), **feats}

    return cached(cfg.root / "corr" / path.stem / f"{codec}_{point_name(point)}_{model}.npz", compute)


def build_sequence(cfg: VideoSetConfig, path: Path, models: Sequence[str], classical: bool = True, log: Log | None = None) -> None:
    """Fill the cache of one sequence: its encodes, each model's corrections, the classical baseline."""
    for codec in cfg.codecs:
        for point in cfg.points:
            t0 = time.perf_counter()
            for model in models:
                load_correction(cfg, path, codec, point, model)
            if classical:
                load_classical(cfg, path, codec, point)
            if log and time.perf_counter() - t0 > 1.0:  # something was computed
                log(f"{path.stem} {codec} {point_name(point)}: {time.perf_counter() - t0:.1f} s")


def _build_worker(args: tuple) -> str:
    import faulthandler

    faulthandler.enable()  # a crash in a worker (FFmpeg, x265) is reported, not silent
    cfg, path, models, classical = args
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    build_sequence(cfg, path, models, classical)
    return f"{path.stem}: {time.perf_counter() - t0:.0f} s"


def build(cfg: VideoSetConfig, models: Sequence[str], *, classical: bool = True, workers: int = 2, log: Log | None = None) -> None:
    """Fill the cache for every sequence, ``workers`` processes of one torch thread each (a worker that
    dies fails the build: :class:`TrainingError`)."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    jobs = [(cfg, p, tuple(models), classical) for p in cfg.sequence_paths()]
    if workers <= 1:
        messages = map(_build_worker, jobs)
    else:
        pool = ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"))
        messages = pool.map(_build_worker, jobs)
    try:
        for msg in messages:
            if log:
                log(msg)
    except BrokenProcessPool:
        raise TrainingError("a cache-building process died (see its message above)") from None
    finally:
        if workers > 1:
            pool.shutdown(cancel_futures=True)


# ----------------------------------------------------------------------------- the set in memory

def load_set(cfg: VideoSetConfig, models: Sequence[str], *, classical: bool = False) -> list[Encode]:
    """Every (sequence, codec, point) of ``cfg`` with the luma data of ``models`` (computing what the cache lacks)."""
    out = []
    extra = {Path(p).stem for p in cfg.extra}
    idx = cfg.frame_indices()
    for path in cfg.sequence_paths():
        clean_y = load_clean(cfg, path)["y"][idx]
        for codec in cfg.codecs:
            for point in cfg.points:
                enc = load_encode(cfg, path, codec, point)
                e = Encode(path.stem, codec, point_name(point), clean_y, enc["y"], quantisers_of(str(enc["codec_name"]), enc),
                           extra=path.stem in extra, bytes=int(enc["bytes"]))
                for m in models:
                    corr = load_correction(cfg, path, codec, point, m)
                    e.corrections[m] = corr["dy"]
                    e.features[m] = {k: corr[k] for k in FEATURE_KEYS}
                    e.seconds[m] = float(corr["seconds"])
                if classical:
                    cl = load_classical(cfg, path, codec, point)
                    e.classical, e.seconds["classical"] = cl["y"], float(cl["seconds"])
                out.append(e)
    return out


