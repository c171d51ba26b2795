"""``vsjpegfix batch --ray``: a real local Ray cluster (127.0.0.1) with two workers.

Same outputs and report as the local batch mode, a worker killed mid-file, a file whose worker dies
on every try, and a driver killed (SIGKILL) then run again.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ray = pytest.importorskip("ray")

from test_batch import cli, weights  # noqa: E402,F401  (the same fixtures as the local batch tests)
from test_transcode import ROOT, decoded_frames, make_video  # noqa: E402
from vsjpegfix.batch import is_temporary  # noqa: E402
from vsjpegfix.cluster import init_ray, remove_temporaries_of, run_cluster  # noqa: E402
from vsjpegfix.safe_write import temporary_name  # noqa: E402

OPTIONS = dict(model=None, device="cpu", precision="fp32", qf="auto", qf_offset=0.0, tile=0, overlap=32, batch_size=1,
               luma_only=False, codec="ffv1", crf=None, preset=None, pix_fmt=None, matrix=None, overwrite=False)


@pytest.fixture(scope="module")
def cluster():
    """A local cluster of 2 CPUs on 127.0.0.1, shared by the tests of this file; yields its address."""
    if ray.is_initialized():
        ray.shutdown()
    started = init_ray(None, num_cpus=2)
    assert started
    address = ray.get_runtime_context().gcs_address
    assert address.startswith("127.0.0.1:"), address
    assert all(n["NodeManagerAddress"] == "127.0.0.1" for n in ray.nodes())
    yield address
    ray.shutdown()


def planes(path: Path) -> list[np.ndarray]:
    return [f.to_ndarray() for f in decoded_frames(path)]


def no_temporaries(root: Path) -> bool:
    return not [p for p in root.rglob("*") if is_temporary(p.name)]


def _kill_when_writing(out: Path, pid: int, killed: list[int]) -> threading.Thread:
    """Kill ``pid`` (SIGKILL) as soon as its temporary output for ``out`` appears: the worker dies mid-file."""

    def watch() -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if out.parent.is_dir() and any(is_temporary(p.name) and p.name.startswith(f".{out.stem}.") for p in out.parent.iterdir()):
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
                return
            time.sleep(0.01)

    t = threading.Thread(target=watch, daemon=True)
    t.start()
    return t


def test_remove_temporaries_of_one_output_only(tmp_path):
    mine, other = temporary_name(tmp_path / "a.mp4"), temporary_name(tmp_path / "ab.mp4")
    for p in (mine, other, tmp_path / "a.mp4"):
        p.write_bytes(b"x")
    assert remove_temporaries_of(tmp_path / "a.mp4") == [mine]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["a.mp4", other.name])


def test_ray_option_errors(tmp_path, cli, capsys):
    (tmp_path / "src").mkdir()
    assert cli(["batch", str(tmp_path / "src"), str(tmp_path / "dst"), "--ray-workers", "2"]) == 2
    assert capsys.readouterr().err.strip() == "vsjpegfix: error: --ray-workers needs --ray"
    assert cli(["batch", str(tmp_path / "src"), str(tmp_path / "dst"), "--ray", "--ray-workers", "0"]) == 2
    assert capsys.readouterr().err.strip() == "vsjpegfix: error: --ray-workers must be at least 1"


def test_a_worker_that_cannot_load_the_model_is_one_error_line(tmp_path, cluster, cli, capsys):
    make_video(tmp_path / "src" / "a.mp4", frames=2)
    code = cli(["batch", str(tmp_path / "src"), str(tmp_path / "dst"), "--model", str(tmp_path / "missing.safetensors"), "--ray", "--quiet"])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and "cannot start a Ray worker" in err and "missing.safetensors" in err, err


def test_same_outputs_and_report_as_the_local_batch(tmp_path, cluster, weights, cli, capsys):
    src = tmp_path / "src"
    make_video(src / "a.mp4", frames=4, audio=["aac"])
    make_video(src / "sub" / "b.mkv", frames=5, size=(48, 32))
    make_video(src / "sub" / "c.mp4", frames=3)
    Image.fromarray(np.full((32, 48, 3), 128, np.uint8)).save(src / "sub" / "still.png")
    (src / "broken.mp4").write_text("this is not a video")
    common = ["--model", str(weights), "--codec", "ffv1", "--device", "cpu", "--quiet"]
    assert cli(["batch", str(src), str(tmp_path / "local"), *common, "--json", str(tmp_path / "local.json")]) == 1
    started = time.perf_counter()
    code = cli(["batch", str(src), str(tmp_path / "ray"), *common, "--ray", "--ray-workers", "2", "--json", str(tmp_path / "ray.json")])
    took = time.perf_counter() - started
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err and "3 restored" not in err and "4 restored, 0 skipped, 1 failed" in err, err
    local, remote = (json.loads((tmp_path / f"{k}.json").read_text()) for k in ("local", "ray"))
    assert local["summary"] == remote["summary"] == {"ok": 4, "skipped": 0, "failed": 1}
    assert [(Path(f["input"]).name, f["status"]) for f in local["files"]] == [(Path(f["input"]).name, f["status"]) for f in remote["files"]]
    workers = set()
    for lf, rf in zip(local["files"], remote["files"]):
        assert rf["reason"] == lf["reason"]
        assert rf["attempts"] == 1 and rf["worker"]["node_ip"] == "127.0.0.1"
        workers.add(rf["worker"]["actor_id"])
        if lf["status"] != "ok":
            continue
        varying = {"seconds", "fps", "input", "output"}
        assert {k: v for k, v in rf["details"].items() if k not in varying} == {k: v for k, v in lf["details"].items() if k not in varying}
        rel = Path(lf["output"]).relative_to(tmp_path / "local")
        if rel.suffix == ".png":
            assert np.array_equal(np.asarray(Image.open(tmp_path / "local" / rel)), np.asarray(Image.open(tmp_path / "ray" / rel)))
        else:
            a, b = planes(tmp_path / "local" / rel), planes(tmp_path / "ray" / rel)
            assert len(a) == len(b) == lf["details"]["frames"] and all(np.array_equal(x, y) for x, y in zip(a, b)), rel
    assert len(workers) == 2, f"one worker did everything ({took:.1f} s)"
    assert no_temporaries(tmp_path / "ray")
    # a rerun skips everything finished, as the local mode does
    assert cli(["batch", str(src), str(tmp_path / "ray"), *common, "--ray", "--ray-workers", "2", "--json", str(tmp_path / "ray.json")]) == 1
    assert json.loads((tmp_path / "ray.json").read_text())["summary"] == {"ok": 0, "skipped": 4, "failed": 1}


def test_a_worker_killed_mid_file_is_replaced_and_the_file_redone(tmp_path, cluster, weights):
    src, dst = tmp_path / "src", tmp_path / "dst"
    make_video(src / "slow.mp4", frames=20, size=(96, 64))
    make_video(src / "small.mp4", frames=3)
    killed: list[int] = []
    dispatched: list[tuple[str, int]] = []

    def on_dispatch(path: Path, info: dict) -> None:
        dispatched.append((path.name, info["pid"]))
        if path.name == "slow.mp4" and not killed:
            _kill_when_writing(dst / "slow.mp4", info["pid"], killed)

    entries = run_cluster(src, dst, {**OPTIONS, "model": str(weights)}, workers=2, quiet=True, on_dispatch=on_dispatch)
    assert killed, "the worker was not killed"
    by_name = {Path(e.input).name: e for e in entries}
    slow = by_name["slow.mp4"]
    assert slow.status == "ok" and slow.attempts == 2 and slow.worker["pid"] != killed[0], (slow, dispatched)
    assert by_name["small.mp4"].status == "ok"
    assert len(planes(dst / "slow.mp4")) == 20 and len(planes(dst / "small.mp4")) == 3
    assert no_temporaries(dst) and sorted(p.name for p in dst.iterdir()) == ["slow.mp4", "small.mp4"]


def test_a_file_whose_worker_dies_on_every_try_is_reported_failed(tmp_path, cluster, weights):
    src, dst = tmp_path / "src", tmp_path / "dst"
    make_video(src / "cursed.mp4", frames=20, size=(96, 64))
    make_video(src / "fine.mp4", frames=3)
    killed: list[int] = []

    def on_dispatch(path: Path, info: dict) -> None:
        if path.name == "cursed.mp4":
            _kill_when_writing(dst / "cursed.mp4", info["pid"], killed)

    entries = run_cluster(src, dst, {**OPTIONS, "model": str(weights)}, workers=2, quiet=True, on_dispatch=on_dispatch, max_attempts=2)
    by_name = {Path(e.input).name: e for e in entries}
    cursed = by_name["cursed.mp4"]
    assert len(killed) == 2 and cursed.status == "failed" and cursed.attempts == 2
    assert "died on each of 2 tries" in cursed.reason
    assert by_name["fine.mp4"].status == "ok"
    assert no_temporaries(dst) and sorted(p.name for p in dst.iterdir()) == ["fine.mp4"]


def test_driver_killed_then_resumed(tmp_path, cluster, weights, cli, capsys):
    src, dst = tmp_path / "src", tmp_path / "dst"
    names = [f"clip{i}.mp4" for i in range(3)]
    for name in names:
        make_video(src / name, frames=30, size=(128, 96))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    args = ["batch", str(src), str(dst), "--model", str(weights), "--codec", "ffv1", "--device", "cpu", "--quiet", "--ray-workers", "1"]
    proc = subprocess.Popen([sys.executable, "-m", "vsjpegfix", *args, "--ray", cluster],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            found = {p.name for p in dst.iterdir()} if dst.is_dir() else set()
            if "clip0.mp4" in found and any(n.startswith(".clip1.") for n in found):
                break
            time.sleep(0.02)
        assert proc.poll() is None, proc.communicate()[1].decode()[-2000:]
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    left = sorted(p.name for p in dst.iterdir())
    finished = [n for n in left if not is_temporary(n)]
    assert "clip0.mp4" in finished and len(finished) < 3, left
    mtimes = {n: (dst / n).stat().st_mtime_ns for n in finished}
    time.sleep(0.5)  # the killed driver's worker goes with it; a temporary may remain
    code = cli([*args, "--ray", cluster, "--json", str(tmp_path / "r.json")])
    assert code == 0, capsys.readouterr().err
    data = json.loads((tmp_path / "r.json").read_text())
    assert [(Path(f["input"]).name, f["status"]) for f in data["files"]] == [(n, "skipped" if n in finished else "ok") for n in names]
    assert {n: (dst / n).stat().st_mtime_ns for n in finished} == mtimes
    assert sorted(p.name for p in dst.iterdir()) == names
    for name in names:
        assert len(planes(dst / name)) == 30
