"""The codec round trip for the codecs of old archives: MPEG-2, MPEG-4 Part 2, MJPEG, VP9 and the H.263 family
(DivX 3, FLV, WMV 8) at a fixed quantiser.

The counterpart of :func:`vsjpegfix.training.baselines.encode_decode_yuv420` (libx264/libx265) for
FFmpeg's ``mpeg2video``, ``mpeg4`` and ``mjpeg`` encoders and ``libvpx-vp9``: YUV 4:2:0 planes are
encoded at one fixed quantiser (``qmin = qmax = q``: MPEG-2 ``quantiser_scale`` code and MPEG-4
``vop_quant`` 1..31, MJPEG's ``qscale`` 1..31, libvpx's quantizer 0..63 = q index ``4 q``), in the
containers such files come in (MPEG-PS, AVI, WebM), with a DVD-like GOP (I, P and B pictures) where
the codec has one, one thread (reproducible), and decoded back with each frame's quantiser read as
the transcoder reads it (:class:`vsjpegfix.quantisers.stream.StreamQp`).
"""

from __future__ import annotations

import io
from typing import Any, Sequence

import av
import numpy as np

from vsjpegfix.quantisers.stream import StreamQp

#: codec name (the decoder's, as :class:`~vsjpegfix.quantisers.stream.StreamQp` reports it) ->
#: (FFmpeg encoder, container format, pixel format)
ARCHIVE_CODECS: dict[str, tuple[str, str, str]] = {
    "mpeg2video": ("mpeg2video", "vob", "yuv420p"),
    "mpeg4": ("mpeg4", "avi", "yuv420p"),
    "mjpeg": ("mjpeg", "avi", "yuvj420p"),
    "vp9": ("libvpx-vp9", "webm", "yuv420p"),
    "msmpeg4": ("msmpeg4", "avi", "yuv420p"),  # DivX ;-) 3.11 (MS-MPEG4 v3; no B pictures)
    "flv": ("flv", "flv", "yuv420p"),  # Sorenson H.263 (Flash video)
    "wmv2": ("wmv2", "asf", "yuv420p"),  # Windows Media Video 8
}
#: The quantiser range each encoder takes (``q`` of :func:`encode_decode_archive`).
Q_RANGE = {"mpeg2video": (1, 31), "mpeg4": (1, 31), "mjpeg": (1, 31), "vp9": (0, 63), "msmpeg4": (1, 31), "flv": (1, 31), "wmv2": (1, 31)}
GOP = 12  # a DVD's GOP (15 for PAL, 18 for NTSC at most; 12 is common)
B_FRAMES = 2


def _frame(planes: Sequence[np.ndarray], pix_fmt: str, t: int) -> av.VideoFrame:
    h, w = planes[0].shape[1:]
    frame = av.VideoFrame(w, h, pix_fmt)
    for plane, data in zip(frame.planes, planes):
        view = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)
        view[:, : data.shape[2]] = data[t]
    frame.pts = t
    return frame


def encode_archive(planes: Sequence[np.ndarray], codec: str, q: int, *, rate: int = 25) -> tuple[bytes, str]:
    """Encode ``[Y, U, V]`` uint8 planes (T, h, w; 4:2:0) with ``codec``'s encoder at the fixed quantiser ``q``.

    Returns the file's bytes and its container format. MPEG-2 and MPEG-4 get a GOP of
    :data:`GOP` with :data:`B_FRAMES` B pictures (MPEG-4 as Xvid writes it), the H.263 family (MS-MPEG4 v3,
    FLV, WMV 8) the same GOP without B pictures; MJPEG is all intra;
    libvpx-vp9 runs at ``deadline=good``, ``cpu-used=4`` in constant quality (``crf = q``, pinned by ``qmin = qmax``). The plane
    bytes are written as they are (MJPEG: tagged full range, without conversion).
    """
    if codec not in ARCHIVE_CODECS:
        raise ValueError(f"unknown archive codec {codec!r}; use {', '.join(ARCHIVE_CODECS)}")
    lo, hi = Q_RANGE[codec]
    if not lo <= int(q) <= hi:
        raise ValueError(f"{codec}: quantiser {q} is outside {lo}..{hi}")
    encoder, fmt, pix_fmt = ARCHIVE_CODECS[codec]
    t, h, w = planes[0].shape
    buf = io.BytesIO()
    with av.open(buf, "w", format=fmt) as out:
        stream = out.add_stream(encoder, rate=rate)
        stream.width, stream.height, stream.pix_fmt = w, h, pix_fmt
        ctx = stream.codec_context
        ctx.qmin = ctx.qmax = int(q)
        ctx.thread_count = 1
        options: dict[str, str] = {}
        if codec in ("mpeg2video", "mpeg4"):
            ctx.gop_size, ctx.max_b_frames = GOP, B_FRAMES
        elif codec in ("msmpeg4", "flv", "wmv2"):
            ctx.gop_size = GOP
        if codec == "mpeg4":
            ctx.codec_tag = "XVID"
        if codec == "vp9":
            options = {"deadline": "good", "cpu-used": "4", "b": "0", "crf": str(int(q))}
        ctx.options = options
        for i in range(t + 1):
            frame = _frame([np.asarray(p) for p in planes], pix_fmt, i) if i < t else None
            for packet in stream.encode(frame):
                out.mux(packet)
    return buf.getvalue(), fmt


def decode_archive(data: bytes, fmt: str, stats: dict[str, Any] | None = None) -> list[np.ndarray]:
    """Decode a file made by :func:`encode_archive` into ``[Y, U, V]`` (T, h, w) planes as stored.

    ``stats``, if given, receives ``quantisers`` (per frame in display order, the
    :class:`~vsjpegfix.quantisers.stream.FrameQuantiser` the transcoder reads, or None) and ``frame_qp``
    (their H.264-scale ``qp``).
    """
    frames: list[list[np.ndarray]] = []
    quantisers = []
    with av.open(io.BytesIO(data), "r", format=fmt) as container:
        stream = container.streams.video[0]
        reader = StreamQp(stream)
        for packet in container.demux(stream):
            reader.packet(packet)
            for frame in packet.decode():
                quantisers.append(reader.frame(frame))
                frames.append([np.frombuffer(p, np.uint8).reshape(p.height, p.line_size)[:, : (frame.width if i == 0 else (frame.width + 1) // 2)].copy()
                               for i, p in enumerate(frame.planes)])
    if stats is not None:
        stats["quantisers"] = quantisers
        stats["frame_qp"] = [q.qp if q is not None else None for q in quantisers]
        stats["bytes"] = len(data)
    return [np.stack([f[p] for f in frames]) for p in range(3)]


def encode_decode_archive(planes: Sequence[np.ndarray], codec: str, q: int, *, stats: dict[str, Any] | None = None) -> list[np.ndarray]:
    """:func:`encode_archive` then :func:`decode_archive`: the decoded planes (same shapes), ``stats`` as there."""
    data, fmt = encode_archive(planes, codec, q)
    decoded = decode_archive(data, fmt, stats)
    if decoded[0].shape != np.asarray(planes[0]).shape:
        raise RuntimeError(f"{codec} returned {decoded[0].shape} for {np.asarray(planes[0]).shape}")
    return decoded
