"""Still images: ``vsjpegfix photo.jpg restored.png``, batch folders with images and videos, the file's
own QF controlling FBCNN, colour metadata, odd modes, large images and every error path.

Real photographs from scikit-image. The CLI runs as real subprocesses, all started at once when
this module begins (they mostly wait on imports) while the in-process tests run.
"""

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageCms
from skimage import data

from vsjpegfix.engine.core import Engine
from vsjpegfix.frames import image_files as image_io
from vsjpegfix.frames.image_files import (
    ImageError,
    load_image,
    restore_array,
    restore_image_file,
)
from vsjpegfix.models import FBCNN, FastARCNN
from vsjpegfix.training.degrade import double_jpeg, jpeg
from vsjpegfix.weights.store import save_weights

REPO = Path(__file__).resolve().parents[2]
SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
ARTIST, TAKEN = "Jane Doe", "2021:06:05 04:03:02"


def identity_fastarcnn(channels: int = 3, bias: float = 0.0) -> FastARCNN:
    """Residual Fast ARCNN with a zero correction (plus ``bias``): output == input (+ bias)."""
    model = FastARCNN(channels=channels)
    with torch.no_grad():
        model.reconstruct.weight.zero_()
        model.reconstruct.bias.fill_(bias)
    return model


def tiny_fbcnn(channels: int = 3) -> FBCNN:
    torch.manual_seed(0)
    return FBCNN(in_nc=channels, out_nc=channels, nc=(8, 16, 24, 32), nb=1)


def exif_block(orientation: int | None) -> Image.Exif:
    exif = Image.Exif()
    if orientation:
        exif[0x0112] = orientation
    exif[0x013B] = ARTIST  # Artist (IFD0)
    exif.get_ifd(0x8769)[0x9003] = TAKEN  # DateTimeOriginal (Exif sub-IFD)
    return exif


def save_jpeg(path: Path, img: np.ndarray, quality: int, **extra) -> np.ndarray:
    """Write a JPEG; returns its decoded pixels as stored (no orientation applied)."""
    Image.fromarray(img).save(path, quality=quality, **extra)
    with Image.open(path) as im:
        return np.asarray(im)


def write_clip(path: Path, frames: int = 5, size=(64, 48)) -> None:
    """A tiny H.264 clip panned over a real photo (PyAV libx264)."""
    import av

    photo = data.astronaut()
    w, h = size
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.options = {"crf": "30", "preset": "ultrafast"}
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(photo[100 + 2 * i : 100 + 2 * i + h, 150 : 150 + w]), format="rgb24")
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def video_frames(path: Path) -> list[np.ndarray]:
    import av

    with av.open(str(path)) as f:
        return [fr.to_ndarray(format="rgb24") for fr in f.decode(video=0)]


# ---------------------------------------------------------------- CLI runs, started together


def _error_argv(root: Path, name: str) -> list:
    inp, out, _ = ERROR_CASES[name]
    case = root / name
    return [case / inp, out if out.startswith("/") else case / out, "--model", root / "identity.safetensors"]


def _start(args, cwd: Path) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(REPO), VSJPEGFIX_WEIGHTS_DIR=str(cwd), OMP_NUM_THREADS="1")
    return subprocess.Popen(
        [sys.executable, "-m", "vsjpegfix", *map(str, args)], cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


ERROR_CASES = {
    # name: (input file, output path (in the case folder, or absolute), expected text)
    "not_an_image": ("text.jpg", "out.png", "not a readable image"),
    "truncated_jpeg": ("half.jpg", "out.png", "truncated"),
    "cmyk_jpeg": ("cmyk.jpg", "out.png", "mode CMYK is not supported"),
    "sixteen_bit_png": ("i16.png", "out.png", "mode I;16 is not supported"),
    "animated_gif": ("anim.gif", "out.png", "animated"),
    "unsupported_output": ("photo.jpg", "out.xyz", "unsupported output extension"),
    "output_under_a_file": ("photo.jpg", "blocker.txt/out.png", "does not exist"),
    "output_in_proc": ("photo.jpg", "/proc/vsjpegfix-test-out.png", "cannot write"),
}
#: run as real subprocesses too (every case also runs through cli.main in process: a subprocess
#: costs seconds of imports on a busy machine)
SUBPROCESS_CASES = ("truncated_jpeg", "output_in_proc")


@pytest.fixture(scope="module", autouse=True)
def cli(tmp_path_factory):
    """Create inputs and start every CLI run of this module; tests wait on the one they check."""
    root = tmp_path_factory.mktemp("image_cli")
    identity, fbcnn = root / "identity.safetensors", root / "fbcnn.safetensors"
    save_weights(identity_fastarcnn(), identity, arch="fastarcnn")
    save_weights(tiny_fbcnn(), fbcnn, arch="fbcnn")
    photo = data.astronaut()[:96, :128]
    runs = {}

    # batch: a video next to images, in a nested layout
    src, dst = root / "batch_src", root / "batch_dst"
    (src / "sub" / "deeper").mkdir(parents=True)
    write_clip(src / "clip.mp4")
    save_jpeg(src / "a.jpg", data.coffee()[:120, :160], 30)
    save_jpeg(src / "sub" / "b.jpg", data.chelsea()[:96, :144], 20)
    save_jpeg(src / "sub" / "gray.jpg", data.camera()[:80, :112], 25)
    rgba = np.dstack([photo, (np.arange(128)[None, :].repeat(96, 0) * 2).astype(np.uint8)])
    Image.fromarray(rgba, "RGBA").save(src / "sub" / "deeper" / "rgba.png")
    runs["batch"] = (_start(["batch", src, dst, "--model", identity, "--json", root / "batch.json", "--quiet"], root), (src, dst))

    # one double-compressed JPEG through FBCNN, with the JSON report
    dj = double_jpeg(data.astronaut()[:256, :320], 10, 90, (4, 4))
    save_jpeg(root / "double.jpg", dj, 90)
    runs["double"] = (_start([root / "double.jpg", root / "double.png", "--model", fbcnn, "--json", root / "double.json"], root), None)

    # error paths, each in a folder of its own so that leftovers can be checked
    for name, (inp, out, _) in ERROR_CASES.items():
        case = root / name
        case.mkdir()
        if inp == "text.jpg":
            (case / inp).write_text("this is not an image\n")
        elif inp == "half.jpg":
            buf = io.BytesIO()
            Image.fromarray(data.astronaut()).save(buf, format="JPEG", quality=50)
            (case / inp).write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
        elif inp == "cmyk.jpg":
            Image.fromarray(photo).convert("CMYK").save(case / inp)
        elif inp == "i16.png":
            Image.fromarray((data.camera()[:64, :64].astype(np.uint16) * 257)).save(case / inp)
        elif inp == "anim.gif":
            frames = [Image.fromarray(photo), Image.fromarray(photo[::-1].copy())]
            frames[0].save(case / inp, save_all=True, append_images=frames[1:], duration=100)
        else:
            save_jpeg(case / inp, photo, 40)
        if out.startswith("blocker.txt"):
            (case / "blocker.txt").write_text("a file, not a folder")
        if name in SUBPROCESS_CASES:
            runs[name] = (_start(_error_argv(root, name), case), case)

    results = {}

    def wait(name):
        if name not in results:
            proc, extra = runs[name]
            out, err = proc.communicate(timeout=300)
            results[name] = (proc.returncode, out, err, extra)
        return results[name]

    yield root, wait
    for proc, _ in runs.values():
        if proc.poll() is None:
            proc.kill()


# ---------------------------------------------------------------- quality control (in process)


@pytest.fixture(scope="module")
def fbcnn_engine():
    return Engine(tiny_fbcnn(), device="cpu")


def test_file_qf_controls_fbcnn_and_blind_mode_uses_the_prediction(tmp_path, fbcnn_engine):
    save_jpeg(tmp_path / "q40.jpg", data.coffee()[:128, :192], 40)
    report = restore_image_file(fbcnn_engine, tmp_path / "q40.jpg", tmp_path / "a.png")
    assert (report.file_qf, report.file_qf_exact) == (40, True)
    assert report.double_jpeg["detected"] is False
    assert report.qf == pytest.approx(40, abs=0.01)
    assert report.predicted_qf is not None and report.predicted_qf != pytest.approx(40, abs=0.01)
    blind = restore_image_file(fbcnn_engine, tmp_path / "q40.jpg", tmp_path / "b.png", use_file_qf=False)
    assert blind.file_qf == 40 and blind.qf == pytest.approx(blind.predicted_qf, abs=0.01)
    # a PNG has no file QF: the prediction controls
    Image.open(tmp_path / "q40.jpg").save(tmp_path / "q40.png")
    png = restore_image_file(fbcnn_engine, tmp_path / "q40.png", tmp_path / "c.png")
    assert png.file_qf is None and png.qf == pytest.approx(png.predicted_qf, abs=0.01)


def test_custom_tables_control_with_their_nearest_qf(tmp_path, fbcnn_engine):
    Image.fromarray(data.chelsea()[:96, :128]).save(tmp_path / "web.jpg", quality="web_high")
    report = restore_image_file(fbcnn_engine, tmp_path / "web.jpg", tmp_path / "web.png")
    assert report.file_qf_exact is False and report.qf == pytest.approx(report.file_qf, abs=0.01)


# ---------------------------------------------------------------- colour and metadata


@pytest.fixture(scope="module")
def identity_engine():
    return Engine(identity_fastarcnn(), device="cpu")


@pytest.mark.parametrize("orientation,turns", [(6, -1), (8, 1)])  # 6: turn 90 deg clockwise to show, 8: anticlockwise
@pytest.mark.parametrize("suffix", [".png", ".webp", ".jpg"])
def test_exif_orientation_applied_and_metadata_kept(tmp_path, identity_engine, orientation, turns, suffix):
    src = tmp_path / "photo.jpg"
    stored = save_jpeg(src, data.astronaut()[:84, :124], 60, exif=exif_block(orientation), icc_profile=SRGB)
    dst = tmp_path / f"out{suffix}"
    restore_image_file(identity_engine, src, dst)
    expected = np.rot90(stored, turns)
    with Image.open(dst) as out:
        got = np.asarray(out.convert("RGB"))
        assert got.shape == expected.shape == (124, 84, 3)
        if suffix == ".jpg":  # high-quality JPEG out
            assert np.abs(got.astype(int) - expected).mean() < 1.5
        else:
            assert np.array_equal(got, expected)
        assert out.info.get("icc_profile") == SRGB
        exif = out.getexif()
        assert exif.get(0x0112) == 1
        assert exif.get(0x013B) == ARTIST
        assert exif.get_ifd(0x8769).get(0x9003) == TAKEN


def test_double_jpeg_is_analysed_on_the_stored_grid_of_a_rotated_photo(tmp_path, fbcnn_engine):
    # earlier QF 10 on a grid shifted by (4, 4), stored 260 rows high (not a multiple of 8), shown rotated
    first = jpeg(data.astronaut()[100:400, 100:400], 10)[4:264, 4:268]
    save_jpeg(tmp_path / "rot.jpg", first, 90, exif=exif_block(6))
    loaded = load_image(tmp_path / "rot.jpg")
    assert loaded.pixels.shape[:2] == (264, 260)
    assert loaded.double.detected and loaded.double.shift == (4, 4) and abs(loaded.double.qf1 - 10) <= 2
    report = restore_image_file(fbcnn_engine, tmp_path / "rot.jpg", tmp_path / "rot.png")
    assert report.qf == pytest.approx(loaded.double.qf1, abs=0.01)
    # a single JPEG shown rotated has no earlier grid, although its own grid moves by 260 % 8 = 4 there
    save_jpeg(tmp_path / "single.jpg", data.astronaut()[100:360, 100:364], 50, exif=exif_block(6))
    single = load_image(tmp_path / "single.jpg")
    assert not single.double.detected and single.file_quality.qf == 50


def test_gray_jpeg_goes_through_a_gray_model_and_stays_gray(tmp_path, identity_engine):
    stored = save_jpeg(tmp_path / "gray.jpg", data.camera()[:96, :120], 20)
    plus8 = Engine(identity_fastarcnn(channels=1, bias=8 / 255), device="cpu")  # proves the gray model ran
    restore_image_file(plus8, tmp_path / "gray.jpg", tmp_path / "gray.png")
    with Image.open(tmp_path / "gray.png") as out:
        assert out.mode == "L"
        assert np.array_equal(np.asarray(out), np.minimum(stored.astype(int) + 8, 255))
    restore_image_file(identity_engine, tmp_path / "gray.jpg", tmp_path / "gray_rgbmodel.png")  # colour model
    with Image.open(tmp_path / "gray_rgbmodel.png") as out:
        assert out.mode == "L" and np.array_equal(np.asarray(out), stored)


@pytest.mark.parametrize("suffix", [".png", ".webp"])
def test_rgba_keeps_its_alpha(tmp_path, identity_engine, suffix):
    rgb = data.coffee()[:64, :96]
    alpha = np.tile(np.linspace(0, 255, 96).astype(np.uint8), (64, 1))
    Image.fromarray(np.dstack([rgb, alpha]), "RGBA").save(tmp_path / "in.png")
    restore_image_file(identity_engine, tmp_path / "in.png", tmp_path / f"out{suffix}")
    with Image.open(tmp_path / f"out{suffix}") as out:
        assert out.mode == "RGBA"
        got = np.asarray(out)
    assert np.array_equal(got[..., 3], alpha)
    assert np.array_equal(got[..., :3][alpha > 0], rgb[alpha > 0])  # lossless WebP may drop colour under alpha 0
    report = restore_image_file(identity_engine, tmp_path / "in.png", tmp_path / "flat.jpg")  # JPEG has no alpha
    assert report.extra == {"alpha_dropped": True}


def test_multi_picture_jpeg_reads_its_primary_picture(tmp_path):
    photo = data.astronaut()[:96, :128]
    Image.fromarray(photo).save(tmp_path / "phone.jpg", format="MPO", save_all=True, append_images=[Image.fromarray(photo[:48, :64])], quality=35)
    loaded = load_image(tmp_path / "phone.jpg")
    assert loaded.format == "MPO" and loaded.pixels.shape == (96, 128, 3)
    assert (loaded.file_quality.qf, loaded.file_quality.exact) == (35, True)


# ---------------------------------------------------------------- refused inputs (in process)


def test_refused_inputs_have_clear_messages(tmp_path):
    photo = data.astronaut()[:64, :64]
    Image.fromarray(photo).convert("CMYK").save(tmp_path / "cmyk.jpg")
    Image.fromarray(data.camera()[:64, :64].astype(np.uint16) * 257).save(tmp_path / "deep.png")
    frames = [Image.fromarray(photo), Image.fromarray(photo[::-1].copy()), Image.fromarray(photo[:, ::-1].copy())]
    frames[0].save(tmp_path / "anim.webp", save_all=True, append_images=frames[1:], duration=80, lossless=True)
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:], duration=80)
    buf = io.BytesIO()
    Image.fromarray(photo).save(buf, format="JPEG")
    (tmp_path / "cut.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    (tmp_path / "notes.jpg").write_text("hello")
    expected = {
        "cmyk.jpg": "mode CMYK is not supported",
        "deep.png": "mode I;16 is not supported",
        "anim.webp": "animated or multi-frame images (3 frames) are not supported",
        "anim.gif": "animated or multi-frame images (3 frames) are not supported",
        "cut.jpg": "truncated or corrupt image",
        "notes.jpg": "not a readable image",
        "missing.jpg": "no such file",
    }
    for name, text in expected.items():
        with pytest.raises(ImageError, match=r".*") as err:
            load_image(tmp_path / name)
        assert text in str(err.value) and name in str(err.value) and "\n" not in str(err.value)


def test_decompression_bombs_are_a_clear_error_not_a_traceback(tmp_path, monkeypatch):
    Image.fromarray(data.astronaut()[:64, :64]).save(tmp_path / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # Pillow refuses images over twice this
    with pytest.raises(ImageError, match="image too large"):
        load_image(tmp_path / "big.png")


def test_nothing_is_written_when_restoring_fails(tmp_path, identity_engine):
    save_jpeg(tmp_path / "ok.jpg", data.astronaut()[:64, :64], 50)
    (tmp_path / "bad.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really")
    with pytest.raises(ImageError, match="unsupported output extension"):
        restore_image_file(identity_engine, tmp_path / "ok.jpg", tmp_path / "out.gif")
    with pytest.raises(ImageError):
        restore_image_file(identity_engine, tmp_path / "bad.jpg", tmp_path / "out.png")
    with pytest.raises(ImageError, match="cannot write the output"):
        restore_image_file(identity_engine, tmp_path / "ok.jpg", Path("/proc/vsjpegfix-io-test.png"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.jpg", "ok.jpg"]


# ---------------------------------------------------------------- large images


def test_large_photo_is_tiled_without_seams(tmp_path, monkeypatch):
    """A photo over LARGE_IMAGE_PIXELS is tiled in 1024-pixel tiles by the engine; near the seams the
    result equals an untiled run (on crops around them, which see the same context). The
    threshold is lowered from 4 MP so that a 1104x1104 photo (2x2 tiles) keeps the test fast on a
    shared CPU; the code path is the one a 2400x1800 photo takes."""
    monkeypatch.setattr(image_io, "LARGE_IMAGE_PIXELS", 1_000_000)
    torch.manual_seed(1)
    model = FastARCNN()  # random weights: any seam would show
    big = np.asarray(Image.fromarray(data.astronaut()).resize((1104, 1104), Image.BICUBIC))
    Image.fromarray(big).save(tmp_path / "big.bmp")
    engine = Engine(model, device="cpu")
    tiles = []
    restore_tiled = engine._restore_tiled
    monkeypatch.setattr(engine, "_restore_tiled", lambda *a: tiles.append(a[0].shape) or restore_tiled(*a))
    restore_image_file(engine, tmp_path / "big.bmp", tmp_path / "out.bmp")
    assert tiles and engine.tile is None and engine.max_frame_pixels is None  # tiled, and only for this file
    with Image.open(tmp_path / "out.bmp") as out:
        tiled = np.asarray(out)
    untiled = Engine(model, device="cpu")
    # tile cores (1024 px tiles, 32 px overlap, 16 px alignment) meet at x = 960 and y = 960
    for cy, cx in [(960, 960), (480, 960), (960, 480)]:
        y0, x0 = cy - 80, cx - 80
        ref, _ = restore_array(untiled, np.ascontiguousarray(big[y0 : y0 + 160, x0 : x0 + 160]))
        inner = (slice(40, 120), slice(40, 120))
        diff = np.abs(ref[inner].astype(int) - tiled[y0 : y0 + 160, x0 : x0 + 160][inner].astype(int))
        assert diff.max() <= 1, (cy, cx, diff.max())
    assert np.abs(tiled.astype(int) - big).mean() > 1  # the model did change the image


# ---------------------------------------------------------------- CLI runs (started with the module)


def _check_error(name, case, code, stderr):
    inp, out, expected = ERROR_CASES[name]
    assert code != 0, name
    assert "Traceback" not in stderr, (name, stderr)
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vsjpegfix: error:"), (name, stderr)
    assert expected in lines[0], (name, lines[0])
    # no output, no temporary file: the case folder holds what the test put there
    assert sorted(p.name for p in case.iterdir()) == sorted({inp} | ({"blocker.txt"} if "blocker" in out else set())), name
    assert not list(Path("/proc").glob("*vsjpegfix-test-out*"))


@pytest.mark.parametrize("name", list(ERROR_CASES))
def test_cli_error_paths(cli, capsys, name):
    import signal

    from vsjpegfix.apps.cli import main

    root, _ = cli
    previous = signal.getsignal(signal.SIGTERM)  # main() installs its own SIGTERM handler
    try:
        code = main([str(a) for a in _error_argv(root, name)])
    finally:
        signal.signal(signal.SIGTERM, previous)
    _check_error(name, root / name, code, capsys.readouterr().err)


@pytest.mark.parametrize("name", SUBPROCESS_CASES)
def test_cli_error_paths_as_processes(cli, name):
    _, wait = cli
    code, _, stderr, case = wait(name)
    _check_error(name, case, code, stderr)


def test_cli_refuses_a_read_only_destination(cli, tmp_path):
    if os.geteuid() == 0:
        pytest.skip("running as root: permission bits do not stop writes (the /proc and under-a-file cases cover unwritable outputs)")
    root, _ = cli
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "vsjpegfix", root / "unsupported_output" / "photo.jpg", ro / "out.png", "--model", root / "identity.safetensors"],
            capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(REPO)), timeout=300,
        )
        assert proc.returncode != 0 and proc.stderr.startswith("vsjpegfix: error:") and "Traceback" not in proc.stderr
        assert list(ro.iterdir()) == []
    finally:
        ro.chmod(0o755)


def test_batch_restores_images_and_videos_in_one_run(cli):
    root, wait = cli
    code, _, stderr, (src, dst) = wait("batch")
    assert code == 0, stderr
    def expected(rel: Path) -> Path:  # images are written as lossless PNG by default
        return rel.with_suffix(".png") if rel.suffix.lower() in (".jpg", ".png") else rel

    inputs = sorted(expected(p.relative_to(src)) for p in src.rglob("*") if p.is_file())
    outputs = sorted(p.relative_to(dst) for p in dst.rglob("*") if p.is_file())
    assert outputs == inputs  # same relative layout, nothing else left (no temporaries)
    # video: all frames, same size
    frames = video_frames(dst / "clip.mp4")
    assert len(frames) == 5 and frames[0].shape == (48, 64, 3)
    # images: identity model, so the decoded input comes back exactly (PNG out)
    for rel in ("a.jpg", "sub/b.jpg"):
        with Image.open(src / rel) as a, Image.open(dst / Path(rel).with_suffix(".png")) as b:
            assert b.format == "PNG" and b.mode == "RGB" and b.size == a.size
            assert np.array_equal(np.asarray(a), np.asarray(b))
    with Image.open(dst / "sub" / "gray.png") as g:
        assert g.mode == "L"
    with Image.open(src / "sub/deeper/rgba.png") as a, Image.open(dst / "sub/deeper/rgba.png") as b:
        assert b.mode == "RGBA"
        assert np.array_equal(np.asarray(a), np.asarray(b))  # PNG out: colour exact, alpha untouched
    report = json.loads((root / "batch.json").read_text())
    kinds = {Path(f["input"]).name: f["details"]["kind"] for f in report["files"] if f["status"] == "ok"}
    assert kinds == {"clip.mp4": "video", "a.jpg": "image", "b.jpg": "image", "gray.jpg": "image", "rgba.png": "image"}
    assert report["files"][[Path(f["input"]).name for f in report["files"]].index("a.jpg")]["details"]["file_qf"] == 30


def test_cli_double_jpeg_reports_file_and_predicted_qf_and_uses_the_dominant_one(cli):
    root, wait = cli
    code, _, stderr, _ = wait("double")
    assert code == 0, stderr
    entry = json.loads((root / "double.json").read_text())["files"][0]
    assert entry["status"] == "ok" and entry["kind"] == "image"
    assert entry["file_qf"] == 90 and entry["file_qf_exact"] is True
    assert entry["double_jpeg"]["detected"] is True
    assert entry["double_jpeg"]["shift"] == [4, 4]
    assert abs(entry["double_jpeg"]["qf1"] - 10) <= 2
    assert entry["qf"] == pytest.approx(entry["double_jpeg"]["qf1"], abs=0.01)  # the dominant (smaller) QF
    assert isinstance(entry["predicted_qf"], float) and 0 <= entry["predicted_qf"] <= 100
    with Image.open(root / "double.png") as out:
        assert out.size == (316, 252)


def test_near_clean_jpeg_is_passed_through_by_a_model_without_quality_control(tmp_path):
    """A blind Fast ARCNN over-corrects QF >= 90 JPEGs, so such files come back as decoded; QF 50 is restored."""
    from vsjpegfix.engine.core import Engine
    from vsjpegfix.frames.image_files import restore_image_file
    from vsjpegfix.models import FastARCNN

    model = FastARCNN().eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05)  # a model that certainly changes its input
    engine = Engine(model, device="cpu")
    img = data.astronaut()[:64, :96]
    for qf, passed in ((95, True), (50, False)):
        src = tmp_path / f"q{qf}.jpg"
        Image.fromarray(img).save(src, quality=qf)
        dst = tmp_path / f"q{qf}.png"
        report = restore_image_file(engine, src, dst)
        same = np.array_equal(np.asarray(Image.open(src)), np.asarray(Image.open(dst)))
        assert same is passed
        assert ("skipped" in report.extra) is passed


def test_near_clean_jpeg_is_passed_through_by_fbcnn_only_from_qf95(tmp_path):
    """FBCNN controlled with the file's QF leaves QF >= 95 JPEGs as decoded, restores QF 90; an override restores all."""
    from vsjpegfix.engine.core import Engine
    from vsjpegfix.frames.image_files import (
        NEAR_CLEAN_QF_CONTROLLED,
        restore_image_file,
    )
    from vsjpegfix.models import FBCNN

    assert NEAR_CLEAN_QF_CONTROLLED == 95
    model = FBCNN(nc=(8, 8, 8, 8), nb=1).eval()  # random weights: certainly changes its input
    img = data.astronaut()[:64, :96]
    for qf, engine_qf, passed in ((95, None, True), (100, None, True), (90, None, False), (95, 50, False)):
        engine = Engine(model, device="cpu", qf=engine_qf)
        src = tmp_path / f"q{qf}.jpg"
        Image.fromarray(img).save(src, quality=qf)
        dst = tmp_path / f"q{qf}_{engine_qf}.png"
        report = restore_image_file(engine, src, dst)
        same = np.array_equal(np.asarray(Image.open(src)), np.asarray(Image.open(dst)))
        assert same is passed, (qf, engine_qf)
        assert ("skipped" in report.extra) is passed
        assert report.file_qf == qf and report.predicted_qf is not None


def test_a_calibrated_profile_sets_the_strength_from_the_file_qf(tmp_path):
    """With a JPEG profile the file's QF picks the strength: 0 passes the file through, 0.5 restores half-way."""
    from vsjpegfix.weights.profile import QualityProfile

    model = FBCNN(nc=(8, 8, 8, 8), nb=1).eval()  # random weights: certainly changes its input
    engine = Engine(model, device="cpu")
    engine.quality_profile = QualityProfile(jpeg_qf=((50.0, 1.0), (80.0, 0.5), (90.0, 0.0)))
    img = data.astronaut()[:64, :96]
    for qf, strength in ((95, 0.0), (80, 0.5), (40, None)):
        src = tmp_path / f"q{qf}.jpg"
        Image.fromarray(img).save(src, quality=qf)
        report = restore_image_file(engine, src, tmp_path / f"q{qf}.png")
        out = np.asarray(Image.open(tmp_path / f"q{qf}.png")).astype(float)
        decoded = np.asarray(Image.open(src)).astype(float)
        full, _ = restore_array(engine, decoded.astype(np.uint8), qf=qf)
        assert report.extra.get("strength") == strength and ("skipped" in report.extra) is (strength == 0.0)
        expected = decoded + (full - decoded) * (1.0 if strength is None else strength)
        assert np.abs(out - expected).max() <= 1.0, qf
        assert bool(np.abs(out - decoded).max() == 0) is (strength == 0.0)
    blind = restore_image_file(engine, tmp_path / "q95.jpg", tmp_path / "blind.png", use_file_qf=False)
    assert "skipped" not in blind.extra and "strength" not in blind.extra


def test_strength_scales_the_jpeg_profile_and_is_the_strength_without_one(tmp_path):
    """--strength on images: S times the profile's strength at the file QF (capped at 1); near-clean files stay as
    decoded; without a profile (a PNG) S itself."""
    from vsjpegfix.weights.profile import QualityProfile

    engine = Engine(FBCNN(nc=(8, 8, 8, 8), nb=1).eval(), device="cpu")
    engine.quality_profile = QualityProfile(jpeg_qf=((50.0, 1.0), (80.0, 0.5), (90.0, 0.0)))
    img = data.astronaut()[:64, :96]
    Image.fromarray(img).save(tmp_path / "q80.jpg", quality=80)
    Image.fromarray(img).save(tmp_path / "q95.jpg", quality=95)
    Image.fromarray(img).save(tmp_path / "clean.png")
    for name, scale, applied in (("q80", 0.5, 0.25), ("q80", 2.0, 1.0), ("q95", 2.0, 0.0), ("clean", 0.5, 0.5), ("clean", 0.0, 0.0)):
        src = tmp_path / (f"{name}.png" if name == "clean" else f"{name}.jpg")
        out = tmp_path / f"{name}-{scale}.png"
        report = restore_image_file(engine, src, out, strength_scale=scale)
        assert report.extra["strength"] == applied, (name, scale)
        decoded = np.asarray(Image.open(src)).astype(float)
        got = np.asarray(Image.open(out)).astype(float)
        full, _ = restore_array(engine, decoded.astype(np.uint8), qf=80 if name == "q80" else None)
        assert np.abs(got - (decoded + (full - decoded) * applied)).max() <= 1.0, (name, scale)
        assert ("skipped" in report.extra) is (name == "q95")
