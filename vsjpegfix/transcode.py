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
complete (:mod:`vsjpegfix.safe_write`).
"""

from __future__ import annotations

import contextlib
import io
import queue
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable, Iterator

import av
import numpy as np

from .av_frames import (
    FrameFormatError,
    FrameLayout,
    colour_description,
    colour_tags,
    crop_planes,
    default_matrix,
    display_matrix,
    format_name,
    layout_of,
    make_frame,
    pad_to_subsampling,
    plain_format,
    planar_format,
    read_planes,
)
from .engine import Engine
from .qp import QP_CODECS, StreamQp, qp_to_qf
from .quality_profile import control_for_qps
from .safe_write import atomic_output, check_output
from .temporal_window import window_indices

DEFAULT_CRF = {"libx264": 16.0, "libx265": 18.0, "libsvtav1": 24.0, "libaom-av1": 24.0, "libvpx-vp9": 20.0}
QUEUE_FRAMES = 8
SCENE_CUT_THRESHOLD = 0.12  # mean absolute luma difference (0..1) between frames that marks a cut
ODD_SIZE_ENCODERS = {"ffv1", "rawvideo"}  # encoders known to take subsampled frames of any size
TEXT_SUBTITLE_CODECS = ("mov_text", "subrip", "ass", "webvtt")  # conversion targets, in order of preference
_META_SKIP = {"encoder", "duration", "major_brand", "minor_version", "compatible_brands", "number_of_frames", "number_of_bytes", "_statistics_tags", "_statistics_writing_app", "_statistics_writing_date_utc", "bps"}
IDENTITY_MATRIX = [1 << 16, 0, 0, 0, 1 << 16, 0, 0, 0, 1 << 30]  # FFmpeg's display matrix of "no rotation"
_DISCARD_ALL = 48  # AVDISCARD_ALL: streams the demuxer hides, e.g. the text track holding MP4 chapters


class TranscodeError(RuntimeError):
    """A file cannot be transcoded; the message is one line for the user."""


@dataclass
class TranscodeOptions:
    """Encoder and quality-control choices of a transcode (defaults: libx264, keep pixel format)."""

    codec: str = "libx264"
    crf: float | None = None
    preset: str | None = None
    pix_fmt: str | None = None
    # "auto": the model's calibrated QP profile on H.264 and HEVC streams (quality_profile), else the engine's
    # own control; "blind": always the engine's own control; "qp": follow the stream's quantiser (the
    # profile, or vsjpegfix.qp.qp_to_qf for FBCNN models without one). Resolved per input by _open_video
    # into "profile", "qp" or "auto" (the engine's own control).
    qf: str = "auto"
    matrix: str | None = None  # for untagged YUV; None = BT.709 for HD, BT.601 for SD (reported)
    scene_threshold: float = SCENE_CUT_THRESHOLD
    overwrite: bool = False
    progress: bool = True
    codec_options: dict[str, str] = field(default_factory=dict)


@dataclass
class TranscodeReport:
    """What happened to one file (the JSON report's entry)."""

    input: str
    output: str
    frames: int = 0
    seconds: float = 0.0
    codec: str = ""
    pix_fmt: str = ""
    input_pix_fmt: str = ""
    width: int = 0
    height: int = 0
    copied_streams: list[dict[str, Any]] = field(default_factory=list)
    converted_streams: list[dict[str, Any]] = field(default_factory=list)
    dropped_streams: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    corrupt_frames: list[int] = field(default_factory=list)
    retimed_frames: int = 0
    qf_mode: str = "auto"
    per_frame: list[dict[str, Any]] = field(default_factory=list)

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["fps"] = round(self.fps, 3)
        return d


@dataclass
class _Probe:
    width: int
    height: int
    pix_fmt: str
    rotation: float
    frames: int
    colour: dict[str, int] = field(default_factory=dict)
    matrix: list[int] | None = None
    first_frame: av.VideoFrame | None = None


def _warn(report: TranscodeReport, message: str, quiet: bool) -> None:
    report.warnings.append(message)
    if not quiet:
        print(f"vsjpegfix: warning: {report.input}: {message}", file=sys.stderr)


def _av_message(exc: BaseException) -> str:
    text = getattr(exc, "strerror", None) or str(exc)
    return str(text).splitlines()[0] if str(text) else type(exc).__name__


def open_input(src: Path) -> av.container.InputContainer:
    """Open a media file, turning every failure into a one-line :class:`TranscodeError`."""
    if not src.exists():
        raise TranscodeError(f"{src}: no such file")
    if src.is_dir():
        raise TranscodeError(f"{src} is a directory")
    if src.stat().st_size == 0:
        raise TranscodeError(f"{src}: empty file")
    try:
        return av.open(str(src))
    except (av.FFmpegError, OSError, ValueError, UnicodeDecodeError) as exc:
        raise TranscodeError(f"{src}: not a readable media file ({_av_message(exc)})") from None


def _video_stream(container: av.container.InputContainer, src: Path) -> av.video.stream.VideoStream:
    for s in container.streams.video:
        if not (s.disposition & av.stream.Disposition.attached_pic):
            return s
    raise TranscodeError(f"{src}: no video stream")


def probe(src: Path) -> _Probe:
    """Decode the first video frame: size, pixel format, colour and rotation, before any output is made."""
    with open_input(src) as container:
        stream = _video_stream(container, src)
        try:
            for frame in container.decode(stream):
                return _Probe(
                    frame.width,
                    frame.height,
                    frame.format.name,
                    float(frame.rotation or 0),
                    int(stream.frames or 0),
                    colour_tags(frame),
                    display_matrix(frame),
                )
        except av.FFmpegError as exc:
            raise TranscodeError(f"{src}: cannot decode the video ({_av_message(exc)})") from None
    raise TranscodeError(f"{src}: the video stream has no decodable frame")


# ---------------------------------------------------------------------------- pixel formats


def _layout_or_none(pix_fmt: str) -> FrameLayout | None:
    try:
        return layout_of(pix_fmt)
    except (FrameFormatError, ValueError):
        return None


def _fits(layout: FrameLayout, codec: str, width: int, height: int) -> bool:
    """Can ``codec`` write a ``width`` x ``height`` frame in ``layout``?"""
    if codec in ODD_SIZE_ENCODERS or layout.family != "yuv":
        return True
    sw, sh = layout.subsampling
    return not (width % (1 << sw) or height % (1 << sh))


def choose_output_format(codec: av.codec.Codec, wanted: str, width: int, height: int) -> tuple[str, str | None]:
    """Pixel format to encode ``wanted`` (a planar, non-``yuvj`` format) with, and why it differs.

    The wanted format when the encoder can write it at this size; otherwise the nearest it can:
    same colour family, then the same bit depth (else the nearest higher, else the nearest lower),
    then the same chroma subsampling (else finer, else coarser).
    """
    want = layout_of(wanted)
    supported = [f.name for f in (codec.video_formats or [])]
    if (not supported or wanted in supported) and _fits(want, codec.name, width, height):
        return wanted, None
    best, best_score = None, None
    for name in supported or [wanted, format_name(want.family, want.bits, (0, 0))]:
        if name.startswith("yuvj"):
            continue
        try:  # packed and semi-planar formats (bgr0, nv12, ...) count as their planar equivalent
            lay = _layout_or_none(planar_format(name))
        except FrameFormatError:
            continue
        if lay is None or not _fits(lay, codec.name, width, height) or name.startswith(("yuva", "gbra")) or name in ("bgra", "rgba", "argb", "abgr"):
            continue
        family = 0 if lay.family == want.family else (1 if lay.family == "yuv" else 2)
        if lay.bits == want.bits:
            bits = 0
        elif lay.bits > want.bits:
            bits = lay.bits - want.bits
        else:
            bits = 100 + want.bits - lay.bits
        if lay.subsampling == want.subsampling:
            sub = 0
        elif all(a <= b for a, b in zip(lay.subsampling, want.subsampling)):
            sub = 1 + sum(lay.subsampling)
        else:
            sub = 10 + sum(lay.subsampling)
        score = (family, bits, sub, name != lay.pix_fmt)  # the planar format itself first
        if best_score is None or score < best_score:
            best, best_score = name, score
    if best is None:
        raise TranscodeError(f"encoder {codec.name} cannot write {width}x{height} {wanted} video in any format")
    if planar_format(best) == wanted:
        why = None  # the same samples, packed differently (gbrp -> bgr0): nothing to warn about
    elif not _fits(want, codec.name, width, height):
        why = (
            f"{codec.name} cannot encode {wanted} at the odd size {width}x{height}; writing {best} "
            "(same size, chroma upsampled)"
        )
    else:
        why = f"encoder {codec.name} cannot write {wanted}; writing {best}"
    return best, why


def _luma_small(frame_planes: list[np.ndarray], layout: FrameLayout) -> np.ndarray:
    """A small float luma image for scene-cut detection."""
    y = frame_planes[0] if layout.family != "rgb" else np.mean(np.stack(frame_planes), axis=0)
    return y[::4, ::4].astype(np.float32) / float((1 << layout.bits) - 1)


# ---------------------------------------------------------------------------- pipeline


@dataclass
class _Decoded:
    index: int
    frame: av.VideoFrame
    planes: list[np.ndarray]
    qp: float | None
    luma: np.ndarray | None


@dataclass
class _Output:
    """How restored frames become encoder frames."""

    layout: FrameLayout  # layout of the restored planes (the input's, yuvj mapped to yuv)
    pix_fmt: str  # the encoder's pixel format
    colour: dict[str, int]  # tags of the encoded frames
    convert: bool  # True: swscale from ``layout`` to ``pix_fmt`` (other depth/subsampling/family)
    width: int
    height: int


@dataclass
class _Copy:
    """An input stream written to the output: copied packets, or text subtitles re-encoded."""

    out: Any
    kind: str = "copy"  # "copy" or "subtitle"
    decoder: Any = None


_END = object()


class _Pipeline:
    """The three concurrent stages of one transcode."""

    def __init__(self, src: Path, engine: Engine, options: TranscodeOptions, report: TranscodeReport, output: _Output, rate: Fraction,
                 qps: StreamQp | None = None) -> None:
        self.src, self.engine, self.options, self.report, self.output = src, engine, options, report, output
        self.rate = rate
        self.qps = qps  # the frames' quantisers, for --qf qp / profile
        self.stop = threading.Event()
        self.errors: list[BaseException] = []
        self.frames_q: queue.Queue = queue.Queue(maxsize=QUEUE_FRAMES)
        self.out_q: queue.Queue = queue.Queue(maxsize=QUEUE_FRAMES * 4)
        self.quiet = not options.progress
        self.matrix: str | None = options.matrix
        self.decoded = 0

    # ---------------------------------------------------------------- helpers
    def _put(self, q: queue.Queue, item: Any) -> bool:
        while not self.stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _get(self, q: queue.Queue) -> Any:
        while True:
            try:
                return q.get(timeout=0.1)
            except queue.Empty:
                if self.stop.is_set():
                    return _END

    def _fail(self, exc: BaseException) -> None:
        self.errors.append(exc)
        self.stop.set()

    def run(self, decode: Callable[[], None], encode: Callable[[], None]) -> None:
        """Stage 1 (``decode``, feeding :attr:`frames_q`) and stage 2 (:meth:`restore`) in threads while
        ``encode`` (stage 3) runs in this one; then the first error of any stage is raised."""
        threads = [
            threading.Thread(target=decode, daemon=True, name="vsjpegfix-decode"),
            threading.Thread(target=self.restore, daemon=True, name="vsjpegfix-restore"),
        ]
        for t in threads:
            t.start()
        try:
            encode()
        finally:
            self.stop.set()
            _join(threads)  # before the containers close: the decoder thread reads the input
        if self.errors:
            raise self.errors[0]

    # ---------------------------------------------------------------- stage 1: demux + decode
    def decode(self, container, video, copies: dict[int, _Copy]) -> None:
        index = 0
        need_luma = self.engine.frames > 1
        last_pts: int | None = None
        step = max(1, round(1 / (self.rate * video.time_base))) if video.time_base else 1
        missing = 0
        video_packets = 0
        declared = int(video.frames or 0)  # MP4/MOV: the sample count of the index
        try:
            packets = container.demux()
            while True:
                if self.stop.is_set():
                    return
                try:
                    packet = next(packets)
                except StopIteration:
                    break
                except av.FFmpegError as exc:
                    raise TranscodeError(f"{self.src}: read error after video frame {index}: {_av_message(exc)}") from None
                if packet.stream.index != video.index:
                    if packet.stream.index in copies and packet.size:
                        if not self._put(self.out_q, ("packet", packet)):
                            return
                    continue
                if packet.size:
                    video_packets += 1
                elif declared and video_packets < declared:
                    raise TranscodeError(
                        f"{self.src}: truncated file: its index lists {declared} video frames but the data ends after {video_packets}"
                    )
                if self.qps is not None:
                    self.qps.packet(packet)
                try:
                    frames = packet.decode()
                except av.FFmpegError as exc:
                    raise TranscodeError(f"{self.src}: decoding error at video frame {index}: {_av_message(exc)}") from None
                for frame in frames:
                    qp = self.qps.frame(frame) if self.qps is not None else None  # before any retiming
                    if (frame.width, frame.height) != (self.output.width, self.output.height):
                        raise TranscodeError(
                            f"{self.src}: the video changes size at frame {index} ({self.output.width}x{self.output.height} -> "
                            f"{frame.width}x{frame.height}); not supported"
                        )
                    if frame.pts is None:
                        missing += 1
                        frame.pts = 0 if last_pts is None else last_pts + step
                    elif last_pts is not None and frame.pts <= last_pts:
                        self.report.retimed_frames += 1
                        frame.pts = last_pts + 1
                    last_pts = frame.pts
                    if frame.is_corrupt:
                        self.report.corrupt_frames.append(index)
                    item = self._prepare(frame, index, need_luma, qp)
                    if not self._put(self.frames_q, item):
                        return
                    index += 1
            self.decoded = index
            if missing:
                _warn(self.report, f"{missing} frames had no timestamp; wrote them at a constant {float(self.rate):g} fps", self.quiet)
            if self.report.retimed_frames:
                _warn(self.report, f"{self.report.retimed_frames} frames had a timestamp not after the previous one; moved them one tick later", self.quiet)
            self.warn_missing_qp()
            if self.report.corrupt_frames:
                shown = ", ".join(map(str, self.report.corrupt_frames[:20])) + (", ..." if len(self.report.corrupt_frames) > 20 else "")
                _warn(self.report, f"decoding errors in {len(self.report.corrupt_frames)} frame(s) (numbered from 0): {shown}; the decoder concealed them and they were written", self.quiet)
            self._put(self.frames_q, _END)
        except BaseException as exc:  # noqa: BLE001 - forwarded to the main thread
            self._fail(exc)

    def warn_missing_qp(self) -> None:
        """Say in the report how many frames had no readable quantiser (restored without the QP's control)."""
        if self.qps is not None and self.qps.missing:
            _warn(self.report, f"{self.qps.missing} frame(s) had no readable quantiser; their groups were restored with the "
                               "model's own quality control", self.quiet)

    def _prepare(self, frame: av.VideoFrame, index: int, need_luma: bool, qp: float | None) -> _Decoded:
        pix = planar_format(frame.format.name)
        if pix != frame.format.name:
            frame = frame.reformat(format=pix)
        layout = layout_of(pix)
        planes = read_planes(frame, layout)
        luma = _luma_small(planes, layout) if need_luma else None
        return _Decoded(index, frame, pad_to_subsampling(planes, layout), qp, luma)

    # ---------------------------------------------------------------- stage 2: restore
    def restore(self) -> None:
        """Sliding window over decoded frames: each frame is decoded once, neighbours are reused."""
        try:
            radius = self.engine.frames // 2
            window: deque[_Decoded] = deque()
            cuts: dict[int, bool] = {}  # cuts[i]: a scene cut lies between frames i and i + 1
            pending: list[tuple[_Decoded, list[_Decoded]]] = []
            next_centre = 0
            ended = False
            while not ended:
                item = self._get(self.frames_q)
                if item is _END:
                    if self.stop.is_set():
                        return
                    ended = True
                else:
                    if window and radius:
                        prev = window[-1]
                        cuts[prev.index] = float(np.mean(np.abs(item.luma - prev.luma))) > self.options.scene_threshold
                    window.append(item)
                last = window[-1].index if window else -1
                # a centre is ready once its right neighbours have arrived (or the stream has ended)
                while next_centre <= last and (ended or next_centre + radius <= last):
                    by_index = {d.index: d for d in window}
                    idx = window_indices(next_centre, radius, last + 1, lambda i: cuts.get(i, False))
                    pending.append((by_index[next_centre], [by_index[i] for i in idx]))
                    next_centre += 1
                    if len(pending) >= self.engine.batch_size:
                        if not self._run(pending):
                            return
                        pending = []
                    while window and window[0].index < next_centre - radius:
                        cuts.pop(window.popleft().index, None)
            if pending and not self._run(pending):
                return
            self._put(self.out_q, _END)
        except BaseException as exc:  # noqa: BLE001
            self._fail(exc)

    def _run(self, pending: list[tuple[_Decoded, list[_Decoded]]]) -> bool:
        # frames of one call share a pixel format and colour description
        groups: list[list[tuple[_Decoded, list[_Decoded]]]] = []
        fmts = []
        for item in pending:
            layout = layout_of(item[0].frame.format.name)
            fmt = colour_description(item[0].frame, layout, matrix=self.matrix)
            if groups and fmts[-1] == (layout, fmt):
                groups[-1].append(item)
            else:
                groups.append([item])
                fmts.append((layout, fmt))
        for group, (layout, fmt) in zip(groups, fmts):
            planes = []
            for p in range(fmt.num_planes):
                if self.engine.frames > 1:
                    planes.append(np.stack([np.stack([d.planes[p] for d in stack]) for _, stack in group]))
                else:
                    planes.append(np.stack([centre.planes[p] for centre, _ in group]))
            qf, strength = self._quality_control([centre.qp for centre, _ in group])
            result = self.engine.restore(planes, fmt, qf=qf, strength=strength)
            for i, (centre, _) in enumerate(group):
                out = self._encoder_frame([p[i] for p in result.planes], layout, centre.frame)
                info: dict[str, Any] = {}
                if centre.qp is not None:
                    info["qp"] = round(centre.qp, 3)
                if result.predicted_qf is not None:
                    info["predicted_qf"] = round(result.predicted_qf[i], 3)
                if result.used_qf is not None:
                    info["qf"] = round(result.used_qf[i], 3)
                if strength is not None:
                    info["strength"] = round(strength[i], 3)
                if info:  # quality control per frame (FBCNN prediction/control, profile strength)
                    self.report.per_frame.append({"frame": centre.index, "pts": centre.frame.pts, **info})
                if not self._put(self.out_q, ("frame", out)):
                    return False
        return True

    def _quality_control(self, qps: list[float | None]) -> tuple[list[float] | None, list[float] | None]:
        """``(qf, strength)`` per frame for the engine from the frames' quantisers (None: the engine's own).

        ``profile``: the model's calibrated control and strength at each QP (a group with a blind
        point runs blind); ``qp``: :func:`vsjpegfix.qp.qp_to_qf` at full strength. Frames without a
        quantiser (none exported) leave the group to the engine's own control.
        """
        if self.options.qf not in ("qp", "profile") or any(q is None for q in qps):
            return None, None
        if self.options.qf == "qp":
            return [qp_to_qf(q) for q in qps], None
        return control_for_qps(self.engine.quality_profile, qps, self.engine.has_quality)

    def _encoder_frame(self, planes: list[np.ndarray], layout: FrameLayout, template: av.VideoFrame) -> av.VideoFrame:
        o = self.output
        planes = crop_planes(planes, layout, o.width, o.height)
        plain = layout_of(plain_format(layout.pix_fmt))
        if not o.convert:
            return make_frame(planes, plain, template, colour=o.colour)
        frame = make_frame(planes, plain, template, colour=colour_tags(template))
        src_range = 2 if layout.jpeg_range or int(template.color_range or 0) == 2 else 1
        out_family = layout_of(planar_format(o.pix_fmt)).family
        dst_range = o.colour.get("color_range") or (2 if out_family == "rgb" else 1)
        kwargs: dict[str, Any] = {"src_color_range": src_range, "dst_color_range": dst_range}
        if layout.family != out_family and "rgb" in (layout.family, out_family):
            spaces = {"bt709": "ITU709", "bt601": "ITU601", "bt2020": "BT2020"}
            if layout.family == "rgb":  # RGB written as BT.709 YUV (tagged so)
                kwargs["dst_colorspace"] = "ITU709"
            else:
                kwargs["src_colorspace"] = spaces[colour_description(template, layout, matrix=self.matrix).matrix]
        out = frame.reformat(format=o.pix_fmt, **kwargs)
        out.pts, out.time_base = template.pts, template.time_base
        for attr, value in o.colour.items():
            try:
                setattr(out, attr, value)
            except (AttributeError, ValueError, TypeError):
                pass
        return out


def _plan(src: Path, engine: Engine, options: TranscodeOptions, report: TranscodeReport, quiet: bool):
    """Check the options against the engine and plan the output: ``(encoder, input info, output format, matrix)``."""
    if options.qf not in ("auto", "blind", "qp"):
        raise TranscodeError(f"unknown quality mode {options.qf!r}; use 'auto', 'blind' or 'qp'")
    if options.qf == "qp" and not engine.has_quality and not _qp_profile(engine):
        raise TranscodeError("--qf qp needs a model with quality control (FBCNN) or a calibrated QP profile")
    try:
        codec = av.codec.Codec(options.codec, "w")
    except (av.FFmpegError, ValueError):
        raise TranscodeError(f"unknown encoder {options.codec!r}") from None
    if codec.type != "video":
        raise TranscodeError(f"{options.codec} is not a video encoder")
    info = probe(src)
    report.input_pix_fmt, report.width, report.height = info.pix_fmt, info.width, info.height
    try:
        in_layout = layout_of(planar_format(info.pix_fmt))
    except FrameFormatError as exc:
        raise TranscodeError(f"{src}: {exc}") from None
    out_fmt = _plan_output(codec, in_layout, info, options, report, quiet)
    matrix = _plan_matrix(in_layout, info, options, report, quiet)
    return codec, info, out_fmt, matrix


def _start_encoding(output, codec, dst: Path) -> None:
    """Write the output's header; a container that cannot hold the codec is a one-line error."""
    try:
        output.start_encoding()
    except (av.FFmpegError, ValueError) as exc:
        raise TranscodeError(f"{dst}: cannot write {codec.name} video to a {output.format.name} file ({_av_message(exc)})") from None


def _qp_profile(engine: Engine) -> bool:
    """Whether the engine's model has a calibrated QP profile that the transcoder may follow."""
    return engine.quality_profile is not None and engine.quality_profile.has_qp and engine.qf is None


def _open_video(container, src: Path, options: TranscodeOptions, report: TranscodeReport, quiet: bool, engine: Engine):
    """Set up the input's video stream for decoding: ``(stream, options, frame rate, quantiser reader)``.

    The returned options carry the quality mode resolved for this input: ``profile`` (the model's
    calibrated QP profile: ``auto`` or ``qp`` on H.264 or HEVC with such a model), ``qp`` (the
    QP-to-QF map, ``--qf qp`` with an FBCNN model without a profile) or ``auto`` (the engine's own
    control). For the first two the frames' quantisers are read (:class:`vsjpegfix.qp.StreamQp`:
    H.264's per-macroblock export, HEVC's slice headers); ``--qf qp`` on a codec that has none falls
    back to the engine's own control with a warning in the report.
    """
    video = _video_stream(container, src)
    video.codec_context.thread_type = "AUTO"
    mode = "auto"
    has_qp = video.codec_context.name in QP_CODECS
    if options.qf == "qp" and not has_qp:
        _warn(report, f"--qf qp: {video.codec_context.name} exports no quantiser; using blind prediction", quiet)
        report.qf_mode = "auto (no QP in this codec)"
    elif options.qf in ("auto", "qp") and has_qp and _qp_profile(engine):
        mode = report.qf_mode = "profile"
    elif options.qf == "qp" and has_qp:
        mode = "qp"
    qps = StreamQp(video) if mode != "auto" else None
    options = TranscodeOptions(**{**options.__dict__, "qf": mode})
    rate = video.average_rate or video.guessed_rate or Fraction(25)
    return video, options, Fraction(rate), qps


# ---------------------------------------------------------------------------- transcode


def transcode(src: Path | str, dst: Path | str, engine: Engine, options: TranscodeOptions | None = None, *, overall=None) -> TranscodeReport:
    """Restore the video of ``src`` into ``dst``, keeping timestamps, other streams and metadata.

    Raises :class:`TranscodeError` (or :class:`~vsjpegfix.safe_write.OutputError`) with a one-line
    message for anything wrong with the input, the options or the output; ``dst`` is then left as
    it was (no partial file).
    """
    from tqdm import tqdm

    src, dst = Path(src), Path(dst)
    options = options or TranscodeOptions()
    report = TranscodeReport(str(src), str(dst), codec=options.codec, qf_mode=options.qf)
    quiet = not options.progress
    check_output(src, dst, overwrite=options.overwrite)
    codec, info, out_fmt, matrix = _plan(src, engine, options, report, quiet)
    started = time.perf_counter()
    with open_input(src) as container, atomic_output(dst, overwrite=options.overwrite) as tmp:
        video, options, rate, qps = _open_video(container, src, options, report, quiet, engine)
        pipe = _Pipeline(src, engine, options, report, out_fmt, rate, qps)
        pipe.matrix = matrix
        with _writing(tmp, dst, "the output", "the file") as output:
            out_video = _add_video(output, video, codec, options, out_fmt, info, rate, dst)
            copies = _add_copies(container, output, video, report, quiet)
            _copy_metadata(container, output, video, out_video)
            _start_encoding(output, codec, dst)
            total = info.frames or None
            pbar = tqdm(total=total, unit="frame", desc=src.name[:30], disable=quiet, file=sys.stderr, leave=False)
            try:
                pipe.run(lambda: pipe.decode(container, video, copies),
                         lambda: _mux_loop(pipe, output, out_video, copies, report, pbar, overall, dst))
            finally:
                pbar.close()
        if info.frames and report.frames < info.frames:
            _warn(report, f"the input declares {info.frames} frames and {report.frames} were decoded (an edit list trims the rest, or they are damaged)", quiet)
    report.seconds = time.perf_counter() - started
    return report


@contextlib.contextmanager
def _writing(path: Path, dst: Path, created: str, finished: str) -> Iterator[av.container.OutputContainer]:
    """Open ``path`` as an output container for the block, then close it (which writes the trailer).

    Failing to open or to finish becomes a one-line :class:`TranscodeError` naming ``dst``
    (``"cannot create <created>"``, ``"finishing <finished> failed"``); after an error inside the
    block the container is closed quietly and that first error propagates.
    """
    try:
        output = av.open(str(path), "w")
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise TranscodeError(f"{dst}: cannot create {created} ({_av_message(exc)})") from None
    try:
        yield output
    except BaseException:
        with contextlib.suppress(Exception):  # the first error is the one to report
            output.close()
        raise
    try:
        output.close()
    except (av.FFmpegError, OSError) as exc:
        raise TranscodeError(f"{dst}: finishing {finished} failed: {_av_message(exc)}") from None


def _join(threads: list[threading.Thread]) -> None:
    """Wait for the stage threads (each stops within one model call); a second Ctrl-C waits too, then counts."""
    interrupted = False
    for t in threads:
        while t.is_alive():
            try:
                t.join()
            except KeyboardInterrupt:
                interrupted = True
    if interrupted:
        raise KeyboardInterrupt


def _plan_output(codec, in_layout: FrameLayout, info: _Probe, options: TranscodeOptions, report: TranscodeReport, quiet: bool) -> _Output:
    plain = plain_format(in_layout.pix_fmt)
    wanted = plain
    if options.pix_fmt:
        try:
            wanted = plain_format(planar_format(options.pix_fmt))
            layout_of(wanted)
        except FrameFormatError as exc:
            raise TranscodeError(f"--pix-fmt: {exc}") from None
        if wanted != options.pix_fmt:
            _warn(report, f"--pix-fmt {options.pix_fmt}: writing the planar equivalent {wanted}", quiet)
    pix, why = choose_output_format(codec, wanted, info.width, info.height)
    if why:
        _warn(report, why, quiet)
    out_layout = layout_of(planar_format(pix))
    colour = dict(info.colour)
    if in_layout.jpeg_range:
        colour["color_range"] = 2
    if out_layout.family != in_layout.family:
        if out_layout.family == "yuv" and in_layout.family == "rgb":
            colour.update(colorspace=1, color_range=1)  # RGB written as BT.709 limited-range YUV
        elif out_layout.family == "rgb":
            colour.update(colorspace=0, color_range=2)
        elif out_layout.family == "gray":
            colour.pop("colorspace", None)
    convert = pix != plain  # another depth, subsampling, colour family or packing: converted with swscale
    report.pix_fmt = pix
    return _Output(in_layout, pix, colour, convert, info.width, info.height)


def _plan_matrix(in_layout: FrameLayout, info: _Probe, options: TranscodeOptions, report: TranscodeReport, quiet: bool) -> str | None:
    """The matrix the engine uses for YUV frames without a supported matrix tag (None: the tag's)."""
    if in_layout.family != "yuv":
        return options.matrix
    code = int(info.colour.get("colorspace", 2) or 2)
    if code in (1, 5, 6, 9):
        return options.matrix
    if code not in (0, 2) and options.matrix is None:
        raise TranscodeError(f"{report.input}: colour matrix {code} of the video is not supported; pass --matrix 709, 601 or 2020")
    matrix = options.matrix or default_matrix(info.width, info.height)
    if options.matrix is None:
        _warn(report, f"video has no colour matrix tag; assuming {matrix} (set --matrix to override)", quiet)
    return matrix


def _mux_loop(pipe: _Pipeline, output, out_video, copies: dict[int, _Copy], report: TranscodeReport, pbar, overall, dst: Path) -> None:
    try:
        while True:
            item = pipe._get(pipe.out_q)
            if item is _END:
                break
            kind, payload = item
            if kind == "packet":
                _mux_copy(output, payload, copies[payload.stream.index], report, pipe.quiet)
                continue
            for packet in out_video.encode(payload):
                output.mux(packet)
            report.frames += 1
            pbar.update(1)
            if overall is not None:
                overall.update(1)
        if pipe.errors:
            return
        for packet in out_video.encode():
            output.mux(packet)
    except (av.FFmpegError, OSError) as exc:
        raise TranscodeError(f"{dst}: writing failed after {report.frames} frames: {_av_message(exc)}") from None


def _mux_copy(output, packet, copy: _Copy, report: TranscodeReport, quiet: bool) -> None:
    if copy.kind == "copy":
        packet.stream = copy.out
        output.mux(packet)
        return
    # text subtitle: decode and re-encode, keeping the packet's timing
    try:
        subs = copy.decoder.decode2(packet)
    except av.FFmpegError as exc:
        _warn(report, f"subtitle packet at {packet.pts} could not be decoded ({_av_message(exc)}); skipped", quiet)
        return
    if subs is None or len(subs) == 0:
        return  # an empty cue (e.g. mov_text's gaps): the target format needs none
    encoded = copy.out.codec_context.encode_subtitle(subs)
    encoded.stream = copy.out
    encoded.time_base = packet.time_base
    encoded.pts = packet.pts
    encoded.dts = packet.pts
    encoded.duration = packet.duration
    output.mux(encoded)


def _add_video(output, video, codec, options: TranscodeOptions, out_fmt: _Output, info: _Probe, rate, dst: Path):
    try:
        out = output.add_stream(codec.name, rate=rate)
    except (av.FFmpegError, ValueError) as exc:
        raise TranscodeError(f"{dst}: the {output.format.name} container cannot hold {codec.name} video ({_av_message(exc)})") from None
    out.width, out.height = out_fmt.width, out_fmt.height
    out.pix_fmt = out_fmt.pix_fmt
    out.time_base = video.time_base
    ctx = out.codec_context
    ctx.time_base = video.time_base
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
    ctx.options = opts
    if info.matrix is not None and info.matrix != IDENTITY_MATRIX:
        out.set_display_matrix(info.matrix)  # rotation and flips, exactly as the input has them
    elif info.rotation:
        out.set_display_rotation(info.rotation)
    return out


def _accepts(format_name: str, template) -> bool:
    """Does a ``format_name`` file take a stream copied from ``template``? (tried in memory)"""
    try:
        with av.open(io.BytesIO(), "w", format=format_name) as trial:
            trial.add_stream_from_template(template)
            trial.start_encoding()
        return True
    except Exception:  # noqa: BLE001 - any refusal means no
        return False


def _add_copies(container, output, video, report: TranscodeReport, quiet: bool) -> dict[int, _Copy]:
    copies: dict[int, _Copy] = {}
    supported = output.supported_codecs
    fmt = output.format.name
    for s in container.streams:
        if s.index == video.index:
            continue
        ctx = s.codec_context
        name = _codec_name(ctx)
        entry = {"index": s.index, "type": s.type, "codec": name}

        def drop(reason: str) -> None:
            report.dropped_streams.append({**entry, "reason": reason})
            _warn(report, f"stream {s.index} ({s.type}, {name}) dropped: {reason}", quiet)

        if s.type == "data" and int(getattr(s, "discard", 0) or 0) == _DISCARD_ALL and container.chapters():
            continue  # the text track that holds MP4/MOV chapters: the chapters are copied as chapters
        if s.type == "attachment":
            if fmt != "matroska":
                drop(f"the {fmt} container cannot hold attachments")
                continue
            try:
                out = output.add_attachment(s.metadata.get("filename") or f"attachment{s.index}", s.mimetype or "application/octet-stream", s.data)
            except (av.FFmpegError, ValueError, TypeError) as exc:
                drop(_av_message(exc))
                continue
            out.metadata.update({k: v for k, v in s.metadata.items() if k.lower() != "filename"})
            report.copied_streams.append(entry)
            continue
        if s.type not in ("audio", "subtitle", "data", "video"):
            drop(f"{s.type} streams are not copied")
            continue
        if (name in supported if name is not None else False) or _accepts(fmt, s):
            try:
                out = output.add_stream_from_template(s)
            except (av.FFmpegError, ValueError, TypeError) as exc:
                drop(_av_message(exc))
                continue
            _copy_stream_info(s, out)
            copies[s.index] = _Copy(out)
            report.copied_streams.append(entry)
            if s.type == "video" and not (s.disposition & av.stream.Disposition.attached_pic):
                _warn(report, f"stream {s.index} (video) copied as it is: only the first video stream is restored", quiet)
            continue
        if s.type == "subtitle" and name is not None and ctx.codec.text_sub:
            target = next((c for c in (output.default_subtitle_codec, *TEXT_SUBTITLE_CODECS) if c in TEXT_SUBTITLE_CODECS and c in supported), None)
            if target is not None:
                try:
                    ctx.open(strict=False)
                    out = output.add_stream(target)
                    header = ctx.subtitle_header
                    if header:
                        out.codec_context.subtitle_header = header
                    out.codec_context.time_base = s.time_base
                    out.time_base = s.time_base
                except (av.FFmpegError, ValueError, TypeError) as exc:
                    drop(f"cannot convert it to {target} ({_av_message(exc)})")
                    continue
                _copy_stream_info(s, out)
                copies[s.index] = _Copy(out, "subtitle", ctx)
                report.converted_streams.append({**entry, "to": target})
                _warn(report, f"stream {s.index} (subtitle, {name}) converted to {target}: the {fmt} container cannot hold {name}", quiet)
                continue
        drop(f"the {fmt} container cannot hold {name or 'it'}")
    return copies


def _codec_name(ctx) -> str | None:
    """The codec's canonical name (``mp3``, not the decoder's ``mp3float``), or None."""
    if ctx is None:
        return None
    try:
        return ctx.codec.canonical_name or ctx.name
    except (AttributeError, ValueError):
        return ctx.name


def _copy_stream_info(src_stream, out) -> None:
    out.metadata.update({k: v for k, v in src_stream.metadata.items() if k.lower() not in _META_SKIP})
    try:
        out.disposition = src_stream.disposition
    except (AttributeError, ValueError, TypeError):
        pass


def _copy_metadata(container, output, video, out_video) -> None:
    output.metadata.update({k: v for k, v in container.metadata.items() if k.lower() not in _META_SKIP})
    out_video.metadata.update({k: v for k, v in video.metadata.items() if k.lower() not in _META_SKIP and k.lower() != "handler_name"})
    try:
        out_video.disposition = video.disposition
    except (AttributeError, ValueError, TypeError):
        pass
    try:
        chapters = container.chapters()
        if chapters:
            output.set_chapters(chapters)
    except (AttributeError, av.FFmpegError, ValueError):
        pass
