"""vsjpegfix.frames.safe_write and ``vsjpegfix batch``: layout, skips, failures, the report, resuming after SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from media import ROOT, decoded_frames, make_video
from PIL import Image

from vsjpegfix.apps.batch import (
    BatchEntry,
    find_media,
    remove_stale_temporaries,
    run_batch,
    summarize,
)
from vsjpegfix.frames.safe_write import is_temporary, temporary_name


def frame_count(path: Path) -> int:
    return len(decoded_frames(path))


# ---------------------------------------------------------------------------- run_batch (library)


def test_find_media_is_recursive_sorted_and_filtered(tmp_path):
    for rel in ["b.mp4", "a/c.MKV", "a/z/d.mov", "a/x.png", "notes.txt", ".hidden.mp4", ".cache/e.mp4", "a/.x.0123abcd.part.mp4"]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    rel = lambda paths: [p.relative_to(tmp_path).as_posix() for p in paths]  # noqa: E731
    assert rel(find_media(tmp_path)) == ["b.mp4", "a/c.MKV", "a/x.png", "a/z/d.mov"]
    assert rel(find_media(tmp_path, images=False)) == ["b.mp4", "a/c.MKV", "a/z/d.mov"]
    assert rel(find_media(tmp_path, "*.mov")) == ["a/z/d.mov"]
    assert rel(find_media(tmp_path, "a/*")) == ["a/c.MKV", "a/x.png", "a/z/d.mov"]


def test_temporary_names_are_recognised_and_removed(tmp_path):
    tmp = temporary_name(tmp_path / "sub" / "clip.final.mp4")
    assert is_temporary(tmp.name) and is_temporary(temporary_name(Path("noext")).name)
    for name in ("clip.mp4", ".clip.mp4", "clip.part.mp4", ".clip.part.mp4", ".clip.nothex12.part.mp4"):
        assert not is_temporary(name), name
    tmp.parent.mkdir()
    tmp.write_bytes(b"half")
    (tmp_path / "sub" / "keep.mp4").write_bytes(b"done")
    assert remove_stale_temporaries(tmp_path) == [tmp]
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["keep.mp4"]


def test_a_failing_file_does_not_stop_the_others(tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    for rel in ["1.mp4", "2.mp4", "sub/3.mp4"]:
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_bytes(b"x")
    (dst / "sub").mkdir(parents=True)
    (dst / "sub" / "3.mp4").write_bytes(b"finished before")
    stale = temporary_name(dst / "2.mp4")
    stale.write_bytes(b"half-written by a killed run")

    def restore_one(s: Path, d: Path) -> dict:
        if s.name == "1.mp4":
            raise ValueError("broken file\nsecond line")
        d.write_bytes(b"restored")
        return {"frames": 1}

    entries = run_batch(src, dst, restore_one, quiet=True)
    assert [(Path(e.input).name, e.status, e.reason) for e in entries] == [
        ("1.mp4", "failed", "broken file"), ("2.mp4", "ok", ""), ("3.mp4", "skipped", "output exists")]
    assert summarize(entries) == {"ok": 1, "skipped": 1, "failed": 1, "ignored": 0}
    assert not stale.exists() and (dst / "2.mp4").read_bytes() == b"restored"
    assert (dst / "sub" / "3.mp4").read_bytes() == b"finished before"
    assert entries[1].as_dict()["details"] == {"frames": 1}


def test_interrupt_keeps_the_entries_so_far(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for name in ("a.mp4", "b.mp4", "c.mp4"):
        (src / name).write_bytes(b"x")

    def restore_one(s: Path, d: Path) -> dict:
        if s.name == "b.mp4":
            raise KeyboardInterrupt
        d.write_bytes(b"ok")
        return {}

    entries: list[BatchEntry] = []
    with pytest.raises(KeyboardInterrupt):
        run_batch(src, tmp_path / "dst", restore_one, quiet=True, entries=entries)
    assert [(Path(e.input).name, e.status) for e in entries] == [("a.mp4", "ok")]


def test_bad_folders_are_refused(tmp_path):
    (tmp_path / "src").mkdir()
    with pytest.raises(ValueError, match="inside it"):
        run_batch(tmp_path / "src", tmp_path / "src" / "out", lambda s, d: {})
    with pytest.raises(ValueError, match="not a directory"):
        run_batch(tmp_path / "missing", tmp_path / "out", lambda s, d: {})


# ---------------------------------------------------------------------------- vsjpegfix batch


def _tree(root: Path) -> dict[str, int]:
    """A source folder of real media: three videos in sub-folders, an image, a broken video, a text file."""
    make_video(root / "a.mp4", frames=4, audio=["aac"])
    make_video(root / "sub" / "b.mkv", frames=5, size=(48, 32))
    make_video(root / "sub" / "deeper" / "c.mov", frames=3, codec="libx265")
    Image.fromarray(np.full((32, 48, 3), 128, np.uint8)).save(root / "sub" / "still.png")
    (root / "broken.mp4").write_text("this is not a video")
    (root / "readme.txt").write_text("ignored")
    return {"a.mp4": 4, "sub/b.mkv": 5, "sub/deeper/c.mov": 3}


def test_batch_command_layout_summary_json_and_rerun(tmp_path, weights, cli, capsys):
    src, dst = tmp_path / "src", tmp_path / "dst"
    videos = _tree(src)
    report = tmp_path / "report.json"
    code = cli(["batch", str(src), str(dst), "--model", str(weights), "--json", str(report), "--quiet"])
    err = capsys.readouterr().err
    assert code == 1  # one file failed
    assert "Traceback" not in err and "0 skipped, 1 failed" in err and "broken.mp4" in err
    for rel, n in videos.items():
        assert frame_count(dst / rel) == n, rel
    assert (dst / "sub" / "still.png").is_file() and not (dst / "readme.txt").exists()
    data = json.loads(report.read_text())
    assert data["summary"] == {"ok": 4, "skipped": 0, "failed": 1, "ignored": 1} and data["interrupted"] is False
    by_name = {Path(f["input"]).name: f for f in data["files"]}
    assert by_name["readme.txt"]["status"] == "ignored" and "not video or image" in by_name["readme.txt"]["reason"]
    assert by_name["broken.mp4"]["status"] == "failed" and "not a readable media file" in by_name["broken.mp4"]["reason"]
    assert by_name["a.mp4"]["details"]["copied_streams"][0]["codec"] == "aac"
    assert not [p for p in dst.rglob("*") if p.name.startswith(".")]
    # run again: finished files are skipped, the broken one fails again
    code = cli(["batch", str(src), str(dst), "--model", str(weights), "--json", str(report), "--quiet"])
    capsys.readouterr()
    assert code == 1
    assert json.loads(report.read_text())["summary"] == {"ok": 0, "skipped": 4, "failed": 1, "ignored": 1}
    # --glob picks files by name or relative path; --overwrite redoes them
    code = cli(["batch", str(src), str(dst), "--model", str(weights), "--glob", "*.mkv", "--overwrite", "--json", str(report)])
    assert code == 0
    files = json.loads(report.read_text())["files"]
    assert [(Path(f["input"]).name, f["status"]) for f in files] == [("b.mkv", "ok")]
    assert "1 restored, 0 skipped, 0 failed, ignored: 0 (not video or image)" in capsys.readouterr().err


def test_batch_command_errors(tmp_path, weights, cli, capsys):
    (tmp_path / "src").mkdir()
    code = cli(["batch", str(tmp_path / "nope"), str(tmp_path / "dst"), "--model", str(weights)])
    assert code == 1 and capsys.readouterr().err.strip() == f"vsjpegfix: error: {tmp_path / 'nope'} is not a directory"
    code = cli(["batch", str(tmp_path / "src"), str(tmp_path / "src" / "dst"), "--model", str(weights)])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and "inside it" in err


def test_batch_killed_then_resumed(tmp_path, weights, cli, capsys):
    """SIGKILL in the middle of a batch, then the same command again: finished files kept, the rest redone."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    counts = {}
    for i in range(3):
        counts[f"clip{i}.mp4"] = 40
        make_video(src / f"clip{i}.mp4", frames=40, size=(128, 96))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    args = ["batch", str(src), str(dst), "--model", str(weights), "--quiet"]
    proc = subprocess.Popen([sys.executable, "-m", "vsjpegfix", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        deadline = time.monotonic() + 120
        # wait until the first file is finished and the second is being written
        while time.monotonic() < deadline and proc.poll() is None:
            names = {p.name for p in dst.iterdir()} if dst.is_dir() else set()
            if "clip0.mp4" in names and any(n.startswith(".clip1.") for n in names):
                break
            time.sleep(0.02)
        assert proc.poll() is None, "the batch finished before it could be killed"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    names = sorted(p.name for p in dst.iterdir())
    finished = [n for n in names if not is_temporary(n)]
    assert "clip0.mp4" in finished and len(finished) < 3, names
    assert any(is_temporary(n) for n in names)  # what the kill left behind
    mtimes = {n: (dst / n).stat().st_mtime_ns for n in finished}
    for n in finished:
        assert frame_count(dst / n) == 40  # an output that exists is complete
    code = cli([*args, "--json", str(tmp_path / "r.json")])
    assert code == 0, capsys.readouterr().err
    data = json.loads((tmp_path / "r.json").read_text())
    assert [(Path(f["input"]).name, f["status"]) for f in data["files"]] == [
        (n, "skipped" if n in finished else "ok") for n in sorted(counts)]
    assert {n: (dst / n).stat().st_mtime_ns for n in finished} == mtimes  # finished files untouched
    assert sorted(p.name for p in dst.iterdir()) == sorted(counts)  # no temporary file left
    for name, n in counts.items():
        with av.open(str(dst / name)) as c:  # every output decodes to the end, with every frame
            assert len(list(c.decode(video=0))) == n


# ---------------------------------------------------------------------------- what a batch recognises


def test_batch_finds_every_video_and_lists_what_it_ignores(tmp_path, weights, cli, capsys):
    """Raw elementary streams and videos with unknown extensions are restored; the rest is listed with a reason."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    make_video(src / "a" / "delayed_start.mp4", frames=4, pts=[5, 6, 7, 8])
    make_video(src / "clip.264", frames=6, fmt="h264")  # no container, no timestamps
    make_video(src / "old.m2v", frames=5, codec="mpeg2video", fmt="mpeg2video")
    make_video(src / "mystery.video", frames=3, fmt="mp4")  # a video by its content only
    (src / "notes.txt").write_text("not a video")
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(src / "photo.dat", format="JPEG")
    with av.open(str(src / "song.wav"), "w") as c:
        a = c.add_stream("pcm_s16le", rate=8000)
        a.layout = "mono"
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16", layout="mono")
        frame.sample_rate, frame.pts = 8000, 0
        c.mux(a.encode(frame))
        c.mux(a.encode())
    report = tmp_path / "r.json"
    code = cli(["batch", str(src), str(dst), "--model", str(weights), "--codec", "ffv1", "--json", str(report)])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "4 restored, 0 skipped, 0 failed, ignored: 3 (not video or image)" in err and "Traceback" not in err
    files = {Path(f["input"]).name: f for f in json.loads(report.read_text())["files"]}
    assert json.loads(report.read_text())["summary"] == {"ok": 4, "skipped": 0, "failed": 0, "ignored": 3}
    assert {n: f["status"] for n, f in files.items()} == {
        "delayed_start.mp4": "ok", "clip.264": "ok", "old.m2v": "ok", "mystery.video": "ok",
        "notes.txt": "ignored", "photo.dat": "ignored", "song.wav": "ignored"}
    for name in ("notes.txt", "photo.dat", "song.wav"):
        assert f"ignored: {src / name}: " in err and files[name]["reason"]
    assert "still image" in files["photo.dat"]["reason"] and "audio" in files["song.wav"]["reason"]
    # raw streams and an extension no muxer knows: NAME.EXT.mkv beside the layout, said in the notes
    assert frame_count(dst / "clip.264.mkv") == 6 and frame_count(dst / "old.m2v.mkv") == 5
    assert frame_count(dst / "mystery.video.mkv") == 3 and frame_count(dst / "a" / "delayed_start.mp4") == 4
    assert "raw elementary stream" in files["clip.264"]["notes"][0] and files["clip.264"]["output"].endswith("clip.264.mkv")
    assert any("content" in n for n in files["mystery.video"]["notes"])
    assert files["delayed_start.mp4"]["notes"] == []
    with av.open(str(dst / "clip.264.mkv")) as c:  # frames at a constant 25 fps from 0
        assert [f.pts * f.time_base for f in c.decode(video=0)] == [Fraction(i, 25) for i in range(6)]
    assert sorted(p.name for p in dst.iterdir()) == ["a", "clip.264.mkv", "mystery.video.mkv", "old.m2v.mkv"]
    # a rerun finds the finished outputs under their planned names
    assert cli(["batch", str(src), str(dst), "--model", str(weights), "--codec", "ffv1", "--json", str(report), "--quiet"]) == 0
    assert json.loads(report.read_text())["summary"] == {"ok": 0, "skipped": 4, "failed": 0, "ignored": 3}


def test_a_container_that_cannot_hold_the_codec_gets_mkv(tmp_path, weights, cli, capsys):
    """--codec ffv1 over .y4m and .webm inputs: written as NAME.EXT.mkv (reported), not failed; .mp4 holds ffv1."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    make_video(src / "a.y4m", frames=3, codec="rawvideo", fmt="yuv4mpegpipe")
    make_video(src / "b.webm", frames=3, codec="libvpx-vp9")
    make_video(src / "c.mp4", frames=3)
    code = cli(["batch", str(src), str(dst), "--model", str(weights), "--codec", "ffv1", "--json", str(tmp_path / "r.json")])
    err = capsys.readouterr().err
    assert code == 0 and "3 restored, 0 skipped, 0 failed" in err, err
    assert sorted(p.name for p in dst.iterdir()) == ["a.y4m.mkv", "b.webm.mkv", "c.mp4"]
    files = {Path(f["input"]).name: f for f in json.loads((tmp_path / "r.json").read_text())["files"]}
    assert files["b.webm"]["notes"] == ["a .webm file cannot hold ffv1 video: written to b.webm.mkv"]
    assert "note: " in err and "b.webm.mkv" in err
    for name in ("a.y4m.mkv", "b.webm.mkv", "c.mp4"):
        with av.open(str(dst / name)) as c:
            assert c.streams.video[0].codec_context.name == "ffv1" and len(list(c.decode(video=0))) == 3
    # without --codec: libx264, or libvpx-vp9 where the container cannot hold H.264 (.webm stays WebM);
    # .y4m holds neither: the same rule
    code = cli(["batch", str(src), str(tmp_path / "auto"), "--model", str(weights), "--quiet"])
    assert code == 0 and sorted(p.name for p in (tmp_path / "auto").iterdir()) == ["a.y4m.mkv", "b.webm", "c.mp4"]
    for name, codec in (("b.webm", "vp9"), ("c.mp4", "h264"), ("a.y4m.mkv", "h264")):
        with av.open(str(tmp_path / "auto" / name)) as c:
            assert c.streams.video[0].codec_context.name == codec and len(list(c.decode(video=0))) == 3


def test_two_inputs_planned_onto_one_output_the_second_fails_with_the_reason(tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    make_video(src / "x.264", frames=2, fmt="h264")  # planned into x.264.mkv ...
    make_video(src / "x.264.mkv", frames=2)  # ... which is this file's own output name

    def restore_one(s: Path, d: Path) -> dict:
        d.write_bytes(s.read_bytes())
        return {}

    entries = run_batch(src, dst, restore_one, quiet=True)
    assert [(Path(e.input).name, e.status) for e in entries] == [("x.264", "ok"), ("x.264.mkv", "failed")]
    assert entries[1].reason == f"its output {dst / 'x.264.mkv'} is already the output of {src / 'x.264'}"
    assert (dst / "x.264.mkv").read_bytes() == (src / "x.264").read_bytes()
