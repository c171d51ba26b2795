"""``vsjpegfix batch --ray``: a real local Ray cluster (127.0.0.1) with two workers.

Same outputs and report as the local batch mode, a worker killed mid-file, a file whose worker dies
on every try, and a driver killed (SIGKILL) then run again. A long video split at keyframes into
segments restored by both workers and joined (``--segment-seconds``): the same frames, timestamps and
pixels (FFV1) as restoring it whole, with a temporal model; a segment whose worker dies, a segment
that fails. ``--ray auto`` joining a cluster started with ``ray start --head`` on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ray = pytest.importorskip("ray")

from media import (  # noqa: E402  # noqa: E402
    ROOT,
    SECONDS,
    assert_same_pictures,
    decoded_frames,
    frame_times,
    gop_clip,
    make_video,
    opts,
    random_model,
    stream_packets,
)

from vsjpegfix.apps.cluster import (  # noqa: E402
    init_ray,
    remove_temporaries_of,
    run_cluster,
    run_from_args,
)
from vsjpegfix.frames.safe_write import (
    is_temporary,  # noqa: E402
    temporary_name,  # noqa: E402
)

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
    assert cli(["batch", str(tmp_path / "src"), str(tmp_path / "dst"), "--segment-seconds", "5"]) == 2
    assert capsys.readouterr().err.strip() == "vsjpegfix: error: --segment-seconds needs --ray"


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
    make_video(src / "sub" / "raw.264", frames=4, fmt="h264")  # planned into raw.264.mkv, as the local mode does
    Image.fromarray(np.full((32, 48, 3), 128, np.uint8)).save(src / "sub" / "still.png")
    (src / "broken.mp4").write_text("this is not a video")
    (src / "readme.txt").write_text("ignored, with the reason")
    # --strength and --duration reach the workers: per-frame strengths, 3 frames of each video
    common = ["--model", str(weights), "--codec", "ffv1", "--device", "cpu", "--quiet", "--strength", "0.5", "--duration", "0.12"]
    assert cli(["batch", str(src), str(tmp_path / "local"), *common, "--json", str(tmp_path / "local.json")]) == 1
    started = time.perf_counter()
    code = cli(["batch", str(src), str(tmp_path / "ray"), *common, "--ray", "--ray-workers", "2", "--json", str(tmp_path / "ray.json")])
    took = time.perf_counter() - started
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err and "4 restored" not in err and "5 restored, 0 skipped, 1 failed, ignored: 1" in err, err
    local, remote = (json.loads((tmp_path / f"{k}.json").read_text()) for k in ("local", "ray"))
    assert local["summary"] == remote["summary"] == {"ok": 5, "skipped": 0, "failed": 1, "ignored": 1}
    assert [(Path(f["input"]).name, f["status"], Path(f["output"]).name, f["notes"]) for f in local["files"]] == [
        (Path(f["input"]).name, f["status"], Path(f["output"]).name, f["notes"]) for f in remote["files"]]
    assert (tmp_path / "ray" / "sub" / "raw.264.mkv").is_file()
    workers = set()
    for lf, rf in zip(local["files"], remote["files"]):
        assert rf["reason"] == lf["reason"]
        if lf["status"] == "ignored":
            continue
        assert rf["attempts"] == 1 and rf["worker"]["node_ip"] == "127.0.0.1"
        workers.add(rf["worker"]["actor_id"])
        if lf["status"] != "ok":
            continue
        varying = {"seconds", "fps", "input", "output"}
        assert {k: v for k, v in rf["details"].items() if k not in varying} == {k: v for k, v in lf["details"].items() if k not in varying}
        rel = Path(lf["output"]).relative_to(tmp_path / "local")
        if lf["details"]["kind"] == "video":
            assert lf["details"]["frames"] == 3 and {e["strength"] for e in lf["details"]["per_frame"]} == {0.5}
        if rel.suffix == ".png":
            assert np.array_equal(np.asarray(Image.open(tmp_path / "local" / rel)), np.asarray(Image.open(tmp_path / "ray" / rel)))
        else:
            a, b = planes(tmp_path / "local" / rel), planes(tmp_path / "ray" / rel)
            assert len(a) == len(b) == lf["details"]["frames"] and all(np.array_equal(x, y) for x, y in zip(a, b)), rel
    assert len(workers) == 2, f"one worker did everything ({took:.1f} s)"
    assert no_temporaries(tmp_path / "ray")
    # a rerun skips everything finished, as the local mode does
    assert cli(["batch", str(src), str(tmp_path / "ray"), *common, "--ray", "--ray-workers", "2", "--json", str(tmp_path / "ray.json")]) == 1
    assert json.loads((tmp_path / "ray.json").read_text())["summary"] == {"ok": 0, "skipped": 5, "failed": 1, "ignored": 1}


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


# ---------------------------------------------------------------------------- one long video in segments


@pytest.fixture(scope="module")
def temporal_weights(tmp_path_factory) -> Path:
    """A random 3-frame temporal Fast ARCNN whose neighbours count (tests/test_segments.py)."""
    from vsjpegfix.weights.store import save_weights

    path = tmp_path_factory.mktemp("temporal") / "t3.safetensors"
    save_weights(random_model(frames=3), path, arch="fastarcnn")
    return path


def _batch_args(argv: list[str]):
    """``vsjpegfix batch`` arguments parsed as the command line does."""
    from vsjpegfix.apps.cli import _batch_parser

    return _batch_parser().parse_args(argv)


def test_a_long_video_is_split_at_keyframes_restored_in_parallel_and_joined(tmp_path, cluster, temporal_weights):
    from vsjpegfix.engine.core import Engine
    from vsjpegfix.video.transcode import transcode
    from vsjpegfix.weights.store import load_model

    src, dst = tmp_path / "src", tmp_path / "dst"
    gop_clip(src / "long.mp4", audio=["aac"])  # 40 frames, a keyframe every 8: five segments
    make_video(src / "short.mp4", frames=4)
    args = _batch_args([str(src), str(dst), "--model", str(temporal_weights), "--codec", "ffv1", "--device", "cpu", "--quiet",
                        "--ray", "--ray-workers", "2", "--segment-seconds", str(SECONDS)])
    assert args.segment_seconds == SECONDS
    entries = run_from_args(args, [])
    by_name = {Path(e.input).name: e for e in entries}
    long, short = by_name["long.mp4"], by_name["short.mp4"]
    assert long.status == short.status == "ok", (long.reason, short.reason)
    segments = long.details["segments"]
    assert [(s["index"], s["first_frame"], s["frames"], s["attempts"]) for s in segments] == [(k, 8 * k, 8, 1) for k in range(5)]
    assert len({s["worker"]["actor_id"] for s in segments}) == 2  # restored in parallel by both workers
    assert long.details["frames"] == 40 and "segments" not in short.details
    # the whole file restored in one piece by the same model (what the local batch does)
    engine = Engine(load_model(str(temporal_weights)), device="cpu")
    assert engine.frames == 3
    transcode(src / "long.mp4", tmp_path / "whole.mp4", engine, opts(codec="ffv1"))
    assert frame_times(tmp_path / "whole.mp4") == frame_times(dst / "long.mp4") == frame_times(src / "long.mp4")
    assert_same_pictures(tmp_path / "whole.mp4", dst / "long.mp4")  # border frames included
    assert stream_packets(tmp_path / "whole.mp4", "audio") == stream_packets(dst / "long.mp4", "audio")
    assert no_temporaries(dst) and sorted(p.name for p in dst.iterdir()) == ["long.mp4", "short.mp4"]


def test_segment_seconds_must_not_be_negative(tmp_path):
    (tmp_path / "src").mkdir()
    with pytest.raises(ValueError, match="--segment-seconds must be 0"):
        run_cluster(tmp_path / "src", tmp_path / "dst", OPTIONS, segment_seconds=-1)


def _kill_when_created(path: Path, pid: int, killed: list[int]) -> threading.Thread:
    """Kill ``pid`` (SIGKILL) as soon as ``path`` appears: the worker dies while writing it."""

    def watch() -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if path.exists():
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
                return
            time.sleep(0.005)

    t = threading.Thread(target=watch, daemon=True)
    t.start()
    return t


def test_a_segment_whose_worker_dies_is_restored_again_elsewhere(tmp_path, cluster, weights):
    src, dst = tmp_path / "src", tmp_path / "dst"
    gop_clip(src / "long.mkv", size=(320, 240))  # big enough frames that a segment takes a while
    killed: list[int] = []

    def on_dispatch(path: Path, info: dict) -> None:
        if info.get("segment") == 2 and not killed:
            _kill_when_created(Path(info["temporary"]), info["pid"], killed)

    entries = run_cluster(src, dst, {**OPTIONS, "model": str(weights)}, workers=2, quiet=True, on_dispatch=on_dispatch, segment_seconds=SECONDS)
    assert killed, "the worker was not killed"
    (entry,) = entries
    assert entry.status == "ok", entry.reason
    attempts = [s["attempts"] for s in entry.details["segments"]]
    assert attempts == [1, 1, 2, 1, 1] and entry.details["segments"][2]["worker"]["pid"] != killed[0]
    assert frame_times(dst / "long.mkv") == frame_times(src / "long.mkv")
    restored, decoded = planes(dst / "long.mkv"), planes(src / "long.mkv")
    assert len(restored) == len(decoded) == 40 and all(np.array_equal(a, b) for a, b in zip(restored, decoded))  # identity model, FFV1
    assert no_temporaries(dst) and [p.name for p in dst.iterdir()] == ["long.mkv"]


def test_a_failing_segment_fails_its_file_and_leaves_nothing(tmp_path, cluster, weights):
    src, dst = tmp_path / "src", tmp_path / "dst"
    gop_clip(src / "long.mp4")
    make_video(src / "other.mp4", frames=3)

    def on_dispatch(path: Path, info: dict) -> None:
        if info.get("segment") == 2:  # the input vanishes: segment 2 cannot be read
            (src / "long.mp4").unlink(missing_ok=True)

    entries = run_cluster(src, dst, {**OPTIONS, "model": str(weights)}, workers=2, quiet=True, on_dispatch=on_dispatch, segment_seconds=SECONDS)
    by_name = {Path(e.input).name: e for e in entries}
    assert by_name["long.mp4"].status == "failed" and "no such file" in by_name["long.mp4"].reason, by_name["long.mp4"]
    assert "\n" not in by_name["long.mp4"].reason
    assert by_name["other.mp4"].status == "ok"  # the batch goes on
    assert no_temporaries(dst) and [p.name for p in dst.iterdir()] == ["other.mp4"]


# ---------------------------------------------------------------------------- --ray auto


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ray_auto_joins_the_cluster_started_with_ray_start(tmp_path, weights):
    """``ray start --head`` on 127.0.0.1 (its own temp dir and token), then ``vsjpegfix batch --ray auto``
    in another process: the file is restored by an actor of that cluster, found through the address
    file ``ray start`` writes (other clusters running on this machine, e.g. this module's, are ignored)."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    make_video(src / "a.mp4", frames=3)
    base = Path(tempfile.mkdtemp(prefix="vjr", dir="/tmp"))  # short: Ray's socket paths must stay under 108 bytes
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.update(RAY_TMPDIR=str(base), RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(32), RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S="0",
               RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0", PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    ray_cli = Path(sys.executable).parent / "ray"
    log = open(base / "head.log", "wb")  # noqa: SIM115 - closed below
    head = subprocess.Popen([str(ray_cli), "start", "--head", "--block", f"--port={_free_port()}", "--node-ip-address=127.0.0.1",
                             "--num-cpus=1", "--include-dashboard=false", "--disable-usage-stats"],
                            stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        address_file = base / "ray" / "ray_current_cluster"
        deadline = time.monotonic() + 90
        def written() -> str:  # the file appears before its content does
            return address_file.read_text().strip() if address_file.exists() else ""

        while not written() and head.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        address = written()
        assert address, (base / "head.log").read_text()[-2000:]
        assert address.startswith("127.0.0.1:"), address
        session = base / "ray" / "session_latest"
        node_ids = {p.name.rsplit("_", 1)[1] for p in session.glob("gcs_server_port_*")}
        assert len(node_ids) == 1
        proc = subprocess.run([sys.executable, "-m", "vsjpegfix", "batch", str(src), str(dst), "--model", str(weights), "--codec", "ffv1",
                               "--device", "cpu", "--quiet", "--ray", "auto", "--json", str(tmp_path / "r.json")],
                              capture_output=True, text=True, timeout=240, env=env)
        assert proc.returncode == 0, proc.stderr[-3000:]
        (entry,) = json.loads((tmp_path / "r.json").read_text())["files"]
        worker = entry["worker"]
        assert entry["status"] == "ok" and worker["node_ip"] == "127.0.0.1"
        assert worker["node_id"] in node_ids  # the head's node, not a cluster of its own
        assert list((session / "logs").glob(f"python-core-worker-*_{worker['pid']}.log"))  # an actor of that session
        assert len(planes(dst / "a.mp4")) == 3
    finally:
        head.send_signal(signal.SIGTERM)  # `ray start --block` stops the processes it started
        try:
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
            head.wait()
        log.close()
        shutil.rmtree(base, ignore_errors=True)
