"""``--pair SINGLE=TEMPORAL``: a single-frame model against its temporal version on the video table.

Compared per codec at QP 32 and 37 (those of the table, if it has none of these): the temporal
model's gain in Y-PSNR over the single-frame one, both TMAD ratios, the cost ratio; and the
targets "gain >= +0.2 dB at QP 37 (every codec), flickers less (TMAD ratio nearer 1.0, mean over
the compared settings), cost per frame <= 1.5x".
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from vsjpegfix.training.evaluation.entries import ModelEntry
from vsjpegfix.training.evaluation.report import Table

#: --pair: the QPs compared (those of the video table, if it has none of these) and the targets
PAIR_QPS = (32, 37)
PAIR_GAIN_QP, PAIR_MIN_GAIN, PAIR_MAX_COST = 37, 0.2, 1.5


def compare_pair(video: Table, single: ModelEntry, temporal: ModelEntry) -> dict[str, Any]:
    """Temporal vs single-frame model on the video table (see the module docstring)."""
    rows = {(json.dumps(r["setting"]), r["method"]): r for r in video.rows}
    settings = [r["setting"] for r in video.rows if r["kind"] == "input"]
    qps = [q for q in PAIR_QPS if any(s["qp"] == q for s in settings)] or sorted({s["qp"] for s in settings})
    out_rows = []
    for setting in settings:
        if setting["qp"] not in qps:
            continue
        key = json.dumps(setting)
        a, b = rows[(key, single.label)], rows[(key, temporal.label)]
        ca, cb = a.get("sec_per_frame"), b.get("sec_per_frame")
        out_rows.append({
            "setting": setting,
            "delta_psnr_y": b["psnr_y"] - a["psnr_y"],
            "single_psnr_y": a["psnr_y"], "temporal_psnr_y": b["psnr_y"],
            "single_tmad_ratio": a.get("tmad_ratio"), "temporal_tmad_ratio": b.get("tmad_ratio"),
            "single_flicker": a.get("flicker"), "temporal_flicker": b.get("flicker"),
            "single_sec_per_frame": ca, "temporal_sec_per_frame": cb,
            "cost_ratio": cb / ca if ca and cb is not None else None,
        })
    out_rows.sort(key=lambda r: (r["setting"]["qp"], r["setting"]["codec"]))
    every = [(rows[(json.dumps(s), single.label)], rows[(json.dumps(s), temporal.label)]) for s in settings]
    cost_s = float(np.mean([a["sec_per_frame"] for a, _ in every]))
    cost_t = float(np.mean([b["sec_per_frame"] for _, b in every]))
    gains = [r["delta_psnr_y"] for r in out_rows if r["setting"]["qp"] == PAIR_GAIN_QP]
    dev = {k: [abs(r[f"{k}_tmad_ratio"] - 1) for r in out_rows if r[f"{k}_tmad_ratio"] is not None]
           for k in ("single", "temporal")}
    steadier = (float(np.mean(dev["temporal"])) < float(np.mean(dev["single"]))) if dev["single"] and dev["temporal"] else None
    cost_ratio = cost_t / cost_s if cost_s > 0 else None
    return {
        "single": single.label, "temporal": temporal.label,
        "single_frames": single.frames, "temporal_frames": temporal.frames,
        "qps": qps, "rows": out_rows,
        "single_sec_per_frame": cost_s, "temporal_sec_per_frame": cost_t, "cost_ratio": cost_ratio,
        "targets": {
            f"gain_qp{PAIR_GAIN_QP}": (min(gains) >= PAIR_MIN_GAIN) if gains else None,
            "flickers_less": steadier,
            "cost": (cost_ratio <= PAIR_MAX_COST) if cost_ratio is not None else None,
        },
    }


def pair_markdown(pair: dict[str, Any]) -> str:
    """The ``## Single-frame vs temporal`` section of a :func:`compare_pair` result."""
    def f(v, fmt):
        return "-" if v is None else fmt.format(v)

    def yes(v):
        return "n/a" if v is None else ("yes" if v else "NO")

    lines = [f"## Single-frame vs temporal: `{pair['single']}` vs `{pair['temporal']}` ({pair['temporal_frames']} frames)", "",
             "ΔY-PSNR: temporal minus single-frame (dB). TMAD ratio: single → temporal (1.0 = as steady as the clean "
             "clip). Cost ratio: temporal / single-frame seconds per frame.", "",
             "| codec | QP | ΔY-PSNR | TMAD ratio | cost ratio |", "|---|---|---:|:---:|---:|"]
    for r in pair["rows"]:
        lines.append(f"| {r['setting']['codec']} | {r['setting']['qp']} | {r['delta_psnr_y']:+.2f} | "
                     f"{f(r['single_tmad_ratio'], '{:.3f}')} → {f(r['temporal_tmad_ratio'], '{:.3f}')} | "
                     f"{f(r['cost_ratio'], '{:.2f}')}x |")
    t = pair["targets"]
    lines += ["",
              f"- cost per frame (all settings): {1000 * pair['single_sec_per_frame']:.1f} ms → "
              f"{1000 * pair['temporal_sec_per_frame']:.1f} ms ({f(pair['cost_ratio'], '{:.2f}')}x)",
              f"- targets: gain >= +{PAIR_MIN_GAIN} dB at QP {PAIR_GAIN_QP}: {yes(t[f'gain_qp{PAIR_GAIN_QP}'])}; "
              f"flickers less (TMAD ratio nearer 1): {yes(t['flickers_less'])}; "
              f"cost <= {PAIR_MAX_COST}x: {yes(t['cost'])}", ""]
    return "\n".join(lines)
