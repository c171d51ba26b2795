"""The three concurrent stages of a transcode: decode, restore, encode, joined by bounded queues.

:class:`Pipeline` owns the queues and the restoration stage (sliding temporal windows with
scene-cut detection, colour description per frame, quality control from the frames' quantisers);
the decode stage is :meth:`Pipeline.decode` and the encode stage is the caller's.
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable

import av
import numpy as np

from vsjpegfix.engine.control import restore_arguments
from vsjpegfix.engine.core import Engine
from vsjpegfix.engine.temporal import window_indices
from vsjpegfix.frames.av_frames import (
    FrameLayout,
    colour_description,
    colour_tags,
    crop_planes,
    layout_of,
    make_frame,
    pad_to_subsampling,
    plain_format,
    planar_format,
    read_planes,
)
from vsjpegfix.frames.fields import restore_by_fields
from vsjpegfix.quantisers.stream import FrameQuantiser, StreamQp
from vsjpegfix.video.probe import (
    OutputFormat,
    read_packets,
)
from vsjpegfix.video.reorder import DecodeOrderTimes, times_by_chunk
from vsjpegfix.video.report import (
    TranscodeError,
    TranscodeOptions,
    TranscodeReport,
    av_message,
    warn,
)
from vsjpegfix.video.streams import CopiedStream
from vsjpegfix.video.window import Window

QUEUE_FRAMES = 8


def luma_small(frame_planes: list[np.ndarray], layout: FrameLayout) -> np.ndarray:
    """A small float luma image for scene-cut detection."""
    y = frame_planes[0] if layout.family != "rgb" else np.mean(np.stack(frame_planes), axis=0)
    return y[::4, ::4].astype(np.float32) / float((1 << layout.bits) - 1)


@dataclass
class Decoded:
    index: int
    frame: av.VideoFrame
    planes: list[np.ndarray]
    quantiser: FrameQuantiser | None
    luma: np.ndarray | None
    interlaced: bool = False  # restored field by field


END = object()


class Pipeline:
    """The three concurrent stages of one transcode."""

    def __init__(self, src: Path, engine: Engine, options: TranscodeOptions, report: TranscodeReport, output: OutputFormat, rate: Fraction,
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
        self.window: Window | None = None  # --start/--duration: the part of the video to restore
        self.field_order: str | None = None  # interlaced input: its frames flagged interlaced are restored by fields

    # ---------------------------------------------------------------- helpers
    def put(self, q: queue.Queue, item: Any) -> bool:
        while not self.stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def get(self, q: queue.Queue) -> Any:
        while True:
            try:
                return q.get(timeout=0.1)
            except queue.Empty:
                if self.stop.is_set():
                    return END

    def fail(self, exc: BaseException) -> None:
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
            join_stages(threads)  # before the containers close: the decoder thread reads the input
        if self.errors:
            raise self.errors[0]

    # ---------------------------------------------------------------- stage 1: demux + decode
    def decode(self, container, video, copies: dict[int, CopiedStream]) -> None:
        index = 0
        need_luma = self.engine.frames > 1
        last_pts: int | None = None
        step = max(1, round(1 / (self.rate * video.time_base))) if video.time_base else 1
        missing = 0
        video_packets = 0
        window = self.window
        index_counts = window is None and container.format.name.startswith("mov,mp4")  # AVI's counts dropped frames too
        declared = int(video.frames or 0) if index_counts else 0  # MP4/MOV: the sample count of the index
        audio = {i for i in copies if container.streams[i].type == "audio"}
        order = DecodeOrderTimes() if times_by_chunk(container) else None  # times by rank (video.reorder)

        def where() -> str:  # a read error's message, at the frame reached
            return f"{self.src}: read error after video frame {index}"

        try:
            if window is not None:
                window.seek(container)
            packets = read_packets(container.demux(), where)
            while True:
                if self.stop.is_set():
                    return
                packet = next(packets, None)
                if packet is None:
                    break
                if packet.stream.index != video.index or (window is not None and window.video_done):
                    if packet.stream.index in copies and packet.size:
                        for item in [packet] if window is None else window.packet(packet):
                            if not self.put(self.out_q, ("packet", item)):
                                return
                    if window is not None and window.finished(packet, audio):
                        break
                    continue
                if packet.size:
                    video_packets += 1
                elif declared and video_packets < declared:
                    raise TranscodeError(
                        f"{self.src}: truncated file: its index lists {declared} video frames but the data ends after {video_packets}"
                    )
                if self.qps is not None:
                    self.qps.packet(packet)
                if order is not None:
                    order.packet(packet)
                try:
                    frames = packet.decode()
                except av.FFmpegError as exc:
                    raise TranscodeError(f"{self.src}: decoding error at video frame {index}: {av_message(exc)}") from None
                for frame in frames:
                    quantiser = self.qps.frame(frame) if self.qps is not None else None  # before any retiming
                    if order is not None:
                        frame.pts = order.frame_pts(frame.pts)
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
                    if window is not None:
                        action = window.frame(frame.pts)
                        if action == "restart":  # the seek skipped frames: from the start, once
                            window.restart(container)
                            if order is not None:
                                order.reset()
                            packets, last_pts = read_packets(container.demux(), where), None
                            break
                        if action != "keep":
                            if action == "stop":
                                break
                            continue
                        if frame.pts == window.cut_pts:
                            for item in window.release():
                                if not self.put(self.out_q, ("packet", item)):
                                    return
                        frame.pts -= window.cut_pts
                    if frame.is_corrupt:
                        self.report.corrupt_frames.append(index)
                    item = self.prepare(frame, index, need_luma, quantiser)
                    if not self.put(self.frames_q, item):
                        return
                    index += 1
            if window is not None and window.cut is None:
                raise TranscodeError(f"{self.src}: no video frame from --start {window.report.start:g} s on: it is at or beyond the end of the video")
            self.decoded = index
            if missing:
                warn(self.report, f"{missing} frames had no timestamp; wrote them at a constant {float(self.rate):g} fps", self.quiet)
            if self.report.retimed_frames:
                warn(self.report, f"{self.report.retimed_frames} frames had a timestamp not after the previous one; moved them one tick later", self.quiet)
            self.warn_missing_qp()
            if self.report.corrupt_frames:
                shown = ", ".join(map(str, self.report.corrupt_frames[:20])) + (", ..." if len(self.report.corrupt_frames) > 20 else "")
                warn(self.report, f"decoding errors in {len(self.report.corrupt_frames)} frame(s) (numbered from 0): {shown}; the decoder concealed them and they were written", self.quiet)
            self.put(self.frames_q, END)
        except BaseException as exc:  # noqa: BLE001 - forwarded to the main thread
            self.fail(exc)

    def warn_missing_qp(self) -> None:
        """Say in the report how many frames had no readable quantiser (restored without the QP's control)."""
        if self.qps is not None and self.qps.missing:
            warn(self.report, f"{self.qps.missing} frame(s) had no readable quantiser; their groups were restored with the "
                               "model's own quality control", self.quiet)

    def prepare(self, frame: av.VideoFrame, index: int, need_luma: bool, quantiser: FrameQuantiser | None) -> Decoded:
        pix = planar_format(frame.format.name)
        if pix != frame.format.name:
            frame = frame.reformat(format=pix)
        layout = layout_of(pix)
        planes = read_planes(frame, layout)
        luma = luma_small(planes, layout) if need_luma else None
        interlaced = self.field_order is not None and bool(frame.interlaced_frame)
        return Decoded(index, frame, pad_to_subsampling(planes, layout), quantiser, luma, interlaced)

    # ---------------------------------------------------------------- stage 2: restore
    def restore(self) -> None:
        """Sliding window over decoded frames: each frame is decoded once, neighbours are reused."""
        try:
            radius = self.engine.frames // 2
            window: deque[Decoded] = deque()
            cuts: dict[int, bool] = {}  # cuts[i]: a scene cut lies between frames i and i + 1
            pending: list[tuple[Decoded, list[Decoded]]] = []
            next_centre = 0
            ended = False
            while not ended:
                item = self.get(self.frames_q)
                if item is END:
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
            self.put(self.out_q, END)
        except BaseException as exc:  # noqa: BLE001
            self.fail(exc)

    def _run(self, pending: list[tuple[Decoded, list[Decoded]]]) -> bool:
        # frames of one call share a pixel format and colour description
        groups: list[list[tuple[Decoded, list[Decoded]]]] = []
        fmts = []
        for item in pending:
            layout = layout_of(item[0].frame.format.name)
            fmt = colour_description(item[0].frame, layout, matrix=self.matrix)
            if groups and fmts[-1] == (layout, fmt, item[0].interlaced):
                groups[-1].append(item)
            else:
                groups.append([item])
                fmts.append((layout, fmt, item[0].interlaced))
        for group, (layout, fmt, interlaced) in zip(groups, fmts):
            planes = []
            for p in range(fmt.num_planes):
                if self.engine.frames > 1:
                    planes.append(np.stack([np.stack([d.planes[p] for d in stack]) for _, stack in group]))
                else:
                    planes.append(np.stack([centre.planes[p] for centre, _ in group]))
            args = restore_arguments(self.engine, [centre.quantiser for centre, _ in group], self.options.qf, self.options.strength)
            if interlaced:
                result = restore_by_fields(self.engine, planes, fmt, **args)
            else:
                result = self.engine.restore(planes, fmt, **args)
            strength = result.strength if result.strength is not None else args.get("strength")
            for i, (centre, _) in enumerate(group):
                out = self._encoder_frame([p[i] for p in result.planes], layout, centre.frame)
                info: dict[str, Any] = {}
                if centre.quantiser is not None:
                    info["qp"] = round(centre.quantiser.qp, 3)
                if result.predicted_qf is not None:
                    info["predicted_qf"] = round(result.predicted_qf[i], 3)
                if result.used_qf is not None:
                    info["qf"] = round(result.used_qf[i], 3)
                if strength is not None:
                    info["strength"] = round(strength[i], 3)
                if info:  # quality control per frame (FBCNN prediction/control, profile strength)
                    self.report.per_frame.append({"frame": centre.index, "pts": centre.frame.pts, **info})
                if not self.put(self.out_q, ("frame", out)):
                    return False
        return True

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


def join_stages(threads: list[threading.Thread]) -> None:
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
