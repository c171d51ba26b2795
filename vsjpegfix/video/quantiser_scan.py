"""Every frame's quantiser of a video file, in presentation order, without restoring anything.

What the VapourSynth filters attach to a clip from any frame-accurate source filter
(:mod:`vsjpegfix.vapoursynth.props`), read the way the transcoder reads them
(:class:`vsjpegfix.quantisers.stream.StreamQp`, the same per-codec mapping onto the H.264 QP scale):

* MPEG-1/2, MPEG-4 Part 2, MJPEG, VP9 and HEVC: decode-free, each packet's quantiser read from its
  bytes and the frames put in presentation order by their timestamps (the picture type from the
  headers where the reader parses it: MPEG-1/2 and MPEG-4 pictures, VP9 key/inter frames, MJPEG
  intra; HEVC keyframes as ``I``, else unknown);
* H.264 and the H.263 family (MS-MPEG4/DivX 3, H.263, FLV, WMV 7/8, RealVideo 1/2: their quantisers only
  their decoders export), and any stream whose packets carry no
  timestamps: one decode pass, slice-threaded (frame threading was found to race with the QP
  export), the pixels never converted or copied.
"""

from __future__ import annotations

import dataclasses

from dataclasses import dataclass
from pathlib import Path

import av

from vsjpegfix.quantisers.mapping import codec_qp
from vsjpegfix.quantisers.stream import (
    EXPORT_CODECS,
    QP_CODECS,
    FrameQuantiser,
    StreamQp,
    picture_type,
)


class ScanError(ValueError):
    """The file cannot be read, or has no video stream."""


@dataclass
class QuantiserScan:
    """``codec`` (FFmpeg's name) and each frame's quantiser in presentation order (None: unreadable)."""

    codec: str
    quantisers: list[FrameQuantiser | None]

    @property
    def missing(self) -> int:
        return sum(q is None for q in self.quantisers)


_MPEG_TYPES = {1: "I", 2: "P", 3: "B"}


def _packet_type(codec: str, reader, packet) -> str | None:
    """The picture type of the packet just read by ``reader`` (None where it does not say)."""
    if codec in ("mpeg1video", "mpeg2video"):
        pictures = getattr(reader, "last_pictures", None)
        return _MPEG_TYPES.get(pictures[0].coding_type) if pictures else None
    if codec == "mpeg4":
        vops = [v for v in getattr(reader, "last_vops", []) if v.coded]
        kind = vops[0].coding_type if vops else None
        return kind if kind in ("I", "P", "B") else "P" if kind == "S" else None
    if codec == "hevc":
        return reader.picture_type  # the first slice's type, as FFmpeg types the decoded picture
    if codec == "mjpeg":
        return "I"
    if codec == "vp9":
        frames = [f for f in getattr(reader, "last_frames", []) if f.shown]
        return None if not frames else "I" if frames[-1].kind in ("key", "intra-only") else "P"
    return "I" if packet.is_keyframe else None


def _from_packets(container, stream) -> list[FrameQuantiser | None] | None:
    """Decode-free: the packets' quantisers ordered by timestamp (None when a packet has no timestamp)."""
    from vsjpegfix.quantisers.readers import stream_quantiser_reader

    codec = stream.codec_context.name
    reader = stream_quantiser_reader(codec, stream.codec_context.extradata)
    found: dict[int, FrameQuantiser | None] = {}
    for packet in container.demux(stream):
        if not packet.size:
            continue
        if packet.pts is None or packet.pts in found:
            return None
        try:
            value = reader.packet_qp(bytes(packet))
        except (ValueError, IndexError, KeyError, ZeroDivisionError, OverflowError):
            value = None
        found[packet.pts] = (None if value is None else
                             FrameQuantiser(codec, float(value), codec_qp(codec, float(value)), _packet_type(codec, reader, packet),
                                            adaptive=bool(getattr(reader, "adaptive", False))))
    return [found[pts] for pts in sorted(found)]


def decoded_quantisers(container, stream, limit: int | None = None) -> list[FrameQuantiser | None]:
    """One decode pass (slice threads) over ``stream`` of ``container`` (a codec of
    :data:`~vsjpegfix.quantisers.stream.QP_CODECS`), each frame's quantiser as :class:`StreamQp` reads it
    (None where unread), in decoding output order; ``limit``: stop after that many frames."""
    stream.codec_context.thread_type = "SLICE"
    reader = StreamQp(stream)
    out: list[FrameQuantiser | None] = []
    for packet in container.demux(stream):
        reader.packet(packet)
        for frame in packet.decode():
            q = reader.frame(frame)
            if q is not None and q.picture_type is None:
                q = dataclasses.replace(q, picture_type=picture_type(frame))
            out.append(q)
        if limit is not None and len(out) >= limit:
            break
    return out


def scan_quantisers(path: Path | str) -> QuantiserScan:
    """Each frame's quantiser of the first video stream of ``path``, in presentation order.

    A codec without quantisers (see :data:`~vsjpegfix.quantisers.stream.QP_CODECS`) gives an empty
    list. Raises :class:`ScanError` (one line) for a file that cannot be read or has no video.
    """
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise ScanError(f"{path}: no video stream")
            stream = container.streams.video[0]
            codec = stream.codec_context.name
            if codec not in QP_CODECS:
                return QuantiserScan(codec, [])
            if codec not in EXPORT_CODECS:  # H.264 and the H.263 family: only their decoders export quantisers
                ordered = _from_packets(container, stream)
                if ordered is not None:
                    return QuantiserScan(codec, ordered)
                container.seek(0, stream=stream)
            return QuantiserScan(codec, decoded_quantisers(container, stream))
    except (av.FFmpegError, OSError, UnicodeDecodeError) as exc:
        raise ScanError(f"{path}: cannot read the video ({getattr(exc, 'strerror', None) or exc})") from None
