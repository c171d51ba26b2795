"""Calibrate each archive codec's quantiser onto the H.264 QP scale of the models' quality profiles.

The quality profiles (:mod:`vsjpegfix.training.calibration`) were measured on H.264: for a frame of
mean QP ``qp`` they give the strength (and, for FBCNN, the control QF) that restores best. A frame of
another codec carries its own quantiser (MPEG-2 ``quantiser_scale``, MPEG-4 ``vop_quant``, MJPEG's
quality factor, VP9's ``base_q_idx``); :func:`vsjpegfix.quantisers.mapping.codec_qp` puts it on the
H.264 scale through a table made here.

Method (*restoration-matched*, for one model): for each codec and native quantiser, 5-frame clips
of training stills (a crop moved over each image, :func:`vsjpegfix.training.calibration_data.still_clips`,
never the validation sets) are encoded by FFmpeg's encoder at that fixed quantiser
(:func:`vsjpegfix.training.archive_codecs.encode_decode_archive`: DVD-like GOP with B pictures,
MJPEG intra, VP9 with its own deblocking filter) and the model restores the inter frames 1..3. For
every candidate H.264 QP (:data:`CANDIDATE_QPS`) the model's profile gives ``(control, strength)``;
the squared error of that setting follows from one model run per control (``out = in + s * d``
is linear in ``s``), pooled over the samples with each frame weighted by the inverse of its input
MSE (mean per-frame dB, as the tables average it). The equivalent QP is the candidate of least
error; among candidates equally good (a profile's strength is flat, 0 or 1, at its ends) the one
nearest the step-size equivalence (:func:`vsjpegfix.quantisers.mapping.first_order_qp`). The table is
made monotone (isotonic: a coarser quantiser never maps to a finer QP).

Why this and not matching the coding distortion: these codecs have no in-loop deblocking (MPEG-2,
MPEG-4 Part 2, MJPEG), so at the PSNR of a given H.264 QP their blocking is much stronger and the
model gains more than H.264's profile point would allow; matching distortion would restore them too
gently (strength 0 at fine quantisers, where blind fbcnn-s gains about 1 dB on MPEG-2).
"""

from __future__ import annotations

import time
from typing import Any, Sequence

import numpy as np

from vsjpegfix.engine.core import Engine
from vsjpegfix.quantisers.mapping import first_order_qp
from vsjpegfix.training.archive_codecs import encode_decode_archive
from vsjpegfix.training.calibration import SCORED, Sums, isotonic
from vsjpegfix.training.calibration_data import VIDEO_FORMAT, Log, log_calibrate
from vsjpegfix.weights.profile import QualityProfile

#: Native quantisers calibrated per codec (the encoders' own settings: MPEG-2/MPEG-4/MJPEG qscale
#: 1..31, libvpx's quantizer 0..63); the table is keyed by the value the reader reports.
CODEC_SETTINGS: dict[str, tuple[int, ...]] = {
    "mpeg2video": (2, 3, 5, 8, 12, 20, 31),
    "mpeg4": (2, 3, 5, 8, 12, 20, 31),
    "mjpeg": (2, 3, 5, 8, 12, 20, 31),
    "vp9": (8, 16, 24, 32, 40, 48, 56, 63),
}
CANDIDATE_QPS = tuple(float(q) for q in np.arange(14.0, 52.01, 0.5))
CONTROL_STEP = 10.0  # FBCNN controls are run at multiples of this (the profile's points are)


def candidate_settings(profile: QualityProfile, has_quality: bool) -> list[tuple[float, float | None, float]]:
    """``(qp, control run, strength)`` for each candidate QP: the profile's setting there, the control
    rounded to :data:`CONTROL_STEP` (None: blind, or a model without quality control)."""
    out = []
    for qp in CANDIDATE_QPS:
        control, strength = profile.for_qp(qp)
        run = None if control is None or not has_quality else float(round(control / CONTROL_STEP) * CONTROL_STEP)
        out.append((qp, run, strength))
    return out


def codec_sums(clips: list[list[np.ndarray]], codec: str, q: int, engine: Engine,
               controls: Sequence[float | None]) -> tuple[dict[Any, Sums], float, float]:
    """Pooled sums per control for ``codec`` at quantiser ``q``, the mean native value the reader
    reports for the scored frames, and the mean input PSNR (Y) of those frames."""
    sums: dict[Any, Sums] = {c: Sums() for c in controls}
    values: list[float] = []
    psnrs: list[float] = []
    for clean in clips:
        stats: dict[str, Any] = {}
        deg = encode_decode_archive(clean, codec, q, stats=stats)
        values.extend(stats["quantisers"][k].value for k in SCORED if stats["quantisers"][k] is not None)
        planes = [p[list(SCORED)] for p in deg]
        for k in SCORED:
            mse = float(np.mean((clean[0][k].astype(np.float64) - deg[0][k]) ** 2))
            psnrs.append(10 * np.log10(255.0 ** 2 / max(mse, 1e-6)))
        for c in controls:
            out = engine.restore(planes, VIDEO_FORMAT, qf=c).planes[0]
            for j, k in enumerate(SCORED):
                sums[c].add(clean[0][k], deg[0][k], out[j], normalise=True)
    if not values:
        raise RuntimeError(f"{codec} at {q}: no quantiser read")
    return sums, float(np.mean(values)), float(np.mean(psnrs))


def best_qp(sums: dict[Any, Sums], settings: Sequence[tuple[float, float | None, float]], prior: float) -> tuple[float, float]:
    """The candidate QP whose profile setting has least pooled error (ties: nearest ``prior``), and its gain in dB."""
    scored = []
    for qp, control, strength in settings:
        cell = sums[control]
        err = cell.rr - 2 * strength * cell.rd + strength * strength * cell.dd
        scored.append((err, qp, cell.gain(strength)))
    least = min(e for e, _, _ in scored)
    ties = [(abs(qp - prior), qp, gain) for e, qp, gain in scored if e <= least + 1e-9 * max(abs(least), 1.0)]
    _, qp, gain = min(ties)
    return qp, gain


def calibrate_codec(codec: str, clips: list[list[np.ndarray]], engine: Engine, log: Log = log_calibrate) -> dict[str, Any]:
    """One codec's table for ``engine``'s model: ``points`` ``[[native value, H.264 QP], ...]`` sorted by
    native value (monotone), and ``detail`` per setting (raw optimum, gain, input PSNR)."""
    profile = engine.quality_profile
    if profile is None or not profile.has_qp:
        raise RuntimeError(f"{engine.model_name} has no H.264 QP profile to calibrate against")
    settings = candidate_settings(profile, engine.has_quality)
    controls = sorted({c for _, c, _ in settings}, key=lambda c: -1.0 if c is None else c)
    detail = []
    for q in CODEC_SETTINGS[codec]:
        started = time.perf_counter()
        sums, value, psnr = codec_sums(clips, codec, q, engine, controls)
        qp, gain = best_qp(sums, settings, first_order_qp(codec, value))
        detail.append({"setting": q, "value": round(value, 3), "input_psnr_y": round(psnr, 3), "qp": qp,
                       "first_order_qp": round(first_order_qp(codec, value), 3), "gain_db": round(gain, 4)})
        log(f"  {codec} q={q}: value {value:.1f} -> QP {qp:g} (+{gain:.3f} dB; {time.perf_counter() - started:.0f} s)")
    detail.sort(key=lambda d: d["value"])
    # MJPEG's value is a quality factor: higher is finer, so its QP falls as the value rises
    qps = isotonic([d["qp"] for d in detail], increasing=codec != "mjpeg")
    return {"points": [[d["value"], round(q, 3)] for d, q in zip(detail, qps)], "detail": detail}


def calibrate_codecs(codecs: Sequence[str], clips: list[list[np.ndarray]], engine: Engine, note: str,
                     log: Log = log_calibrate) -> dict[str, Any]:
    """Tables for ``codecs`` (see :func:`calibrate_codec`), each with its ``model`` and ``calibration`` note."""
    out: dict[str, Any] = {}
    for codec in codecs:
        if codec not in CODEC_SETTINGS:
            raise ValueError(f"unknown codec {codec!r}; use {', '.join(CODEC_SETTINGS)}")
        log(f"{engine.model_name}: {codec}")
        out[codec] = {"model": engine.model_name, "calibration": note, **calibrate_codec(codec, clips, engine, log)}
    return out
