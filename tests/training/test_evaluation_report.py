"""The evaluation's shared report types (vsjpegfix.training.evaluation.report) and the --pair comparison."""

import json

import numpy as np
import pytest

from vsjpegfix.training.evaluation.pairs import compare_pair, pair_markdown
from vsjpegfix.training.evaluation.report import Accumulator, Table, table_markdown


def test_accumulator_means_per_setting_and_method():
    acc = Accumulator()
    for v in (30.0, 32.0):
        acc.add({"qf": 10}, "input", "input", {"psnr": v}, extra={"detected": 1.0, "detected_qf1": None})
        acc.add({"qf": 10}, "m", "model", {"psnr": v + 1}, seconds=0.25, pred_qf=v / 2)
    acc.add({"qf": 20}, "input", "input", {"psnr": 40.0}, extra={"detected_qf1": None})
    rows = acc.rows()
    assert [(r["setting"], r["method"]) for r in rows] == [({"qf": 10}, "input"), ({"qf": 10}, "m"), ({"qf": 20}, "input")]
    assert rows[0]["psnr"] == 31.0 and rows[0]["n"] == 2 and rows[0]["detected"] == 1.0
    assert "detected_qf1" not in rows[0] and "pred_qf" not in rows[0]  # no value: no key
    assert rows[1]["psnr"] == 32.0 and rows[1]["seconds"] == 0.5 and rows[1]["pred_qf"] == 15.5
    assert rows[2]["n"] == 1


def _video_table() -> Table:
    rows = []
    for codec in ("x264", "x265"):
        for qp in (27, 32, 37):
            s = {"codec": codec, "qp": qp}
            base = 40.0 - qp / 2
            rows.append({"setting": s, "method": "input", "kind": "input", "psnr_y": base, "delta_psnr_y": 0.0,
                         "ssim_y": 0.9, "tmad_ratio": 1.2, "kbps": 100.0 - qp})
            for method, gain, ratio, cost in (("single", 0.25, 1.1, 0.010), ("temporal", 0.5, 1.02, 0.012)):
                rows.append({"setting": s, "method": method, "kind": "model", "psnr_y": base + gain, "delta_psnr_y": gain,
                             "ssim_y": 0.95, "tmad_ratio": ratio, "flicker": 0.5, "sec_per_frame": cost})
    return Table("video", "H.264 / HEVC", ["codec", "qp"], ["psnr_y", "delta_psnr_y", "ssim_y", "tmad_ratio"], rows, 1.5)


def test_table_markdown():
    table = _video_table()
    table.notes.append("a note")
    md = table_markdown(table)
    assert md.startswith("## H.264 / HEVC\n\nCells: Y-PSNR / ΔY-PSNR / Y-SSIM / TMAD ratio. Time: 1.5 s.\n\n- a note\n")
    assert "| codec | QP | kbit/s | input | single | temporal |" in md
    assert "| x264 | 27 | 73 | 26.50 / +0.00 / 0.9000 / 1.200 | 26.75 / +0.25 / 0.9500 / 1.100 |" in md
    assert "| mean Y-PSNR |  |  | 24.00 | 24.25 | 24.50 |" in md
    assert "| ms/frame |  |  | - | 10.0 | 12.0 |" in md
    assert json.loads(json.dumps(table.as_json()))["rows"] == table.rows


def test_compare_pair():
    class Entry:  # what compare_pair reads of a model
        def __init__(self, label, frames):
            self.label, self.frames = label, frames

    pair = compare_pair(_video_table(), Entry("single", 1), Entry("temporal", 3))
    assert pair["qps"] == [32, 37]
    assert [(r["setting"]["codec"], r["setting"]["qp"]) for r in pair["rows"]] == [
        ("x264", 32), ("x265", 32), ("x264", 37), ("x265", 37)]
    assert all(r["delta_psnr_y"] == 0.25 and r["cost_ratio"] == pytest.approx(1.2) for r in pair["rows"])
    assert pair["cost_ratio"] == pytest.approx(1.2)
    assert pair["targets"] == {"gain_qp37": True, "flickers_less": True, "cost": True}
    md = pair_markdown(pair)
    assert "| x265 | 37 | +0.25 | 1.100 → 1.020 | 1.20x |" in md
    assert "- targets: gain >= +0.2 dB at QP 37: yes; flickers less (TMAD ratio nearer 1): yes; cost <= 1.5x: yes" in md
    # too little gain, too costly
    table = _video_table()
    for r in table.rows:
        if r["method"] == "temporal":
            r["psnr_y"] -= 0.1
            r["sec_per_frame"] = 0.02
    pair = compare_pair(table, Entry("single", 1), Entry("temporal", 3))
    assert pair["targets"]["gain_qp37"] is False and pair["targets"]["cost"] is False
    assert np.isclose(pair["cost_ratio"], 2.0)
