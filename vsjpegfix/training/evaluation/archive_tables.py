"""The archive-codec table: the video validation set re-encoded with MPEG-2, MPEG-4 Part 2, MJPEG and
VP9 at fine, middle and coarse fixed quantisers, restored blind and with the quantisers read from the
streams (each model's profile through the codec's calibrated table), scored on Y per sequence.

Each clean sequence (``/work/shared/data/video``, FFV1) gives its first ``frames`` frames, a centred
``crop`` (at most its size, even), through :func:`vsjpegfix.training.archive_codecs.encode_decode_archive`;
the decoded planes and the native quantisers are cached (``cache``), the H.264-scale QPs mapped
anew from the current table (:func:`vsjpegfix.quantisers.mapping.codec_qp`) on every run. Per codec
and quantiser the table gives the input's PSNR and each method's gain over it: the mean over the
sequences and the worst sequence.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import av
import numpy as np

from vsjpegfix.quantisers.mapping import codec_qp
from vsjpegfix.quantisers.stream import FrameQuantiser
from vsjpegfix.training.archive_codecs import encode_decode_archive
from vsjpegfix.training.evaluation.entries import ModelEntry
from vsjpegfix.training.evaluation.report import Log, log_stderr
from vsjpegfix.training.metrics import psnr_y
from vsjpegfix.training.video_set import FORMAT, restored
from vsjpegfix.training.video_set_build import control_qf, model_correction, runtime_features
from vsjpegfix.weights.predictor import FramePredictor

#: Fine, middle and coarse fixed quantisers per codec (the encoders' settings: qscale, libvpx quantizer).
ARCHIVE_SETTINGS: dict[str, tuple[int, int, int]] = {
    "mpeg2video": (4, 10, 20), "mpeg4": (4, 10, 20), "mjpeg": (4, 10, 20), "vp9": (16, 36, 56),
    "msmpeg4": (4, 10, 20), "flv": (4, 10, 20), "wmv2": (4, 10, 20),
}
LEVELS = ("fine", "middle", "coarse")
Planes = list[np.ndarray]


def load_sequence(path: Path, frames: int, crop: int) -> Planes:
    """The first ``frames`` frames of a yuv420p video, a centred ``crop`` square (even, at most the frame)."""
    out: list[list[np.ndarray]] = []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            frame = frame if frame.format.name == "yuv420p" else frame.reformat(format="yuv420p")
            h, w = frame.height, frame.width
            ch, cw = min(crop, h) // 2 * 2, min(crop, w) // 2 * 2
            y0, x0 = (h - ch) // 4 * 2, (w - cw) // 4 * 2
            planes = [np.frombuffer(p, np.uint8).reshape(p.height, p.line_size) for p in frame.planes]
            out.append([planes[0][y0:y0 + ch, x0:x0 + cw].copy()]
                       + [p[y0 // 2:(y0 + ch) // 2, x0 // 2:(x0 + cw) // 2].copy() for p in planes[1:]])
            if len(out) >= frames:
                break
    return [np.stack([f[i] for f in out]) for i in range(3)]


def cached_encode(clean: Planes, codec: str, q: int, cache: Path | None) -> tuple[Planes, list[float | None], list[FrameQuantiser | None]]:
    """Decoded planes, each frame's native quantiser (None where unread) and its quantiser as the
    transcoder reads it (mapped to the H.264 scale by the current table), cached by content."""
    key = hashlib.sha256(b"".join(p.tobytes() for p in clean) + f"{codec}:{q}:v2".encode()).hexdigest()[:20]
    path = cache / f"{codec}-{q}-{key}.npz" if cache is not None else None
    if path is not None and path.exists():
        data = np.load(path)
        planes, values = [data["y"], data["u"], data["v"]], [None if np.isnan(v) else float(v) for v in data["values"]]
        types, adaptive = [str(t) or None for t in data["types"]], [bool(a) for a in data["adaptive"]]
    else:
        stats: dict[str, Any] = {}
        planes = encode_decode_archive(clean, codec, q, stats=stats)
        values = [q_.value if q_ is not None else None for q_ in stats["quantisers"]]
        types = [q_.picture_type if q_ is not None else None for q_ in stats["quantisers"]]
        adaptive = [bool(q_ is not None and q_.adaptive) for q_ in stats["quantisers"]]
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            np.savez_compressed(path, y=planes[0], u=planes[1], v=planes[2], types=np.array([t or "" for t in types]),
                                values=np.array([np.nan if v is None else v for v in values]), adaptive=np.array(adaptive))
    quantisers = [None if v is None else FrameQuantiser(codec, v, codec_qp(codec, v), t, None, a)
                  for v, t, a in zip(values, types, adaptive)]
    return planes, values, quantisers


def held_out_gain(model: ModelEntry, clean: Planes, degraded: Planes, quantisers: Sequence[FrameQuantiser], rule: FramePredictor) -> float:
    """Mean Y-PSNR of ``model`` with ``rule`` choosing each frame's strength (a rule fitted without this
    sequence): the model's correction and the rule's features as the engine computes them."""
    deltas, _ = model_correction(model.engine, degraded, FORMAT, control_qf(model.engine, quantisers))
    strengths = rule.strengths(runtime_features(degraded[0], deltas[0], FORMAT, quantisers))
    return mean_psnr(clean, restored(degraded, [d.numpy() for d in deltas], strengths))


def mean_psnr(clean: Planes, test: Planes) -> float:
    """Mean Y-PSNR over the frames."""
    return float(np.mean([psnr_y(c, t) for c, t in zip(clean[0], test[0])]))


def archive_rows(sequences: dict[str, Planes], blind: ModelEntry, profiled: Sequence[ModelEntry], *,
                 codecs: Sequence[str] = tuple(ARCHIVE_SETTINGS), cache: Path | None = None,
                 tables: dict[str, dict[str, Any]] | None = None, held_out: Mapping[str, FramePredictor] | None = None,
                 log: Log = log_stderr) -> list[dict[str, Any]]:
    """One row per (codec, quantiser, sequence): ``input`` PSNR, ``blind`` (``blind`` run without
    quantisers) gain, ``<label> +profile`` gain of each of ``profiled`` following the frames' QPs with its
    per-QP profile, and ``<label> +rule`` as the transcoder runs it (the model's strength rule for the codec,
    where it has one). ``held_out`` (sequence -> rule fitted without it): adds ``<first profiled> +rule (held out)``.

    ``tables``: per model label, per codec, the ``points`` to map the native quantisers with
    (a calibration report of ``scripts/calibrate_codecs.py``); default the shipped tables."""
    tables = tables or {}
    rows = []
    t0 = time.perf_counter()
    for codec in codecs:
        for level, q in zip(LEVELS, ARCHIVE_SETTINGS[codec]):
            for name, clean in sequences.items():
                degraded, values, quantisers = cached_encode(clean, codec, q, cache)
                base = mean_psnr(clean, degraded)
                row: dict[str, Any] = {"codec": codec, "level": level, "q": q, "sequence": name, "input": base,
                                       "value": float(np.mean([v for v in values if v is not None]))}
                row[f"{blind.label} blind"] = mean_psnr(clean, blind.restore_video(degraded)[0]) - base
                if all(v is not None for v in values):
                    row["qp"] = float(np.mean([codec_qp(codec, v) for v in values]))
                    for m in profiled:
                        points = tables.get(m.label, {}).get(codec, {}).get("points")
                        qps = [codec_qp(codec, v, points) for v in values]
                        row[f"{m.label} qp"] = float(np.mean(qps))
                        row[f"{m.label} +profile"] = mean_psnr(clean, m.restore_video(degraded, qps=qps)[0]) - base
                        if m.label not in tables and m.engine.strength_rule(quantisers) is not None:
                            row[f"{m.label} +rule"] = mean_psnr(clean, m.restore_video(degraded, quantisers=quantisers)[0]) - base
                    if held_out is not None and profiled:
                        row[f"{profiled[0].label} +rule (held out)"] = held_out_gain(profiled[0], clean, degraded, quantisers, held_out[name]) - base
                rows.append(row)
            log(f"  {codec} q={q} ({level}): {time.perf_counter() - t0:.0f} s")
    return rows


def archive_markdown(rows: list[dict[str, Any]], methods: Sequence[str], default: dict[str, str] | None = None) -> str:
    """Per codec and quantiser: input PSNR (mean), each method's gain (mean / worst sequence); ``default``
    (codec -> method) is set in bold."""
    head = "| codec | level (q) | native value | H.264 QP | input Y-PSNR | " + " | ".join(f"{m} mean / worst" for m in methods) + " |"
    lines = [head, "|" + "---|" * (5 + len(methods))]
    keys = sorted({(r["codec"], LEVELS.index(r["level"])) for r in rows}, key=lambda k: (list(ARCHIVE_SETTINGS).index(k[0]), k[1]))
    for codec, li in keys:
        group = [r for r in rows if r["codec"] == codec and r["level"] == LEVELS[li]]
        cells = []
        for m in methods:
            vals = [r[m] for r in group if m in r]
            text = f"{np.mean(vals):+.2f} / {min(vals):+.2f}" if vals else "-"
            cells.append(f"**{text}**" if default and default.get(codec) == m else text)
        qps = [r["qp"] for r in group if "qp" in r]
        lines.append(f"| {codec} | {LEVELS[li]} ({group[0]['q']}) | {np.mean([r['value'] for r in group]):.1f} | "
                     f"{np.mean(qps):.1f} | {np.mean([r['input'] for r in group]):.2f} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def target_lines(rows: list[dict[str, Any]], default: str, blind: str, tolerance: float = 0.02) -> list[str]:
    """Per codec, whether ``default`` meets the issue's targets: no sequence loses more than ``tolerance``
    dB at any quantiser, and the mean gain beats ``blind`` at the middle and coarse quantisers."""
    lines = []
    for codec in [c for c in ARCHIVE_SETTINGS if any(r["codec"] == c for r in rows)]:
        group = [r for r in rows if r["codec"] == codec and default in r]
        worst = min(group, key=lambda r: r[default])
        loss_ok = worst[default] >= -tolerance
        beats = []
        for level in ("middle", "coarse"):
            sub = [r for r in group if r["level"] == level]
            d, b = float(np.mean([r[default] for r in sub])), float(np.mean([r[blind] for r in sub]))
            beats.append(f"{level} {d:+.2f} vs {b:+.2f} ({'met' if d > b else 'not met'})")
        loss = (f"worst sequence {worst[default]:+.2f} dB ({worst['sequence']}, {worst['level']}): "
                f"{'met' if loss_ok else 'not met'}")
        lines.append(f"- **{codec}**: no loss beyond {tolerance} dB: {loss}; gain over {blind}: {'; '.join(beats)}.")
    return lines
