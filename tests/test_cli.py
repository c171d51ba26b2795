"""The command line, run as a real subprocess: success, and one-line errors without tracebacks."""

import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data

from vsjpegfix.models import FastARCNN
from vsjpegfix.weights import save_weights


REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


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
    """Without --model: ARCNN with its QP profile where the quantisers are read (H.264/HEVC), the
    compact FBCNN (near identity when blind) elsewhere and with --qf blind; the report names the model."""
    import json

    from test_transcode import make_video

    clips = {"h264": make_video(tmp_path / "h264.mp4", frames=4),
             "hevc": make_video(tmp_path / "hevc.mkv", frames=4, codec="libx265"),
             "mpeg4": make_video(tmp_path / "mpeg4.mkv", frames=4, codec="mpeg4")}
    env = {k: v for k, v in os.environ.items() if k != "VSJPEGFIX_WEIGHTS_DIR"}  # the shipped weights
    env["PYTHONPATH"] = REPO
    cases = [("h264", (), "arcnn", "profile"), ("hevc", (), "arcnn", "profile"), ("mpeg4", (), "fbcnn-s", "auto"),
             ("h264", ("--qf", "blind"), "fbcnn-s", "blind")]
    for i, (codec, extra, model, mode) in enumerate(cases):
        report = tmp_path / f"r{i}.json"
        cmd = [sys.executable, "-m", "vsjpegfix", str(clips[codec]), str(tmp_path / f"o{i}.mkv"), "--quiet",
               "--json", str(report), *extra]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
        assert proc.returncode == 0, proc.stderr[-2000:]
        entry = json.loads(report.read_text())["files"][0]
        assert (entry["model"], entry["qf_mode"]) == (model, mode), (codec, extra)
