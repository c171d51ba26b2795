"""The engine benchmark's report (vsjpegfix.training.bench_report): number formatting, the contention warning,
and one case measured through its child process."""

from vsjpegfix.training.bench_engine import CaseSettings
from vsjpegfix.training.bench_report import Case, contention_note, fmt_num, run_case


def test_fmt_num():
    assert [fmt_num(v) for v in (None, 0, 0.012345, 1.5, 123.456, 98765.4)] == ["–", "0", "0.0123", "1.50", "123", "98,765"]
    assert fmt_num(0.5, 2) == "0.50"


def test_contention_note():
    report = {"machine": {"torch_threads": 2, "cpu_affinity": 2}, "settings": {"device": "cpu"}, "other_load_cores": 1.3}
    (note,) = contention_note(report)
    assert "**contention**: 2 torch threads + 1.3 cores busy with other processes on 2 cores" in note
    assert contention_note({**report, "other_load_cores": 0.2}) == []
    assert contention_note({**report, "settings": {"device": "cuda:0"}}) == []


def test_run_case_in_a_child_process():
    case = Case("fastarcnn", "32x32", 32, 32, 0, 0, 0.0, 0.0)
    run_case(CaseSettings(precision="fp32", frames=1, budget=5, threads=1, content="random"), case, "cpu")
    assert case.status == "ok", case.error
    assert case.result["frames_timed"] == 1 and case.result["fps"] > 0 and case.wall_s > 0
    bad = Case("no-such-model", "32x32", 32, 32, 0, 0, 0.0, 0.0)
    run_case(CaseSettings(frames=1, budget=5), bad, "cpu")
    assert bad.status == "error" and "unknown model" in bad.error
