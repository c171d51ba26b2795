"""Restore one video file: decode (PyAV) -> engine -> encode, keeping everything else in the file.

Decoding, restoration and encoding run concurrently (a decoder thread, a restoration thread and
the muxing thread, joined by bounded queues), so memory stays flat however long the video is.

What is kept:

* **Frames and timestamps**: every decoded frame is restored and encoded once, with its
  presentation timestamp unchanged (integers in the input stream's time base, which is also the
  encoder's, so nothing is rounded or drifts; variable frame rates and non-zero start times are
  kept). Frames without a timestamp (raw ``.h264`` streams) get a constant-rate one; a
  timestamp that does not increase is moved one tick after its predecessor (encoders refuse
  them); both are reported. Limits of the containers themselves: Matroska stores milliseconds
  (finer timestamps are rounded, and frames less than 1 ms apart cannot be written); MPEG-TS
  cannot store negative decode timestamps, so when the encoder's B-frame delay would make the
  first ones negative (an input starting at 0) the muxer shifts every stream by that delay.
* **Other streams**: audio, subtitle, data and attachment streams are copied packet for packet
  without re-encoding when the output container accepts them. Text subtitles it does not
  accept (``mov_text`` into MKV, SubRip/ASS into MP4) are converted to a text format it does
  accept (decoded and re-encoded, timing unchanged); anything else is dropped with a warning.
  The report lists copied, converted and dropped streams.
* **Description**: colour range, matrix, primaries, transfer and chroma siting; the sample aspect
  ratio; the display matrix (rotation and flips); container and stream metadata; chapters.
* **Pixel format**: the input's (10-bit stays 10-bit) when the encoder can write it; otherwise the
  nearest one it can (same bit depth and chroma subsampling first), with a warning. Encoders
  other than FFV1 cannot write 4:2:0/4:2:2 video of odd width or height: such video is written
  as 4:4:4 of the same bit depth and the same size (never cropped), with a warning.

Decoding errors that the decoder conceals are reported as warnings naming the frames (the frames
are still written, as FFmpeg would); errors that stop decoding fail the file with the frame
number. The output is written to a temporary file beside the destination and renamed only when
complete (:mod:`vsjpegfix.frames.safe_write`).

With ``start``/``duration`` (``--start``/``--duration``) only that part is restored, every
timestamp shifted to start at 0 (:mod:`vsjpegfix.video.window`).
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import time
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import av

from vsjpegfix.engine.core import Engine
from vsjpegfix.frames.fields import AV_FIELD_ORDER, FieldFlagger
from vsjpegfix.frames.safe_write import atomic_output, check_output
from vsjpegfix.quantisers.stream import QP_CODECS, StreamQp
from vsjpegfix.video.output_quality import output_options
from vsjpegfix.video.pipeline import END, Pipeline
from vsjpegfix.video.probe import (
    OutputFormat,
    Probe,
    open_input,
    plan,
    qp_profile_usable,
    video_stream,
)
from vsjpegfix.video.reorder import DECODE_ORDER_FORMATS
from vsjpegfix.video.report import (
    DEFAULT_CRF,
    TranscodeError,
    TranscodeOptions,
    TranscodeReport,
    av_message,
    warn,
)
from vsjpegfix.video.streams import CopiedStream, add_copies, copy_metadata, mux_copy
from vsjpegfix.video.window import Window

#: The frame rates MPEG-1/2 video can state (frame_rate_code; MPEG-2 also n/d multiples of them).
MPEG_RATES = (Fraction(24000, 1001), Fraction(24), Fraction(25), Fraction(30000, 1001), Fraction(30), Fraction(50),
              Fraction(60000, 1001), Fraction(60))
IDENTITY_MATRIX = [1 << 16, 0, 0, 0, 1 << 16, 0, 0, 0, 1 << 30]  # FFmpeg's display matrix of "no rotation"
#: SVT-AV1's log level for libsvtav1 (its ``SVT_LOG`` variable: 1 = errors only, as libx265 gets
#: ``log-level=error``); a value already in the environment is kept.
SVT_LOG_ERRORS = "1"


def open_video(container, src: Path, options: TranscodeOptions, report: TranscodeReport, quiet: bool, engine: Engine):
    """Set up the input's video stream for decoding: ``(stream, options, frame rate, quantiser reader)``.

    The returned options carry the quality mode resolved for this input: ``profile`` (the model's
    calibrated QP profile: ``auto`` or ``qp`` on a codec of :data:`~vsjpegfix.quantisers.stream.QP_CODECS` with
    such a model), ``qp`` (the
    QP-to-QF map, ``--qf qp`` with an FBCNN model without a profile) or ``auto`` (the engine's own
    control). For the first two the frames' quantisers are read (:class:`vsjpegfix.quantisers.stream.StreamQp`:
    the per-macroblock export of H.264 and the H.263 family; HEVC, MPEG-1/2, MPEG-4 Part 2, MJPEG and VP9 from their packets, each
    through its codec's calibrated table); ``--qf qp`` on a codec that has none falls
    back to the engine's own control with a warning in the report.
    """
    video = video_stream(container, src)
    video.codec_context.thread_type = "AUTO"
    mode = "auto"
    has_qp = video.codec_context.name in QP_CODECS
    if options.qf == "qp" and not has_qp:
        warn(report, f"--qf qp: {video.codec_context.name} exports no quantiser; using blind prediction", quiet)
        report.qf_mode = "auto (no QP in this codec)"
    elif options.qf in ("auto", "qp") and has_qp and qp_profile_usable(engine):
        mode = report.qf_mode = "profile"
    elif options.qf == "qp" and has_qp:
        mode = "qp"
    qps = StreamQp(video) if mode != "auto" else None
    options = TranscodeOptions(**{**options.__dict__, "qf": mode})
    rate = video.average_rate or video.guessed_rate or Fraction(25)
    return video, options, Fraction(rate), qps


def transcode(src: Path | str, dst: Path | str, engine: Engine, options: TranscodeOptions | None = None, *, overall=None) -> TranscodeReport:
    """Restore the video of ``src`` into ``dst``, keeping timestamps, other streams and metadata.

    Raises :class:`TranscodeError` (or :class:`~vsjpegfix.frames.safe_write.OutputError`) with a one-line
    message for anything wrong with the input, the options or the output; ``dst`` is then left as
    it was (no partial file).
    """
    from tqdm import tqdm

    src, dst = Path(src), Path(dst)
    options = options or TranscodeOptions()
    report = TranscodeReport(str(src), str(dst), codec=options.codec, qf_mode=options.qf,
                             strength_option="auto" if options.strength is None else options.strength)
    quiet = not options.progress
    check_output(src, dst, overwrite=options.overwrite)
    check_window(options)
    codec, info, out_fmt, matrix = plan(src, engine, options, report, quiet)
    if info.field_order is not None and interlaced_note(codec.name):
        warn(report, interlaced_note(codec.name), quiet)
    started = time.perf_counter()
    with open_input(src) as container, atomic_output(dst, overwrite=options.overwrite) as tmp:
        video, options, rate, qps = open_video(container, src, options, report, quiet, engine)
        options = output_options(src, video, codec.name, options, qps is not None, report)
        pipe = Pipeline(src, engine, options, report, out_fmt, rate, qps)
        pipe.matrix = matrix
        pipe.field_order = info.field_order
        if options.windowed:
            pipe.window = open_window(container, video, src, options)
        with writing(tmp, dst, "the output", "the file") as output:
            out_video = add_video(output, video, codec, options, out_fmt, info, rate, dst)
            copies = add_copies(container, output, video, report, quiet)
            copy_metadata(container, output, video, out_video)
            start_encoding(output, codec, dst)
            total = info.frames or None
            if options.windowed:
                total = round(options.duration * rate) if options.duration is not None else None
            pbar = tqdm(total=total, unit="frame", desc=src.name[:30], disable=quiet, file=sys.stderr, leave=False)
            try:
                flag = FieldFlagger(info.field_order) if info.field_order else None
                pipe.run(lambda: pipe.decode(container, video, copies),
                         lambda: mux_loop(pipe, output, out_video, copies, report, pbar, overall, dst, flag))
            finally:
                pbar.close()
        if pipe.window is not None:
            report.window = pipe.window.report.as_dict()
        elif info.frames and report.frames < info.frames:
            warn(report, f"the input declares {info.frames} frames and {report.frames} were decoded (an edit list trims the rest, or they are damaged)", quiet)
    report.seconds = time.perf_counter() - started
    return report


def check_window(options: TranscodeOptions) -> None:
    """``--start`` must not be negative and ``--duration`` must be positive (one-line errors)."""
    if not math.isfinite(options.start) or options.start < 0:
        raise TranscodeError(f"--start must be 0 or more seconds, got {options.start:g}")
    if options.duration is not None and (not math.isfinite(options.duration) or options.duration <= 0):
        raise TranscodeError(f"--duration must be more than 0 seconds, got {options.duration:g}")


def open_window(container, video, src: Path, options: TranscodeOptions) -> Window:
    """The :class:`~vsjpegfix.video.window.Window` of ``--start``/``--duration``; a start at or beyond the
    file's end (where the container states its duration) is an error before anything is written."""
    if container.duration and options.start * 1_000_000 >= container.duration:
        raise TranscodeError(f"{src}: --start {options.start:g} s is at or beyond the end of the file ({container.duration / 1e6:.3f} s)")
    return Window(container, video, options.start, options.duration)


@contextlib.contextmanager
def writing(path: Path, dst: Path, created: str, finished: str) -> Iterator[av.container.OutputContainer]:
    """Open ``path`` as an output container for the block, then close it (which writes the trailer).

    Failing to open or to finish becomes a one-line :class:`TranscodeError` naming ``dst``
    (``"cannot create <created>"``, ``"finishing <finished> failed"``); after an error inside the
    block the container is closed quietly and that first error propagates.
    """
    try:
        output = av.open(str(path), "w")
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise TranscodeError(f"{dst}: cannot create {created} ({av_message(exc)})") from None
    try:
        yield output
    except BaseException:
        with contextlib.suppress(Exception):  # the first error is the one to report
            output.close()
        raise
    try:
        output.close()
    except (av.FFmpegError, OSError) as exc:
        raise TranscodeError(f"{dst}: finishing {finished} failed: {av_message(exc)}") from None


def start_encoding(output, codec, dst: Path) -> None:
    """Write the output's header; a container that cannot hold the codec is a one-line error."""
    try:
        output.start_encoding()
    except (av.FFmpegError, ValueError) as exc:
        if codec.name in ("mpeg1video", "mpeg2video"):
            rate = output.streams.video[0].codec_context.framerate
            raise TranscodeError(f"{dst}: {codec.name} cannot code {float(rate or 0):g} frames per second (MPEG-1/2 "
                                 "video has fixed frame rates: 23.976, 24, 25, 29.97, 30, 50, 59.94, 60 and, for "
                                 "MPEG-2, fractions of them); use another --codec") from None
        raise TranscodeError(f"{dst}: cannot write {codec.name} video to a {output.format.name} file ({av_message(exc)})") from None


def mpeg_time_base(rate: Fraction) -> Fraction:
    """The encoder time base of MPEG-1/2 video at ``rate``: one frame, at the standard rate within 0.1 % of
    ``rate`` (a container's 29.97 is 30000/1001), else at ``rate`` itself (the encoder may refuse it).

    FFmpeg's MPEG-1/2 encoders take their frame rate from the time base alone, so it cannot be the
    input stream's (1/1000 in Matroska, 1/90000 in MPEG-TS); frames are rebased to it on encoding."""
    near = min(MPEG_RATES, key=lambda r: abs(float(r) - float(rate)))
    return 1 / (near if abs(float(near) - float(rate)) <= 0.001 * float(rate) else Fraction(rate))


def add_video(output, video, codec, options: TranscodeOptions, out_fmt: OutputFormat, info: Probe, rate, dst: Path):
    try:
        out = output.add_stream(codec.name, rate=rate)
    except (av.FFmpegError, ValueError) as exc:
        raise TranscodeError(f"{dst}: the {output.format.name} container cannot hold {codec.name} video ({av_message(exc)})") from None
    out.width, out.height = out_fmt.width, out_fmt.height
    out.pix_fmt = out_fmt.pix_fmt
    out.time_base = video.time_base
    ctx = out.codec_context
    ctx.time_base = video.time_base
    if codec.name in ("mpeg1video", "mpeg2video"):  # a constant frame rate, stated by the time base (see mpeg_time_base)
        ctx.time_base = mpeg_time_base(rate)
        ctx.framerate = 1 / ctx.time_base
    elif output.format.name == "avi":  # one chunk per frame: AVI's rate is its time base (else 600 "fps" of empty chunks)
        out.time_base = ctx.time_base = 1 / Fraction(rate)
    for attr, value in out_fmt.colour.items():
        if attr == "chroma_location":
            attr = "chroma_sample_location"
        try:
            setattr(ctx, attr, value)
        except (AttributeError, ValueError, TypeError):
            pass
    sar = video.sample_aspect_ratio or video.codec_context.sample_aspect_ratio
    if sar and sar != 1:
        ctx.sample_aspect_ratio = sar
    opts = dict(options.codec_options)
    crf = options.crf if options.crf is not None else DEFAULT_CRF.get(codec.name)
    if crf is not None and codec.name in DEFAULT_CRF:
        opts.setdefault("crf", f"{crf:g}")
        if codec.name == "libvpx-vp9":
            opts.setdefault("b", "0")  # constant quality
    if options.preset and codec.name in ("libx264", "libx265", "libsvtav1"):
        opts.setdefault("preset", str(options.preset))
    if codec.name == "libx265":
        opts.setdefault("x265-params", "log-level=error")
    elif codec.name == "libsvtav1":  # SVT-AV1 logs its configuration to stderr unless SVT_LOG says otherwise
        os.environ.setdefault("SVT_LOG", SVT_LOG_ERRORS)
    if output.format.name in DECODE_ORDER_FORMATS:
        opts.setdefault("bf", "0")  # no B-frames: the container could not state their order (video.reorder)
    if info.field_order is not None:
        interlace(ctx, codec.name, info.field_order, opts)
    ctx.options = opts
    if info.matrix is not None and info.matrix != IDENTITY_MATRIX:
        out.set_display_matrix(info.matrix)  # rotation and flips, exactly as the input has them
    elif info.rotation:
        out.set_display_rotation(info.rotation)
    return out


#: Encoders that code interlaced video, and the options that ask for it (their field order comes from
#: the frames' flags, :class:`~vsjpegfix.frames.fields.FieldFlagger`; libx264 is also told it: MBAFF).
INTERLACED_OPTIONS = {"mpeg2video": {"flags": "+ilme+ildct"}, "mpeg4": {"flags": "+ilme+ildct"},
                      "libx264": {"tff": "tff=1", "bff": "bff=1"}}


def interlace(ctx, encoder: str, order: str, opts: dict[str, str]) -> None:
    """Set up an encoder for interlaced frames of field ``order``: the stream's field order (which the
    muxers write: Matroska's FieldOrder, MP4's ``fiel``, ...) and interlaced coding where the encoder
    has it (:data:`INTERLACED_OPTIONS`; FFV1 keeps the frames' flags itself). Other encoders (libx265,
    libvpx-vp9, libsvtav1) code the frames progressive, the container's field order alone saying how
    to show them (see :func:`interlaced_note`)."""
    ctx.field_order = AV_FIELD_ORDER[order]
    if encoder == "libx264":
        extra = INTERLACED_OPTIONS["libx264"][order]
        opts["x264-params"] = f"{opts['x264-params']}:{extra}" if opts.get("x264-params") else extra
    elif encoder in INTERLACED_OPTIONS:
        flags = INTERLACED_OPTIONS[encoder]["flags"]
        opts["flags"] = f"{opts['flags']}{flags}" if opts.get("flags") else flags


def interlaced_note(encoder: str) -> str | None:
    """The report's warning for an encoder that cannot code interlaced video (None where it can)."""
    if encoder in INTERLACED_OPTIONS or encoder == "ffv1":
        return None
    return (f"{encoder} codes the interlaced frames as progressive pictures; the field order is kept in the "
            "container (use libx264, mpeg2video or ffv1 for interlaced coding)")


def mux_loop(pipe: Pipeline, output, out_video, copies: dict[int, CopiedStream], report: TranscodeReport, pbar, overall, dst: Path,
             flag: FieldFlagger | None = None) -> None:
    """Encode the restored frames (flagged interlaced by ``flag``, if given) and mux them with the copied packets."""
    grid = FrameGrid(out_video)
    try:
        while True:
            item = pipe.get(pipe.out_q)
            if item is END:
                break
            kind, payload = item
            if kind == "packet":
                mux_copy(output, payload, copies[payload.stream.index], report, pipe.quiet)
                continue
            for packet in out_video.encode(grid.frame(flag(payload) if flag is not None else payload)):
                output.mux(grid.packet(packet))
            report.frames += 1
            pbar.update(1)
            if overall is not None:
                overall.update(1)
        if pipe.errors:
            return
        for packet in out_video.encode():
            output.mux(grid.packet(packet))
    except (av.FFmpegError, OSError) as exc:
        raise TranscodeError(f"{dst}: writing failed after {report.frames} frames: {av_message(exc)}") from None


class FrameGrid:
    """Frame times kept exact through an encoder that counts time in frames (MPEG-1/2: its time base is
    one frame, see :func:`mpeg_time_base`). A time between two of its ticks was rounded to one (an
    MPEG-PS input starting at 0.54 s at 25 fps came out at 0.56 s, 20 ms off its copied audio): frames
    are encoded moved back by the first frame's offset from the tick before it, and their packets moved
    forward by the same offset, in the output stream's time base. Other encoders: unchanged."""

    def __init__(self, out_video) -> None:
        ctx = out_video.codec_context
        self.stream = out_video
        self.tick = Fraction(ctx.time_base) if ctx.name in ("mpeg1video", "mpeg2video") and ctx.time_base else None
        self.offset: Fraction | None = None  # seconds

    def frame(self, frame: av.VideoFrame) -> av.VideoFrame:
        """``frame`` with its time moved onto the encoder's ticks."""
        if self.tick is None or frame.pts is None or not frame.time_base:
            return frame
        t = frame.pts * Fraction(frame.time_base)
        if self.offset is None:
            self.offset = t - math.floor(t / self.tick) * self.tick
        if self.offset:
            frame.pts = round((t - self.offset) / Fraction(frame.time_base))
        return frame

    def packet(self, packet: av.Packet) -> av.Packet:
        """``packet`` moved back to its frame's time (in the output stream's time base)."""
        if not self.offset or not packet.time_base:
            return packet
        was, tb = Fraction(packet.time_base), Fraction(self.stream.time_base)
        pts, dts, duration = packet.pts, packet.dts, packet.duration
        packet.time_base = tb
        if pts is not None:
            packet.pts = round((pts * was + self.offset) / tb)
        if dts is not None:
            packet.dts = round((dts * was + self.offset) / tb)
        if duration:
            packet.duration = round(duration * was / tb)
        return packet
