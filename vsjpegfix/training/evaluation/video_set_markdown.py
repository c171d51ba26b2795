"""Markdown of the video-set table (:mod:`.video_set_tables`): targets, the summary per codec (mean / worst
over the set's sequences), one per-sequence table per method and codec, the rules and frame types.

Cells: ``ΔY-PSNR`` in dB with three decimals (``mean / worst`` in the summary; ``ΔY-PSNR / ΔY-SSIM``
per sequence). Rows of extra clips (carphone) come after the set's and are not in ``mean``/``worst``.
"""

from __future__ import annotations

from typing import Any, Sequence

from vsjpegfix.training.evaluation.report import Table
from vsjpegfix.training.strength_fit import TOLERANCE
from vsjpegfix.training.evaluation.video_set_tables import DEFAULT, METHODS, PROFILE, TARGET_FRACTION, TARGET_POINT


def _points(table: Table) -> list[str]:
    return list(table.extra["config"]["points"])


def _summary(table: Table) -> dict[tuple[str, str, str], dict[str, Any]]:
    return {(s["codec"], s["point"], s["method"]): s for s in table.extra["summary"]}


def _methods(table: Table) -> list[str]:
    present = {r["method"] for r in table.rows}
    return [m for m in METHODS if m in present]


def targets_markdown(table: Table) -> str:
    """The targets of the default (held out), per codec, met or missed with the numbers."""
    lines = [f"Targets (the default, held out): no (sequence, point) below -{TOLERANCE:g} dB; "
             f"mean gain at {TARGET_POINT.upper()} at least {TARGET_FRACTION:.0%} of the way from `{PROFILE}` to the best model's "
             "per-32x32-block oracle.", "",
             "| codec | no loss | worst cell | QP 37: per-QP profile | best oracle-32 | goal | default (held out) | of the way | QP 37 target |",
             "|---|---|---|--:|--:|--:|--:|--:|---|"]
    for codec, t in table.extra["targets"].items():
        nl, q = t["no_loss"], t["qp37"]
        losses = "met" if nl["met"] else f"missed: {len(nl['losses'])} cells"
        if q is None:
            lines.append(f"| {codec} | {losses} | {nl['worst']:+.3f} ({nl['worst_cell'][0]}, {nl['worst_cell'][1]}) | - | - | - | - | - | not measured |")
            continue
        frac = "-" if q["fraction"] is None else f"{q['fraction']:.0%}"
        verdict = "met" if q["met"] else f"missed by {q['short_by_db']:.3f} dB"
        lines.append(f"| {codec} | {losses} | {nl['worst']:+.3f} ({nl['worst_cell'][0]}, {nl['worst_cell'][1]}) | "
                     f"{q['today_db']:+.3f} | {q['best_oracle_db']:+.3f} ({q['best_oracle']}) | {q['goal_db']:+.3f} | "
                     f"{q['default_db']:+.3f} | {frac} | {verdict} |")
    losses = [(codec, c) for codec, t in table.extra["targets"].items() for c in t["no_loss"]["losses"]]
    if losses:
        lines += ["", "Cells of the default below the tolerance: " + "; ".join(
            f"{codec} {c['point']} {c['sequence']} {c['delta_psnr_y']:+.3f}" for codec, c in losses)]
    return "\n".join(lines) + "\n"


def summary_markdown(table: Table, codec: str, key: str = "delta_psnr_y") -> str:
    """Rows: points; columns: methods; cells ``mean / worst`` of ``key`` over the set's sequences."""
    by = _summary(table)
    methods = _methods(table)
    fmt = "{:+.4f}" if key == "delta_ssim_y" else "{:+.3f}"
    lines = ["| point | " + " | ".join(methods) + " |", "|---|" + ":---:|" * len(methods)]
    for p in _points(table):
        cells = []
        for m in methods:
            s = by.get((codec, p, m))
            cells.append("" if s is None else f"{fmt.format(s[key + '_mean'])} / {fmt.format(s[key + '_worst'])}")
        lines.append(f"| {p} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def sequence_markdown(table: Table, method: str, codec: str) -> str:
    """Rows: the set's sequences, extra clips, then ``mean`` and ``worst``; columns: points; cells ``ΔY-PSNR / ΔY-SSIM``."""
    points = _points(table)
    cells = {(r["setting"]["sequence"], r["setting"]["point"]): r for r in table.rows
             if r["method"] == method and r["setting"]["codec"] == codec}
    seqs = list(table.extra["sequences"]) + list(table.extra["extra_sequences"])
    lines = ["| sequence | " + " | ".join(points) + " |", "|---|" + ":---:|" * len(points)]
    for s in seqs:
        row = [f"{cells[(s, p)]['delta_psnr_y']:+.3f} / {cells[(s, p)]['delta_ssim_y']:+.4f}" if (s, p) in cells else "" for p in points]
        name = s if s in table.extra["sequences"] else f"{s} (extra: not in mean/worst)"
        lines.append(f"| {name} | " + " | ".join(row) + " |")
    by = _summary(table)
    for label in ("mean", "worst"):
        row = []
        for p in points:
            s = by.get((codec, p, method))
            row.append("" if s is None else f"{s[f'delta_psnr_y_{label}']:+.3f} / {s[f'delta_ssim_y_{label}']:+.4f}")
        lines.append(f"| **{label}** | " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def rules_markdown(table: Table) -> str:
    """The rule fitted on every sequence, the shipped one, and the margins of the held-out rules."""
    rules = table.extra["rules"]
    lines = []
    for label in ("final", "shipped"):
        for codec, r in rules[label].items():
            theta = ", ".join(f"{t}={v:+.4f}" for t, v in zip(r["terms"], r["theta"]))
            lines.append(f"- {'fitted on every sequence' if label == 'final' else 'shipped (manifest)'} {codec}: margin {r['margin']:g}: {theta}")
    margins = "; ".join(f"{s}: " + ", ".join(f"{c} {r['margin']:g}" for c, r in rs.items()) for s, rs in rules["held_out"].items())
    lines.append(f"- margins of the held-out rules (each chosen without its sequence): {margins}")
    return "\n".join(lines) + "\n"


def video_set_markdown(table: Table, methods: Sequence[str] | None = None) -> str:
    """The whole section: ``methods`` (default: all) get per-sequence tables."""
    lines = [f"## {table.title}", "", f"Time: {table.seconds:.1f} s.", ""]
    lines += [f"- {n}" for n in table.notes] + [""]
    lines += ["### Targets", "", targets_markdown(table)]
    codecs = list(table.extra["config"]["codecs"])
    for codec in codecs:
        lines += [f"### {codec}: mean / worst sequence, ΔY-PSNR (dB)", "", summary_markdown(table, codec)]
        lines += [f"### {codec}: mean / worst sequence, ΔY-SSIM", "", summary_markdown(table, codec, "delta_ssim_y")]
    for method in methods or _methods(table):
        for codec in codecs:
            tag = " (rule refitted without the sequence)" if method == DEFAULT else ""
            lines += [f"### {method}{tag}, {codec}: per sequence, ΔY-PSNR / ΔY-SSIM", "", sequence_markdown(table, method, codec)]
    lines += ["### Rules of the default model", "", rules_markdown(table)]
    types = "; ".join(f"{codec} {p}: " + ", ".join(f"{k} {v}" for k, v in c.items())
                      for codec, pts in table.extra["frame_types"].items() for p, c in pts.items())
    lines += ["### Frame types of the scored frames", "", types, ""]
    return "\n".join(lines)
