"""Presentation times of video in containers that store only the decode order (AVI).

An AVI index has one entry per coded picture and no presentation time: a player shows the picture of the
k-th chunk at k frame durations (empty chunks are dropped frames). FFmpeg's demuxer guesses presentation
times from the codec (H.264: one frame later than the chunk's place; with B-frames, times of other pictures
in display order), so the decoded frames come out in display order with times that are right only as a set,
or one frame late against the audio. :class:`DecodeOrderTimes` gives the frames the chunks' times (the
packets' decode times) in increasing order: each decoded frame takes the smallest time of the packets sent
to the decoder that no frame has taken yet. A stream without B-frames keeps its chunks' times.

The transcoder reads AVI input so (:meth:`vsjpegfix.video.pipeline.Pipeline.decode`; per segment
:mod:`vsjpegfix.video.segment_restore`, whose plan, :func:`vsjpegfix.video.segment_plan.scan_video`,
times frames by their chunks too) and writes AVI and MXF without B-frames (:data:`DECODE_ORDER_FORMATS`),
so that every reader gets the frames' times right.
"""

from __future__ import annotations

import heapq

#: Containers whose index keeps the decode order only: frames are written to them without B-frames,
#: whose reordering such a file cannot state (it would be read back with frames out of time).
DECODE_ORDER_FORMATS = frozenset({"avi", "mxf"})

#: Times kept at most: a decoder holds a few pictures (H.264's 16 at most, frame threads); more means it
#: dropped some (damaged packets), whose times are forgotten, oldest first.
MAX_PENDING = 64


def times_by_chunk(container) -> bool:
    """True for a container whose frames are timed by their chunks (AVI input)."""
    return container.format.name == "avi"


class DecodeOrderTimes:
    """Presentation times for the frames of an AVI video stream (see the module's description)."""

    def __init__(self) -> None:
        self.pending: list[int] = []

    def packet(self, packet) -> None:
        """Note a video packet sent to the decoder (empty packets, AVI's dropped frames, carry no picture)."""
        time = packet.dts if packet.dts is not None else packet.pts
        if packet.size and time is not None:
            heapq.heappush(self.pending, int(time))
            if len(self.pending) > MAX_PENDING:
                heapq.heappop(self.pending)

    def frame_pts(self, pts: int | None) -> int | None:
        """The time of the next decoded frame (whose own time is ``pts``): the smallest pending one."""
        return heapq.heappop(self.pending) if self.pending else pts

    def reset(self) -> None:
        """Forget every pending time (decoding starts again from the file's start)."""
        self.pending.clear()
