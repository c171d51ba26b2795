"""One segment of a long video, restored and encoded by one worker (see :mod:`vsjpegfix.video.segment_plan`).

The transcoder's own restoration stage (:class:`~vsjpegfix.video.pipeline.Pipeline`) over exactly
the frames the plan gives the segment, plus its temporal context; only the segment's own frames
are encoded.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any

import av

from vsjpegfix.engine.core import Engine
from vsjpegfix.frames.fields import FieldFlagger
from vsjpegfix.video.output_quality import output_options
from vsjpegfix.video.pipeline import END, Pipeline
from vsjpegfix.video.probe import open_input, plan, read_packets
from vsjpegfix.video.reorder import DecodeOrderTimes, times_by_chunk
from vsjpegfix.video.report import (
    TranscodeError,
    TranscodeOptions,
    TranscodeReport,
    av_message,
)
from vsjpegfix.video.segment_plan import (
    Segment,
    SegmentMismatch,
)
from vsjpegfix.video.transcode import (
    add_video,
    open_video,
    start_encoding,
    writing,
)


def _decode_segment(pipe: Pipeline, container, video, segment: Segment, seek: bool) -> None:
    """Stage 1 of a segment: decode exactly the frames ``segment.pts`` into the restoration queue."""
    try:
        want = segment.pts
        if seek and segment.seek_pts is not None:
            container.seek(segment.seek_pts, stream=video, backward=True, any_frame=False)
        need_luma = pipe.engine.frames > 1
        got = 0
        size = (pipe.output.width, pipe.output.height)
        order = DecodeOrderTimes() if times_by_chunk(container) else None  # AVI: times by chunk, as planned
        for packet in read_packets(container.demux(video), lambda: f"{pipe.src}: read error in segment {segment.index}"):
            if pipe.stop.is_set():
                return
            if pipe.qps is not None:
                pipe.qps.packet(packet)
            if order is not None:
                order.packet(packet)
            try:
                frames = packet.decode()
            except av.FFmpegError as exc:
                raise TranscodeError(f"{pipe.src}: decoding error at video frame {segment.context_start + got}: {av_message(exc)}") from None
            for frame in frames:
                quantiser = pipe.qps.frame(frame) if pipe.qps is not None else None  # before any retiming
                source = frame.pts
                if order is not None:
                    frame.pts = order.frame_pts(frame.pts)
                if frame.pts is None:
                    raise SegmentMismatch(f"{pipe.src}: a decoded frame has no timestamp")
                if frame.pts < want[0] or got == len(want):
                    continue  # before the context (an earlier GOP), or past it (the decoder's delay)
                if frame.pts != want[got] or (order is not None and segment.sources is not None and source != segment.sources[got]):
                    raise SegmentMismatch(f"{pipe.src}: segment {segment.index}: frame {segment.context_start + got} not decoded (got timestamp {frame.pts}, expected {want[got]})")
                if (frame.width, frame.height) != size:
                    raise TranscodeError(f"{pipe.src}: the video changes size at frame {segment.context_start + got}; not supported")
                if frame.is_corrupt and segment.start <= segment.context_start + got < segment.stop:
                    pipe.report.corrupt_frames.append(segment.context_start + got)
                if not pipe.put(pipe.frames_q, pipe.prepare(frame, got, need_luma, quantiser)):
                    return
                got += 1
            if got == len(want):
                break
        if got < len(want):
            raise SegmentMismatch(f"{pipe.src}: segment {segment.index}: {got} of {len(want)} frames decoded")
        pipe.put(pipe.frames_q, END)
    except BaseException as exc:  # noqa: BLE001 - forwarded to the caller's thread
        pipe.fail(exc)


def restore_segment(
    engine: Engine,
    src: Path | str,
    dst: Path | str,
    segment: Segment,
    options: TranscodeOptions | None = None,
    *,
    overall=None,
) -> dict[str, Any]:
    """Restore and encode the frames of ``segment`` of ``src`` into ``dst`` (a temporary path, written in place).

    Returns a report entry (the keys of :class:`~vsjpegfix.video.report.TranscodeReport`, frame numbers
    counted in the whole video). A seek that does not reproduce the plan's frames is retried once
    decoding from the file's start; raises :class:`SegmentMismatch` if that fails too.
    """
    options = options or TranscodeOptions()
    try:
        return _restore_segment(engine, Path(src), Path(dst), segment, options, overall, seek=True)
    except SegmentMismatch as exc:
        if segment.seek_pts is None:
            raise
        reason = str(exc)
    with contextlib.suppress(OSError):
        Path(dst).unlink()
    details = _restore_segment(engine, Path(src), Path(dst), segment, options, overall, seek=False)
    details["warnings"].append(f"segment {segment.index}: decoding after a seek did not give the planned frames ({reason}); decoded it from the file's start")
    return details


def _restore_segment(engine: Engine, src: Path, dst: Path, segment: Segment, options: TranscodeOptions, overall, *, seek: bool) -> dict[str, Any]:
    report = TranscodeReport(str(src), str(dst), codec=options.codec, qf_mode=options.qf)
    quiet = not options.progress
    codec, info, out_fmt, matrix = plan(src, engine, options, report, quiet)
    started = time.perf_counter()
    owned = segment.owned_pts()
    lead = segment.start - segment.context_start
    with open_input(src) as container:
        video, options, rate, qps = open_video(container, src, options, report, quiet, engine)
        options = output_options(src, video, codec.name, options, qps is not None, report)
        pipe = Pipeline(src, engine, options, report, out_fmt, rate, qps)
        pipe.matrix = matrix
        pipe.field_order = info.field_order
        flag = FieldFlagger(info.field_order) if info.field_order else None
        with writing(dst, dst, "the segment", "the segment") as output:
            out_video = add_video(output, video, codec, options, out_fmt, info, rate, dst)
            start_encoding(output, codec, dst)
            pipe.run(lambda: _decode_segment(pipe, container, video, segment, seek),
                     lambda: _encode_owned(pipe, output, out_video, owned, lead, report, overall, dst, flag))
    if report.frames != len(owned):
        raise SegmentMismatch(f"{src}: segment {segment.index}: {report.frames} of {len(owned)} frames restored")
    report.per_frame = [
        {**entry, "frame": entry["frame"] + segment.context_start}
        for entry in report.per_frame
        if segment.start <= entry["frame"] + segment.context_start < segment.stop
    ]
    report.seconds = time.perf_counter() - started
    return {"kind": "video", **report.as_dict(), "segment": segment.index, "first_frame": segment.start}


def _encode_owned(pipe: Pipeline, output, out_video, owned: list[int], lead: int, report: TranscodeReport, overall, dst: Path,
                  flag: FieldFlagger | None = None) -> None:
    """Encode the restored frames at positions ``[lead, lead + len(owned))`` of the decoded range
    (interlaced input: flagged with its field order by ``flag``)."""
    position = 0
    try:
        while True:
            item = pipe.get(pipe.out_q)
            if item is END:
                break
            kind, frame = item
            if kind != "frame":
                continue
            k = position - lead
            position += 1
            if not 0 <= k < len(owned):
                continue  # a context frame: restored only for its neighbours' sake
            if frame.pts != owned[k]:
                raise SegmentMismatch(f"{pipe.src}: restored frame has timestamp {frame.pts}, expected {owned[k]}")
            for packet in out_video.encode(flag(frame) if flag is not None else frame):
                output.mux(packet)
            report.frames += 1
            if overall is not None:
                overall.update(1)
        if pipe.errors:
            return
        for packet in out_video.encode():
            output.mux(packet)
    except (av.FFmpegError, OSError) as exc:
        raise TranscodeError(f"{dst}: writing failed after {report.frames} frames: {av_message(exc)}") from None
