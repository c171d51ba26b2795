"""One long video split at its keyframes, the pieces restored in parallel, joined without re-encoding.

The plan (:func:`plan_file`) reads the video stream's packets of the *input* (timestamps and
keyframe flags only, nothing is decoded) and cuts at the first keyframe at least ``seconds`` after
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
chapters, copied once, as :func:`vsjpegfix.transcode.transcode` copies them. The output goes to a
temporary name and is renamed when complete.

:class:`SegmentMismatch` means the segments cannot reproduce the whole-file result for this input
(timestamps missing or repeated, frames the decoder drops after a seek, codec headers that differ
between segments, decode timestamps that cannot be joined): the caller restores the file whole.
"""

from __future__ import annotations

import contextlib
import re
import secrets
import time
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Iterator

import av

from .batch import TEMP_MARK
from .engine import Engine
from .safe_write import atomic_output, check_output
from .transcode import (
    _END,
    TranscodeError,
    TranscodeOptions,
    TranscodeReport,
    _add_copies,
    _add_video,
    _av_message,
    _copy_metadata,
    _mux_copy,
    _open_video,
    _Pipeline,
    _plan,
    _start_encoding,
    _video_stream,
    _writing,
    open_input,
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


# ---------------------------------------------------------------------------- planning


def scan_video(src: Path | str) -> VideoIndex:
    """Read the video stream's packets (no decoding): every frame's timestamp and the keyframes.

    Raises :class:`SegmentMismatch` when the timestamps cannot identify the frames (missing or
    repeated), and :class:`TranscodeError` for unreadable files.
    """
    src = Path(src)
    with open_input(src) as container:
        video = _video_stream(container, src)
        time_base = Fraction(video.time_base) if video.time_base else None
        stamps: list[int] = []
        keys: list[int] = []
        try:
            for packet in container.demux(video):
                if not packet.size or packet.is_discard:
                    continue
                if packet.pts is None:
                    raise SegmentMismatch(f"{src}: video packets without timestamps; cannot split at keyframes")
                stamps.append(packet.pts)
                if packet.is_keyframe:
                    keys.append(packet.pts)
        except av.FFmpegError as exc:
            raise TranscodeError(f"{src}: read error: {_av_message(exc)}") from None
    if time_base is None or not stamps:
        raise SegmentMismatch(f"{src}: no timed video frames; cannot split at keyframes")
    order = sorted(stamps)
    if len(set(order)) != len(order):
        raise SegmentMismatch(f"{src}: repeated video timestamps; cannot split at keyframes")
    position = {t: i for i, t in enumerate(order)}
    return VideoIndex(order, sorted({position[t] for t in keys}), time_base)


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
        plan.segments.append(Segment(i, start, stop, c0, c1, None if seek is None else index.pts[seek], index.pts[c0:c1]))
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


# ---------------------------------------------------------------------------- temporaries


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


# ---------------------------------------------------------------------------- one segment (worker side)


def _decode_segment(pipe: _Pipeline, container, video, segment: Segment, seek: bool) -> None:
    """Stage 1 of a segment: decode exactly the frames ``segment.pts`` into the restoration queue."""
    try:
        want = segment.pts
        if seek and segment.seek_pts is not None:
            container.seek(segment.seek_pts, stream=video, backward=True, any_frame=False)
        need_luma = pipe.engine.frames > 1
        got = 0
        size = (pipe.output.width, pipe.output.height)
        for packet in container.demux(video):
            if pipe.stop.is_set():
                return
            if pipe.qps is not None:
                pipe.qps.packet(packet)
            try:
                frames = packet.decode()
            except av.FFmpegError as exc:
                raise TranscodeError(f"{pipe.src}: decoding error at video frame {segment.context_start + got}: {_av_message(exc)}") from None
            for frame in frames:
                qp = pipe.qps.frame(frame) if pipe.qps is not None else None
                if frame.pts is None:
                    raise SegmentMismatch(f"{pipe.src}: a decoded frame has no timestamp")
                if frame.pts < want[0] or got == len(want):
                    continue  # before the context (an earlier GOP), or past it (the decoder's delay)
                if frame.pts != want[got]:
                    raise SegmentMismatch(f"{pipe.src}: segment {segment.index}: frame {segment.context_start + got} not decoded (got timestamp {frame.pts}, expected {want[got]})")
                if (frame.width, frame.height) != size:
                    raise TranscodeError(f"{pipe.src}: the video changes size at frame {segment.context_start + got}; not supported")
                if frame.is_corrupt and segment.start <= segment.context_start + got < segment.stop:
                    pipe.report.corrupt_frames.append(segment.context_start + got)
                if not pipe._put(pipe.frames_q, pipe._prepare(frame, got, need_luma, qp)):
                    return
                got += 1
            if got == len(want):
                break
        if got < len(want):
            raise SegmentMismatch(f"{pipe.src}: segment {segment.index}: {got} of {len(want)} frames decoded")
        pipe._put(pipe.frames_q, _END)
    except BaseException as exc:  # noqa: BLE001 - forwarded to the caller's thread
        pipe._fail(exc)


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

    Returns a report entry (the keys of :class:`~vsjpegfix.transcode.TranscodeReport`, frame numbers
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
    codec, info, out_fmt, matrix = _plan(src, engine, options, report, quiet)
    started = time.perf_counter()
    owned = segment.owned_pts()
    lead = segment.start - segment.context_start
    with open_input(src) as container:
        video, options, rate, qps = _open_video(container, src, options, report, quiet, engine)
        pipe = _Pipeline(src, engine, options, report, out_fmt, rate, qps)
        pipe.matrix = matrix
        with _writing(dst, dst, "the segment", "the segment") as output:
            out_video = _add_video(output, video, codec, options, out_fmt, info, rate, dst)
            _start_encoding(output, codec, dst)
            pipe.run(lambda: _decode_segment(pipe, container, video, segment, seek),
                     lambda: _encode_owned(pipe, output, out_video, owned, lead, report, overall, dst))
    if report.frames != len(owned):
        raise SegmentMismatch(f"{src}: segment {segment.index}: {report.frames} of {len(owned)} frames restored")
    report.per_frame = [
        {**entry, "frame": entry["frame"] + segment.context_start}
        for entry in report.per_frame
        if segment.start <= entry["frame"] + segment.context_start < segment.stop
    ]
    report.seconds = time.perf_counter() - started
    return {"kind": "video", **report.as_dict(), "segment": segment.index, "first_frame": segment.start}


def _encode_owned(pipe: _Pipeline, output, out_video, owned: list[int], lead: int, report: TranscodeReport, overall, dst: Path) -> None:
    """Encode the restored frames at positions ``[lead, lead + len(owned))`` of the decoded range."""
    position = 0
    try:
        while True:
            item = pipe._get(pipe.out_q)
            if item is _END:
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
            for packet in out_video.encode(frame):
                output.mux(packet)
            report.frames += 1
            if overall is not None:
                overall.update(1)
        if pipe.errors:
            return
        for packet in out_video.encode():
            output.mux(packet)
    except (av.FFmpegError, OSError) as exc:
        raise TranscodeError(f"{dst}: writing failed after {report.frames} frames: {_av_message(exc)}") from None


# ---------------------------------------------------------------------------- joining (driver side)


@dataclass
class _Part:
    """The video packets' timing of one segment file, mapped back to the input's timestamps."""

    path: Path
    pts: list[int]  # per packet, in the input's video time base
    dts: list[int | None]
    duration: list[int]


def _read_timing(path: Path, segment: Segment, time_base: Fraction, offset: int, all_pts: list[int]) -> _Part:
    """Map a segment file's video packet timestamps to the input's (exact: by presentation rank)."""
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        tb = Fraction(s.time_base)
        raw = [(p.pts, p.dts, p.duration or 0) for p in c.demux(s) if p.size]
    owned = segment.owned_pts()
    if len(raw) != len(owned) or any(p is None for p, _, _ in raw):
        raise SegmentMismatch(f"{path.name}: {len(raw)} video packets for {len(owned)} frames")
    order = sorted(p for p, _, _ in raw)
    if len(set(order)) != len(order):
        raise SegmentMismatch(f"{path.name}: repeated timestamps in the segment")
    shift = order[0] * tb - owned[0] * time_base  # a muxer's delay (MPEG-TS), different for each segment
    if any(abs(t * tb - shift - o * time_base) > tb for t, o in zip(order, owned)):
        raise SegmentMismatch(f"{path.name}: the segment's timestamps do not match the plan")
    to_input = dict(zip(order, owned))
    lead = sum(1 for _, d, _ in raw if d is not None and d < order[0])
    pts, dts, durations = [], [], []
    for j, (p, d, dur) in enumerate(raw):
        pts.append(to_input[p])
        durations.append(round(Fraction(dur) * tb / time_base))
        if d is None:
            dts.append(None)
        elif d in to_input:
            dts.append(to_input[d])
        elif d < order[0] and j < lead:
            if offset + j - lead >= 0:  # continue the stream: the dts of the frame lead places earlier
                dts.append(all_pts[offset + j - lead])
            else:  # the video's first frames: the encoder's own values, shifted as the segment was
                dts.append(owned[0] + round((Fraction(d) - order[0]) * tb / time_base))
        else:
            raise SegmentMismatch(f"{path.name}: decode timestamps the join cannot map")
    return _Part(path, pts, dts, durations)


def _rank_dts(parts: list[_Part], all_pts: list[int]) -> None:
    """Decode timestamps for segments whose container stores none (Matroska): each packet gets the
    presentation time ``D`` frames earlier in the joined stream, ``D`` the deepest reordering of any
    segment; the first ``D`` are extrapolated before the first frame (as x264 does)."""
    depth = 0
    for part in parts:
        rank = {t: r for r, t in enumerate(sorted(part.pts))}
        depth = max(depth, max((j - rank[t] for j, t in enumerate(part.pts)), default=0))
    shift = all_pts[min(depth, len(all_pts) - 1)] - all_pts[0]
    i = 0
    for part in parts:
        for j in range(len(part.dts)):
            part.dts[j] = all_pts[i - depth] if i >= depth else all_pts[i] - shift
            i += 1


def _check_dts(parts: list[_Part]) -> None:
    last = None
    for part in parts:
        for p, d in zip(part.pts, part.dts):
            if d is None:
                continue
            if d > p or (last is not None and d <= last):
                raise SegmentMismatch(f"{part.path.name}: decode timestamps overlap the previous segment's")
            last = d


def join_segments(
    src: Path | str,
    dst: Path | str,
    parts: list[Path],
    plan: SegmentPlan,
    *,
    overwrite: bool = False,
    quiet: bool = True,
) -> TranscodeReport:
    """Write ``dst`` from the restored segment files ``parts`` (in order) and the input's other streams.

    No re-encoding: video packets are remuxed, audio/subtitle/data streams copied (or text subtitles
    converted) from ``src`` exactly as :func:`~vsjpegfix.transcode.transcode` does. Written to a
    temporary name and renamed when complete. Raises :class:`SegmentMismatch` when the segments
    cannot be joined into one valid stream.
    """
    src, dst = Path(src), Path(dst)
    report = TranscodeReport(str(src), str(dst))
    check_output(src, dst, overwrite=overwrite)
    if len(parts) != len(plan.segments):
        raise ValueError(f"{len(parts)} segment files for {len(plan.segments)} segments")
    all_pts = [t for s in plan.segments for t in s.owned_pts()]
    timings, offset = [], 0
    for path, segment in zip(parts, plan.segments):
        timings.append(_read_timing(path, segment, plan.time_base, offset, all_pts))
        offset += segment.frames
    if any(d is None for part in timings for d in part.dts):
        _rank_dts(timings, all_pts)
    _check_dts(timings)
    started = time.perf_counter()
    with contextlib.ExitStack() as stack:
        inputs = [stack.enter_context(av.open(str(p))) for p in parts]
        templates = [c.streams.video[0] for c in inputs]
        headers = {bytes(t.codec_context.extradata or b"") for t in templates}
        if len(headers) > 1:
            raise SegmentMismatch(f"{src}: the segments were encoded with different codec headers")
        container = stack.enter_context(open_input(src))
        video = _video_stream(container, src)
        tmp = stack.enter_context(atomic_output(dst, overwrite=overwrite))
        with _writing(tmp, dst, "the output", "the file") as output:
            out_video = output.add_stream_from_template(templates[0])
            out_video.time_base = video.time_base
            copies = _add_copies(container, output, video, report, quiet)
            _copy_metadata(container, output, video, out_video)
            try:
                output.start_encoding()
            except (av.FFmpegError, ValueError) as exc:
                raise TranscodeError(f"{dst}: cannot start the output ({_av_message(exc)})") from None
            time_base = plan.time_base
            videos = _video_packets(inputs, timings, time_base)
            others = _copied_packets(container, copies)
            for _, kind, packet in _merge(videos, others):
                if kind == "video":
                    packet.stream = out_video
                    output.mux(packet)
                    report.frames += 1
                else:
                    _mux_copy(output, packet, copies[packet.stream.index], report, quiet)
            if report.frames != plan.frames:
                raise SegmentMismatch(f"{dst}: joined {report.frames} frames of {plan.frames}")
    report.seconds = time.perf_counter() - started
    return report


def _video_packets(inputs, timings: list[_Part], time_base: Fraction) -> Iterator[tuple[Fraction, str, av.Packet]]:
    """The segments' video packets in order, with the input's timestamps, timed by their decode time."""
    for c, part in zip(inputs, timings):
        j = 0
        for packet in c.demux(c.streams.video[0]):
            if not packet.size:
                continue
            packet.pts, packet.dts = part.pts[j], part.dts[j]
            packet.duration = part.duration[j]
            packet.time_base = time_base
            yield Fraction(part.dts[j] if part.dts[j] is not None else part.pts[j]) * time_base, "video", packet
            j += 1


def _copied_packets(container, copies: dict) -> Iterator[tuple[Fraction, str, av.Packet]]:
    """The input's packets of the copied streams, timed by their decode time (else the last one's)."""
    if not copies:
        return
    streams = [s for s in container.streams if s.index in copies]
    last = Fraction(-(10**9))
    try:
        for packet in container.demux(streams):
            if not packet.size:
                continue
            stamp = packet.dts if packet.dts is not None else packet.pts
            if stamp is not None and packet.time_base:
                last = Fraction(stamp) * Fraction(packet.time_base)
            yield last, "copy", packet
    except av.FFmpegError as exc:
        raise TranscodeError(f"{container.name}: read error: {_av_message(exc)}") from None


def _merge(a: Iterator, b: Iterator) -> Iterator:
    """Interleave two timed packet streams by time (each already in order)."""
    x, y = next(a, None), next(b, None)
    while x is not None or y is not None:
        if y is None or (x is not None and x[0] <= y[0]):
            yield x
            x = next(a, None)
        else:
            yield y
            y = next(b, None)


# ---------------------------------------------------------------------------- in one process


def merge_reports(src: Path | str, dst: Path | str, parts: list[dict[str, Any]], joined: TranscodeReport, seconds: float) -> dict[str, Any]:
    """The report entry of a file restored in segments: the segments' entries plus the join's streams."""
    first = parts[0] if parts else {}
    frames = sum(int(p.get("frames", 0)) for p in parts)
    warnings: list[str] = []
    for w in [w for p in parts for w in p.get("warnings", [])] + list(joined.warnings):
        if w not in warnings:
            warnings.append(w)
    return {
        "kind": "video", "input": str(src), "output": str(dst), "frames": frames, "seconds": seconds,
        "codec": first.get("codec", ""), "pix_fmt": first.get("pix_fmt", ""), "input_pix_fmt": first.get("input_pix_fmt", ""),
        "width": first.get("width", 0), "height": first.get("height", 0),
        "copied_streams": joined.copied_streams, "converted_streams": joined.converted_streams, "dropped_streams": joined.dropped_streams,
        "warnings": warnings, "corrupt_frames": sorted(f for p in parts for f in p.get("corrupt_frames", [])),
        "retimed_frames": sum(int(p.get("retimed_frames", 0)) for p in parts), "qf_mode": first.get("qf_mode", ""),
        "per_frame": [e for p in parts for e in p.get("per_frame", [])],
        "fps": round(frames / seconds, 3) if seconds > 0 else 0.0,
    }


def transcode_segmented(
    src: Path | str, dst: Path | str, engine: Engine, options: TranscodeOptions | None = None, *, seconds: float, overall=None,
) -> dict[str, Any]:
    """Restore ``src`` into ``dst`` segment by segment in this process, then join (a whole-file transcode
    when the file is too short to split). What the Ray batch does on many workers; for tests and scripts."""
    from .transcode import transcode

    src, dst = Path(src), Path(dst)
    options = options or TranscodeOptions()
    check_output(src, dst, overwrite=options.overwrite)
    try:
        plan = plan_file(src, seconds, engine.frames // 2)
    except SegmentMismatch:
        plan = None
    if plan is None:
        return {"kind": "video", **transcode(src, dst, engine, options, overall=overall).as_dict()}
    started = time.perf_counter()
    paths = [segment_temporary(dst, s.index) for s in plan.segments]
    try:
        parts = [restore_segment(engine, src, p, s, options, overall=overall) for p, s in zip(paths, plan.segments)]
        joined = join_segments(src, dst, paths, plan, overwrite=options.overwrite, quiet=not options.progress)
    except SegmentMismatch as exc:
        details = {"kind": "video", **transcode(src, dst, engine, options, overall=overall).as_dict()}
        details["warnings"] = [f"not split into segments: {exc}", *details["warnings"]]
        return details
    finally:
        for p in paths:
            with contextlib.suppress(OSError):
                p.unlink()
    details = merge_reports(src, dst, parts, joined, time.perf_counter() - started)
    details["segments"] = [{"index": p["segment"], "first_frame": p["first_frame"], "frames": p["frames"], "seconds": p["seconds"]} for p in parts]
    return details
