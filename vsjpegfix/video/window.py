"""``--start T`` / ``--duration D``: restore a part of a video, with ffmpeg's ``-ss``/``-t`` meaning.

The part is the half-open interval ``[origin + T, origin + T + D)`` of presentation time, where
``origin`` is the file's start time (FFmpeg's ``start_time``: what ``ffmpeg -ss`` counts from).

* **Video**: the decoder seeks to the keyframe at or before ``origin + T`` (files with timestamps;
  raw streams are decoded from their start), decodes, and drops the frames before it; it stops at
  the first frame at or after the end. Should a seek land after ``origin + T`` (an imprecise
  demuxer), decoding starts again from the file's start.
* **Timestamps**: every stream is shifted by the same time, the *cut*: the time of the first video
  frame kept, so the output's video starts at 0 and audio and subtitles keep their sync with it (to
  the tick of each stream's own time base).
* **Audio, subtitles, data**: packet granularity. A packet is kept when it starts inside
  ``[cut, origin + T + D)``; so the audio ends within one packet (about 20 ms) of the video's end,
  and a subtitle cue that began before the cut is dropped. A copied video stream (beyond the one
  restored) starts at its first keyframe in the window; attached pictures (cover art) are kept.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import av

#: Demuxers whose seeking cannot be trusted (no timestamps): decoded from the start instead.
NO_SEEK_FORMATS = frozenset({"h264", "hevc", "vvc", "m4v", "mpegvideo", "cavsvideo", "vc1", "obu", "mjpeg", "yuv4mpegpipe", "rawvideo"})

#: How far past the end other streams are read, waiting for their last packets (FFmpeg's max_interleave_delta).
INTERLEAVE_SECONDS = 10


def seconds(value: float) -> Fraction:
    """A user's number of seconds as the exact decimal it was written as (0.1 is 1/10, not a binary fraction)."""
    return Fraction(repr(float(value)))


def shift_ticks(cut: Fraction, time_base: Fraction) -> int:
    """``cut`` seconds in ticks of ``time_base``, rounded half away from zero (as FFmpeg rescales)."""
    x = cut / time_base
    return int(math.copysign(math.floor(abs(x) + Fraction(1, 2)), x))


@dataclass
class WindowReport:
    """What was cut: the options, the window in the input's time, and the frames dropped before it."""

    start: float
    duration: float | None
    cut_seconds: float | None = None  # the input time (from its start) that became the output's 0
    end_seconds: float | None = None  # the input time (from its start) the window ends at
    frames_before: int = 0  # decoded and dropped before the window
    seeked: bool = False

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class Window:
    """The frames and packets of one transcode that fall in ``[start, start + duration)`` (see the module notes)."""

    def __init__(self, container, video, start: float, duration: float | None) -> None:
        self.video = video
        self.origin = Fraction(container.start_time or 0, 1_000_000)
        self.begin = self.origin + seconds(start)
        self.end = None if duration is None else self.begin + seconds(duration)
        self.report = WindowReport(float(start), None if duration is None else float(duration))
        if self.end is not None:
            self.report.end_seconds = float(self.end - self.origin)
        self.cut: Fraction | None = None
        self.cut_pts = 0  # the cut in the video's time base
        self.held: list[av.Packet] = []
        self.video_done = False
        self.started: set[int] = set()  # copied video streams that reached a keyframe in the window
        self.passed: set[int] = set()  # streams with a packet past the end
        self.can_seek = container.format.name.split(",")[0] not in NO_SEEK_FORMATS

    # ------------------------------------------------------------------ video
    def seek(self, container) -> None:
        """Seek to the keyframe at or before the window's start (when it is past the video's first frame)."""
        tb = self.video.time_base
        first = Fraction(self.video.start_time, 1) * tb if self.video.start_time is not None and tb else self.origin
        if not self.can_seek or tb is None or self.begin <= first:
            return
        try:
            container.seek(math.floor(self.begin / tb), stream=self.video, backward=True, any_frame=False)
        except (av.FFmpegError, OSError, ValueError):
            return  # decoded from the start instead
        self.report.seeked = True

    def restart(self, container) -> None:
        """After a seek that landed past the start: back to the file's start, decoding every frame."""
        container.seek(0, backward=True)
        self.video.codec_context.flush_buffers()
        self.report.seeked = False
        self.held.clear()
        self.report.frames_before = 0

    def frame(self, pts: int) -> str:
        """``"drop"`` (before the window), ``"keep"``, ``"stop"`` (at or past its end), or ``"restart"``
        (the first frame after a seek is already past the start: frames were skipped)."""
        t = pts * self.video.time_base
        if self.cut is None and self.report.seeked and self.report.frames_before == 0 and t > self.begin:
            return "restart"
        if t < self.begin:
            self.report.frames_before += 1
            return "drop"
        if self.end is not None and t >= self.end:
            self.video_done = True
            return "stop"
        if self.cut is None:
            self.cut, self.cut_pts = t, pts
            self.report.cut_seconds = float(t - self.origin)
        return "keep"

    # ------------------------------------------------------------------ other streams
    def packet(self, packet) -> list:
        """The packets to write now for a demuxed packet of a copied stream (shifted to the cut)."""
        stream = packet.stream
        if stream.disposition & av.stream.Disposition.attached_pic:
            return [packet]  # cover art: not a timed picture
        ts = packet.pts if packet.pts is not None else packet.dts
        if ts is None or packet.time_base is None:
            return []  # cannot be placed in the window
        t = ts * packet.time_base
        if self.end is not None and t >= self.end:
            self.passed.add(stream.index)
            return []
        if t < self.begin:
            return []
        if self.cut is None:
            self.held.append(packet)
            return []
        return self._emit(packet)

    def release(self) -> list:
        """The held packets that start at or after the cut (call once the cut is known)."""
        held, self.held = self.held, []
        return [p for q in held for p in self._emit(q)]

    def _emit(self, packet) -> list:
        ts = packet.pts if packet.pts is not None else packet.dts
        if ts * packet.time_base < self.cut:
            return []
        stream = packet.stream
        if stream.type == "video" and stream.index not in self.started:
            if not packet.is_keyframe:
                return []
            self.started.add(stream.index)
        shift = shift_ticks(self.cut, packet.time_base)
        if packet.pts is not None:
            packet.pts -= shift
        if packet.dts is not None:
            packet.dts -= shift
        return [packet]

    def finished(self, packet, audio: set[int]) -> bool:
        """Can demuxing stop? The video is done and every audio stream (of ``audio``) has passed the end,
        or this packet lies :data:`INTERLEAVE_SECONDS` past it."""
        if not self.video_done:
            return False
        if audio <= self.passed:
            return True
        ts = packet.pts if packet.pts is not None else packet.dts
        return ts is not None and packet.time_base is not None and ts * packet.time_base >= self.end + INTERLEAVE_SECONDS
