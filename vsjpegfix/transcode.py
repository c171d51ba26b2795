"""Restore one video file: decode (PyAV) -> engine -> encode, keeping everything else in the file.

Decoding, restoration and encoding run concurrently (a decoder thread, a restoration thread and
the muxing thread, joined by bounded queues), so memory stays flat however long the video is.
Every frame keeps its presentation timestamp; audio, subtitle and data streams are copied without
re-encoding when the output container accepts them (else dropped with a warning in the report);
colour tags, sample aspect ratio, rotation, metadata and chapters are carried over. The output is
written to a temporary file beside the destination and renamed only when complete.
"""

from __future__ import annotations

import queue
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

from .av_frames import FrameFormatError, FrameLayout, colour_description, default_matrix, layout_of, make_frame, planar_format, read_planes
from .engine import Engine
from .qp import qp_to_qf
from .safe_write import atomic_output, check_output
from .temporal_window import window_indices

DEFAULT_CRF = {"libx264": 16.0, "libx265": 18.0, "libsvtav1": 24.0, "libaom-av1": 24.0, "libvpx-vp9": 20.0}
QUEUE_FRAMES = 8
SCENE_CUT_THRESHOLD = 0.12  # mean absolute luma difference (0..1) between frames that marks a cut


class TranscodeError(RuntimeError):
    """A file cannot be transcoded; the message is one line for the user."""


@dataclass
class TranscodeOptions:
    """Encoder and quality-control choices of a transcode (defaults: libx264, keep pixel format)."""

    codec: str = "libx264"
    crf: float | None = None
    preset: str | None = None
    pix_fmt: str | None = None
    qf: str = "auto"  # "auto" (engine's own control), or "qp" (follow the H.264 stream's quantiser)
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
    copied_streams: list[dict[str, Any]] = field(default_factory=list)
    dropped_streams: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
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


def _warn(report: TranscodeReport, message: str, quiet: bool) -> None:
    report.warnings.append(message)
    if not quiet:
        print(f"vsjpegfix: warning: {report.input}: {message}", file=sys.stderr)


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
    except av.FFmpegError as exc:
        raise TranscodeError(f"{src}: not a readable media file ({exc.strerror or exc})") from None


def _video_stream(container: av.container.InputContainer, src: Path) -> av.video.stream.VideoStream:
    for s in container.streams.video:
        if not (s.disposition & av.stream.Disposition.attached_pic):
            return s
    raise TranscodeError(f"{src}: no video stream")


def probe(src: Path) -> _Probe:
    """Decode the first video frame: size, pixel format and rotation, before any output is made."""
    with open_input(src) as container:
        stream = _video_stream(container, src)
        try:
            for frame in container.decode(stream):
                return _Probe(frame.width, frame.height, frame.format.name, float(frame.rotation or 0), stream.frames)
        except av.FFmpegError as exc:
            raise TranscodeError(f"{src}: cannot decode the video ({exc.strerror or exc})") from None
    raise TranscodeError(f"{src}: the video stream has no decodable frame")


def _choose_pix_fmt(codec: av.codec.Codec, wanted: str, report: TranscodeReport, quiet: bool) -> str:
    supported = [f.name for f in (codec.video_formats or [])]
    if not supported or wanted in supported:
        return wanted
    layout = layout_of(wanted)
    same_bits = [f for f in supported if _layout_or_none(f) and _layout_or_none(f).bits == layout.bits and _layout_or_none(f).family == layout.family]
    choice = same_bits[0] if same_bits else next((f for f in supported if _layout_or_none(f)), supported[0])
    _warn(report, f"encoder {codec.name} cannot write {wanted}; writing {choice}", quiet)
    return choice


def _layout_or_none(pix_fmt: str) -> FrameLayout | None:
    try:
        return layout_of(pix_fmt)
    except (FrameFormatError, ValueError):
        return None


def _luma_small(frame_planes: list[np.ndarray], layout: FrameLayout) -> np.ndarray:
    """A small float luma image for scene-cut detection."""
    y = frame_planes[0] if layout.family != "rgb" else np.mean(np.stack(frame_planes), axis=0)
    return y[::4, ::4].astype(np.float32) / float((1 << layout.bits) - 1)


@dataclass
class _Decoded:
    index: int
    frame: av.VideoFrame
    planes: list[np.ndarray]
    qp: float | None
    luma: np.ndarray | None


_END = object()


class _Pipeline:
    """The three concurrent stages of one transcode."""

    def __init__(self, src: Path, tmp: Path, engine: Engine, options: TranscodeOptions, report: TranscodeReport, pbar) -> None:
        self.src, self.tmp, self.engine, self.options, self.report, self.pbar = src, tmp, engine, options, report, pbar
        self.stop = threading.Event()
        self.errors: list[BaseException] = []
        self.frames_q: queue.Queue = queue.Queue(maxsize=QUEUE_FRAMES)
        self.out_q: queue.Queue = queue.Queue(maxsize=QUEUE_FRAMES * 4)
        self.quiet = not options.progress
        self.matrix: str | None = options.matrix

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

    # ---------------------------------------------------------------- stage 1: demux + decode
    def decode(self, container, video, copies: dict[int, Any]) -> None:
        index = 0
        need_luma = self.engine.frames > 1
        try:
            for packet in container.demux():
                if self.stop.is_set():
                    return
                if packet.stream.index != video.index:
                    if packet.stream.index in copies and packet.size:
                        if not self._put(self.out_q, ("packet", packet)):
                            return
                    continue
                try:
                    frames = packet.decode()
                except av.FFmpegError as exc:
                    raise TranscodeError(f"{self.src}: decoding error at frame {index}: {exc.strerror or exc}") from None
                for frame in frames:
                    item = self._prepare(frame, index, need_luma)
                    if not self._put(self.frames_q, item):
                        return
                    index += 1
            self._put(self.frames_q, _END)
        except BaseException as exc:  # noqa: BLE001 - forwarded to the main thread
            self._fail(exc)

    def _prepare(self, frame: av.VideoFrame, index: int, need_luma: bool) -> _Decoded:
        pix = planar_format(frame.format.name)
        if pix != frame.format.name:
            frame = frame.reformat(format=pix)
        layout = layout_of(pix)
        planes = read_planes(frame, layout)
        qp = None
        if self.options.qf == "qp":
            params = frame.side_data.get("VIDEO_ENC_PARAMS")
            if params is not None:  # the per-macroblock map holds absolute QPs (frame QP + deltas)
                qp = float(np.mean(params.qp_map())) if params.nb_blocks else float(params.qp)
        luma = _luma_small(planes, layout) if need_luma else None
        return _Decoded(index, frame, planes, qp, luma)

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
                        self._run(pending)
                        pending = []
                    while window and window[0].index < next_centre - radius:
                        cuts.pop(window.popleft().index, None)
            if pending:
                self._run(pending)
            self._put(self.out_q, _END)
        except BaseException as exc:  # noqa: BLE001
            self._fail(exc)

    def _run(self, pending: list[tuple[_Decoded, list[_Decoded]]]) -> None:
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
            qf = None
            if self.options.qf == "qp" and self.engine.has_quality:
                qps = [centre.qp for centre, _ in group]
                if all(q is not None for q in qps):
                    qf = [qp_to_qf(q) for q in qps]
            result = self.engine.restore(planes, fmt, qf=qf)
            for i, (centre, _) in enumerate(group):
                out = make_frame([p[i] for p in result.planes], layout, centre.frame)
                info = {"frame": centre.index, "pts": centre.frame.pts}
                if centre.qp is not None:
                    info["qp"] = round(centre.qp, 3)
                if result.predicted_qf is not None:
                    info["predicted_qf"] = round(result.predicted_qf[i], 3)
                if result.used_qf is not None:
                    info["qf"] = round(result.used_qf[i], 3)
                self.report.per_frame.append(info)
                if not self._put(self.out_q, ("frame", out)):
                    return


def transcode(src: Path | str, dst: Path | str, engine: Engine, options: TranscodeOptions | None = None, *, overall=None) -> TranscodeReport:
    """Restore the video of ``src`` into ``dst``, keeping timestamps, other streams and metadata."""
    from tqdm import tqdm

    src, dst = Path(src), Path(dst)
    options = options or TranscodeOptions()
    report = TranscodeReport(str(src), str(dst), codec=options.codec, qf_mode=options.qf)
    quiet = not options.progress
    check_output(src, dst, overwrite=options.overwrite)
    info = probe(src)
    if options.qf == "qp" and not engine.has_quality:
        raise TranscodeError("--qf qp needs a model with quality control (FBCNN)")
    try:
        codec = av.codec.Codec(options.codec, "w")
    except (av.FFmpegError, ValueError):
        raise TranscodeError(f"unknown encoder {options.codec!r}") from None
    if codec.type != "video":
        raise TranscodeError(f"{options.codec} is not a video encoder")
    started = time.perf_counter()
    with open_input(src) as container, atomic_output(dst) as tmp:
        video = _video_stream(container, src)
        video.codec_context.thread_type = "AUTO"
        if options.qf == "qp":
            if video.codec_context.name != "h264":
                _warn(report, f"--qf qp: {video.codec_context.name} exports no quantiser; using blind prediction", quiet)
                report.qf_mode = "auto (no QP in this codec)"
                options = TranscodeOptions(**{**options.__dict__, "qf": "auto"})
            else:
                video.codec_context.options = {"export_side_data": "venc_params"}
        pipe = _Pipeline(src, tmp, engine, options, report, None)
        try:
            output = av.open(str(tmp), "w")
        except (av.FFmpegError, ValueError) as exc:
            raise TranscodeError(f"{dst}: cannot create the output ({exc})") from None
        try:
            in_pix = planar_format(info.pix_fmt)
            layout_of(in_pix)
        except FrameFormatError as exc:
            output.close()
            raise TranscodeError(f"{src}: {exc}") from None
        with output:
            out_video = _add_video(output, video, codec, options, in_pix, info, report, quiet)
            copies = _add_copies(container, output, video, report, quiet)
            _copy_metadata(container, output, video, out_video)
            colour_tagged = int(video.codec_context.colorspace or 2) in (1, 5, 6, 9)
            if not colour_tagged and layout_of(in_pix).family == "yuv":
                pipe.matrix = options.matrix or default_matrix(info.width, info.height)
                if options.matrix is None:
                    _warn(report, f"video has no colour matrix tag; assuming {pipe.matrix} (set --matrix to override)", quiet)
            else:
                pipe.matrix = options.matrix
            total = info.frames or None
            pbar = tqdm(total=total, unit="frame", desc=src.name[:30], disable=quiet, file=sys.stderr, leave=False)
            threads = [
                threading.Thread(target=pipe.decode, args=(container, video, copies), daemon=True, name="vsjpegfix-decode"),
                threading.Thread(target=pipe.restore, daemon=True, name="vsjpegfix-restore"),
            ]
            for t in threads:
                t.start()
            try:
                _mux_loop(pipe, output, out_video, copies, report, pbar, overall)
            finally:
                pipe.stop.set()
                for t in threads:
                    t.join()
                pbar.close()
            if pipe.errors:
                raise pipe.errors[0]
    report.seconds = time.perf_counter() - started
    return report


def _mux_loop(pipe: _Pipeline, output, out_video, copies: dict[int, Any], report: TranscodeReport, pbar, overall) -> None:
    while True:
        item = pipe._get(pipe.out_q)
        if item is _END:
            break
        kind, payload = item
        if kind == "packet":
            payload.stream = copies[payload.stream.index]
            output.mux(payload)
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


def _add_video(output, video, codec, options: TranscodeOptions, in_pix: str, info: _Probe, report: TranscodeReport, quiet: bool):
    rate = video.average_rate or video.guessed_rate or Fraction(25)
    out = output.add_stream(codec.name, rate=rate)
    out.width, out.height = info.width, info.height
    pix = options.pix_fmt or in_pix
    if options.pix_fmt:
        try:
            layout_of(options.pix_fmt)
        except FrameFormatError as exc:
            raise TranscodeError(f"--pix-fmt: {exc}") from None
    out.pix_fmt = _choose_pix_fmt(codec, pix, report, quiet)
    report.pix_fmt = out.pix_fmt
    out.time_base = video.time_base
    ctx = out.codec_context
    ctx.time_base = video.time_base
    src_ctx = video.codec_context
    for attr in ("color_range", "colorspace", "color_primaries", "color_trc"):
        try:
            setattr(ctx, attr, getattr(src_ctx, attr))
        except (AttributeError, ValueError, TypeError):
            pass
    if src_ctx.sample_aspect_ratio:
        ctx.sample_aspect_ratio = src_ctx.sample_aspect_ratio
    opts = dict(options.codec_options)
    crf = options.crf if options.crf is not None else DEFAULT_CRF.get(codec.name)
    if crf is not None and codec.name in DEFAULT_CRF:
        opts.setdefault("crf", f"{crf:g}")
    if options.preset and codec.name in ("libx264", "libx265", "libsvtav1"):
        opts.setdefault("preset", str(options.preset))
    if codec.name == "libx265":
        opts.setdefault("x265-params", "log-level=error")
    ctx.options = opts
    if info.rotation:
        out.set_display_rotation(info.rotation)
    return out


def _add_copies(container, output, video, report: TranscodeReport, quiet: bool) -> dict[int, Any]:
    copies: dict[int, Any] = {}
    supported = output.supported_codecs
    for s in container.streams:
        if s.index == video.index:
            continue
        name = s.codec_context.name if s.codec_context is not None else None
        entry = {"index": s.index, "type": s.type, "codec": name}
        if s.type not in ("audio", "subtitle", "data", "video", "attachment"):
            report.dropped_streams.append({**entry, "reason": f"{s.type} streams are not copied"})
            _warn(report, f"stream {s.index} ({s.type}) dropped", quiet)
            continue
        if name is None or name not in supported:
            report.dropped_streams.append({**entry, "reason": f"{output.format.name} cannot hold {name}"})
            _warn(report, f"stream {s.index} ({s.type}, {name}) dropped: the {output.format.name} container cannot hold it", quiet)
            continue
        try:
            out = output.add_stream_from_template(s)
        except (av.FFmpegError, ValueError, TypeError) as exc:
            report.dropped_streams.append({**entry, "reason": str(exc)})
            _warn(report, f"stream {s.index} ({s.type}, {name}) dropped: {exc}", quiet)
            continue
        out.metadata.update(s.metadata)
        copies[s.index] = out
        report.copied_streams.append(entry)
    return copies


def _copy_metadata(container, output, video, out_video) -> None:
    skip = {"encoder", "duration", "major_brand", "minor_version", "compatible_brands"}
    output.metadata.update({k: v for k, v in container.metadata.items() if k.lower() not in skip})
    out_video.metadata.update({k: v for k, v in video.metadata.items() if k.lower() not in skip and k.lower() != "handler_name"})
    try:
        chapters = container.chapters()
        if chapters:
            output.set_chapters(chapters)
    except (AttributeError, av.FFmpegError, ValueError):
        pass
