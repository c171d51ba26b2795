"""Per-picture quantiser of a VP9 stream, read from its uncompressed frame headers.

Every VP9 frame starts with an uncompressed header (VP9 Bitstream & Decoding Process Specification
v0.6, 6.2 and 7.2) that states ``base_q_idx`` (6.2.9 ``quantization_params``, 0..255), the index of
the AC quantiser of the luma plane (8.6.1 ``ac_q``). Reaching it needs nothing from earlier frames:
the header is parsed from the frame marker through the colour config, frame size, reference and
loop-filter fields. The value reported is ``base_q_idx``; the delta of the DC and chroma
quantisers is not included, and neither are segment-level quantisers (6.2.11
``segmentation_params``, libvpx's ``aq-mode``), whose per-block map lies in the compressed data:
:attr:`Vp9QpReader.last_frames` keeps each frame's segment Q feature for callers that care.

Superframes (Annex B): a packet may hold several frames, with an index at its end. libvpx packs a
hidden alternate reference frame (``show_frame`` 0, never displayed) with the next shown frame;
the packet's value is that of the frame(s) it shows (mean if there were several), and a packet
that shows none gives None. ``show_existing_frame`` packets (a 1-2 byte header that displays an
already decoded reference frame again) get that frame's ``base_q_idx``, tracked through
``refresh_frame_flags`` into the eight reference slots: the picture shown is that frame, pixel for
pixel (None when the reader has not seen the frame that filled the slot).

Step size: the 8-bit AC quantiser ``ac_q(q)`` (Table 8.6.1 ``ac_qlookup[0]``, 4..1828) is the step
of VP9's transform, whose coefficients are 8 times those of the orthonormal DCT (4x4 to 16x16;
32x32 halves the dequantised value to the same end), so the orthonormal step is ``ac_q / 8``.
H.264's is ``Qstep = 0.625 * 2 ** (QP / 6)``, so ``QP = 6 * log2(ac_q(q) / 5)``
(:func:`equivalent_h264_qp`; q 0 ~ QP -2 (lossless when every delta is 0 too), q 60 ~ QP 22.5,
q 120 ~ QP 29.6, q 200 ~ QP 42, q 255 ~ QP 51). High bit depth streams use their own tables on a
signal scaled alike, so the 8-bit table gives their equivalent too.

Anything unexpected (a bad frame marker or sync code, a reserved bit set, data that ends early, a
broken superframe index) gives None for that packet. A packet's pts is its shown frame's pts in
WebM/MKV, MP4 and IVF, so packets are matched to frames by pts as :class:`vsjpegfix.quantisers.stream.StreamQp`
does for HEVC.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from vsjpegfix.quantisers.bits import BitReader, BitstreamError

__all__ = ["AC_QLOOKUP_8BIT", "Vp9Frame", "Vp9QpReader", "equivalent_h264_qp", "superframe_frames"]

#: 8-bit AC quantiser of each q index (VP9 specification 8.6.1, ``ac_qlookup[0]``).
AC_QLOOKUP_8BIT = (
    4, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22,
    23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38,
    39, 40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, 52, 53, 54,
    55, 56, 57, 58, 59, 60, 61, 62, 63, 64, 65, 66, 67, 68, 69, 70,
    71, 72, 73, 74, 75, 76, 77, 78, 79, 80, 81, 82, 83, 84, 85, 86,
    87, 88, 89, 90, 91, 92, 93, 94, 95, 96, 97, 98, 99, 100, 101, 102,
    104, 106, 108, 110, 112, 114, 116, 118, 120, 122, 124, 126, 128, 130, 132, 134,
    136, 138, 140, 142, 144, 146, 148, 150, 152, 155, 158, 161, 164, 167, 170, 173,
    176, 179, 182, 185, 188, 191, 194, 197, 200, 203, 207, 211, 215, 219, 223, 227,
    231, 235, 239, 243, 247, 251, 255, 260, 265, 270, 275, 280, 285, 290, 295, 300,
    305, 311, 317, 323, 329, 335, 341, 347, 353, 359, 366, 373, 380, 387, 394, 401,
    408, 416, 424, 432, 440, 448, 456, 465, 474, 483, 492, 501, 510, 520, 530, 540,
    550, 560, 571, 582, 593, 604, 615, 627, 639, 651, 663, 676, 689, 702, 715, 729,
    743, 757, 771, 786, 801, 816, 832, 848, 864, 881, 898, 915, 933, 951, 969, 988,
    1007, 1026, 1046, 1066, 1087, 1108, 1129, 1151, 1173, 1196, 1219, 1243, 1267, 1292, 1317, 1343,
    1369, 1396, 1423, 1451, 1479, 1508, 1537, 1567, 1597, 1628, 1660, 1692, 1725, 1759, 1793, 1828,
)

_SYNC_CODE = 0x498342
_CS_RGB = 7
_SEGMENT_FEATURE_BITS = (8, 6, 2, 0)  # alternate quantiser, loop filter, reference frame, skip
_SEGMENT_FEATURE_SIGNED = (True, True, False, False)


@dataclass
class Vp9Frame:
    """One frame of a packet: whether it is shown, its ``base_q_idx`` (None if unknown) and kind.

    ``kind``: ``"key"``, ``"intra-only"``, ``"inter"`` or ``"show-existing"`` (then ``base_q_idx`` is
    the shown reference frame's). ``segment_q``: with segmentation enabled, the alternate quantiser
    feature per segment (None where disabled) and whether it is absolute (True) or a delta.
    """

    kind: str
    shown: bool
    base_q_idx: int | None
    refresh_frame_flags: int = 0
    segment_q: tuple[tuple[int | None, ...], bool] | None = None


def superframe_frames(data: bytes) -> list[bytes]:
    """The frames of a packet: those listed by its superframe index (VP9 Annex B), or the packet itself.

    Raises :class:`BitstreamError` when an index is present but its sizes overrun the packet.
    """
    if not data:
        return []
    last = data[-1]
    if last & 0xE0 != 0xC0:
        return [data]
    count, size_bytes = (last & 7) + 1, ((last >> 3) & 3) + 1
    index_size = 2 + size_bytes * count
    if len(data) < index_size or data[-index_size] != last:
        return [data]  # not an index: the marker-like byte is frame data
    frames, offset = [], 0
    body = len(data) - index_size
    for k in range(count):
        at = len(data) - index_size + 1 + k * size_bytes
        size = int.from_bytes(data[at : at + size_bytes], "little")
        if offset + size > body:
            raise BitstreamError("superframe index overruns the packet")
        if size:
            frames.append(data[offset : offset + size])
        offset += size
    return frames


class Vp9QpReader:
    """Reads the ``base_q_idx`` of the frame each VP9 packet shows.

    ``extradata``: unused (VP9's ``vpcC`` record holds no header fields the parse needs); accepted for
    the common interface. The reader keeps the profile-independent state it needs across packets:
    the ``base_q_idx`` last written into each of the eight reference slots (for
    ``show_existing_frame``) and the segmentation quantiser features.
    """

    scale = "base_q_idx"

    def __init__(self, extradata: bytes | None = None):
        self._slots: list[int | None] = [None] * 8
        self._segment_q: list[int | None] = [None] * 8
        self._segment_abs = False
        self.last_frames: list[Vp9Frame] = []  # the frames of the last packet read

    def frames(self, data: bytes) -> list[Vp9Frame]:
        """The frames of one packet in decode order. Raises :class:`BitstreamError` on a damaged header."""
        return [self._frame(f) for f in superframe_frames(data)]

    def _frame(self, data: bytes) -> Vp9Frame:
        r = BitReader(data)
        if r.u(2) != 2:
            raise BitstreamError("bad frame_marker")
        profile = r.u(1) | (r.u(1) << 1)  # profile_low_bit, profile_high_bit
        if profile == 3 and r.u(1):
            raise BitstreamError("reserved_zero set")
        if r.u(1):  # show_existing_frame
            slot = r.u(3)
            return Vp9Frame("show-existing", True, self._slots[slot])
        key = r.u(1) == 0  # frame_type: 0 = KEY_FRAME
        shown = r.flag()
        error_resilient = r.flag()
        if key:
            self._sync_code(r)
            self._color_config(r, profile)
            r.u(32)  # frame_width_minus_1, frame_height_minus_1
            self._render_size(r)
            refresh, intra, kind = 0xFF, True, "key"
        else:
            intra = False if shown else r.flag()  # intra_only
            if not error_resilient:
                r.u(2)  # reset_frame_context
            if intra:
                self._sync_code(r)
                if profile > 0:
                    self._color_config(r, profile)
                refresh = r.u(8)
                r.u(32)
                self._render_size(r)
                kind = "intra-only"
            else:
                refresh = r.u(8)
                r.u(3 * 4)  # ref_frame_idx[3] (3 bits), ref_frame_sign_bias (1 bit) each
                for _ in range(3):  # frame_size_with_refs
                    if r.u(1):  # found_ref
                        break
                else:
                    r.u(32)
                self._render_size(r)
                r.u(1)  # allow_high_precision_mv
                if not r.u(1):  # is_filter_switchable
                    r.u(2)  # raw_interpolation_filter
                kind = "inter"
        if not error_resilient:
            r.u(2)  # refresh_frame_context, frame_parallel_decoding_mode
        r.u(2)  # frame_context_idx
        if intra or error_resilient:  # setup_past_independence(): segmentation features reset
            self._segment_q = [None] * 8
            self._segment_abs = False
        self._loop_filter_params(r)
        q = r.u(8)  # base_q_idx
        for _ in range(3):  # delta_q_y_dc, delta_q_uv_dc, delta_q_uv_ac
            if r.u(1):
                r.su(4)
        segment_q = self._segmentation_params(r)
        for slot in range(8):
            if refresh >> slot & 1:
                self._slots[slot] = q
        return Vp9Frame(kind, shown, q, refresh, segment_q)

    @staticmethod
    def _sync_code(r: BitReader) -> None:
        if r.u(24) != _SYNC_CODE:
            raise BitstreamError("bad frame_sync_code")

    @staticmethod
    def _color_config(r: BitReader, profile: int) -> None:
        if profile >= 2:
            r.u(1)  # ten_or_twelve_bit
        color_space = r.u(3)
        if color_space != _CS_RGB:
            r.u(1)  # color_range
            if profile in (1, 3):
                r.u(2)  # subsampling_x, subsampling_y
                if r.u(1):
                    raise BitstreamError("reserved_zero set")
        elif profile in (1, 3):
            if r.u(1):
                raise BitstreamError("reserved_zero set")
        else:
            raise BitstreamError("RGB needs profile 1 or 3")

    @staticmethod
    def _render_size(r: BitReader) -> None:
        if r.u(1):  # render_and_frame_size_different
            r.u(32)

    @staticmethod
    def _loop_filter_params(r: BitReader) -> None:
        r.u(6 + 3)  # loop_filter_level, loop_filter_sharpness
        if r.u(1) and r.u(1):  # loop_filter_delta_enabled, loop_filter_delta_update
            for _ in range(4 + 2):  # ref deltas, mode deltas
                if r.u(1):
                    r.su(6)

    def _segmentation_params(self, r: BitReader) -> tuple[tuple[int | None, ...], bool] | None:
        if not r.u(1):  # segmentation_enabled
            return None
        if r.u(1):  # segmentation_update_map
            for _ in range(7):
                if r.u(1):
                    r.u(8)  # tree probabilities
            if r.u(1):  # segmentation_temporal_update
                for _ in range(3):
                    if r.u(1):
                        r.u(8)
        if r.u(1):  # segmentation_update_data
            self._segment_abs = r.flag()
            for segment in range(8):
                for feature in range(4):
                    value = None
                    if r.u(1):  # feature_enabled
                        value = r.u(_SEGMENT_FEATURE_BITS[feature])
                        if _SEGMENT_FEATURE_SIGNED[feature] and r.u(1):
                            value = -value
                    if feature == 0:
                        self._segment_q[segment] = value
        return tuple(self._segment_q), self._segment_abs

    def packet_qp(self, data: bytes) -> float | None:
        """``base_q_idx`` of the frame the packet shows (mean if several; None if none is shown or readable)."""
        try:
            frames = self.frames(data if isinstance(data, bytes) else bytes(data))
        except (BitstreamError, IndexError, ValueError):
            self.last_frames = []
            return None
        self.last_frames = frames
        shown = [f.base_q_idx for f in frames if f.shown and f.base_q_idx is not None]
        return sum(shown) / len(shown) if shown else None


def equivalent_h264_qp(base_q_idx: float) -> float:
    """H.264 QP of the same step size as VP9 ``base_q_idx`` (see the module docstring).

    The orthonormal step of q index ``q`` is ``ac_q(q) / 8``, and H.264's ``Qstep = 0.625 * 2 **
    (QP / 6)``: ``QP = 6 * log2(ac_q(q) / 5)``, interpolated between integer indices. A first-order
    equivalence from step sizes alone; to be refined by calibration.
    """
    q = min(255.0, max(0.0, float(base_q_idx)))
    lo = int(q)
    hi = min(255, lo + 1)
    step = AC_QLOOKUP_8BIT[lo] + (AC_QLOOKUP_8BIT[hi] - AC_QLOOKUP_8BIT[lo]) * (q - lo)
    return 6.0 * math.log2(step / 5.0)
