"""scripts/train.py end to end on a tiny image folder: log, resume, export (CPU, a few seconds)."""

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data

from vsjpegfix.training import data as train_data
from vsjpegfix.training.validation import stack_window
from vsjpegfix.weights.store import load_file, read_state_dict

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "train.py"


@pytest.fixture(scope="module")
def train_script():
    """scripts/train.py imported as a module (for in-process runs and its helpers)."""
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        import train
    finally:
        sys.path.remove(str(SCRIPT.parent))
    return train


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("train_data")
    img = data.astronaut()
    train, val = root / "train" / "sub", root / "val"
    train.mkdir(parents=True)
    val.mkdir()
    for i, (y, x) in enumerate([(0, 0), (96, 200), (250, 300), (400, 100)]):
        Image.fromarray(img[y : y + 80, x : x + 96]).save(train / f"t{i}.png")
    Image.fromarray(img[300:340, 0:48]).save(root / "train" / "small.jpg", quality=95)
    for i, (y, x) in enumerate([(150, 150), (350, 400)]):
        Image.fromarray(img[y : y + 48, x : x + 64]).save(val / f"v{i}.png")
    return root / "train", val


def _args(folders, out: Path, *extra: str) -> list[str]:
    train, val = folders
    return [
        "--arch", "fastarcnn", "--channels", "3",
        "--train", str(train), "--val", str(val), "--out", str(out),
        "--batch", "4", "--crop", "16", "--lr", "1e-3", "--warmup", "2", "--degrade", "mix",
        "--val-every", "6", "--val-n", "2", "--val-crop", "32", "--log-every", "2", "--save-every", "6",
        "--threads", "1", "--no-progress", "--seed", "3", *extra,
    ]  # fmt: skip


def _run(folders, out: Path, *extra: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(SCRIPT), *_args(folders, out, *extra)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def _log(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]


def test_train_resume_export(folders, tmp_path, train_script):
    out = tmp_path / "run"
    _run(folders, out, "--steps", "20", "--stop-at", "12", "--workers", "1")
    log = _log(out)
    losses = [r["loss"] for r in log if "loss" in r]
    assert [r["step"] for r in log if "loss" in r] == list(range(2, 13, 2))
    assert losses and all(math.isfinite(v) and 0 < v < 1 for v in losses)
    vals = [r for r in log if "val_gain_db" in r]
    assert [r["step"] for r in vals] == [0, 6, 12] and all(math.isfinite(r["val_psnr_model"]) for r in vals)
    ckpt = torch.load(out / "last.pt", map_location="cpu", weights_only=True)
    assert ckpt["step"] == 12 and (out / "best.pt").is_file()

    weights = tmp_path / "tiny.safetensors"
    proc = _run(folders, out, "--steps", "20", "--workers", "0", "--resume", "--export", str(weights), "--name", "tiny")
    assert "resumed from" in proc.stderr and "at step 12" in proc.stderr
    log2 = _log(out)[len(log) :]
    assert [r["step"] for r in log2 if "loss" in r] == [14, 16, 18, 20]
    assert torch.load(out / "last.pt", map_location="cpu", weights_only=True)["step"] == 20

    entry = json.loads(proc.stdout)
    assert entry["name"] == "tiny" and entry["file"] == "tiny.safetensors" and entry["arch"] == "fastarcnn"
    assert entry["config"] == {"channels": 3, "frames": 1, "residual": True}
    assert entry["training"]["steps"] == 20 and entry["training"]["batch"] == 4 and entry["training"]["crop"] == 16
    assert "val_psnr_gain_qf10_db" in entry["training"]
    state, _ = read_state_dict(weights)
    assert all(v.dtype == torch.float16 for v in state.values())

    model = load_file(weights, sha256=entry["sha256"])
    x = torch.rand(1, 3, 24, 20)
    with torch.no_grad():
        y = model(x)
    assert y.shape == x.shape and torch.isfinite(y).all()

    # the interrupted + resumed run equals an uninterrupted one (batches depend on (seed, step) only)
    straight = tmp_path / "straight"
    threads = torch.get_num_threads()
    try:  # in-process, to save a Python start-up
        assert train_script.main(_args(folders, straight, "--steps", "20", "--workers", "0")) == 0
    finally:
        torch.set_num_threads(threads)
    a = torch.load(out / "last.pt", map_location="cpu", weights_only=True)["model"]
    b = torch.load(straight / "last.pt", map_location="cpu", weights_only=True)["model"]
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-5)


def test_train_refuses_overlapping_val(folders, tmp_path, train_script):
    train, _ = folders
    with pytest.raises(SystemExit, match="overlap"):
        train_script.main(["--train", str(train), "--val", str(train / "sub"), "--out", str(tmp_path), "--steps", "1"])


def test_make_batch_is_deterministic_and_grid_aligned():
    img = data.astronaut()
    a = train_data.make_batch([img], seed=1, step=5, batch=3, crop=32, degrade="jpeg")
    b = train_data.make_batch([img], seed=1, step=5, batch=3, crop=32, degrade="jpeg")
    c = train_data.make_batch([img], seed=1, step=6, batch=3, crop=32, degrade="jpeg")
    for u, v in zip(a, b):
        torch.testing.assert_close(u, v, equal_nan=True)
    assert not torch.equal(a[1], c[1])
    x, y, label = a
    assert x.shape == y.shape == (3, 3, 32, 32) and label.shape == (3, 1)
    assert ((label > 0) & (label < 1)).all()
    # each clean patch is a flip/rotation of an image region whose origin is on the 8x8 JPEG grid
    patch = (y[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    variants = [np.rot90(p, k) for p in (patch, patch[::-1]) for k in range(4)]  # the dihedral group
    hits = []
    for v in variants:
        ys, xs = np.nonzero((img[: -31 : 8, : -31 : 8] == v[0, 0]).all(axis=-1))  # top-left pixel matches
        hits += [(8 * i, 8 * j) for i, j in zip(ys, xs) if np.array_equal(img[8 * i : 8 * i + 32, 8 * j : 8 * j + 32], v)]
    assert hits


# --------------------------------------------------------------------------------------------
# temporal models (--frames T): H.264/HEVC clips, init from single-frame weights, clip validation
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def single_frame_weights(tmp_path_factory):
    """An (untrained, far from identity) single-frame Fast ARCNN: any init error would show in its PSNR."""
    from vsjpegfix.models import build_model
    from vsjpegfix.weights.store import save_weights

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("init") / "single.safetensors"
    save_weights(build_model("fastarcnn", {"channels": 3}), path, arch="fastarcnn")
    return path


def _in_process(train_script, argv: list[str]) -> int:
    threads = torch.get_num_threads()
    try:
        return train_script.main(argv)
    finally:
        torch.set_num_threads(threads)


def test_temporal_run_starts_at_single_frame_model_and_exports(folders, tmp_path, train_script, single_frame_weights):
    init = ["--init", str(single_frame_weights), "--workers", "0"]
    # the single-frame model, validated on the clips' centre frames
    single = tmp_path / "single"
    assert _in_process(train_script, _args(folders, single, *init, "--val-video", "--steps", "0")) == 0
    (ref,) = [r for r in _log(single) if "val_gain_db" in r]

    temporal = tmp_path / "t3"
    weights = tmp_path / "t3.safetensors"
    argv = _args(folders, temporal, *init, "--frames", "3", "--codecs", "h264", "--steps", "3", "--export", str(weights))
    assert _in_process(train_script, argv) == 0
    vals = [r for r in _log(temporal) if "val_gain_db" in r]
    assert [r["step"] for r in vals] == [0, 3]
    first = vals[0]
    assert first["val_video"] == "h264 qp37" and first["val_psnr_degraded"] == ref["val_psnr_degraded"]
    # make_temporal: the 3-frame model starts exactly at the single-frame model
    assert abs(first["val_psnr_model"] - ref["val_psnr_model"]) < 1e-4
    assert abs(first["val_gain_db"] - ref["val_gain_db"]) < 1e-4
    losses = [r for r in _log(temporal) if "loss" in r]
    assert [r["step"] for r in losses] == [2, 3] and all(math.isfinite(r["loss"]) for r in losses)
    assert vals[1]["val_psnr_model"] != first["val_psnr_model"]  # it trained

    entry = json.loads((temporal / "export.json").read_text())
    assert entry["config"] == {"channels": 3, "frames": 3, "residual": True}
    assert entry["task"] == "video" and "val_psnr_gain_h264_qp37_db" in entry["training"]
    model = load_file(weights, sha256=entry["sha256"])
    assert model.frames == 3 and model.channels == 3
    with torch.no_grad():
        y = model(torch.rand(1, 9, 24, 20))
    assert y.shape == (1, 3, 24, 20) and torch.isfinite(y).all()


def test_frames_must_be_odd(folders, tmp_path, train_script, capsys):
    with pytest.raises(SystemExit):
        train_script.main(_args(folders, tmp_path / "even", "--frames", "2", "--steps", "1"))
    assert "--frames must be a positive odd number" in capsys.readouterr().err


def test_clip_batch_layout_and_determinism():
    img = data.astronaut()[:160, :160]
    a = train_data.make_clip_batch([img], seed=1, step=2, batch=2, crop=16, frames=3, codecs=("h264",))
    b = train_data.make_clip_batch([img], seed=1, step=2, batch=2, crop=16, frames=3, codecs=("h264",))
    for u, v in zip(a, b):
        torch.testing.assert_close(u, v)
    x, y, label = a
    assert x.shape == (2, 9, 16, 16) and y.shape == (2, 3, 16, 16) and label.shape == (2, 1)
    assert ((label > 0) & (label < 1)).all()
    # frames in order on the channel axis, frame-major (the engine's (N, T*C, H, W) stack)
    clip = np.broadcast_to(np.arange(3, dtype=np.uint8)[:, None, None, None], (3, 4, 4, 3))
    stacked = train_data.stack_frames(clip)
    assert stacked.shape == (9, 4, 4)
    assert (stacked[:, 0, 0] * 255).round().tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    window = stack_window(np.broadcast_to(np.arange(7, dtype=np.uint8)[:, None, None, None], (7, 4, 4, 3)), 3)
    assert (window[0, :, 0, 0] * 255).round().tolist() == [2, 2, 2, 3, 3, 3, 4, 4, 4]


def test_pack_training_data_keeps_pixels_and_trains_residual_fbcnn(folders, tmp_path, train_script):
    """scripts/pack_training_data.py: JPEGs byte for byte, the rest as lossless WebP crops; train.py reads the pack."""
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        import pack_training_data
    finally:
        sys.path.remove(str(SCRIPT.parent))
    train, val = folders
    pack = tmp_path / "pack"
    assert pack_training_data.main([str(pack), "--train", str(train), "--val", str(val), "--crop", "64", "--val-n", "1"]) == 0
    assert (pack / "train" / "small.jpg").read_bytes() == (train / "small.jpg").read_bytes()
    crops = sorted((pack / "train" / "sub").glob("*.webp"))
    assert len(crops) == 4
    for crop in crops:  # lossless: every crop is found verbatim in its source image
        src = np.array(Image.open(train / "sub" / f"{crop.stem.rsplit('_', 1)[0]}.png"))
        c = np.array(Image.open(crop))
        assert c.shape == (64, 64, 3)
        hits = [
            (y, x) for y in range(src.shape[0] - 63) for x in range(src.shape[1] - 63)
            if np.array_equal(src[y : y + 64, x : x + 64], c)
        ]
        assert hits
    assert [p.name for p in (pack / "val" / val.name).iterdir()] == ["v0.webp"]
    assert pack_training_data.main([str(pack)]) == 2  # never overwrites

    out = tmp_path / "fbcnn"
    argv = [
        "--arch", "fbcnn", "--config", '{"nc": [8, 8, 8, 8], "nb": 1, "residual": true}', "--channels", "3",
        "--train", str(pack / "train"), "--val", str(pack / "val" / val.name), "--out", str(out),
        "--batch", "2", "--crop", "16", "--steps", "2", "--degrade", "mix_hq", "--val-n", "1", "--val-crop", "32",
        "--threads", "1", "--workers", "0", "--no-progress", "--tail-init-scale", "0",
    ]  # fmt: skip
    assert _in_process(train_script, argv) == 0
    vals = [r for r in _log(out) if "val_gain_db" in r]
    assert vals[0]["step"] == 0 and vals[0]["val_gain_db"] == pytest.approx(0.0, abs=1e-9)  # exact identity start
    assert vals[-1]["step"] == 2


@pytest.fixture(scope="module")
def clip_pack_dir(folders, tmp_path_factory, train_script):
    """A tiny pre-encoded clip pack (scripts/pack_video_clips.py) of the training folder."""
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        import pack_video_clips
    finally:
        sys.path.remove(str(SCRIPT.parent))
    out = tmp_path_factory.mktemp("clips") / "pack"
    argv = ["--train", str(folders[0]), "--out", str(out), "--count", "6", "--size", "32", "--frames", "3",
            "--codecs", "h264", "--workers", "2", "--seed", "4"]
    assert pack_video_clips.main(argv) == 0
    return out, pack_video_clips, argv


def test_clip_pack_is_deterministic_and_matches_on_the_fly_clips(clip_pack_dir, tmp_path, folders, train_script):
    from vsjpegfix.training.clip_pack import load_pack

    out, pack_video_clips, argv = clip_pack_dir
    pack = load_pack(out)
    assert (pack.count, pack.frames, pack.size) == (6, 3, 32) and pack.meta["codecs"] == ["h264"]
    assert pack.degraded.shape == (6, 3, 32, 32, 3) and pack.clean.shape == (6, 32, 32, 3)
    assert ((pack.label > 0) & (pack.label < 1)).all()
    # one worker gives the same pack (clip i is a function of (seed, i) only)
    again = tmp_path / "again"
    assert pack_video_clips.main([*argv[:2], "--out", str(again), *argv[4:-4], "--workers", "1", "--seed", "4"]) == 0
    other = load_pack(again)
    assert np.array_equal(other.degraded, pack.degraded) and np.array_equal(other.clean, pack.clean)
    # clip 0 is exactly what on-the-fly training would have made from the same random stream
    images = train_data.load_images(train_data.list_images(folders[0]), 3, train_data.clip_min_side(32))
    rng = np.random.default_rng([4, 0])
    img = images[int(rng.integers(len(images)))]
    deg, clean, label = train_data.make_clip_sample(img, rng, 32, 3, ("h264",), 0.2)
    assert np.array_equal(deg, pack.degraded[0]) and np.array_equal(clean, pack.clean[0]) and label == pack.label[0]
    # the clean centre frame differs from the decoded one: the clips are really coded
    assert not np.array_equal(pack.degraded[:, 1], pack.clean)


def test_pack_batches_crop_on_the_grid_and_keep_frames_aligned(clip_pack_dir):
    from vsjpegfix.training.clip_pack import PackError, load_pack, sample

    pack = load_pack(clip_pack_dir[0])
    x, y, label = train_data.make_pack_batch(pack, seed=1, step=5, batch=4, crop=16, frames=3)
    x2, _, _ = train_data.make_pack_batch(pack, seed=1, step=5, batch=4, crop=16, frames=3)
    assert x.shape == (4, 9, 16, 16) and y.shape == (4, 3, 16, 16) and label.shape == (4, 1)
    torch.testing.assert_close(x, x2)
    rng = np.random.default_rng(0)
    for _ in range(10):  # every window is a grid-aligned piece of one clip, flipped/rotated as a whole
        deg, clean, lab = sample(pack, rng, 16, 1)
        hit = False
        for i in range(pack.count):
            for mode in range(8):
                full = pack.clean[i][::-1] if mode & 4 else pack.clean[i]
                full = np.rot90(full, mode & 3)
                for yy in (0, 16):
                    for xx in (0, 16):
                        if np.array_equal(full[yy : yy + 16, xx : xx + 16], clean):
                            dfull = np.rot90(pack.degraded[i, 1][::-1] if mode & 4 else pack.degraded[i, 1], mode & 3)
                            hit = hit or np.array_equal(dfull[yy : yy + 16, xx : xx + 16], deg[0])
        assert hit and lab in pack.label
    with pytest.raises(PackError, match="odd frame count"):
        sample(pack, rng, 16, 5)
    with pytest.raises(PackError, match="larger than the pack"):
        sample(pack, rng, 48, 1)
    # single-frame training with half of each batch from the pack, half JPEG on the images
    stream = train_data.BatchStream([data.astronaut()[:96, :96]], 0, 0, 2, 4, 16, "mix", pack=pack, pack_fraction=0.5)
    batches = list(stream)
    assert len(batches) == 2 and all(b[0].shape == (4, 3, 16, 16) for b in batches)


def test_temporal_training_from_a_clip_pack(clip_pack_dir, folders, tmp_path, train_script, capsys):
    out = tmp_path / "t3"
    argv = _args(folders, out, "--frames", "3", "--clips", str(clip_pack_dir[0]), "--steps", "4", "--workers", "0")
    assert train_script.main(argv) == 0
    losses = [r for r in _log(out) if "loss" in r]
    assert [r["step"] for r in losses] == [2, 4] and all(math.isfinite(r["loss"]) for r in losses)
    err = capsys.readouterr().err
    assert "pack: 6 clips of 3 frames, 32 px" in err and "no images read" in err
    # the training images are not needed (nor read) when every sample comes from the pack
    empty = tmp_path / "empty"
    empty.mkdir()
    argv = _args((empty, folders[1]), tmp_path / "t3e", "--frames", "3", "--clips", str(clip_pack_dir[0]),
                 "--steps", "2", "--workers", "0", "--val-n", "0")
    assert train_script.main(argv) == 0
    with pytest.raises(SystemExit, match="no images"):  # a single-frame model with half its batch from images
        train_script.main(_args((empty, folders[1]), tmp_path / "half", "--clips", str(clip_pack_dir[0]),
                                "--clips-fraction", "0.5", "--steps", "1", "--workers", "0"))
    with pytest.raises(SystemExit, match="odd frame count"):
        train_script.main(_args(folders, tmp_path / "t5", "--frames", "5", "--clips", str(clip_pack_dir[0]), "--steps", "1"))
    with pytest.raises(SystemExit, match="not a clip pack"):
        train_script.main(_args(folders, tmp_path / "none", "--clips", str(tmp_path), "--steps", "1"))
