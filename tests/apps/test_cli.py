"""vsjpegfix.apps.cli: the command line, in-process and as a real subprocess: success, and one-line errors without tracebacks."""

from __future__ import annotations

import os
import subprocess
import sys

import av
import numpy as np
import pytest
import torch
from media import (
    ROOT,
    assert_same_pictures,
    make_video,
    run_cli,
)
from PIL import Image
from skimage import data

from vsjpegfix.models import FastARCNN
from vsjpegfix.weights.store import save_weights

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run(*args, cwd=None):
    """Run the CLI from this checkout (the code under test), with no shipped weights."""
    env = dict(os.environ, VSJPEGFIX_WEIGHTS_DIR=str(cwd or "."), PYTHONPATH=REPO)
    return subprocess.run([sys.executable, "-m", "vsjpegfix", *map(str, args)], capture_output=True, text=True, cwd=cwd, env=env, timeout=120)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    img = data.astronaut()[:96, :128]
    Image.fromarray(img).save(d / "in.jpg", quality=10)
    Image.fromarray(img[..., 0]).save(d / "gray.jpg", quality=10)
    Image.fromarray(img).convert("CMYK").save(d / "cmyk.jpg")
    (d / "text.jpg").write_text("not an image")
    (d / "empty.jpg").write_bytes(b"")
    identity = FastARCNN()
    with torch.no_grad():  # residual model with a zero correction: output == input
        identity.reconstruct.weight.zero_()
        identity.reconstruct.bias.zero_()
    save_weights(identity, d / "fa.safetensors", arch="fastarcnn")
    return d


def _one_line_error(proc, pattern):
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vsjpegfix: error:"), proc.stderr
    assert pattern in lines[0], lines[0]


def test_restores_an_image_and_refuses_to_overwrite(files):
    out = files / "out.png"
    proc = run(files / "in.jpg", out, "--model", files / "fa.safetensors", cwd=files)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""
    restored = np.asarray(Image.open(out))
    src = np.asarray(Image.open(files / "in.jpg"))
    assert restored.shape == src.shape
    assert np.array_equal(src, restored)  # identity model: decoded input written back exactly
    before = out.read_bytes()
    _one_line_error(run(files / "in.jpg", out, "--model", files / "fa.safetensors", cwd=files), "exists")
    assert out.read_bytes() == before
    assert not [p for p in files.iterdir() if ".part" in p.name]


def test_gray_images_stay_gray(files):
    out = files / "gray.png"
    assert run(files / "gray.jpg", out, "--model", files / "fa.safetensors", cwd=files).returncode == 0
    assert Image.open(out).mode == "L"


@pytest.mark.parametrize(
    "args,pattern",
    [
        (["missing.jpg", "o.png"], "no such file"),
        ([".", "o.png"], "is a directory"),
        (["text.jpg", "o.png"], "not a readable image"),
        (["empty.jpg", "o.png"], "not a readable image"),
        (["cmyk.jpg", "o.png"], "mode CMYK is not supported"),
        (["in.jpg", "in.jpg", "--overwrite"], "is the input"),
        (["in.jpg", "nodir/o.png"], "does not exist"),
        (["in.jpg", "o.xyz"], "unsupported output extension"),
        (["in.jpg", "o.png", "--model", "nope"], "unknown model 'nope'"),
        (["in.jpg", "o.png", "--qf", "abc"], "--qf must be"),
        (["in.jpg", "o.png", "--qf", "50"], "no quality control"),
        (["in.jpg", "o.png", "--device", "cuda:7"], "CUDA"),
        (["in.jpg", "o.png", "--model", "fbcnn_color"], "vsjpegfix weights download fbcnn_color"),
    ],
)
def test_bad_input_gives_one_line_error(files, args, pattern):
    if "--model" not in args:
        args = [*args, "--model", "fa.safetensors"]
    proc = run(*args, cwd=files)
    _one_line_error(proc, pattern)
    assert not (files / "o.png").exists()


def test_weights_and_models_commands(files):
    proc = run("weights", "list", cwd=files)
    assert proc.returncode == 0 and "fbcnn_color" in proc.stdout
    _one_line_error(run("weights", "download", "nope", cwd=files), "valid names")
    proc = run("models", cwd=files)
    assert proc.returncode == 0 and {"fbcnn", "arcnn", "fastarcnn"} <= {l.split()[0] for l in proc.stdout.splitlines()}


def test_default_video_model_follows_the_codec(tmp_path):
    """Without --model: ARCNN with its QP profile where the quantisers are read (H.264, HEVC, MPEG-2/4, MJPEG,
    VP9), the compact FBCNN (near identity when blind) elsewhere (VP8) and with --qf blind; the report names the model."""
    import json

    from media import make_video

    clips = {"h264": make_video(tmp_path / "h264.mp4", frames=4),
             "hevc": make_video(tmp_path / "hevc.mkv", frames=4, codec="libx265"),
             "mpeg4": make_video(tmp_path / "mpeg4.mkv", frames=4, codec="mpeg4"),
             "vp8": make_video(tmp_path / "vp8.mkv", frames=4, codec="libvpx")}
    env = {k: v for k, v in os.environ.items() if k != "VSJPEGFIX_WEIGHTS_DIR"}  # the shipped weights
    env["PYTHONPATH"] = REPO
    cases = [("h264", (), "arcnn", "profile"), ("hevc", (), "arcnn", "profile"), ("mpeg4", (), "arcnn", "profile"),
             ("vp8", (), "fbcnn-s", "auto"),
             ("h264", ("--qf", "blind"), "fbcnn-s", "blind")]
    for i, (codec, extra, model, mode) in enumerate(cases):
        report = tmp_path / f"r{i}.json"
        cmd = [sys.executable, "-m", "vsjpegfix", str(clips[codec]), str(tmp_path / f"o{i}.mkv"), "--quiet",
               "--json", str(report), *extra]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
        assert proc.returncode == 0, proc.stderr[-2000:]
        entry = json.loads(report.read_text())["files"][0]
        assert (entry["model"], entry["qf_mode"]) == (model, mode), (codec, extra)


# ---------------------------------------------------------------------------- video through main()


def one_line_error(capsys, code: int, pattern: str) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code != 0
    assert "Traceback" not in err and len(lines) == 1 and lines[0].startswith("vsjpegfix: error:"), err
    assert pattern in lines[0], lines[0]
    return lines[0]


def test_help_documents_every_option_with_its_default():
    from vsjpegfix.apps.cli import _batch_parser, _restore_parser

    for parser in (_restore_parser(), _batch_parser()):
        formatter = parser._get_formatter()
        for action in parser._actions:
            if action.option_strings and action.dest not in ("help", "version"):
                assert "(default:" in formatter._get_help_string(action), action.option_strings
        text = parser.format_help()
        assert "(default: libx264, or libvpx-vp9" in text and "(default: libx264 follows the" in text


def test_cli_restores_a_video_with_a_json_report(tmp_path, weights, cli, capsys):
    src = make_video(tmp_path / "in.mp4", frames=6, audio=["aac"])
    proc = run_cli(src, tmp_path / "out.mkv", "--model", weights, "--codec", "ffv1", "--json", tmp_path / "r.json")
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr and "wrote" in proc.stderr
    import json

    entry = json.loads((tmp_path / "r.json").read_text())["files"][0]
    assert entry["status"] == "ok" and entry["frames"] == 6 and entry["copied_streams"][0]["codec"] == "aac"
    assert entry["per_frame"] == []  # only models with quality control report per frame
    assert_same_pictures(src, tmp_path / "out.mkv")
    for argv in (["--help"], ["batch", "--help"]):
        with pytest.raises(SystemExit) as info:
            cli(argv)
        assert info.value.code == 0
        help_text = capsys.readouterr().out
        assert "--codec" in help_text and "--overwrite" in help_text and "(default: libx264, or libvpx-vp9" in help_text


def test_cli_bad_input_is_one_line_error(tmp_path, weights, cli, capsys):
    good = make_video(tmp_path / "good.mp4", frames=3)
    (tmp_path / "empty.mp4").write_bytes(b"")
    (tmp_path / "text.mp4").write_text("hello\n" * 100)
    (tmp_path / "trunc.mp4").write_bytes(good.read_bytes()[:3000])
    audio_only = tmp_path / "audio.mka"
    with av.open(str(audio_only), "w") as c:
        a = c.add_stream("flac", rate=48000)
        af = av.AudioFrame.from_ndarray(np.zeros((1, 4096), np.int16), format="s16", layout="stereo")
        af.sample_rate, af.pts = 48000, 0
        c.mux(a.encode(af))
        c.mux(a.encode())
    (tmp_path / "exists.mkv").write_bytes(b"keep")
    m = ["--model", str(weights), "--quiet"]
    cases = [
        ([tmp_path / "missing.mp4", tmp_path / "o.mkv"], "no such file"),
        ([tmp_path, tmp_path / "o.mkv"], "is a directory"),
        ([tmp_path / "empty.mp4", tmp_path / "o.mkv"], "empty file"),
        ([tmp_path / "text.mp4", tmp_path / "o.mkv"], "not a readable media file"),
        ([tmp_path / "trunc.mp4", tmp_path / "o.mkv"], "not a readable media file"),
        ([audio_only, tmp_path / "o.mkv"], "no video stream"),
        ([good, tmp_path / "o.mkv", "--codec", "nope"], "unknown encoder 'nope'"),
        ([good, tmp_path / "o.mkv", "--pix-fmt", "weird"], "--pix-fmt"),
        ([good, tmp_path / "exists.mkv"], "exists; pass --overwrite"),
        ([good, good, "--overwrite"], "is the input"),
        ([good, tmp_path / "no" / "dir" / "o.mkv"], "does not exist"),
        ([good, tmp_path / "o.mkv", "--qf", "qp"], "FBCNN"),
        ([good, tmp_path / "o.mkv", "--model", tmp_path / "nothing.safetensors"], "nothing.safetensors"),
    ]
    for args, pattern in cases:
        code = cli([*map(str, args), *m] if "--model" not in map(str, args) else [*map(str, args), "--quiet"])
        one_line_error(capsys, code, pattern)
    assert (tmp_path / "exists.mkv").read_bytes() == b"keep"
    assert not (tmp_path / "o.mkv").exists() and not [p for p in tmp_path.iterdir() if ".part" in p.name]
    # the same through a real process: one line, no traceback
    proc = run_cli(tmp_path / "text.mp4", tmp_path / "o.mkv", "--model", weights)
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1 and "not a readable media file" in proc.stderr


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
def test_signal_stops_cleanly(tmp_path, weights, sig):
    import signal
    import time

    src = make_video(tmp_path / "in.mp4", frames=150, size=(160, 120))
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "vsjpegfix", str(src), str(out_dir / "out.mp4"), "--model", str(weights), "--quiet"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 90
        while not any(out_dir.iterdir()) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)  # frames are being restored and written into the temporary file
        assert proc.poll() is None, proc.communicate()
        temporaries = list(out_dir.iterdir())
        assert [p.name.startswith(".out.") and ".part" in p.name for p in temporaries] == [True]
        proc.send_signal(getattr(signal, sig))
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "Traceback" not in err and err.strip().splitlines() == ["vsjpegfix: error: interrupted"]
    assert list(out_dir.iterdir()) == []  # no output, no temporary file


def test_a_raw_h264_stream_restores_into_raw_h264_or_matroska(tmp_path, weights, cli, capsys):
    """The single-file command on a raw .264 (no container, no timestamps): a .264 or an .mkv output."""
    from fractions import Fraction

    src = make_video(tmp_path / "in.264", frames=6, fmt="h264")
    assert cli([str(src), str(tmp_path / "out.mkv"), "--model", str(weights), "--codec", "ffv1", "--quiet"]) == 0
    assert_same_pictures(src, tmp_path / "out.mkv")
    with av.open(str(tmp_path / "out.mkv")) as c:
        assert [f.pts * f.time_base for f in c.decode(video=0)] == [Fraction(i, 25) for i in range(6)]
    assert cli([str(src), str(tmp_path / "out.264"), "--model", str(weights), "--quiet"]) == 0
    with av.open(str(tmp_path / "out.264")) as c:
        assert c.format.name == "h264" and len(list(c.decode(video=0))) == 6
    # a raw stream cannot hold another codec: one line, nothing written
    code = cli([str(src), str(tmp_path / "x.264"), "--model", str(weights), "--codec", "ffv1", "--quiet"])
    one_line_error(capsys, code, "x.264")
    assert not (tmp_path / "x.264").exists() and not [p for p in tmp_path.iterdir() if ".part" in p.name]


def test_strength_start_and_duration_options(tmp_path, weights, cli, capsys):
    """--strength, --start, --duration: in --help with defaults, in the JSON report, one-line errors when wrong."""
    import json

    src = make_video(tmp_path / "in.mp4", frames=25, audio=["aac"])
    report = tmp_path / "r.json"
    code = cli([str(src), str(tmp_path / "o.mkv"), "--model", str(weights), "--quiet", "--strength", "0.25",
                "--start", "0:00.2", "--duration", "0.4", "--json", str(report)])
    assert code == 0, capsys.readouterr().err
    entry = json.loads(report.read_text())["files"][0]
    assert entry["frames"] == 10 and entry["strength_option"] == 0.25
    assert {e["strength"] for e in entry["per_frame"]} == {0.25}
    assert entry["window"]["start"] == 0.2 and entry["window"]["duration"] == 0.4 and entry["window"]["cut_seconds"] == pytest.approx(0.2)
    cases = [
        (["--strength", "strong"], "--strength must be 'auto' or a number 0..2"),
        (["--strength", "3"], "--strength must be 'auto' or a number 0..2"),
        (["--start", "-1"], "--start must be 0 or more"),
        (["--start", "ten"], "--start takes seconds"),
        (["--duration", "0"], "--duration must be more than 0"),
        (["--start", "5"], "beyond the end of the file"),
    ]
    for extra, pattern in cases:
        code = cli([str(src), str(tmp_path / "bad.mkv"), "--model", str(weights), "--quiet", *extra])
        one_line_error(capsys, code, pattern)
    assert not (tmp_path / "bad.mkv").exists() and not [p for p in tmp_path.iterdir() if ".part" in p.name]
    image = tmp_path / "still.png"
    Image.fromarray(np.full((16, 16, 3), 100, np.uint8)).save(image)
    one_line_error(capsys, cli([str(image), str(tmp_path / "s.png"), "--model", str(weights), "--start", "1"]), "apply to video")
    from vsjpegfix.apps.cli import _batch_parser, _restore_parser

    for parser in (_restore_parser(), _batch_parser()):
        text = " ".join(parser.format_help().split())
        assert "--strength S" in text and "(default: auto)" in text and "--start T" in text and "(default: 0, the start)" in text
        assert "--duration T" in text and "(default: to the end)" in text and "--debug" in text
