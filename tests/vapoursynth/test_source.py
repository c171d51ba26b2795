"""The file's quantisers in VapourSynth: attached to a bestsource clip as frame properties, and the filters
restoring along the model's profile exactly as the transcoder does (``vspipe`` against the CLI)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import av
import numpy as np
import pytest
from media import frame_planes, make_video

vs = pytest.importorskip("vapoursynth")

from vsjpegfix.frames.fields import restore_by_fields  # noqa: E402
from vsjpegfix.frames.vs_frames import plane_format  # noqa: E402
from vsjpegfix.vapoursynth import plugin as vp  # noqa: E402
from vsjpegfix.vapoursynth.presets import auto_kind  # noqa: E402
from vsjpegfix.video.quantiser_scan import scan_quantisers  # noqa: E402

core = vs.core
REPO = Path(__file__).resolve().parents[2]
BT709 = {"colorspace": 1, "color_primaries": 1, "color_trc": 1}


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    if not hasattr(core, "bs"):
        pytest.skip("BestSource is not installed")
    return tmp_path_factory.mktemp("bs-index")


def source(path: Path, cache: Path) -> vs.VideoNode:
    return core.bs.VideoSource(str(path), cachepath=str(cache), cachemode=2)


CLIPS = {
    "h264": ("in.mp4", dict(options={"x264-params": "crf=30:bframes=2"})),
    "hevc": ("in.mkv", dict(codec="libx265", options={"x265-params": "log-level=error:crf=30:bframes=2"})),
    "mpeg2video": ("in.vob", dict(codec="mpeg2video", fmt="vob", qscale=8, options={"bf": "2", "g": "6"})),
    "mpeg4": ("in.avi", dict(codec="mpeg4", qscale=6, options={"bf": "2"})),
    "mjpeg": ("in.avi", dict(codec="mjpeg", pix_fmt="yuvj420p", qscale=9)),
    "vp9": ("in.webm", dict(codec="libvpx-vp9", options={"crf": "40", "b": "0", "deadline": "realtime", "cpu-used": "8"})),
    "msmpeg4": ("divx3.avi", dict(codec="msmpeg4", qscale=7)),  # the H.263 family: a decode pass, as H.264
    "flv": ("in.flv", dict(codec="flv", qscale=11)),
}


@pytest.mark.parametrize("codec", list(CLIPS))
def test_attach_quantisers_sets_each_frames_props_in_presentation_order(tmp_path, cache, codec):
    name, kwargs = CLIPS[codec]
    path = make_video(tmp_path / name, frames=8, size=(64, 48), **kwargs)
    scan = scan_quantisers(path)
    assert scan.codec == codec and len(scan.quantisers) == 8 and scan.missing == 0
    clip = vp.attach_quantisers(source(path, cache), path)
    types = []
    for n in range(8):
        props = clip.get_frame(n).props
        q = scan.quantisers[n]
        assert props["vsjpegfix_qp"] == pytest.approx(q.qp) and props["vsjpegfix_qp_value"] == pytest.approx(q.value)
        assert props["vsjpegfix_codec"] == codec
        types.append(props.get("vsjpegfix_picture_type"))
    if codec in ("h264", "mpeg2video", "mpeg4"):  # B-frames: presentation order differs from decode order
        assert "B" in types and types[0] == "I"
    # the same order as the decoder's own (H.264: the decoder's export, frame by frame)
    with av.open(str(path)) as c:
        assert [int(f.key_frame) for f in c.decode(video=0)][:1] == [1]


def test_user_props_win_and_frame_counts_must_match(tmp_path, cache):
    path = make_video(tmp_path / "in.mp4", frames=6, size=(64, 48), options={"x264-params": "qp=30"})
    clip = source(path, cache).std.SetFrameProps(vsjpegfix_qp=12.5)
    attached = vp.attach_quantisers(clip, path)
    assert attached.get_frame(2).props["vsjpegfix_qp"] == 12.5 and attached.get_frame(2).props["vsjpegfix_codec"] == "h264"
    with pytest.raises(vs.Error, match="has 6 frames but the clip has 4"):
        vp.attach_quantisers(source(path, cache)[:4], path)
    with pytest.raises(vs.Error, match="no such file"):
        vp.deblock(source(path, cache), source=tmp_path / "missing.mp4")


def test_codec_without_quantisers_and_jpeg_stills(tmp_path, cache):
    vp8 = make_video(tmp_path / "in.webm", frames=3, size=(64, 48), codec="libvpx")
    clip = source(vp8, cache)
    assert "vsjpegfix_qp" not in vp.attach_quantisers(clip, vp8).get_frame(0).props
    assert auto_kind(clip) == "video"
    from PIL import Image

    jpeg = tmp_path / "still.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(jpeg, quality=40)
    still = vp.attach_quantisers(core.std.BlankClip(format=vs.RGB24, width=64, height=48, length=1), jpeg)
    assert still.get_frame(0).props["vsjpegfix_qf"] == pytest.approx(40)
    assert auto_kind(still) == "image"


def test_profile_follows_the_props(tmp_path, cache):
    path = make_video(tmp_path / "in.vob", frames=4, size=(64, 48), codec="mpeg2video", fmt="vob", qscale=12, colour=BT709)
    clip = source(path, cache)
    out = vp.deblock(clip, source=path, device="cpu")  # auto: the video-qp default with its profile
    assert auto_kind(vp.attach_quantisers(clip, path)) == "video-qp"
    blind = vp.deblock(clip, model="arcnn", device="cpu")
    f = out.get_frame(1)
    assert 0 < f.props["vsjpegfix_strength"] <= 1 and "vsjpegfix_strength" not in blind.get_frame(1).props
    half = vp.deblock(clip, source=path, device="cpu", strength=0.5).get_frame(1)
    assert half.props["vsjpegfix_strength"] == pytest.approx(0.5 * f.props["vsjpegfix_strength"])


def test_field_based_frames_are_restored_by_fields(tmp_path):
    from vsjpegfix.engine.core import Engine

    rng = np.random.default_rng(1)
    clip = core.std.BlankClip(format=vs.YUV420P8, width=64, height=48, length=2).std.SetFrameProps(_Matrix=1)
    planes = [rng.integers(16, 235, (48, 64), dtype=np.uint8)] + [rng.integers(16, 240, (24, 32), dtype=np.uint8)] * 2

    def fill(n, f):
        out = f.copy()
        for p in range(3):
            np.asarray(out[p])[:] = planes[p]
        return out

    clip = clip.std.ModifyFrame(clip, fill)
    tff = clip.std.SetFrameProps(_FieldBased=2)
    engine = Engine("arcnn", device="cpu", precision="fp32")
    got = vp.deblock(tff, model="arcnn", device="cpu").get_frame(0)
    frame = tff.get_frame(0)
    want = restore_by_fields(engine, [p[None] for p in planes], plane_format(frame.format, frame.props)).planes
    for p in range(3):
        assert np.abs(np.asarray(got[p]).astype(int) - want[p][0]).max() <= 1
    woven = vp.deblock(clip, model="arcnn", device="cpu").get_frame(0)
    assert not np.array_equal(np.asarray(woven[0]), np.asarray(got[0]))


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "VSJPEGFIX_WEIGHTS_DIR"}  # the shipped weights
    env["PYTHONPATH"] = str(REPO)
    env["XDG_CONFIG_HOME"] = str(tmp_path / "xdg")
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


@pytest.mark.parametrize("codec", ["libx264", "libx265"])
def test_vspipe_with_source_equals_the_command_line(tmp_path, cache, codec):
    opts = {"x264-params": "crf=40:bframes=2"} if codec == "libx264" else {"x265-params": "log-level=error:crf=40:bframes=2"}
    src = make_video(tmp_path / "in.mkv", frames=6, size=(96, 64), codec=codec, options=opts, colour=BT709)
    env = _env(tmp_path)
    report = tmp_path / "report.json"
    cli = subprocess.run([sys.executable, "-m", "vsjpegfix", str(src), str(tmp_path / "cli.mkv"), "--codec", "ffv1",
                          "--device", "cpu", "--quiet", "--json", str(report)], capture_output=True, text=True, env=env, timeout=300)
    assert cli.returncode == 0, cli.stderr[-2000:]
    entry = json.loads(report.read_text())["files"][0]
    assert entry["qf_mode"] == "profile" and all(0 < e["strength"] for e in entry["per_frame"])
    config = subprocess.run([sys.executable, "-m", "vapoursynth", "config"], capture_output=True, env=env, timeout=60)
    assert config.returncode == 0
    script = tmp_path / "restore.vpy"
    script.write_text(textwrap.dedent(f"""
        import vapoursynth as vs
        import vsjpegfix
        clip = vs.core.bs.VideoSource({str(src)!r}, cachepath={str(cache)!r}, cachemode=2)
        vsjpegfix.deblock(clip, source={str(src)!r}, device="cpu").set_output()
    """))
    exe = Path(sys.executable).parent / "vspipe"
    vspipe = [str(exe)] if exe.is_file() else [sys.executable, "-c", "import sys; from vapoursynth import vspipe; sys.exit(vspipe())"]
    proc = subprocess.run([*vspipe, "-c", "y4m", str(script), str(tmp_path / "vs.y4m")], capture_output=True, env=env, timeout=300)
    assert proc.returncode == 0 and proc.stdout == b"", proc.stderr.decode(errors="replace")[-2000:]
    with av.open(str(tmp_path / "cli.mkv")) as a, av.open(str(tmp_path / "vs.y4m")) as b:
        ours = [frame_planes(f) for f in a.decode(video=0)]
        theirs = [frame_planes(f) for f in b.decode(video=0)]
    with av.open(str(src)) as c:
        decoded = [frame_planes(f) for f in c.decode(video=0)]
    assert len(ours) == len(theirs) == 6
    for n, (x, y, d) in enumerate(zip(ours, theirs, decoded)):
        for p in range(3):
            assert np.abs(x[p].astype(int) - y[p]).max() <= 1, (n, p)
        assert not np.array_equal(x[0], d[0])  # restored, not passed through: the comparison can fail
