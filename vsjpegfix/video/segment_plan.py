"""One long video split at its keyframes, the pieces restored in parallel, joined without re-encoding.

The plan (:func:`plan_file`) reads the video stream's packets of the *input* (timestamps and
keyframe flags only, nothing is decoded; an AVI, whose frames are timed by their chunks
(:mod:`vsjpegfix.video.reorder`), is decoded once to learn its display order and which keyframes
start closed groups, the only places it can be cut) and cuts at the first keyframe at least ``seconds`` after
the start of the current segment; a tail shorter than ``seconds / 2`` stays with the segment before
it. Frames are numbered in presentation order, so a segment ``[start, stop)`` holds whole frames
whatever the decoding order (B-frames, open GOPs).

Each segment is restored by :func:`restore_segment`: it decodes from a keyframe at or before
``start - radius`` (``radius = T // 2`` for a temporal model of T frames), checks that it gets
exactly the frames the plan expects (by timestamp), restores them with the transcoder's own
restoration stage (same temporal windows, scene-cut detection, colour handling and quality control
as a whole-file transcode) and encodes only ``[start, stop)``, with the transcoder's encoder
settings, into a temporary file of the output's container format. Being a fresh encode, every
segment starts with a keyframe.

:func:`join_segments` then writes the output by remuxing: the segments' video packets (original
presentation timestamps restored exactly; the decode timestamps of each segment's first frames,
which its encoder extrapolated before its start, continued from the previous segment as the
encoder does within a stream) and the input's audio, subtitle and data streams, metadata and
chapters, copied once, as :func:`vsjpegfix.video.transcode.transcode` copies them. The output goes to a
temporary name and is renamed when complete.

:class:`SegmentMismatch` means the segments cannot reproduce the whole-file result for this input
(timestamps missing or repeated, frames the decoder drops after a seek, codec headers that differ
between segments, decode timestamps that cannot be joined): the caller restores the file whole.
"""

from __future__ import annotations

import contextlib
import re
import secrets
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av

from vsjpegfix.frames.safe_write import TEMP_MARK
from vsjpegfix.video.probe import open_input, read_packets, video_stream
from vsjpegfix.video.reorder import times_by_chunk
from vsjpegfix.video.report import (
    TranscodeError,
)

SEGMENT_MARK = ".~seg"  # segment temporaries: ``.STEM.~segNNNN.XXXXXXXX.part.EXT`` beside the output


class SegmentMismatch(TranscodeError):
    """The segments cannot reproduce the whole-file result for this input; restore it whole."""


@dataclass
class VideoIndex:
    """Timestamps of the video stream's frames in presentation order, and which start a keyframe."""

    pts: list[int]
    keyframes: list[int]  # positions (presentation order) of the keyframe packets, ascending
    time_base: Fraction
    sources: list[int] | None = None  # AVI: each frame's packet, as the timestamp FFmpeg gives the decoded frame

    @property
    def frames(self) -> int:
        return len(self.pts)

    def seconds(self, position: int) -> float:
        """Time of frame ``position`` after the first frame, in seconds."""
        return float((self.pts[position] - self.pts[0]) * self.time_base)


@dataclass
class Segment:
    """Frames ``[start, stop)`` of a video (presentation order, from 0), restored and encoded by one worker.

    ``[context_start, context_stop)`` are the frames decoded for it (``radius`` more on each side
    for a temporal model, clamped to the video), ``pts`` their timestamps, ``seek_pts`` the
    timestamp of the keyframe decoding starts at (None: the file's start).
    """

    index: int
    start: int
    stop: int
    context_start: int
    context_stop: int
    seek_pts: int | None
    pts: list[int]
    sources: list[int] | None = None  # AVI: FFmpeg's timestamp of each decoded frame (its packet), checked

    @property
    def frames(self) -> int:
        return self.stop - self.start

    def owned_pts(self) -> list[int]:
        """Timestamps of the frames this segment outputs."""
        return self.pts[self.start - self.context_start : self.stop - self.context_start]


@dataclass
class SegmentPlan:
    """How one video is cut: its frame count, its video time base, the temporal radius, the segments."""

    frames: int
    time_base: Fraction
    radius: int
    segments: list[Segment] = field(default_factory=list)


def scan_video(src: Path | str) -> VideoIndex:
    """Read the video stream's packets (no decoding): every frame's timestamp and the keyframes.

    Raises :class:`SegmentMismatch` when the timestamps cannot identify the frames (missing or
    repeated), and :class:`TranscodeError` for unreadable files.
    """
    src = Path(src)
    with open_input(src) as container:
        video = video_stream(container, src)
        time_base = Fraction(video.time_base) if video.time_base else None
        if times_by_chunk(container) and time_base is not None:
            return _scan_by_chunk(src, container, video, time_base)
        stamps: list[int] = []
        keys: list[int] = []
        for packet in read_packets(container.demux(video), lambda: f"{src}: read error"):
            if not packet.size or packet.is_discard:
                continue
            if packet.pts is None:
                raise SegmentMismatch(f"{src}: video packets without timestamps; cannot split at keyframes")
            stamps.append(packet.pts)
            if packet.is_keyframe:
                keys.append(packet.pts)
    if time_base is None or not stamps:
        raise SegmentMismatch(f"{src}: no timed video frames; cannot split at keyframes")
    order = sorted(stamps)
    if len(set(order)) != len(order):
        raise SegmentMismatch(f"{src}: repeated video timestamps; cannot split at keyframes")
    position = {t: i for i, t in enumerate(order)}
    return VideoIndex(order, sorted({position[t] for t in keys}), time_base)


def _scan_by_chunk(src: Path, container, video, time_base: Fraction) -> VideoIndex:
    """:func:`scan_video` of an AVI: frames timed by their chunks in display order, cut only at keyframes that
    start a closed group (every frame shown before it comes from an earlier chunk, none after it)."""
    packets: list[tuple[int, int, bool]] = []  # (decode time, FFmpeg's timestamp, keyframe) in chunk order
    shown: list[int | None] = []  # FFmpeg's timestamp of each decoded frame, in display order
    for packet in read_packets(container.demux(video), lambda: f"{src}: read error"):
        if packet.size and not packet.is_discard:
            if packet.dts is None or packet.pts is None:
                raise SegmentMismatch(f"{src}: video packets without timestamps; cannot split at keyframes")
            packets.append((packet.dts, packet.pts, packet.is_keyframe))
        try:
            shown.extend(frame.pts for frame in packet.decode())
        except av.FFmpegError:  # damaged data: the whole-file transcoder reports it its own way
            raise SegmentMismatch(f"{src}: a video packet does not decode; cannot split at keyframes") from None
    chunk = {p: i for i, (_, p, _) in enumerate(packets)}
    times = sorted(d for d, _, _ in packets)
    if not packets or len(chunk) != len(packets) or len(set(times)) != len(times) or sorted(shown, key=str) != sorted(chunk, key=str):
        raise SegmentMismatch(f"{src}: the decoded frames cannot be matched to the AVI's chunks; cannot split at keyframes")
    order = [chunk[p] for p in shown]  # the chunk of each frame in display order
    keys, seen = [], 0
    for r, c in enumerate(order):
        if c == r and seen == r and packets[c][2]:  # frames 0..r-1 came from chunks 0..r-1: a closed cut
            keys.append(r)
        seen = max(seen, c + 1)
    return VideoIndex(times, keys, time_base, [packets[c][1] for c in order])


def plan_segments(index: VideoIndex, seconds: float, radius: int = 0) -> SegmentPlan | None:
    """Cut at keyframes into segments of at least ``seconds``; None when that gives a single segment.

    A cut is made at the first keyframe ``seconds`` or more after the current segment's start,
    unless less than ``seconds / 2`` would remain after it.
    """
    if seconds <= 0 or index.frames < 2:
        return None
    n = index.frames
    end = index.seconds(n - 1)
    starts = [0]
    for k in index.keyframes:
        if k <= starts[-1]:
            continue
        if index.seconds(k) - index.seconds(starts[-1]) >= seconds and end - index.seconds(k) >= seconds / 2:
            starts.append(k)
    if len(starts) < 2:
        return None
    plan = SegmentPlan(n, index.time_base, radius)
    for i, start in enumerate(starts):
        stop = starts[i + 1] if i + 1 < len(starts) else n
        c0, c1 = max(0, start - radius), min(n, stop + radius)
        usable = [k for k in index.keyframes if k <= c0]
        seek = usable[-1] if usable and usable[-1] > 0 else None  # from the file's start: no seek
        plan.segments.append(Segment(i, start, stop, c0, c1, None if seek is None else index.pts[seek], index.pts[c0:c1],
                                     None if index.sources is None else index.sources[c0:c1]))
    return plan


def plan_file(src: Path | str, seconds: float, radius: int = 0) -> SegmentPlan | None:
    """:func:`plan_segments` for a file; None (restore it whole) when it is too short to split.

    A file whose container declares a duration below ``1.5 * seconds`` is not scanned at all.
    """
    if seconds <= 0:
        return None
    with contextlib.suppress(Exception), av.open(str(src)) as container:
        if container.duration is not None and container.duration / av.time_base < 1.5 * seconds:
            return None
    return plan_segments(scan_video(src), seconds, radius)


def segment_temporary(out: Path | str, index: int) -> Path:
    """A fresh hidden temporary path for segment ``index`` of output ``out`` (its container format kept)."""
    out = Path(out)
    return out.with_name(f".{out.stem}{SEGMENT_MARK}{index:04d}.{secrets.token_hex(4)}{TEMP_MARK}{out.suffix}")


def remove_segment_temporaries(out: Path | str) -> list[Path]:
    """Delete every segment temporary of output ``out`` (those of :func:`segment_temporary`)."""
    out = Path(out)
    removed: list[Path] = []
    if not out.parent.is_dir():
        return removed
    pattern = re.compile(
        "^" + re.escape(f".{out.stem}{SEGMENT_MARK}") + r"\d{4,}\.[0-9a-f]{8}" + re.escape(TEMP_MARK + out.suffix) + "$"
    )
    for p in out.parent.iterdir():
        if pattern.match(p.name):
            with contextlib.suppress(OSError):
                p.unlink()
                removed.append(p)
    return removed
