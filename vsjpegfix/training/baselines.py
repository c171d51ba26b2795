"""Classical (non-learned) deblocking baselines through FFmpeg filter graphs, plus a YUV codec round trip.

The baselines run FFmpeg's own filters through PyAV (:class:`av.filter.Graph`), so the numbers are
what ``ffmpeg -vf ...`` would give on the same planes.

Which filter
------------
FFmpeg's classic post-processing deblockers ``spp``, ``pp7``, ``fspp`` and ``uspp`` (ports of
MPlayer's postprocessing) are GPL filters, absent from the FFmpeg that PyAV's wheels bundle
(PyAV 19: configured without ``--enable-gpl``, licence "LGPL version 3 or later");
:func:`filter_available` / :data:`CANDIDATE_FILTERS` tell what the running build has. The defaults
are picked from what is available, per kind of content:

* **JPEG-like 8x8 blocking (still images):** ``spp`` when the build has it, else
  ``dctdnoiz`` with ``n=3`` (8x8 DCT) and full overlap. ``dctdnoiz`` hard-thresholds the DCT
  coefficients of *every* overlapping 8x8 block (at ``3 * sigma``) and averages the 64 shifted
  reconstructions - the same "shifted re-application of the JPEG transform" idea as ``spp`` at
  its highest quality, with one uniform threshold instead of the quantisation table. Blind: one
  fixed ``sigma`` (:data:`JPEG_SIGMA` = 12, tuned on the astronaut photo and three CBSD68 images
  over QF 10..40, where it gains about +0.3..+0.5 dB PSNR and +1.4..+1.6 dB PSNR-B on RGB).
  ``dctdnoiz`` only accepts RGB pixel formats: colour images go in as ``gbrp`` (the filter
  decorrelates R, G, B with an orthonormal 3-point DCT itself, so luma is thresholded at about
  ``sigma / sqrt(3)`` in pixel units); a single plane goes in as ``gbrp`` with three equal
  planes, whose decorrelated luma is ``sqrt(3)`` times the plane and whose two other channels are
  zero - exactly a luma-only filter with the same effective threshold as on colour images.
* **Everything else (H.264/HEVC video):** also ``dctdnoiz`` 8x8, per plane, but weak
  (:data:`VIDEO_SIGMA` = 3). FFmpeg's block-edge filter ``deblock`` exists in every build but
  only loses on these codecs, which deblock in the loop already (measured on carphone, 30
  frames, Y-PSNR: ``deblock=filter=weak:block=8`` -0.21 dB at x264 QP 27, -0.02 at QP 37, 0.00
  at QP 42; ``dctdnoiz`` sigma 3: +0.05, +0.10, +0.07 dB with x264, -0.09, +0.04, +0.04 with
  x265 at QP 27/37/42; tuned on that same clip, so read the video row as an optimistic
  classical reference). ``deblock`` stays the fallback when ``dctdnoiz`` is missing. The
  decoded YUV planes are filtered as stored, without colour conversion.

Known limitation: ``dctdnoiz`` converts its float result to 8 bits by truncation, so its output
is on average 0.5 code values too dark (measured -0.50 on a natural image); that costs about
0.25 in MSE, i.e. a few hundredths of a dB on JPEG at QF 10..40 and up to about 0.1 dB on video
near 38 dB. It is part of the filter as FFmpeg ships it and is left uncorrected.

Every filter is run per plane in a gray (or three-equal-plane ``gbrp``) frame, so the numbers
never go through swscale; the 8x8 grid of a filter starts at the top-left corner of each plane.

API
---
* :func:`ffmpeg_filter` - run any filter chain on a clip given as planes of a pixel format.
* :func:`deblock_gray`, :func:`deblock_rgb`, :func:`deblock_yuv420` - the baselines with the
  defaults above (``filter=`` overrides).
* :func:`encode_decode_yuv420` - YUV 4:2:0 planes through libx264/libx265 at a constant QP and
  back, planes read directly from the decoded frames (:func:`encode_yuv420` gives the stream's
  bytes, :func:`decode_yuv420` decodes them with each frame's quantiser).
"""

from __future__ import annotations

import io
from fractions import Fraction
from typing import Sequence

import av
import numpy as np

from vsjpegfix.quantisers.stream import QP_CODECS, StreamQp

__all__ = [
    "CANDIDATE_FILTERS",
    "JPEG_SIGMA",
    "DEBLOCK_FILTER",
    "VIDEO_SIGMA",
    "deblock_gray",
    "deblock_rgb",
    "deblock_yuv420",
    "decode_yuv420",
    "default_filter",
    "encode_decode_yuv420",
    "encode_yuv420",
    "ffmpeg_filter",
    "filter_available",
    "read_yuv420",
]

#: Classical deblocking filters looked for in the FFmpeg build, in order of preference for JPEG.
CANDIDATE_FILTERS = ("spp", "pp7", "fspp", "uspp", "dctdnoiz", "deblock")
#: ``dctdnoiz`` sigma of the blind JPEG baseline (8-bit code values, in the filter's decorrelated space).
JPEG_SIGMA = 12.0
#: ``dctdnoiz`` sigma of the video baseline (weak: H.264/HEVC frames are deblocked in the loop).
VIDEO_SIGMA = 3.0
#: ``spp`` setting used instead when the build has it (quality 6 = all 64 shifts, hard threshold).
SPP_FILTER = "spp=quality=6:mode=hard"
#: FFmpeg's block-edge filter: the fallback when ``dctdnoiz`` is missing.
DEBLOCK_FILTER = "deblock=filter=weak:block=8"

# encoder, container (Matroska: its packets carry the timestamps that match an HEVC slice QP to its frame)
_CODECS = {"h264": ("libx264", "matroska"), "x264": ("libx264", "matroska"), "hevc": ("libx265", "matroska"),
           "x265": ("libx265", "matroska")}


def filter_available(name: str) -> bool:
    """Whether the FFmpeg build behind PyAV has the video filter ``name``."""
    return name in av.filter.filters_available


def default_filter(content: str = "jpeg") -> str:
    """The default filter chain for ``content``: ``"jpeg"`` (8x8 JPEG blocking) or ``"video"``.

    See the module docstring: ``spp`` (if built in) or ``dctdnoiz`` sigma :data:`JPEG_SIGMA` for
    JPEG, ``dctdnoiz`` sigma :data:`VIDEO_SIGMA` for video, ``deblock`` as the last resort.
    Raises ``RuntimeError`` when the build has none of them.
    """
    if content not in ("jpeg", "video"):
        raise ValueError(f"content must be 'jpeg' or 'video', got {content!r}")
    if content == "jpeg" and filter_available("spp"):
        return SPP_FILTER
    if filter_available("dctdnoiz"):
        return f"dctdnoiz=sigma={JPEG_SIGMA if content == 'jpeg' else VIDEO_SIGMA:g}:n=3"
    if filter_available("deblock"):
        return DEBLOCK_FILTER
    raise RuntimeError(f"this FFmpeg build has none of the filters {', '.join(CANDIDATE_FILTERS)}")


# --------------------------------------------------------------------------- frames <-> planes

def _plane_view(plane: av.video.plane.VideoPlane, dtype: np.dtype) -> np.ndarray:
    item = np.dtype(dtype).itemsize
    return np.frombuffer(plane, dtype).reshape(-1, plane.line_size // item)[: plane.height, : plane.width]


def _make_frame(planes: Sequence[np.ndarray], pix_fmt: str, width: int, height: int) -> av.VideoFrame:
    frame = av.VideoFrame(width, height, pix_fmt)
    for dst, src in zip(frame.planes, planes):
        view = _plane_view(dst, src.dtype)
        if view.shape != src.shape:
            raise ValueError(f"{pix_fmt} plane of {width}x{height} is {view.shape}, got {src.shape}")
        view[...] = src
    return frame


def _read_frame(frame: av.VideoFrame, dtype: np.dtype, count: int) -> list[np.ndarray]:
    return [_plane_view(p, dtype).copy() for p in frame.planes[:count]]


def ffmpeg_filter(planes: Sequence[np.ndarray], pix_fmt: str, filter: str, *, threads: int = 1) -> list[np.ndarray]:
    """Run the FFmpeg filter chain ``filter`` over a clip given as planes of ``pix_fmt``.

    Args:
        planes: one array per plane in FFmpeg's plane order for ``pix_fmt`` (``gbrp`` is G, B, R),
            each ``(N, h, w)`` for N frames or ``(h, w)`` for one; ``uint8`` for 8-bit formats,
            ``uint16`` for ``gray16le`` and other 16-bit little-endian formats.
        pix_fmt: a planar FFmpeg pixel format (``gray``, ``gray16le``, ``yuv420p``, ``gbrp``, ...).
        filter: a filter chain as in ``ffmpeg -vf`` (``"deblock=filter=weak:block=8"``,
            ``"dctdnoiz=sigma=12:n=3"``, ``"a=...,b=..."``; no commas inside option values).
            The graph ends with ``format=pix_fmt``, so a filter that needs another format gets
            FFmpeg's automatic conversion and the result comes back in ``pix_fmt``.
        threads: filter-graph threads (1 keeps it light and deterministic).

    Returns:
        Filtered planes with the shapes and dtypes of ``planes``.
    """
    arrays = [np.asarray(p) for p in planes]
    if not arrays:
        raise ValueError("no planes given")
    single = arrays[0].ndim == 2
    if single:
        arrays = [a[None] for a in arrays]
    if any(a.ndim != 3 or a.shape[0] != arrays[0].shape[0] for a in arrays):
        raise ValueError("planes must all be (N, h, w) with the same N (or all (h, w))")
    dtype = arrays[0].dtype
    if dtype not in (np.uint8, np.uint16) or any(a.dtype != dtype for a in arrays):
        raise ValueError(f"planes must all be uint8 or all uint16, got {[str(a.dtype) for a in arrays]}")
    n, height, width = arrays[0].shape
    graph = av.filter.Graph()
    graph.threads = int(threads)
    nodes = [graph.add_buffer(width=width, height=height, format=pix_fmt, time_base=Fraction(1, 25))]
    for spec in [*filter.split(","), f"format={pix_fmt}"]:
        name, _, args = spec.strip().partition("=")
        if not filter_available(name):
            raise ValueError(f"FFmpeg filter {name!r} is not in this build (see vsjpegfix.training.baselines.CANDIDATE_FILTERS)")
        nodes.append(graph.add(name, args or None))
    nodes.append(graph.add("buffersink"))
    graph.link_nodes(*nodes).configure()
    out: list[list[np.ndarray]] = []

    def drain() -> None:
        while True:
            try:
                frame = graph.vpull()
            except (av.BlockingIOError, av.EOFError):
                return
            out.append(_read_frame(frame, dtype, len(arrays)))

    for i in range(n):
        frame = _make_frame([a[i] for a in arrays], pix_fmt, width, height)
        frame.pts = i
        frame.time_base = Fraction(1, 25)
        graph.vpush(frame)
        drain()
    graph.vpush(None)
    drain()
    if len(out) != n:
        raise RuntimeError(f"filter {filter!r} returned {len(out)} frames for {n}")
    result = [np.stack([f[p] for f in out]) for p in range(len(arrays))]
    return [r[0] for r in result] if single else result


# --------------------------------------------------------------------------- baselines

def _filter_single_planes(plane: np.ndarray, filter: str | None) -> np.ndarray:
    """One plane (N, h, w) or (h, w), uint8, through ``filter`` (default: the JPEG gray filter)."""
    flt = filter or default_filter("jpeg")
    name = flt.split("=", 1)[0].strip()
    if name == "dctdnoiz":  # RGB-only filter: three equal planes (see module docstring)
        return ffmpeg_filter([plane, plane, plane], "gbrp", flt)[0]
    return ffmpeg_filter([plane], "gray", flt)[0]


def deblock_gray(img: np.ndarray, *, filter: str | None = None) -> np.ndarray:
    """Classical deblocking of a gray ``HxW`` uint8 image (default: the JPEG filter, see module docs)."""
    img = np.asarray(img)
    if img.dtype != np.uint8 or img.ndim != 2:
        raise ValueError(f"expected an HxW uint8 image, got {img.shape} {img.dtype}")
    return _filter_single_planes(img, filter)


def deblock_rgb(img: np.ndarray, *, filter: str | None = None) -> np.ndarray:
    """Classical deblocking of an ``HxWx3`` uint8 RGB image; returns ``HxWx3`` uint8.

    Default: the JPEG filter (``spp`` if built in, else ``dctdnoiz`` full overlap, 8x8, sigma
    :data:`JPEG_SIGMA`) run on the image as ``gbrp``.
    """
    img = np.asarray(img)
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 uint8 image, got {img.shape} {img.dtype}")
    flt = filter or default_filter("jpeg")
    g, b, r = ffmpeg_filter([img[..., 1], img[..., 2], img[..., 0]], "gbrp", flt)
    return np.stack([r, g, b], axis=-1)


def deblock_yuv420(planes: Sequence[np.ndarray], *, filter: str | None = None) -> list[np.ndarray]:
    """Classical deblocking of YUV 4:2:0 planes ``[Y (N,H,W), U (N,H/2,W/2), V]`` (or single frames).

    Default: ``default_filter("video")`` (weak ``dctdnoiz``) on each plane as it is stored (no
    colour conversion, limited range untouched); ``dctdnoiz`` sees each plane as three equal
    ``gbrp`` planes like :func:`deblock_gray`, other filters (``deblock``) a ``gray`` frame.
    Returns planes of the same shapes and dtype (uint8).
    """
    if len(planes) != 3:
        raise ValueError(f"expected 3 planes (Y, U, V), got {len(planes)}")
    arrays = [np.asarray(p) for p in planes]
    if any(a.dtype != np.uint8 for a in arrays):
        raise ValueError("expected uint8 planes")
    flt = filter or default_filter("video")
    return [_filter_single_planes(a, flt) for a in arrays]


# --------------------------------------------------------------------------- codec round trip

def _decode_with_qp(container, want_qp: bool):
    """``(frame, quantiser or None)`` for the first video stream's frames."""
    stream = container.streams.video[0]
    reader = StreamQp(stream) if want_qp and stream.codec_context.name in QP_CODECS else None
    for packet in container.demux(stream):
        if reader is not None:
            reader.packet(packet)
        for frame in packet.decode():
            yield frame, reader.frame(frame) if reader is not None else None  # FrameQuantiser or None


def read_yuv420(path, *, frames: int | None = None, qps: list | None = None) -> list[np.ndarray]:
    """Decode a yuv420p video file into planes ``[Y (T,H,W), U, V]`` exactly as stored (no range conversion).

    ``qps``, if given, receives each frame's quantiser as the transcoder reads it
    (:class:`vsjpegfix.quantisers.stream.StreamQp`: H.264's mean macroblock QP, HEVC's slice QP; None for other codecs).
    """
    out: list[list[np.ndarray]] = []
    with av.open(str(path)) as container:
        for frame, qp in _decode_with_qp(container, qps is not None):
            if frame.format.name != "yuv420p":
                raise ValueError(f"{path}: expected yuv420p, got {frame.format.name}")
            out.append(_read_frame(frame, np.uint8, 3))
            if qps is not None:
                qps.append(qp.qp if qp is not None else None)
            if frames is not None and len(out) >= frames:
                break
    if not out:
        raise ValueError(f"{path}: no frames decoded")
    return [np.stack([f[p] for f in out]) for p in range(3)]


def encode_yuv420(
    planes: Sequence[np.ndarray], codec: str = "x264", *, qp: int | None = None, crf: float | None = None,
    preset: str = "medium", intra: bool = False, colorspace: int = 6, rate: int = 25, stats: dict | None = None,
) -> bytes:
    """Encode YUV 4:2:0 planes with libx264/libx265 at constant ``qp`` (or ``crf``) into Matroska bytes.

    The encoders run single-threaded. x264's output is then the same on every run; libx265's is not
    always (seen on short 64x64 clips: the last frames differ between runs of the same process), so
    studies keep the encoded bytes (write them to a ``.mkv`` file to give the very stream to the transcoder). Arguments as :func:`encode_decode_yuv420`;
    ``stats`` receives ``bytes`` (coded video, without the container's) and ``encoder``.
    """
    if codec not in _CODECS:
        raise ValueError(f"unknown codec {codec!r}; use {', '.join(_CODECS)}")
    if (qp is None) == (crf is None):
        raise ValueError("give exactly one of qp and crf")
    y, u, v = (np.ascontiguousarray(np.asarray(p)) for p in planes)
    if any(p.dtype != np.uint8 or p.ndim != 3 for p in (y, u, v)):
        raise ValueError("planes must be uint8 (T, h, w)")
    t, h, w = y.shape
    if h % 2 or w % 2 or u.shape != (t, h // 2, w // 2) or v.shape != u.shape:
        raise ValueError(f"not 4:2:0 planes: {y.shape} {u.shape} {v.shape}")
    encoder, fmt = _CODECS[codec]
    buf = io.BytesIO()
    with av.open(buf, "w", format=fmt) as out:
        stream = out.add_stream(encoder, rate=rate)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        opts = {"preset": preset}
        mode, value = ("qp", str(int(qp))) if qp is not None else ("crf", f"{crf:g}")
        rc = f"{mode}={value}"
        if encoder == "libx264":
            opts[mode] = value
            if intra:
                opts["x264-params"] = "keyint=1"
        else:
            params = ["log-level=error", rc, "pools=1", "frame-threads=1"] + (["keyint=1"] if intra else [])
            opts["x265-params"] = ":".join(params)
        stream.codec_context.options = opts
        stream.codec_context.colorspace = colorspace
        stream.codec_context.thread_count = 1  # x264: one thread (output depends on the thread count)
        coded = 0  # bytes of coded video, without the container's
        for i in range(t + 1):
            frame = _make_frame([y[i], u[i], v[i]], "yuv420p", w, h) if i < t else None
            if frame is not None:
                frame.pts = i
            for packet in stream.encode(frame):
                coded += packet.size
                out.mux(packet)
    if stats is not None:
        stats["bytes"] = coded
        stats["encoder"] = encoder
    return buf.getvalue()


def decode_yuv420(data: bytes, *, stats: dict | None = None) -> list[np.ndarray]:
    """Decode the Matroska bytes of :func:`encode_yuv420` into planes ``[Y (T,h,w), U, V]``, read straight
    from the decoded frames; ``stats`` receives ``quantisers`` and ``frame_qp`` (see :func:`encode_decode_yuv420`)."""
    decoded: list[list[np.ndarray]] = []
    quantisers = []
    with av.open(io.BytesIO(data), "r", format="matroska") as inp:
        for frame, qp in _decode_with_qp(inp, stats is not None):
            if frame.format.name != "yuv420p":
                raise ValueError(f"expected yuv420p, got {frame.format.name}")
            decoded.append(_read_frame(frame, np.uint8, 3))
            quantisers.append(qp)
    if stats is not None:
        stats["frame_qp"] = [q.qp if q is not None else None for q in quantisers]
        stats["quantisers"] = quantisers  # FrameQuantiser per frame (picture type, H.264 macroblocks)
    if not decoded:
        raise ValueError("no frames decoded")
    return [np.stack([d[p] for d in decoded]) for p in range(3)]


def encode_decode_yuv420(
    planes: Sequence[np.ndarray], codec: str = "x264", *, qp: int | None = None, crf: float | None = None,
    preset: str = "medium", intra: bool = False, colorspace: int = 6, rate: int = 25, stats: dict | None = None,
) -> list[np.ndarray]:
    """Encode YUV 4:2:0 planes with libx264/libx265 at constant ``qp`` (or ``crf``) and decode them back
    (:func:`encode_yuv420`, then :func:`decode_yuv420`).

    The encoders run single-threaded, so the result is the same on every machine.

    Args:
        planes: ``[Y (T,H,W), U (T,H/2,W/2), V]`` uint8, limited range as stored in a video.
        codec: ``x264``/``h264`` (libx264) or ``x265``/``hevc`` (libx265).
        qp: constant quantiser (x264 ``qp``, x265 ``qp``; P/B frames get the encoders' usual
            ``ipratio``/``pbratio`` offsets).
        crf: constant rate factor instead of ``qp`` (exactly one of the two is given).
        preset: encoder preset (``medium`` is both encoders' default); the default GOP structure
            with P and B frames unless ``intra``.
        colorspace: AVColorSpace tag written to the stream (6 = BT.601, 1 = BT.709); metadata only.
        rate: frame rate written to the stream (x264/x265 rate control does not use it at constant QP).
        stats: if given, receives ``bytes`` (size of the elementary stream), ``encoder`` and
            ``quantisers`` (per decoded frame, :class:`~vsjpegfix.quantisers.stream.FrameQuantiser` or None) and
            ``frame_qp`` (per decoded frame, the quantiser as the transcoder reads it: the mean
            macroblock QP the H.264 decoder exports, HEVC's slice QP).

    Returns:
        Decoded planes, same shapes, read straight from the decoded frames' planes.
    """
    data = encode_yuv420(planes, codec, qp=qp, crf=crf, preset=preset, intra=intra, colorspace=colorspace, rate=rate,
                         stats=stats)
    decoded = decode_yuv420(data, stats=stats)
    t = np.asarray(planes[0]).shape[0]
    if decoded[0].shape[0] != t:
        raise RuntimeError(f"{_CODECS[codec][0]} returned {decoded[0].shape[0]} frames for {t}")
    return decoded
