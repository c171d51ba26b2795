"""The video-set table (``scripts/evaluate.py --video-set DIR``, issue #17): real sequences through x264
and x265 at QP 22/27/32/37/42 and CRF 18/23/28, scored per sequence and over the set.

The data is the cache of :mod:`vsjpegfix.training.video_set` (built when missing). For every
(sequence, codec, point), on the evaluated frames, Y-PSNR and Y-SSIM of the output and their gains
over the decoded input (``delta_psnr_y``, ``delta_ssim_y``, means over the frames) for each method:

* ``classical``: the classical baseline (:func:`vsjpegfix.training.baselines.deblock_yuv420`, its
  default video filter);
* ``arcnn +QP profile``, ``fbcnn-s +QP profile``: each model with its per-QP quality profile (the
  strength, and FBCNN's control QF, at the frame's quantiser): the default before the rule;
* ``default (held out)``: the default model, ``arcnn``, with its content-adaptive rule refitted
  without the scored sequence: for each sequence the rule of
  :func:`vsjpegfix.training.strength_fit.held_out_rules` (fitted on the other sequences, margin
  chosen by leave-one-out on those alone), so no reported number is one its parameters were fitted
  to; extra clips (carphone) get the rule fitted on every sequence of the set;
* ``arcnn +rule (shipped, in-sample)``: the rule in the manifest, fitted on these very sequences;
* oracles (they see the clean frame; least squares, strengths 0..1.5): per frame and per 64x64,
  32x32 and 16x16 block for ``arcnn``, per 32x32 block for ``fbcnn-s`` (with its profile's control), and the
  two-model ones (``arcnn`` and ``fbcnn-s`` corrections mixed per frame or block).

Summary per codec and point: mean and worst over the set's sequences (extra clips are rows of their
own, never in the mean, the worst or any choice). Targets: no sequence below -0.02 dB at any point
with the default; at QP 37 the default's mean at least 70 % of the way from ``arcnn +QP profile``
to the best model's per-32x32-block oracle. Rendered by :mod:`.video_set_markdown`.
"""

from __future__ import annotations

import time
from typing import Any, Mapping, Sequence

import numpy as np

from vsjpegfix.training.evaluation.report import Accumulator, Log, Table, log_stderr
from vsjpegfix.training.strength_fit import (
    TOLERANCE,
    by_encoder,
    final_rules,
    frame_gains,
    held_out_rules,
    input_psnr,
    oracle_strengths,
    output_gains,
    profile_strengths,
    rule_strengths,
)
from vsjpegfix.training.video_set import Encode, VideoSetConfig
from vsjpegfix.training.video_set_build import build, engine_for, load_set

DEFAULT_MODEL, OTHER_MODEL = "arcnn", "fbcnn-s"
CLASSICAL = "classical"
PROFILE = f"{DEFAULT_MODEL} +QP profile"
OTHER_PROFILE = f"{OTHER_MODEL} +QP profile"
DEFAULT = "default (held out)"
SHIPPED = f"{DEFAULT_MODEL} +rule (shipped, in-sample)"
ORACLES = {  # name -> (models, block)
    f"oracle-frame {DEFAULT_MODEL}": ((DEFAULT_MODEL,), 0),
    f"oracle-64 {DEFAULT_MODEL}": ((DEFAULT_MODEL,), 64),
    f"oracle-32 {DEFAULT_MODEL}": ((DEFAULT_MODEL,), 32),
    f"oracle-16 {DEFAULT_MODEL}": ((DEFAULT_MODEL,), 16),
    f"oracle-32 {OTHER_MODEL}": ((OTHER_MODEL,), 32),
    f"oracle-frame {DEFAULT_MODEL}+{OTHER_MODEL}": ((DEFAULT_MODEL, OTHER_MODEL), 0),
    f"oracle-32 {DEFAULT_MODEL}+{OTHER_MODEL}": ((DEFAULT_MODEL, OTHER_MODEL), 32),
}
METHODS = (CLASSICAL, PROFILE, OTHER_PROFILE, DEFAULT, SHIPPED, *ORACLES)
TARGET_POINT, TARGET_FRACTION = "qp37", 0.7
SPLIT = ("leave-one-sequence-out: the `default (held out)` cells of each sequence come from the rule fitted on the other "
         "{n} sequences, its safety margin chosen by a leave-one-out over those {n} alone; extra clips ({extra}) get the rule "
         "fitted on all {m} and count in no mean, worst or choice")


def method_strengths(enc: Encode, held: Mapping[str, Mapping[str, Any]], final: Mapping[str, Any], shipped: Mapping[str, Any],
                     profiles: Mapping[str, Any]) -> dict[str, dict[str, np.ndarray]]:
    """Each method's strengths (model -> per frame or per pixel) on one encode (the classical one apart)."""
    rules = final if enc.extra else held[enc.seq]
    out = {PROFILE: {DEFAULT_MODEL: profile_strengths(enc, profiles[DEFAULT_MODEL])},
           OTHER_PROFILE: {OTHER_MODEL: profile_strengths(enc, profiles[OTHER_MODEL])},
           DEFAULT: {DEFAULT_MODEL: rule_strengths(enc, DEFAULT_MODEL, rules[enc.codec])}}
    if enc.codec in shipped:
        out[SHIPPED] = {DEFAULT_MODEL: rule_strengths(enc, DEFAULT_MODEL, shipped[enc.codec])}
    for name, (models, block) in ORACLES.items():
        out[name] = oracle_strengths(enc, models, block)
    return out


def summarise(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per (codec, point, method): mean and worst over the set's sequences (extra clips left out) of
    ``delta_psnr_y`` and ``delta_ssim_y``, with the worst sequence."""
    groups: dict[tuple[str, str, str], list[Mapping[str, Any]]] = {}
    for r in rows:
        if r["kind"] != "input" and not r.get("extra"):
            groups.setdefault((r["setting"]["codec"], r["setting"]["point"], r["method"]), []).append(r)
    out = []
    for (codec, point, method), rs in groups.items():
        item: dict[str, Any] = {"codec": codec, "point": point, "method": method, "n": len(rs)}
        for key in ("delta_psnr_y", "delta_ssim_y"):
            values = np.array([r[key] for r in rs])
            i = int(np.argmin(values))
            item.update({f"{key}_mean": float(values.mean()), f"{key}_worst": float(values[i]), f"{key}_worst_sequence": rs[i]["setting"]["sequence"]})
        out.append(item)
    return out


def targets(rows: Sequence[Mapping[str, Any]], summary: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The issue's targets per codec for the default (held out), with the numbers behind them."""
    by = {(s["codec"], s["point"], s["method"]): s for s in summary}
    out = {}
    for codec in sorted({s["codec"] for s in summary}):
        cells = [r for r in rows if r["method"] == DEFAULT and r["setting"]["codec"] == codec and not r.get("extra")]
        losses = sorted(({"sequence": r["setting"]["sequence"], "point": r["setting"]["point"], "delta_psnr_y": r["delta_psnr_y"]}
                         for r in cells if r["delta_psnr_y"] < -TOLERANCE), key=lambda c: c["delta_psnr_y"])
        worst = min(cells, key=lambda r: r["delta_psnr_y"])
        out[codec] = {"no_loss": {"met": not losses, "tolerance_db": TOLERANCE, "losses": losses, "worst": worst["delta_psnr_y"],
                                  "worst_cell": [worst["setting"]["sequence"], worst["setting"]["point"]]}, "qp37": None}
        if (codec, TARGET_POINT, PROFILE) not in by:
            continue  # the point was not measured
        today = by[(codec, TARGET_POINT, PROFILE)]["delta_psnr_y_mean"]
        oracles = {m: by[(codec, TARGET_POINT, m)]["delta_psnr_y_mean"] for m in (f"oracle-32 {DEFAULT_MODEL}", f"oracle-32 {OTHER_MODEL}")}
        best = max(oracles, key=oracles.get)
        goal = today + TARGET_FRACTION * (oracles[best] - today)
        got = by[(codec, TARGET_POINT, DEFAULT)]["delta_psnr_y_mean"]
        fraction = (got - today) / (oracles[best] - today) if oracles[best] != today else None
        out[codec]["qp37"] = {"met": got >= goal, "today_db": today, "best_oracle": best, "best_oracle_db": oracles[best],
                              "goal_db": goal, "default_db": got, "fraction": fraction, "short_by_db": max(0.0, goal - got)}
    return out


def video_set_table(cfg: VideoSetConfig, *, workers: int = 2, ssim: bool = True, log: Log = log_stderr) -> Table:
    """Build what the cache lacks, refit the default's rule per held-out sequence and score every method."""
    t0 = time.perf_counter()
    models = (DEFAULT_MODEL, OTHER_MODEL)
    log(f"video set: cache {cfg.root} ({workers} processes for what is missing)")
    build(cfg, models, classical=True, workers=workers, log=log)
    encodes = load_set(cfg, models, classical=True)
    log(f"video set: {len(encodes)} encodes loaded ({time.perf_counter() - t0:.0f} s); fitting the held-out rules")
    held = held_out_rules(encodes, DEFAULT_MODEL)
    final = by_encoder(final_rules(encodes, DEFAULT_MODEL))
    profiles = {m: engine_for(m).quality_profile for m in models}
    predictor = profiles[DEFAULT_MODEL].predictor if profiles[DEFAULT_MODEL] is not None else None
    shipped = by_encoder(predictor.codecs) if predictor is not None else {}
    acc = Accumulator()
    extra_of: dict[str, bool] = {}
    frame_types: dict[str, dict[str, dict[str, int]]] = {}
    for n, enc in enumerate(encodes):
        setting = {"sequence": enc.seq, "codec": enc.codec, "point": enc.point}
        extra_of[enc.seq] = enc.extra
        base = {"psnr_y": input_psnr(enc)}
        base.update(output_gains(enc, enc.decoded, ssim))
        for k in range(len(enc.decoded)):
            acc.add(setting, "input", "input", {key: float(v[k]) for key, v in base.items() if not key.startswith("delta")})
        scored = {CLASSICAL: ("classical", output_gains(enc, enc.classical, ssim), None)}
        for name, strengths in method_strengths(enc, held, final, shipped, profiles).items():
            kind = "oracle" if name in ORACLES else "default" if name == DEFAULT else "model"
            scored[name] = (kind, frame_gains(enc, strengths, ssim), strengths)
        for name, (kind, gains, strengths) in scored.items():
            seconds = sum(enc.seconds.get(m, 0.0) for m in (strengths or {CLASSICAL: None}))
            for k in range(len(enc.decoded)):
                metrics = {key: float(v[k]) for key, v in gains.items()}
                metrics["psnr_y"] = float(base["psnr_y"][k] + gains["delta_psnr_y"][k])
                extra = {"strength": float(np.mean(next(iter(strengths.values()))[k]))} if strengths and len(strengths) == 1 else None
                acc.add(setting, name, kind, metrics, seconds, extra=extra)
        if not enc.extra:
            counts = frame_types.setdefault(enc.codec, {}).setdefault(enc.point, {"I": 0, "P": 0, "B": 0})
            for q in enc.quantisers:
                counts[q.picture_type or "?"] = counts.get(q.picture_type or "?", 0) + 1
        if (n + 1) % 16 == 0:
            log(f"  video set: {enc.seq} scored ({time.perf_counter() - t0:.0f} s)")
    rows = acc.rows()
    for r in rows:
        r["extra"] = extra_of[r["setting"]["sequence"]]
        if r["kind"] != "input":
            r["sec_per_frame"] = r.pop("seconds") / r["n"]
    summary = summarise(rows)
    set_seqs = sorted({e.seq for e in encodes if not e.extra})
    extras = sorted({e.seq for e in encodes if e.extra})
    table = Table("video_set", f"Video set: {len(set_seqs)} sequences of {cfg.video_dir}, x264 and x265 (preset {cfg.preset})",
                  ["sequence", "codec", "point"], ["delta_psnr_y", "delta_ssim_y"], rows)
    table.notes.append(SPLIT.format(n=len(set_seqs) - 1, m=len(set_seqs), extra=", ".join(extras) or "none"))
    table.notes.append(f"centred crops <= {cfg.crop}x{cfg.crop} of the first {cfg.enc_frames} frames; frames "
                       f"{cfg.frame_indices().tolist()} restored and scored (Y plane as stored); CRF with the encoders' default "
                       "adaptive quantisation and cu-tree")
    table.extra.update({
        "sequences": set_seqs, "extra_sequences": extras, "summary": summary, "targets": targets(rows, summary),
        "frame_types": frame_types,
        "rules": {"final": {c: r.as_dict() for c, r in final.items()}, "shipped": {c: r.as_dict() for c, r in shipped.items()},
                  "held_out": {s: {c: r.as_dict() for c, r in rules.items()} for s, rules in held.items()}},
        "config": {"video_dir": str(cfg.video_dir), "cache": str(cfg.root), "crop": cfg.crop, "enc_frames": cfg.enc_frames,
                   "eval_frames": cfg.frame_indices().tolist(), "preset": cfg.preset,
                   "points": [f"{m}{v}" for m, v in cfg.points], "codecs": list(cfg.codecs)},
    })
    table.seconds = time.perf_counter() - t0
    return table
