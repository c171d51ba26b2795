"""Fuzzing the command line: truncated and bit-flipped copies of real H.264, HEVC, MPEG-4, VP9 and JPEG files.

Every damaged file must give either a restored output or one clean error line naming the file, with a
non-zero exit status: never a traceback, never an "unexpected error" (a defect the boundary caught),
never a half-written output or a temporary file left behind. The files are made here (tiny clips, the
shipped default models: ARCNN following the quantisers of H.264 and HEVC, fbcnn-s elsewhere), the damage
is drawn from fixed seeds, and the whole file runs in well under a minute.
"""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest
from media import make_video, no_temporaries, run_cli
from PIL import Image

BASES = {
    "h264.mp4": dict(frames=8, audio=["aac"]),
    "h264.264": dict(frames=8, fmt="h264"),  # raw: the quantiser reader and constant-rate timestamps
    "hevc.mkv": dict(frames=8, codec="libx265"),
    "mpeg4.avi": dict(frames=8, codec="mpeg4"),
    "vp9.webm": dict(frames=8, codec="libvpx-vp9"),
}


def damaged(data: bytes, seed: int) -> dict[str, bytes]:
    """Six copies: cut at 30 % and 70 %, three with 6 flipped bits, one with 40."""
    rng = np.random.default_rng(seed)
    out = {"cut30": data[: len(data) * 3 // 10], "cut70": data[: len(data) * 7 // 10]}
    for name, flips in (("flip-a", 6), ("flip-b", 6), ("flip-c", 6), ("flip-many", 40)):
        b = bytearray(data)
        for pos in rng.integers(16, len(b), flips):  # past the first bytes: the format is still recognised
            b[pos] ^= 1 << int(rng.integers(0, 8))
        out[name] = bytes(b)
    return out


@pytest.fixture(scope="module")
def cases(tmp_path_factory) -> list[Path]:
    root = tmp_path_factory.mktemp("fuzz")
    clean = root / "clean"
    clean.mkdir()
    originals = {name: make_video(clean / name, **kw) for name, kw in BASES.items()}
    from skimage import data as samples

    Image.fromarray(samples.astronaut()[:48, :64]).save(clean / "photo.jpg", quality=30)
    originals["photo.jpg"] = clean / "photo.jpg"
    paths = []
    for seed, (name, path) in enumerate(originals.items()):
        for kind, payload in damaged(path.read_bytes(), seed).items():
            target = root / "in" / f"{kind}-{name}"
            target.parent.mkdir(exist_ok=True)
            target.write_bytes(payload)
            paths.append(target)
    return paths


def output_for(src: Path, folder: Path) -> Path:
    return folder / (src.name + (".png" if src.suffix == ".jpg" else ".mkv"))


def check_outcome(src: Path, out: Path, code: int, err: str) -> str:
    """A restored, readable output and no message (--quiet), or one error line naming the file and no output."""
    assert "Traceback" not in err, err
    if code == 0:
        assert err == "", err
        if out.suffix == ".png":
            assert Image.open(out).size == (64, 48)
        else:
            with av.open(str(out)) as c:
                assert sum(1 for _ in c.decode(video=0)) >= 1
        return "restored"
    lines = err.strip().splitlines()
    assert code == 1 and len(lines) == 1 and lines[0].startswith("vsjpegfix: error: "), err
    assert src.name in lines[0] or out.name in lines[0], lines[0]
    assert "unexpected error" not in lines[0], lines[0]
    assert not out.exists()
    return "error"


@pytest.mark.parametrize("base", [*BASES, "photo.jpg"])
def test_damaged_files_restore_or_fail_cleanly(cases, base, cli, capsys, tmp_path):
    outcomes = []
    for src in [p for p in cases if p.name.endswith("-" + base)]:
        out = output_for(src, tmp_path)
        code = cli([str(src), str(out), "--quiet"])
        outcomes.append(check_outcome(src, out, code, capsys.readouterr().err))
    assert len(outcomes) == 6 and no_temporaries(tmp_path)
    assert "error" in outcomes  # a cut at 30 % is never a whole file: the test sees the error path


def test_a_batch_of_damaged_files_reports_each_on_one_line(cases, cli, capsys, tmp_path):
    src = cases[0].parent
    code = cli(["batch", str(src), str(tmp_path / "out"), "--quiet", "--glob", "*h264.264", "--json", str(tmp_path / "r.json")])
    err = capsys.readouterr().err
    assert "Traceback" not in err and code in (0, 1)
    files = json.loads((tmp_path / "r.json").read_text())["files"]
    assert len(files) == 6 and {f["status"] for f in files} <= {"ok", "failed"}
    for f in files:
        out = Path(f["output"])
        assert out.name == Path(f["input"]).name + ".mkv"  # a raw stream: into Matroska
        assert out.exists() is (f["status"] == "ok")
        if f["status"] == "failed":
            assert f["reason"] and "\n" not in f["reason"] and "unexpected" not in f["reason"]
            assert f"failed: {f['input']}: {f['reason']}" in err
    assert no_temporaries(tmp_path)


def test_as_processes_no_traceback_reaches_stderr(cases, tmp_path):
    for src in [p for p in cases if p.name in ("cut70-h264.mp4", "flip-many-hevc.mkv")]:
        out = output_for(src, tmp_path)
        proc = run_cli(src, out, "--quiet")
        check_outcome(src, out, proc.returncode, proc.stderr)
    assert no_temporaries(tmp_path)
