"""Per-picture quantiser of an MPEG-2 (or MPEG-1) video stream, read from its slice headers.

Every slice header carries a 5-bit ``quantiser_scale_code`` (ISO/IEC 13818-2 6.2.4 and 6.3.16;
ISO/IEC 11172-2 2.4.2.7). MPEG-2 maps it to ``quantiser_scale`` (13818-2 7.4.2.2, Table 7-6) with the
picture coding extension's ``q_scale_type``: linearly (``2 * code``, 2..62) or with the non-linear
table (1..112). The value reported here is that ``quantiser_scale``, the mean over the slices of the
packet's picture(s); a packet holding two field pictures (``picture_structure`` 1 and 2, which
FFmpeg's parser puts in one packet) gets the mean over the slices of both fields. Macroblocks can
change the quantiser (``quantiser_scale_code`` in the macroblock header, 6.2.5); reaching it needs
the macroblock layer's VLCs, so those changes are not seen: the value is the slices' quantiser,
exact for encoders that set one quantiser per slice or picture (FFmpeg without adaptive
quantisation) and the starting point of the macroblocks' for others.

MPEG-1 (no sequence extension, no picture coding extension) has no ``q_scale_type``: its
``quantiser_scale`` is the code itself, and it reconstructs ``(2 * level + sign) * quantiser_scale
* W / 16`` (11172-2 2.4.4), twice MPEG-2's ``(2 * level + k) * quantiser_scale * W / 32``
(13818-2 7.4.2.3). To put both on one scale the reader reports MPEG-1 slices as ``2 * code``, the
MPEG-2 ``quantiser_scale`` of the same step size (FFmpeg's decoders export the same numbers in their
``venc_params`` side data).

Step size: the coefficients are those of the orthonormal 8x8 DCT, and a ``quantiser_scale`` ``q``
quantises coefficient ``(u, v)`` with a step of ``q * W[u, v] / 16`` (W: the intra or non-intra
weighting matrix; the default non-intra matrix is flat 16, the default intra one 8..83, about 16-27
at the low frequencies that carry blocking). H.264's step is ``Qstep = 0.625 * 2 ** (QP / 6)`` on
the same (orthonormal) scale, so at ``W = 16``: ``QP = 6 * log2(q / 0.625)``
(:func:`equivalent_h264_qp`; q 2 ~ QP 10, q 16 ~ QP 28, q 62 ~ QP 40, q 112 ~ QP 45).

Anything unexpected (a slice before any picture header, a zero ``quantiser_scale_code``, a
truncated header) gives ``None`` for that packet. Packets map to frames one to one (FFmpeg's
``mpegvideo`` parser makes one packet per frame, or per field pair), and a packet's pts is its
frame's pts in every container (B-frame reordering included), so they are matched by pts as
:class:`vsjpegfix.quantisers.stream.StreamQp` does for HEVC.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from vsjpegfix.quantisers.bits import BitReader, BitstreamError, start_code_units

__all__ = ["NON_LINEAR_QUANTISER_SCALE", "Mpeg2Picture", "Mpeg2QpReader", "equivalent_h264_qp"]

#: ``quantiser_scale`` of each ``quantiser_scale_code`` with ``q_scale_type`` 1 (13818-2 Table 7-6).
NON_LINEAR_QUANTISER_SCALE = (
    None, 1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 14, 16, 18, 20, 22,
    24, 28, 32, 36, 40, 44, 48, 52, 56, 64, 72, 80, 88, 96, 104, 112,
)

_PICTURE, _SLICE_FIRST, _SLICE_LAST = 0x00, 0x01, 0xAF
_SEQUENCE_HEADER, _EXTENSION, _SEQUENCE_END = 0xB3, 0xB5, 0xB7
_SEQUENCE_EXT, _SEQUENCE_SCALABLE_EXT, _PICTURE_CODING_EXT = 1, 5, 8
_STRUCTURES = {1: "top field", 2: "bottom field", 3: "frame"}


@dataclass
class Mpeg2Picture:
    """One coded picture: its type (1 I, 2 P, 3 B, 4 D), structure and the quantiser_scale of each slice.

    ``picture_structure`` is 3 (frame) for MPEG-1 and MPEG-2 frame pictures, 1/2 for a top/bottom
    field picture; ``mpeg2`` tells whether a picture coding extension followed the header.
    """

    coding_type: int
    picture_structure: int = 3
    q_scale_type: int = 0
    mpeg2: bool = False
    quantiser_scales: list[int] = field(default_factory=list)

    @property
    def mean_quantiser_scale(self) -> float | None:
        q = self.quantiser_scales
        return sum(q) / len(q) if q else None


class Mpeg2QpReader:
    """Reads the mean slice ``quantiser_scale`` of each MPEG-1/MPEG-2 video packet.

    ``extradata``: the stream's codec extradata (the sequence header and extensions, as MP4/MKV
    store it), or None. The sequence header is also taken from packets as it comes (every GOP, in
    MPEG-PS/TS); it is only needed for pictures taller than 2800 lines and for data-partitioned
    scalable streams, so a stream read from its middle works too.

    :attr:`scale` names the value: MPEG-2's ``quantiser_scale`` (MPEG-1 slices as ``2 * code``).
    """

    scale = "quantiser_scale"

    def __init__(self, extradata: bytes | None = None):
        self._vertical_size = 0
        self._data_partitioning = False
        self.last_pictures: list[Mpeg2Picture] = []  # the pictures of the last packet read
        if extradata:
            try:
                self.pictures(bytes(extradata))
            except (BitstreamError, IndexError):
                pass  # unreadable extradata: in-band headers may follow

    def pictures(self, data: bytes) -> list[Mpeg2Picture]:
        """The coded pictures of one packet (or any run of start-code units), in stream order.

        Raises :class:`BitstreamError` on a malformed header; :meth:`packet_qp` turns that into None.
        """
        pictures: list[Mpeg2Picture] = []
        current: Mpeg2Picture | None = None
        for code, payload in start_code_units(data):
            if _SLICE_FIRST <= code <= _SLICE_LAST:
                if current is None:
                    raise BitstreamError("slice before any picture header")
                current.quantiser_scales.append(self._slice_quantiser(payload, current))
            elif code == _PICTURE:
                r = BitReader(payload)
                r.u(10)  # temporal_reference
                coding_type = r.u(3)
                if not 1 <= coding_type <= 4:
                    raise BitstreamError("bad picture_coding_type")
                current = Mpeg2Picture(coding_type)
                pictures.append(current)
            elif code == _EXTENSION:
                self._extension(payload, current)
            elif code == _SEQUENCE_HEADER:
                r = BitReader(payload)
                r.u(12)  # horizontal_size_value
                self._vertical_size = r.u(12)
                self._data_partitioning = False
                current = None
            elif code == _SEQUENCE_END:
                current = None
        return pictures

    def _extension(self, payload: bytes, current: Mpeg2Picture | None) -> None:
        r = BitReader(payload)
        kind = r.u(4)
        if kind == _SEQUENCE_EXT:
            r.u(8)  # profile_and_level_indication
            r.u(1)  # progressive_sequence
            r.u(2)  # chroma_format
            r.u(2)  # horizontal_size_extension
            self._vertical_size = (self._vertical_size & 0xFFF) | (r.u(2) << 12)
        elif kind == _SEQUENCE_SCALABLE_EXT:
            self._data_partitioning = r.u(2) == 0  # scalable_mode "data partitioning"
        elif kind == _PICTURE_CODING_EXT and current is not None:
            r.u(16)  # f_code[2][2]
            r.u(2)  # intra_dc_precision
            structure = r.u(2)
            if structure not in _STRUCTURES:
                raise BitstreamError("bad picture_structure")
            r.u(3)  # top_field_first, frame_pred_frame_dct, concealment_motion_vectors
            current.picture_structure = structure
            current.q_scale_type = r.u(1)
            current.mpeg2 = True

    def _slice_quantiser(self, payload: bytes, picture: Mpeg2Picture) -> int:
        r = BitReader(payload)
        if picture.mpeg2 and self._vertical_size > 2800:
            r.u(3)  # slice_vertical_position_extension
        if picture.mpeg2 and self._data_partitioning:
            r.u(7)  # priority_breakpoint
        code = r.u(5)
        if code == 0:
            raise BitstreamError("quantiser_scale_code 0 is forbidden")
        if picture.q_scale_type:
            return NON_LINEAR_QUANTISER_SCALE[code]
        return 2 * code

    def packet_qp(self, data: bytes) -> float | None:
        """Mean ``quantiser_scale`` over the slices of the packet's picture(s) (None if none can be read)."""
        try:
            pictures = self.pictures(data if isinstance(data, bytes) else bytes(data))
        except (BitstreamError, IndexError, ValueError):
            self.last_pictures = []
            return None
        self.last_pictures = pictures
        scales = [q for p in pictures for q in p.quantiser_scales]
        return sum(scales) / len(scales) if scales else None


def equivalent_h264_qp(quantiser_scale: float) -> float:
    """H.264 QP of the same step size as MPEG-2 ``quantiser_scale`` at weight 16 (see the module docstring).

    ``Qstep = q * 16 / 16 = 0.625 * 2 ** (QP / 6)``, so ``QP = 6 * log2(q / 0.625)``. A first-order
    equivalence from the step sizes alone (MPEG-2 has no in-loop deblocking, and intra pictures'
    default matrix quantises their high frequencies more coarsely); to be refined by calibration.
    """
    return 6.0 * math.log2(max(float(quantiser_scale), 1e-6) / 0.625)
