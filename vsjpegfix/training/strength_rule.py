"""``scripts/fit_strength.py``: a model's content-adaptive strength rule fitted on the video set, its
held-out table, and the rule written into the weights manifest.

The fit and the scores are :mod:`vsjpegfix.training.strength_fit`'s on the cache of
:mod:`vsjpegfix.training.video_set`; this module assembles them: :func:`held_out_report` (per codec
and point, mean and worst sequence of the gain of today's per-QP profile, of the rule refitted
without the scored sequence (nested margins), and of the per-frame and per-32x32-block oracles),
:func:`report_markdown`, and :func:`write_rule` (``quality_profile.predictor`` of the model in
``manifest.json``, atomically, only when the weights file is the one the manifest names).
"""

from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from vsjpegfix.frames.safe_write import atomic_output
from vsjpegfix.training.errors import TrainingError
from vsjpegfix.training.strength_fit import (
    MARGINS,
    TOLERANCE,
    frame_gains,
    oracle_strengths,
    profile_strengths,
    rule_strengths,
)
from vsjpegfix.training.video_set import Encode, VideoSetConfig
from vsjpegfix.weights.predictor import FramePredictor, StrengthPredictor
from vsjpegfix.weights.profile import QualityProfile
from vsjpegfix.weights.store import MANIFEST_NAME, sha256_file, shipped_dir


#: decimals of the coefficients stored in the manifest (a change of at most 5e-7 each)
DECIMALS = 6


def calibration_note(cfg: VideoSetConfig, sha256: str, sequences: int, date: str | None = None) -> str:
    """The rule's ``calibration`` text: what it was fitted on and how (the weights by their sha256 prefix)."""
    points = "/".join(str(v) for m, v in cfg.points if m == "qp")
    crfs = "/".join(str(v) for m, v in cfg.points if m == "crf")
    day = date or _dt.date.today().isoformat()
    folder = "/".join(Path(cfg.video_dir).resolve().parts[-3:])
    return (f"scripts/fit_strength.py on weights {sha256[:12]}: {sequences} real sequences ({folder}, "
            f"centred crops <= {cfg.crop}x{cfg.crop}, {cfg.enc_frames} frames, {len(cfg.frame_indices())} scored), "
            f"libx264/libx265 preset {cfg.preset} at QP {points} and CRF {crfs}, frame level, run-time features, "
            f"weighted least squares on the restored error, safety margin by nested leave-one-sequence-out, {day}")


def _mean_gain(enc: Encode, strengths: Mapping[str, np.ndarray]) -> float:
    return float(np.mean(frame_gains(enc, strengths)["delta_psnr_y"]))


def held_out_report(encodes: Sequence[Encode], model: str, held: Mapping[str, Mapping[str, FramePredictor]], profile: QualityProfile | None) -> dict[str, Any]:
    """Per codec and point: mean and worst sequence (of the set; extras apart) of each scheme's mean gain.

    Schemes: ``profile`` (today's per-QP strength), ``held-out rule`` (``held[sequence][codec]``),
    ``oracle-frame`` and ``oracle-32`` (least squares with the clean frame)."""
    cells: dict[tuple[str, str, str], list[tuple[str, float]]] = {}
    for enc in encodes:
        if enc.extra:
            continue
        schemes = {"held-out rule": {model: rule_strengths(enc, model, held[enc.seq][enc.codec])},
                   "oracle-frame": oracle_strengths(enc, [model], 0), "oracle-32": oracle_strengths(enc, [model], 32)}
        if profile is not None:
            schemes = {"profile": {model: profile_strengths(enc, profile)}, **schemes}
        for name, strengths in schemes.items():
            cells.setdefault((enc.codec, enc.point, name), []).append((enc.seq, _mean_gain(enc, strengths)))
    rows = []
    for (codec, point, scheme), values in cells.items():
        gains = np.array([g for _, g in values])
        i = int(np.argmin(gains))
        rows.append({"codec": codec, "point": point, "scheme": scheme, "mean": float(gains.mean()), "worst": float(gains[i]),
                     "worst_seq": values[i][0], "n": len(values)})
    return {"model": model, "rows": rows, "tolerance": TOLERANCE, "margins_tried": list(MARGINS),
            "held_out": {s: {c: r.as_dict() for c, r in rules.items()} for s, rules in held.items()}}


def strength_differences(encodes: Sequence[Encode], model: str, rules: Mapping[str, FramePredictor],
                         other: StrengthPredictor | None) -> dict[str, float]:
    """Per FFmpeg codec name, the largest difference between the strengths of ``rules`` and of ``other``
    (the manifest's) over the set's frames: how far a refit moves what runs."""
    out: dict[str, float] = {}
    for enc in encodes:
        mine, theirs = rules.get(enc.codec_name), other.for_codec(enc.codec_name) if other is not None else None
        if mine is not None and theirs is not None:
            diff = float(np.max(np.abs(rule_strengths(enc, model, mine) - rule_strengths(enc, model, theirs))))
            out[enc.codec_name] = max(out.get(enc.codec_name, 0.0), diff)
    return out


def report_markdown(report: Mapping[str, Any], final: Mapping[str, FramePredictor], shipped: StrengthPredictor | None) -> str:
    """The held-out table per codec (cells ``mean / worst`` gain in dB), the margins and the fitted rules."""
    rows = report["rows"]
    points = list(dict.fromkeys(r["point"] for r in rows))
    schemes = list(dict.fromkeys(r["scheme"] for r in rows))
    by = {(r["codec"], r["point"], r["scheme"]): r for r in rows}
    lines = [f"# Strength rule of {report['model']}: held-out scores", "",
             "Cells: mean / worst sequence of the mean per-frame Y-PSNR gain (dB) over the decoded input. `held-out rule`: "
             "for each sequence, the rule fitted on the other sequences with the margin chosen on them alone "
             f"(leave-one-sequence-out, nested); `loss`: cells below -{report['tolerance']} dB.", ""]
    for codec in sorted({r["codec"] for r in rows}):
        lines += [f"## {codec}", "", "| scheme | " + " | ".join(points) + " | loss |", "|---|" + "---|" * (len(points) + 1)]
        for s in schemes:
            cells = [by.get((codec, p, s)) for p in points]
            loss = sum(1 for p in points for r in [by.get((codec, p, s))] if r and r["worst"] < -report["tolerance"])
            lines.append(f"| {s} | " + " | ".join("" if c is None else f"{c['mean']:+.3f} / {c['worst']:+.3f}" for c in cells)
                         + f" | {loss} |")
        lines.append("")
    margins = {s: {c: r["margin"] for c, r in rules.items()} for s, rules in report["held_out"].items()}
    lines += ["Margins chosen per held-out sequence: " + "; ".join(f"{s}: " + ", ".join(f"{c} {m:g}" for c, m in ms.items())
                                                                 for s, ms in margins.items()), "", "## Rule fitted on every sequence", ""]
    for codec, rule in final.items():
        old = shipped.for_codec(codec) if shipped is not None else None
        diff = ""
        if old is not None and old.terms == rule.terms:
            diff = f"; max |theta - manifest| {np.max(np.abs(np.subtract(rule.theta, old.theta))):.2e}"
            if codec in report.get("strength_vs_manifest", {}):
                diff += f", max |strength - manifest's| over the set's frames {report['strength_vs_manifest'][codec]:.2e}"
        lines.append(f"- {codec}: margin {rule.margin:g}{diff}: " + ", ".join(f"{t}={v:+.6f}" for t, v in zip(rule.terms, rule.theta)))
    lines.append("")
    return "\n".join(lines)


def write_rule(model: str, rules: Mapping[str, FramePredictor], note: str, folder: Path | None = None) -> Path:
    """Store ``rules`` (by FFmpeg codec name, coefficients rounded to :data:`DECIMALS`) as
    ``quality_profile.predictor`` of ``model`` in the manifest of ``folder`` (default: the shipped
    weights), atomically, the rest of the file unchanged. Refused
    (:class:`TrainingError`) when the model has no entry or profile, or its weights file's sha256 is not
    the manifest's (the rule belongs to those weights)."""
    folder = Path(folder) if folder is not None else shipped_dir()
    path = folder / MANIFEST_NAME
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise TrainingError(f"cannot read {path}: {exc}") from None
    entry = next((e for e in data.get("models", []) if e.get("name") == model), None)
    if entry is None or not entry.get("quality_profile"):
        raise TrainingError(f"{path}: no model {model!r} with a quality profile")
    weights = folder / entry["file"]
    if not weights.is_file():
        raise TrainingError(f"{weights} is missing")
    actual = sha256_file(weights)
    if actual != entry["sha256"]:
        raise TrainingError(f"{weights} has sha256 {actual[:12]}, the manifest names {entry['sha256'][:12]}: not writing a rule "
                            "for other weights")
    profile = dict(entry["quality_profile"])
    stored = {c: FramePredictor(r.terms, tuple(round(float(t), DECIMALS) for t in r.theta), r.margin) for c, r in rules.items()}
    profile["predictor"] = StrengthPredictor(stored, note).as_dict()
    QualityProfile.from_dict(profile)  # checked before anything is written
    entry["quality_profile"] = profile
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return path
