"""Each decoded frame's quantiser, for the video streams that state one.

H.264: the mean macroblock QP that FFmpeg's decoder exports as ``venc_params`` side data, read
block by block with each block's own position (:func:`macroblock_qps`), so a stream whose decoded
size is not the macroblock grid (SPS frame cropping beyond the padding to 16 pixels) reads as well
as any other. HEVC: the slice QP read from each packet's slice headers
(:mod:`vsjpegfix.quantisers.hevc`), matched to its frame by timestamp. MPEG-1/2, MPEG-4 Part 2,
MJPEG and VP9 likewise, from their own packet readers (:mod:`vsjpegfix.quantisers.readers`), each
value mapped onto the H.264 QP scale by its codec's calibrated table
(:func:`vsjpegfix.quantisers.mapping.codec_qp`). The H.263 family of the DivX/Flash/early-WMV era
(MS-MPEG4 v1-3 "DivX 3", H.263, Sorenson H.263 in FLV, WMV 7/8, RealVideo 1/2): the per-macroblock
quantiser FFmpeg's decoders for them export as ``venc_params`` (twice the H.263 ``QUANT``), read as
H.264's and reported as the mean ``QUANT``, the scale of MPEG-4 Part 2's ``vop_quant`` (same
quantiser, mapped by MPEG-4's table). A frame whose quantisers cannot be read counts as
missing (:attr:`StreamQp.missing`); the transcoder restores it without them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vsjpegfix.quantisers.mapping import H263_FAMILY, codec_qp
from vsjpegfix.quantisers.readers import READER_CODECS, stream_quantiser_reader

#: Codecs whose decoders export each macroblock's quantiser as FFmpeg's ``venc_params`` (H.264 and
#: the H.263 family, whose values are twice the H.263 ``QUANT``: :data:`~vsjpegfix.quantisers.mapping.H263_FAMILY`).
EXPORT_CODECS = frozenset({"h264"} | H263_FAMILY)
#: Codecs whose frames' quantisers can be read: those of :data:`EXPORT_CODECS` from their decoders'
#: export, the others from their packets (HEVC's slice headers, MPEG-1/2 slices, MPEG-4 Part 2 VOPs,
#: MJPEG's quantisation tables, VP9's frame headers).
QP_CODECS = frozenset(EXPORT_CODECS | READER_CODECS)

_BLOCK_FIELDS = 5  # AVVideoBlockParams: src_x, src_y, w, h, delta_qp (int32 each), then possibly more


@dataclass(frozen=True)
class MacroblockQps:
    """The quantiser of every block of a frame that lies (at least partly) inside the decoded picture.

    ``x``, ``y``, ``w``, ``h``: each block's rectangle in luma pixels, clipped to the picture
    (``0 <= x < x + w <= width``); ``qp``: its quantiser (frame QP plus the block's delta, 8-bit
    meaning: see :func:`frame_qp`). All are arrays of one value per block, in the decoder's order.
    """

    x: np.ndarray
    y: np.ndarray
    w: np.ndarray
    h: np.ndarray
    qp: np.ndarray

    def __len__(self) -> int:
        return int(self.qp.size)


@dataclass(frozen=True)
class FrameQuantiser:
    """What one decoded frame's bitstream says about how hard it was compressed.

    ``codec``: the stream's FFmpeg codec name; ``value``: the quantiser in the codec's own scale (H.264
    and HEVC: the QP); ``qp``: the same on the H.264 QP scale that quality profiles use;
    ``picture_type``: ``"I"``, ``"P"`` or ``"B"`` (None when the decoder does not say); ``blocks``: the
    per-macroblock quantisers with their positions (H.264 only, else None); ``adaptive``: the stream
    quantises adaptively within frames (x264/x265 CRF or ABR), so ``qp`` is a base quantiser (H.264:
    some frame's macroblock QPs differed so far; HEVC: a picture parameter set enables coding-unit QP
    changes).
    """

    codec: str
    value: float
    qp: float
    picture_type: str | None = None
    blocks: MacroblockQps | None = None
    adaptive: bool = False


def picture_type(frame) -> str | None:
    """``"I"``, ``"P"`` or ``"B"`` for a decoded PyAV frame (None for other or unknown types)."""
    kind = getattr(frame, "pict_type", None)  # AVPictureType: an int (PyAV 19) or an enum with .name
    name = getattr(kind, "name", None) or {1: "I", 2: "P", 3: "B"}.get(int(kind or 0))
    return name if name in ("I", "P", "B") else None


def _block_table(params) -> np.ndarray:
    """``(nb_blocks, 5)`` int32 rows ``src_x, src_y, w, h, delta_qp`` of a ``VideoEncParams``.

    Read from the side data's buffer at the stride FFmpeg states (``block_size``), checked against
    PyAV's own block accessor on the first and last block; the accessor, block by block, when the
    buffer does not have the expected layout.
    """
    n = int(params.nb_blocks)
    stride = int(params.block_size)

    def accessor(i: int) -> tuple[int, int, int, int, int]:
        b = params.block_params(i)
        return (b.src_x, b.src_y, b.w, b.h, b.delta_qp)

    if stride % 4 == 0 and stride >= 4 * _BLOCK_FIELDS:
        try:
            raw = np.frombuffer(memoryview(params), dtype=np.int32, count=n * stride // 4, offset=int(params.blocks_offset))
            table = raw.reshape(n, stride // 4)[:, :_BLOCK_FIELDS]
        except (ValueError, TypeError, BufferError):
            table = None
        if table is not None and tuple(table[0]) == accessor(0) and tuple(table[-1]) == accessor(n - 1):
            return table
    return np.array([accessor(i) for i in range(n)], dtype=np.int32).reshape(n, _BLOCK_FIELDS)


def macroblock_qps(params, width: int, height: int, bits: int = 8) -> MacroblockQps:
    """Per-block quantisers of a frame's ``venc_params`` side data (PyAV ``VideoEncParams``), with positions.

    Each block carries its own position (``src_x``, ``src_y``) and size; blocks are clipped to the
    ``width`` x ``height`` picture and those wholly outside it (rows or columns that SPS frame
    cropping removed) are left out, so the decoded size need not match the block grid. ``bits`` is
    the luma bit depth: ``QP'Y - 6 * (bits - 8)`` is returned (see :func:`frame_qp`).
    Raises ValueError when the side data has no per-block values.
    """
    if not params.nb_blocks:
        raise ValueError("the side data has no per-block quantisers")
    table = _block_table(params).astype(np.int64)
    x0 = np.clip(table[:, 0], 0, width)
    y0 = np.clip(table[:, 1], 0, height)
    x1 = np.clip(table[:, 0] + table[:, 2], 0, width)
    y1 = np.clip(table[:, 1] + table[:, 3], 0, height)
    inside = (x1 > x0) & (y1 > y0)
    qp = (int(params.qp) + table[:, 4] - 6 * (bits - 8)).astype(np.float64)
    return MacroblockQps(x0[inside], y0[inside], (x1 - x0)[inside], (y1 - y0)[inside], qp[inside])


def _h264_quantisers(frame, bits: int) -> tuple[float | None, MacroblockQps | None]:
    """``(mean QP, per-macroblock QPs)`` of a decoded H.264 frame's ``venc_params`` side data."""
    params = frame.side_data.get("VIDEO_ENC_PARAMS")
    if params is None:
        return None, None
    if not params.nb_blocks:
        return float(params.qp) - 6 * (bits - 8), None
    blocks = macroblock_qps(params, frame.width, frame.height, bits)
    if not len(blocks):
        return None, None
    return float(np.average(blocks.qp, weights=blocks.w * blocks.h)), blocks


def frame_qp(frame, bits: int = 8) -> float | None:
    """Mean quantiser of a decoded frame (PyAV ``VideoFrame``) from its ``venc_params`` side data.

    The decoder must be opened with ``export_side_data=venc_params`` (H.264 only; see
    :func:`configure_h264_decoder`). The mean is over the per-macroblock QPs (frame QP plus block
    deltas) of the blocks inside the decoded picture, weighted by their area in it (:func:`macroblock_qps`); for high bit depth FFmpeg exports ``QP'Y = QPY + 6 * (bits - 8)``, and
    ``QPY``, what an 8-bit stream's QP means relative to the signal's range, is returned. None if the
    frame carries no quantisers (or no block of them lies inside the picture).
    """
    return _h264_quantisers(frame, bits)[0]


def configure_h264_decoder(stream) -> None:
    """Set an H.264 stream's decoder up (before it opens) to export each frame's macroblock QPs safely
    (the same for every codec of :data:`EXPORT_CODECS`: the H.263 family's decoders export alike).

    Adds ``export_side_data=venc_params`` and allows slice threading only: with frame threading,
    FFmpeg builds the export of the picture it outputs while another thread may still be decoding
    that picture, so part or all of its QPs are stale (zeros, or the previous picture's). Seen on
    real x264 encodes under load: B-frames reading a mean QP of 0.0 or 5.4 instead of 39, which the
    profile took for near-lossless frames and left unrestored. Pixels are never affected; decoding
    on one thread costs about 18 ms per 1200x800 frame on the CPU.
    """
    ctx = stream.codec_context
    ctx.options = {**ctx.options, "export_side_data": "venc_params"}
    ctx.thread_type = "SLICE"


class StreamQp:
    """Each decoded frame's quantiser for one video stream (a codec of :data:`QP_CODECS`).

    H.264: the mean macroblock QP the decoder exports (set up here: ``export_side_data=venc_params``
    on the stream's decoder, before it opens). Other codecs: the picture's quantiser read from each
    packet before it is decoded (:meth:`packet`, the codec's reader of
    :func:`vsjpegfix.quantisers.readers.stream_quantiser_reader`), matched to its frame by timestamp
    and mapped onto the H.264 QP scale (:func:`vsjpegfix.quantisers.mapping.codec_qp`). Call :meth:`packet` for every
    packet of the stream before decoding it and :meth:`frame` for every frame before changing its pts.
    A frame whose quantisers cannot be read (none exported, or damaged side data or slice headers)
    gives None and is counted in :attr:`missing`.
    """

    def __init__(self, stream) -> None:
        ctx = stream.codec_context
        self.codec = ctx.name
        if self.codec not in QP_CODECS:
            raise ValueError(f"{self.codec} exports no quantisers")
        self._reader = None
        self._by_pts: dict[int, float | None] = {}
        self.missing = 0  # frames whose quantiser could not be read
        self.adaptive = False  # H.264: some frame's macroblock QPs differed (sticky); HEVC: the reader's flag
        if self.codec in EXPORT_CODECS:
            configure_h264_decoder(stream)
        else:
            self._reader = stream_quantiser_reader(self.codec, ctx.extradata)

    def packet(self, packet) -> None:
        """Read a packet's quantiser (not H.264: kept by its timestamp until its frame is decoded)."""
        if self._reader is not None and packet.size and packet.pts is not None:
            try:
                value = self._reader.packet_qp(bytes(packet))
            except (ValueError, IndexError, KeyError, ZeroDivisionError, OverflowError):
                value = None  # damaged headers: the frame is restored without its quantiser
            if value is not None or packet.pts not in self._by_pts:  # a DivX placeholder keeps its P+B packet's
                self._by_pts[packet.pts] = value

    def frame(self, frame) -> FrameQuantiser | None:
        """The frame's quantiser (H.264: QPY of 8-bit meaning at any bit depth, with its macroblocks), or None."""
        blocks = None
        if self._reader is None:
            try:
                qp, blocks = _h264_quantisers(frame, frame.format.components[0].bits)
            except (ValueError, RuntimeError, TypeError, IndexError):
                qp = None  # side data PyAV cannot read: the frame is restored without its quantiser
            if blocks is not None and len(blocks) and float(np.ptp(blocks.qp)) > 0:
                self.adaptive = True  # the macroblock quantisers differ within a frame (sticky)
            if self.codec in H263_FAMILY:
                qp, blocks = (None if qp is None or qp <= 0 else qp / 2.0), None  # QUANT; skipped frames export 0
        else:
            qp = self._by_pts.pop(frame.pts, None) if frame.pts is not None else None
            self.adaptive = bool(getattr(self._reader, "adaptive", False))  # HEVC: a PPS enables cu_qp_delta
        self.missing += qp is None
        if qp is None:
            return None
        return FrameQuantiser(self.codec, float(qp), codec_qp(self.codec, float(qp)), picture_type(frame), blocks, self.adaptive)
