"""Everything in the file besides the restored video: audio, subtitles, data, attachments, metadata, chapters.

Streams are copied packet for packet when the output container accepts them; text subtitles it
does not accept are converted to a text format it does; anything else is dropped with a warning.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import av

from vsjpegfix.video.report import (
    TranscodeReport,
    av_message,
    warn,
)

TEXT_SUBTITLE_CODECS = ("mov_text", "subrip", "ass", "webvtt")  # conversion targets, in order of preference


META_SKIP = {"encoder", "duration", "major_brand", "minor_version", "compatible_brands", "number_of_frames", "number_of_bytes", "_statistics_tags", "_statistics_writing_app", "_statistics_writing_date_utc", "bps"}


DISCARD_ALL = 48  # AVDISCARD_ALL: streams the demuxer hides, e.g. the text track holding MP4 chapters


@dataclass
class CopiedStream:
    """An input stream written to the output: copied packets, or text subtitles re-encoded."""

    out: Any
    kind: str = "copy"  # "copy" or "subtitle"
    decoder: Any = None


def accepts_stream(format_name: str, template) -> bool:
    """Does a ``format_name`` file take a stream copied from ``template``? (tried in memory)"""
    try:
        with av.open(io.BytesIO(), "w", format=format_name) as trial:
            trial.add_stream_from_template(template)
            trial.start_encoding()
        return True
    except Exception:  # noqa: BLE001 - any refusal means no
        return False


def add_copies(container, output, video, report: TranscodeReport, quiet: bool) -> dict[int, CopiedStream]:
    copies: dict[int, CopiedStream] = {}
    supported = output.supported_codecs
    fmt = output.format.name
    for s in container.streams:
        if s.index == video.index:
            continue
        ctx = s.codec_context
        name = codec_name(ctx)
        entry = {"index": s.index, "type": s.type, "codec": name}

        def drop(reason: str) -> None:
            report.dropped_streams.append({**entry, "reason": reason})
            warn(report, f"stream {s.index} ({s.type}, {name}) dropped: {reason}", quiet)

        if s.type == "data" and int(getattr(s, "discard", 0) or 0) == DISCARD_ALL and container.chapters():
            continue  # the text track that holds MP4/MOV chapters: the chapters are copied as chapters
        if is_timecode_track(s):
            # a copied tmcd track makes the MOV/MP4 muxer fail on closing: the muxer writes its own from the
            # video stream's "timecode" tag (copy_metadata), as Matroska and MXF store it
            report.converted_streams.append({**entry, "codec": "tmcd", "to": "timecode tag of the video stream"})
            continue
        if s.type == "attachment":
            if fmt != "matroska":
                drop(f"the {fmt} container cannot hold attachments")
                continue
            try:
                out = output.add_attachment(s.metadata.get("filename") or f"attachment{s.index}", s.mimetype or "application/octet-stream", s.data)
            except (av.FFmpegError, ValueError, TypeError) as exc:
                drop(av_message(exc))
                continue
            out.metadata.update({k: v for k, v in s.metadata.items() if k.lower() != "filename"})
            report.copied_streams.append(entry)
            continue
        if s.type not in ("audio", "subtitle", "data", "video"):
            drop(f"{s.type} streams are not copied")
            continue
        if not parameters_known(s):
            drop("its parameters are unknown (no packet of it could be read: a truncated or damaged file)")
            continue
        if (name in supported if name is not None else False) or accepts_stream(fmt, s):
            try:
                out = output.add_stream_from_template(s)
            except (av.FFmpegError, ValueError, TypeError) as exc:
                drop(av_message(exc))
                continue
            copy_stream_info(s, out)
            copies[s.index] = CopiedStream(out)
            report.copied_streams.append(entry)
            if s.type == "video" and not (s.disposition & av.stream.Disposition.attached_pic):
                warn(report, f"stream {s.index} (video) copied as it is: only the first video stream is restored", quiet)
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
                    drop(f"cannot convert it to {target} ({av_message(exc)})")
                    continue
                copy_stream_info(s, out)
                copies[s.index] = CopiedStream(out, "subtitle", ctx)
                report.converted_streams.append({**entry, "to": target})
                warn(report, f"stream {s.index} (subtitle, {name}) converted to {target}: the {fmt} container cannot hold {name}", quiet)
                continue
        drop(f"the {fmt} container cannot hold {name or 'it'}")
    return copies


def is_timecode_track(stream) -> bool:
    """Is ``stream`` a QuickTime timecode track (``tmcd``: a data stream without codec whose demuxer
    states its start ``timecode``)?"""
    return stream.type == "data" and stream.codec_context is None and bool(stream.metadata.get("timecode"))


def source_timecode(container, video) -> str | None:
    """The start timecode of ``video`` (``HH:MM:SS:FF``): its own tag, else its file's timecode track's or
    the container's, else None."""
    if video.metadata.get("timecode"):
        return video.metadata["timecode"]
    tracks = [s.metadata["timecode"] for s in container.streams if is_timecode_track(s)]
    return tracks[0] if tracks else container.metadata.get("timecode")


def parameters_known(stream) -> bool:
    """Does the demuxer know what a muxer needs to write the stream (an audio stream's rate and channels,
    a video stream's size)? A truncated file can declare a stream none of whose packets it holds."""
    ctx = stream.codec_context
    if ctx is None:
        return stream.type not in ("audio", "video")
    try:
        if stream.type == "audio":
            return bool(ctx.sample_rate) and bool(ctx.layout.nb_channels)
        if stream.type == "video":
            return bool(ctx.width) and bool(ctx.height)
    except (AttributeError, ValueError):
        return False
    return True


def mux_copy(output, packet, copy: CopiedStream, report: TranscodeReport, quiet: bool) -> None:
    if copy.kind == "copy":
        packet.stream = copy.out
        output.mux(packet)
        return
    # text subtitle: decode and re-encode, keeping the packet's timing
    try:
        subs = copy.decoder.decode2(packet)
    except av.FFmpegError as exc:
        warn(report, f"subtitle packet at {packet.pts} could not be decoded ({av_message(exc)}); skipped", quiet)
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


def codec_name(ctx) -> str | None:
    """The codec's canonical name (``mp3``, not the decoder's ``mp3float``), or None."""
    if ctx is None:
        return None
    try:
        return ctx.codec.canonical_name or ctx.name
    except (AttributeError, ValueError):
        return ctx.name


def copy_stream_info(src_stream, out) -> None:
    out.metadata.update({k: v for k, v in src_stream.metadata.items() if k.lower() not in META_SKIP})
    try:
        out.disposition = src_stream.disposition
    except (AttributeError, ValueError, TypeError):
        pass


def copy_metadata(container, output, video, out_video) -> None:
    output.metadata.update({k: v for k, v in container.metadata.items() if k.lower() not in META_SKIP})
    out_video.metadata.update({k: v for k, v in video.metadata.items() if k.lower() not in META_SKIP and k.lower() != "handler_name"})
    timecode = source_timecode(container, video)
    if timecode:
        out_video.metadata["timecode"] = timecode
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
