"""Joining restored segments into the output by remuxing, and the whole split-restore-join in one process.

Video packets of the segments get the input's timestamps back exactly; the input's other streams,
metadata and chapters are copied once, as the transcoder copies them.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Iterator

import av

from vsjpegfix.engine.core import Engine
from vsjpegfix.frames.safe_write import atomic_output, check_output
from vsjpegfix.video.probe import open_input, video_stream
from vsjpegfix.video.report import (
    TranscodeError,
    TranscodeOptions,
    TranscodeReport,
    av_message,
)
from vsjpegfix.video.segment_plan import (
    Segment,
    SegmentMismatch,
    SegmentPlan,
    plan_file,
    segment_temporary,
)
from vsjpegfix.video.segment_restore import restore_segment
from vsjpegfix.video.streams import add_copies, copy_metadata, mux_copy
from vsjpegfix.video.transcode import (
    transcode,
    writing,
)


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
    converted) from ``src`` exactly as :func:`~vsjpegfix.video.transcode.transcode` does. Written to a
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
        video = video_stream(container, src)
        tmp = stack.enter_context(atomic_output(dst, overwrite=overwrite))
        with writing(tmp, dst, "the output", "the file") as output:
            out_video = output.add_stream_from_template(templates[0])
            out_video.time_base = video.time_base
            copies = add_copies(container, output, video, report, quiet)
            copy_metadata(container, output, video, out_video)
            try:
                output.start_encoding()
            except (av.FFmpegError, ValueError) as exc:
                raise TranscodeError(f"{dst}: cannot start the output ({av_message(exc)})") from None
            time_base = plan.time_base
            videos = _video_packets(inputs, timings, time_base)
            others = _copied_packets(container, copies)
            for _, kind, packet in _merge(videos, others):
                if kind == "video":
                    packet.stream = out_video
                    output.mux(packet)
                    report.frames += 1
                else:
                    mux_copy(output, packet, copies[packet.stream.index], report, quiet)
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
        raise TranscodeError(f"{container.name}: read error: {av_message(exc)}") from None


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
