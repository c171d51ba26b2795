"""vsjpegfix.apps.errors: the error boundary of the command line, the batch and the Ray workers.

A defect is simulated by making one stage of the real pipeline raise (the boundary itself is what is
under test); the fuzz test (test_fuzz.py) feeds it real damaged files.
"""

from __future__ import annotations

import json
import pickle

import pytest
from media import cropped_h264, make_video, no_temporaries

from vsjpegfix.apps.errors import FileFailure, as_failure, error_line
from vsjpegfix.video.pipeline import Pipeline

HINT = "run with --debug or VSJPEGFIX_DEBUG=1 for the traceback"


@pytest.fixture
def defect(monkeypatch):
    """Restoring any video frame raises KeyError('planes'): an unforeseen failure deep in the transcoder."""

    def broken(self, frame, index, need_luma, qp):
        raise KeyError("planes")

    monkeypatch.setattr(Pipeline, "prepare", broken)


def test_the_real_pyav_crash_reads_as_one_line_naming_the_file(tmp_path):
    """PyAV's own exception on a cropped stream (what issue #16 reported as a traceback), through error_line."""
    import av

    src = cropped_h264(tmp_path / "CVFC1_Sony_C.jsv")
    with av.open(str(src)) as c:
        c.streams.video[0].codec_context.options = {"export_side_data": "venc_params"}
        frame = next(c.decode(video=0))
        with pytest.raises(RuntimeError) as info:
            frame.side_data.get("VIDEO_ENC_PARAMS").qp_map()
    line = error_line(info.value, src)
    assert line == f"{src}: unexpected error (RuntimeError: Expected frame size to match number of blocks in side data); {HINT}"
    failure = pickle.loads(pickle.dumps(as_failure(info.value, src)))  # what crosses from a Ray worker
    assert str(failure) == line and "qp_map" in failure.details and "Traceback" in failure.details
    assert error_line(ValueError("bad option\nmore")) == "bad option"  # errors raised on purpose: their own line
    assert error_line(failure) == line


def test_an_unexpected_error_is_one_line_with_the_file_name(tmp_path, weights, cli, capsys, defect, monkeypatch):
    src = make_video(tmp_path / "in.mp4", frames=3)
    out, report = tmp_path / "out.mkv", tmp_path / "r.json"
    code = cli([str(src), str(out), "--model", str(weights), "--quiet", "--json", str(report)])
    err = capsys.readouterr().err
    assert code == 1 and err.splitlines() == [f"vsjpegfix: error: {src}: unexpected error (KeyError: 'planes'); {HINT}"]
    assert not out.exists() and no_temporaries(tmp_path)
    assert json.loads(report.read_text())["files"][0]["reason"] == f"{src}: unexpected error (KeyError: 'planes'); {HINT}"
    # --debug, or the environment variable: the traceback first, then the same line
    for extra, env in ((["--debug"], None), ([], "1")):
        if env:
            monkeypatch.setenv("VSJPEGFIX_DEBUG", env)
        code = cli([str(src), str(out), "--model", str(weights), "--quiet", *extra])
        lines = capsys.readouterr().err.strip().splitlines()
        assert code == 1 and lines[0].startswith("Traceback") and "in broken" in "\n".join(lines)
        assert lines[-1] == f"vsjpegfix: error: {src}: unexpected error (KeyError: 'planes'); {HINT}"
        assert not out.exists() and no_temporaries(tmp_path)


def test_batch_reports_an_unexpected_error_per_file_and_goes_on(tmp_path, weights, cli, capsys, defect):
    src, dst = tmp_path / "src", tmp_path / "dst"
    make_video(src / "a.mp4", frames=2)
    from PIL import Image

    Image.new("RGB", (16, 16), (90, 90, 90)).save(src / "b.png")  # images do not go through the broken stage
    code = cli(["batch", str(src), str(dst), "--model", str(weights), "--quiet", "--json", str(tmp_path / "r.json")])
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err
    assert f"vsjpegfix:   failed: {src / 'a.mp4'}: unexpected error (KeyError: 'planes'); {HINT}" in err.splitlines()
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["summary"] == {"ok": 1, "skipped": 0, "failed": 1, "ignored": 0}
    assert (dst / "b.png").is_file() and not (dst / "a.mp4").exists() and no_temporaries(dst)
    code = cli(["batch", str(src), str(tmp_path / "dst2"), "--model", str(weights), "--quiet", "--debug"])
    err = capsys.readouterr().err
    assert code == 1 and err.count("Traceback") == 1 and "in broken" in err


def test_a_ray_worker_sends_back_one_line_and_the_traceback(tmp_path, weights, defect):
    """The worker class itself (what a Ray actor runs), in this process: any failure is a picklable FileFailure."""
    pytest.importorskip("ray")
    from vsjpegfix.apps.cluster_setup import WORKER_OPTIONS
    from vsjpegfix.apps.cluster_workers import RestoreWorker

    options = {k: None for k in WORKER_OPTIONS}
    options.update(model=str(weights), device="cpu", precision="fp32", qf="auto", qf_offset=0.0, tile=0, overlap=32,
                   batch_size=1, luma_only=False, codec="libx264", overwrite=False, start=0.0, quiet=True)
    worker = RestoreWorker(options)
    src = make_video(tmp_path / "in.mp4", frames=2)
    with pytest.raises(FileFailure) as info:
        worker.restore(str(src), str(tmp_path / "out" / "o.mp4"))
    failure = pickle.loads(pickle.dumps(info.value))
    assert str(failure) == f"unexpected error (KeyError: 'planes'); {HINT}" and "in broken" in failure.details
    assert no_temporaries(tmp_path)
