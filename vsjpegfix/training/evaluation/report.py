"""The evaluation's shared report types: :class:`Accumulator` (per-item metric values per setting and
method), :class:`Table` (its rows, as in the JSON report) and the Markdown rendering of a table and
of the report header.

Any table - per image, per frame, per sequence - accumulates items with :meth:`Accumulator.add`
and becomes a :class:`Table` from :meth:`Accumulator.rows`; :func:`table_markdown` renders any of
them: one column per method, one row per setting (plus per-setting columns taken from the input
row), a ``mean`` line over the settings and a ``ms/frame`` line when the rows have costs.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

Log = Callable[[str], None]


def log_stderr(msg: str) -> None:
    """The evaluation's default progress log: one line on stderr, flushed."""
    print(msg, file=sys.stderr, flush=True)


@dataclass
class Table:
    """One table of the report: its rows (dicts with ``setting``, ``method``, ``kind``, the metrics,
    ``n``, ``seconds`` and optional figures), which setting keys and metrics it shows, its time,
    notes and table-level figures (``extra``, e.g. ``clean_tmad``)."""

    name: str
    title: str
    setting_keys: list[str]
    metrics: list[str]
    rows: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)  # table-level figures (e.g. clean_tmad)

    def as_json(self) -> dict[str, Any]:
        """The table as the JSON report stores it under ``tables.<name>``."""
        return {"title": self.title, "seconds": round(self.seconds, 3), "setting_keys": self.setting_keys,
                "metrics": self.metrics, "notes": self.notes, **self.extra, "rows": self.rows}


class Accumulator:
    """Per (setting, method) lists of metric values, restoration seconds and predicted QFs, in insertion order."""

    def __init__(self) -> None:
        self.values: dict[tuple, dict[str, list[float]]] = {}
        self.meta: dict[tuple, dict[str, Any]] = {}

    def add(self, setting: dict[str, Any], method: str, kind: str, metrics: dict[str, float], seconds: float = 0.0,
            pred_qf: float | None = None, extra: dict[str, float | None] | None = None) -> None:
        """``extra``: further per-item values, averaged over the items where they are not None."""
        key = (json.dumps(setting, sort_keys=False), method)
        if key not in self.values:
            self.values[key] = {}
            self.meta[key] = {"setting": setting, "method": method, "kind": kind, "seconds": 0.0, "pred": [], "extra": {}}
        for k, v in metrics.items():
            self.values[key].setdefault(k, []).append(float(v))
        self.meta[key]["seconds"] += seconds
        if pred_qf is not None:
            self.meta[key]["pred"].append(float(pred_qf))
        for k, v in (extra or {}).items():
            values = self.meta[key]["extra"].setdefault(k, [])
            if v is not None:
                values.append(float(v))

    def rows(self) -> list[dict[str, Any]]:
        """One row per (setting, method): each metric's mean, ``n`` items, summed ``seconds``, the
        mean ``pred_qf`` and the means of the ``extra`` values, where there are any."""
        out = []
        for key, vals in self.values.items():
            m = self.meta[key]
            row = {"setting": m["setting"], "method": m["method"], "kind": m["kind"]}
            for k, v in vals.items():
                row[k] = float(np.mean(v))
            row["n"] = len(next(iter(vals.values())))
            row["seconds"] = round(m["seconds"], 3)
            if m["pred"]:
                row["pred_qf"] = float(np.mean(m["pred"]))
            for k, v in m["extra"].items():
                if v:
                    row[k] = float(np.mean(v))
            out.append(row)
        return out


def _fmt_cell(row: dict[str, Any], metrics: list[str]) -> str:
    parts = []
    for k in metrics:
        v = row.get(k)
        if v is None:
            parts.append("-")
        elif k.startswith("ssim"):
            parts.append(f"{v:.4f}")
        elif k.startswith("delta"):
            parts.append(f"{v:+.2f}")
        elif k == "tmad_ratio":
            parts.append(f"{v:.3f}")
        else:
            parts.append(f"{v:.2f}")
    return " / ".join(parts)


METRIC_NAMES = {"psnr": "PSNR", "ssim": "SSIM", "psnrb": "PSNR-B", "psnr_y": "Y-PSNR", "delta_psnr_y": "ΔY-PSNR",
                "ssim_y": "Y-SSIM", "tmad_ratio": "TMAD ratio"}
#: per-setting columns taken from the input row: (key, header, format)
SETTING_COLUMNS = (("kbps", "kbit/s", "{:.0f}"), ("detected", "detected", "{:.0%}"))
SETTING_NAMES = {"qf": "QF", "qf1": "QF1", "qf2": "QF2", "codec": "codec", "qp": "QP", "pair": "pair", "kbps": "kbit/s"}


def table_markdown(table: Table) -> str:
    """A ``## title`` section: cell legend, time, notes, the table and its ``mean``/``ms/frame`` lines."""
    methods: list[str] = []
    for r in table.rows:
        if r["method"] not in methods:
            methods.append(r["method"])
    settings: list[str] = []
    by_key: dict[tuple[str, str], dict] = {}
    for r in table.rows:
        s = json.dumps(r["setting"])
        if s not in settings:
            settings.append(s)
        by_key[(s, r["method"])] = r
    extra = [c for c in SETTING_COLUMNS if any(c[0] in r for r in table.rows if r["kind"] == "input")]
    lines = [f"## {table.title}", "",
             f"Cells: {' / '.join(METRIC_NAMES[m] for m in table.metrics)}. Time: {table.seconds:.1f} s.", ""]
    lines += [f"- {n}" for n in table.notes]
    if table.notes:
        lines.append("")
    head = [SETTING_NAMES.get(k, k) for k in table.setting_keys] + [c[1] for c in extra] + methods
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + "|".join(["---"] * len(table.setting_keys) + ["---:"] * len(extra) + [":---:"] * len(methods)) + "|")
    for s in settings:
        setting = json.loads(s)
        cells = [str(setting[k]) for k in table.setting_keys]
        for key, _, fmt in extra:
            v = by_key.get((s, "input"), {}).get(key)
            cells.append("-" if v is None else fmt.format(v))
        cells += [_fmt_cell(by_key[(s, m)], table.metrics) if (s, m) in by_key else "" for m in methods]
        lines.append("| " + " | ".join(cells) + " |")
    pad = [""] * (len(table.setting_keys) - 1 + len(extra))
    if len(settings) > 1:
        means = {m: float(np.mean([by_key[(s, m)][table.metrics[0]] for s in settings if (s, m) in by_key])) for m in methods}
        lines.append("| " + " | ".join([f"mean {METRIC_NAMES[table.metrics[0]]}"] + pad
                                         + [f"{means[m]:.2f}" for m in methods]) + " |")
    if any("sec_per_frame" in r for r in table.rows):
        cost = []
        for m in methods:
            v = [by_key[(s, m)]["sec_per_frame"] for s in settings if "sec_per_frame" in by_key.get((s, m), {})]
            cost.append(f"{1000 * float(np.mean(v)):.1f}" if v else "-")
        lines.append("| " + " | ".join(["ms/frame"] + pad + cost) + " |")
    lines.append("")
    return "\n".join(lines)


def header_markdown(meta: dict[str, Any]) -> str:
    """The report's ``# vsjpegfix evaluation`` header from its ``meta`` (date, commit, machine, command, models, data)."""
    m = meta["machine"]
    lines = ["# vsjpegfix evaluation", "",
             f"- date: {meta['date']}",
             f"- commit: {meta['commit'] or 'unknown'} (HEAD; uncommitted changes are not detected)",
             f"- machine: {m['host']}, {m['cpu']} ({m['cpu_count']} CPUs), {m['platform']}"
             + (f", GPU {m['gpu']}" if "gpu" in m else ""),
             f"- software: Python {m['python']}, torch {m['torch']} ({m['torch_threads']} threads), PyAV {m['pyav']}"
             f" (FFmpeg {m['ffmpeg']}); device {m['device']}, precision {meta['precision']}",
             f"- command: `{meta['command']}`",
             f"- classical filter: JPEG `{meta['classical']['jpeg']}`, video `{meta['classical']['video']}` "
             "(FFmpeg via PyAV, see vsjpegfix/training/baselines.py)",
             f"- models ({meta['models_source']}): "
             + (", ".join(f"`{e['label']}` ({e['arch']}, {e['params']:,} params, {e['channels']} ch"
                          + (f", {e['frames']} frames" if e["frames"] > 1 else "") + ")" for e in meta["models"]) or "none")
             + "; FBCNN blind (double table: also dominant-QF); `+profile` rows: the model's calibrated quality "
               "profile at the known QF (images) or each frame's QP (H.264 decoder export, HEVC slice headers), as the product uses it",
             ]
    if meta.get("images"):
        im = meta["images"]
        lines.append(f"- images: {im['folder']} ({im['count']} images: first {im['count']} by name"
                     + (f", centre crop {im['crop']}x{im['crop']}" if im["crop"] else ", full size") + ")")
    if meta.get("video"):
        v = meta["video"]
        lines.append(f"- video: {v['clip']} ({v['frames']} frames)")
    if meta.get("video_set"):
        lines.append(f"- video set: {meta['video_set']['folder']} (cache {meta['video_set']['cache']})")
    lines.append(f"- total time: {meta['seconds']:.1f} s")
    return "\n".join(lines) + "\n"
