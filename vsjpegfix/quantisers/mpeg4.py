"""Per-picture quantiser of an MPEG-4 Part 2 (DivX, Xvid, FFmpeg ``mpeg4``) stream, from its VOP headers.

Every video object plane (VOP, a picture) states its quantiser ``vop_quant`` (ISO/IEC 14496-2
6.2.5 and 6.3.5; ``quant_precision`` bits, 5 for 8-bit video: 1..31) in its header. Reaching it needs
the video object layer (VOL) header (6.2.3): ``video_object_layer_verid``, the shape,
``vop_time_increment_resolution`` (the width of ``vop_time_increment``), ``interlaced``,
``sprite_enable`` and the sprite warping points (the trajectory of a GMC S-VOP precedes the
quantiser), ``not_8_bit``/``quant_precision``, the complexity estimation header (its VOP fields
precede the quantiser), ``newpred_enable`` and ``reduced_resolution_vop_enable``. MP4 and MKV store the
VOL in the extradata; AVI and raw streams carry it in-band (before the first VOP, often at every
key frame), and the reader takes it from wherever it comes.

The value reported is ``vop_quant`` in its own scale (MPEG-4's ``quantiser_scale``). Macroblocks can
change it (``dquant``, 6.2.7; Xvid's adaptive quantisation, for instance); reaching those needs the
macroblock layer, so they are not seen: for a VOP whose macroblocks move away from ``vop_quant`` the
value is its starting point. Only rectangular VOLs (every natural-video profile) are read; other
shapes give None. The GMC sprite trajectory (Xvid/DivX ``GMC`` S-VOPs) is read per the standard
(Table V2-2 ``dmv_length`` codes) but no encoder at hand writes it, so that path is checked against a
hand-built header only.

DivX's "packed bitstream" (AVI files of DivX 5 and some Xvid builds) puts a P-VOP and the B-VOP
displayed before it into one packet, and a not-coded placeholder VOP into the next. FFmpeg's
decoder (told by DivX's ``DivX...p`` user data) decodes the P-VOP from the packed packet and gives
it that packet's pts, and the B-VOP on the placeholder packet, with the placeholder's pts. The
reader follows that: a packed packet reports its first VOP's ``vop_quant`` and keeps the second's
for the placeholder that follows, so pts matching against FFmpeg's decoded frames stays exact (the
pts FFmpeg gives packed frames are then not in display order: a B-frame carries a later pts than
the P-frame shown after it). Unpacking the stream first (FFmpeg's ``mpeg4_unpack_bframes``
bitstream filter, ``av.BitStreamFilterContext`` in PyAV) gives one VOP per packet with proper pts,
and the same values. :meth:`Mpeg4QpReader.vops` lists every VOP of a packet. A not-coded VOP
(``vop_coded`` 0) that is no placeholder (a frame an encoder dropped, shown as a repeat of the
previous one) has no quantiser: None.

Step size: with the H.263 quantisation method (``quant_type`` 0, the default of every DivX/Xvid
profile except Xvid's "MPEG" one) a quantiser ``q`` reconstructs coefficients at odd multiples of
``q`` (7.4.4.4: ``|F| = (2 |level| + 1) * q``, minus 1 for even ``q``), a step of ``2 q``; with MPEG
quantisation (``quant_type`` 1) the step is ``2 q * W / 16``, ``2 q`` at the flat weight 16. The
coefficients are those of the orthonormal 8x8 DCT, on which H.264's step is
``Qstep = 0.625 * 2 ** (QP / 6)``: ``QP = 6 * log2(2 q / 0.625)`` (:func:`equivalent_h264_qp`;
q 2 ~ QP 16, q 5 ~ QP 24, q 31 ~ QP 40). FFmpeg's decoders export ``2 q`` in their ``venc_params``
side data, the MPEG-2 ``quantiser_scale`` of the same step.

Anything unexpected (no VOL seen yet, a marker bit that is 0, a zero quantiser, a short header,
data that ends early) gives None for that packet. A packet's pts is its frame's pts (with B-frames
too, after unpacking), so packets are matched to frames by pts as :class:`vsjpegfix.quantisers.stream.StreamQp`
does for HEVC.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from vsjpegfix.quantisers.bits import BitReader, BitstreamError, start_code_units

__all__ = ["Mpeg4Vol", "Mpeg4Vop", "Mpeg4QpReader", "equivalent_h264_qp"]

_VOL_FIRST, _VOL_LAST = 0x20, 0x2F
_USER_DATA, _VOP = 0xB2, 0xB6
_RECTANGULAR, _GRAYSCALE = 0, 3  # video_object_layer_shape (binary 1 and binary-only 2 are not read)
_STATIC_SPRITE, _GMC_SPRITE = 1, 2
_I, _P, _B, _S = 0, 1, 2, 3
_TYPES = "IPBS"
_EXTENDED_PAR = 15


@dataclass
class Mpeg4Vol:
    """What the VOP header's parse needs from the video object layer header (14496-2 6.2.3)."""

    verid: int
    shape: int
    time_increment_bits: int
    interlaced: bool
    sprite_enable: int
    warping_points: int
    brightness_change: bool
    quant_precision: int
    quant_type: int
    # VOP complexity estimation fields' widths by VOP type (6.2.5.1), 0 when disabled
    complexity_bits: tuple[int, int, int, int]
    newpred: bool
    reduced_resolution: bool
    scalability: bool
    enhancement_type: bool


@dataclass
class Mpeg4Vop:
    """One VOP: its type (``"I"``, ``"P"``, ``"B"``, ``"S"``), whether it is coded, and its ``vop_quant``."""

    coding_type: str
    coded: bool
    quant: int | None


def _read_dmv_length(r: BitReader) -> int:
    """``dmv_length`` of a sprite trajectory point (14496-2 Table V2-2): 00, 010..110, then 1110, 11110, ..."""
    first = r.u(2)
    if first == 0:
        return 0
    third = r.u(1)
    code = (first << 1) | third  # 010..111
    if code != 0b111:
        return code - 1  # 010 -> 1 ... 110 -> 5
    length = 6
    while r.u(1):
        length += 1
        if length > 14:
            raise BitstreamError("bad dmv_length code")
    return length


def _skip_sprite_trajectory(r: BitReader, points: int) -> None:
    for _ in range(points):
        for _axis in range(2):  # du, then dv
            r.u(_read_dmv_length(r))  # dmv_code
            r.marker()


def _skip_brightness_change_factor(r: BitReader) -> None:
    """``brightness_change_factor()`` (6.2.5.4): a prefix choosing the width of the value."""
    for width in (5, 6, 7, 8):
        if not r.u(1):
            r.u(width)
            return
    r.u(10)


def _parse_vol(payload: bytes) -> Mpeg4Vol:
    r = BitReader(payload)
    r.u(1)  # random_accessible_vol
    object_type = r.u(8)
    if object_type in (0x0E, 0x0F):  # studio profile VOLs: another syntax
        raise BitstreamError("studio profile VOL")
    verid = 1
    if r.u(1):  # is_object_layer_identifier
        verid = r.u(4)
        r.u(3)  # video_object_layer_priority
    if r.u(4) == _EXTENDED_PAR:
        r.u(16)
    if r.u(1):  # vol_control_parameters
        r.u(2)  # chroma_format
        r.u(1)  # low_delay
        if r.u(1):  # vbv_parameters
            for width in (15, 15, 15):
                r.u(width)
                r.marker()
            r.u(3)
            r.u(11)
            r.marker()
            r.u(15)
            r.marker()
    shape = r.u(2)
    if shape == _GRAYSCALE and verid != 1:
        r.u(4)  # video_object_layer_shape_extension
    r.marker()
    resolution = r.u(16)
    if resolution == 0:
        raise BitstreamError("vop_time_increment_resolution 0")
    time_bits = max(1, (resolution - 1).bit_length())
    r.marker()
    if r.u(1):  # fixed_vop_rate
        r.u(time_bits)
    if shape != _RECTANGULAR:
        raise BitstreamError("only rectangular VOLs are read")
    r.marker()
    r.u(13)  # video_object_layer_width
    r.marker()
    r.u(13)  # video_object_layer_height
    r.marker()
    interlaced = r.flag()
    r.u(1)  # obmc_disable
    sprite = r.u(1) if verid == 1 else r.u(2)
    points, brightness = 0, False
    if sprite in (_STATIC_SPRITE, _GMC_SPRITE):
        if sprite == _STATIC_SPRITE:
            for _ in range(4):  # sprite_width, _height, _left_coordinate, _top_coordinate
                r.u(13)
                r.marker()
        points = r.u(6)
        if points > 4:
            raise BitstreamError("bad no_of_sprite_warping_points")
        r.u(2)  # sprite_warping_accuracy
        brightness = r.flag()
        if sprite == _STATIC_SPRITE:
            r.u(1)  # low_latency_sprite_enable
    quant_precision = 5
    if r.u(1):  # not_8_bit
        quant_precision = r.u(4)
        r.u(4)  # bits_per_pixel
        if not 3 <= quant_precision <= 9:
            raise BitstreamError("bad quant_precision")
    quant_type = r.u(1)
    if quant_type:
        for _ in range(2):  # load_intra_quant_mat, load_nonintra_quant_mat
            if r.u(1):
                for _ in range(64):  # up to 64 values, a 0 ends the list early
                    if r.u(8) == 0:
                        break
    if verid != 1:
        r.u(1)  # quarter_sample
    complexity = (0, 0, 0, 0)
    if not r.u(1):  # complexity_estimation_disable
        complexity = _complexity_estimation_header(r)
    r.u(1)  # resync_marker_disable
    if r.u(1):  # data_partitioned
        r.u(1)  # reversible_vlc
    newpred = reduced = False
    if verid != 1:
        newpred = r.flag()
        if newpred:
            r.u(3)  # requested_upstream_message_type, newpred_segment_type
        reduced = r.flag()
    scalability = r.flag()
    enhancement = False
    if scalability:
        r.u(1 + 4 + 1)  # hierarchy_type, ref_layer_id, ref_layer_sampling_direc
        r.u(20)  # hor/vert sampling factors n and m
        enhancement = r.flag()
    return Mpeg4Vol(verid, shape, time_bits, interlaced, sprite, points, brightness, quant_precision,
                    quant_type, complexity, newpred, reduced, scalability, enhancement)


def _complexity_estimation_header(r: BitReader) -> tuple[int, int, int, int]:
    """``define_vop_complexity_estimation_header()`` (6.2.3.1): the widths of the fields each VOP
    type then carries in ``read_vop_complexity_estimation_header()`` (6.2.5.1), as (I, P, B, S) bits.

    Each enabled parameter is an 8-bit field (``dcecs_vlc_bits``: 4) in the VOP types that use it.
    Not produced by any encoder at hand: checked against hand-built headers only.
    """
    method = r.u(2)
    if method > 1:
        raise BitstreamError("bad estimation_method")
    # Fields grouped as FFmpeg's decoder reads them: the "I" set is present in every VOP type, the
    # "P" set in P, B and S VOPs, the "B" set in B VOPs only.
    bits = {"I": 0, "P": 0, "B": 0}

    def add(group: str, width: int = 8) -> None:
        if r.u(1):
            bits[group] += width

    if not r.u(1):  # shape_complexity_estimation_disable
        for _ in range(6):  # opaque, transparent, intra_cae, inter_cae, no_update, upsampling
            add("I")
    if not r.u(1):  # texture_complexity_estimation_set_1_disable
        add("I")  # intra_blocks
        add("P")  # inter_blocks
        add("P")  # inter4v_blocks
        add("I")  # not_coded_blocks
    r.marker()
    if not r.u(1):  # texture_complexity_estimation_set_2_disable
        add("I")  # dct_coefs
        add("I")  # dct_lines
        add("I")  # vlc_symbols
        add("I", 4)  # vlc_bits
    if not r.u(1):  # motion_compensation_complexity_disable
        add("P")  # apm
        add("P")  # npm
        add("B")  # interpolate_mc_q
        add("P")  # forw_back_mc_q
        add("P")  # halfpel2
        add("P")  # halfpel4
    r.marker()
    if method == 1 and not r.u(1):  # version2_complexity_estimation_disable
        add("I")  # sadct
        add("P")  # quarterpel
    i, p, b = bits["I"], bits["P"], bits["B"]
    return i, i + p, i + p + b, i + p


def _parse_vop(payload: bytes, vol: Mpeg4Vol) -> Mpeg4Vop:
    r = BitReader(payload)
    kind = r.u(2)
    while r.u(1):  # modulo_time_base
        pass
    r.marker()
    r.u(vol.time_increment_bits)
    r.marker()
    if not r.u(1):  # vop_coded
        return Mpeg4Vop(_TYPES[kind], False, None)
    if vol.newpred:
        r.u(min(vol.time_increment_bits + 3, 15))  # vop_id
        if r.u(1):  # vop_id_for_prediction_indication
            r.u(min(vol.time_increment_bits + 3, 15))
        r.marker()
    if kind == _P or (kind == _S and vol.sprite_enable == _GMC_SPRITE):
        r.u(1)  # vop_rounding_type
    if vol.reduced_resolution and kind in (_I, _P):
        r.u(1)  # vop_reduced_resolution
    r.u(vol.complexity_bits[kind])  # read_vop_complexity_estimation_header()
    r.u(3)  # intra_dc_vlc_thr
    if vol.interlaced:
        r.u(2)  # top_field_first, alternate_vertical_scan_flag
    if kind == _S and vol.sprite_enable in (_STATIC_SPRITE, _GMC_SPRITE):
        _skip_sprite_trajectory(r, vol.warping_points)
        if vol.brightness_change:
            _skip_brightness_change_factor(r)
        if vol.sprite_enable == _STATIC_SPRITE:
            raise BitstreamError("static sprite VOPs are not read")
    quant = r.u(vol.quant_precision)
    if quant == 0:
        raise BitstreamError("vop_quant 0")
    if kind != _I:
        if r.u(3) == 0:
            raise BitstreamError("vop_fcode_forward 0")
    if kind == _B:
        if r.u(3) == 0:
            raise BitstreamError("vop_fcode_backward 0")
    return Mpeg4Vop(_TYPES[kind], True, quant)


class Mpeg4QpReader:
    """Reads the ``vop_quant`` of each MPEG-4 Part 2 packet, keeping the VOL header it sees.

    ``extradata``: the stream's codec extradata (VOS/VO/VOL headers, from MP4/MKV and some AVIs), or
    None for streams that carry the VOL in-band. :attr:`packed` becomes True when a packet holds
    more than one coded VOP, or DivX user data announces a packed bitstream (``DivX...p``).
    :attr:`quant_type` is the VOL's quantisation method (0 H.263, 1 MPEG), None before a VOL.
    """

    scale = "vop_quant"

    def __init__(self, extradata: bytes | None = None):
        self._vol: Mpeg4Vol | None = None
        self.packed = False
        self._held: list[int] = []  # quantisers of packed VOPs whose frames come with later packets
        self.last_vops: list[Mpeg4Vop] = []  # the VOPs of the last packet read
        if extradata:
            try:
                self.vops(bytes(extradata))
            except (BitstreamError, IndexError):
                pass

    @property
    def quant_type(self) -> int | None:
        return None if self._vol is None else self._vol.quant_type

    def vops(self, data: bytes) -> list[Mpeg4Vop]:
        """The VOPs of one packet in stream order (VOL headers in it are taken first).

        Raises :class:`BitstreamError` on a malformed or unreadable header; :meth:`packet_qp` turns
        that into None.
        """
        vops: list[Mpeg4Vop] = []
        for code, payload in start_code_units(data):
            if code == _VOP:
                if self._vol is None:
                    raise BitstreamError("VOP before any VOL header")
                vops.append(_parse_vop(payload, self._vol))
            elif _VOL_FIRST <= code <= _VOL_LAST:
                self._vol = None  # a VOL that cannot be read leaves no stale one behind
                self._vol = _parse_vol(payload)
            elif code == _USER_DATA and payload.startswith(b"DivX"):
                text = payload.split(b"\x00", 1)[0].rstrip()
                if text.endswith(b"p"):
                    self.packed = True
        if sum(v.coded for v in vops) > 1:
            self.packed = True
        return vops

    def packet_qp(self, data: bytes) -> float | None:
        """``vop_quant`` of the VOP that FFmpeg's decoder labels with this packet's pts, or None.

        One coded VOP: its quantiser. Several (a packed P+B packet): the first's, the others' being
        kept for the not-coded placeholder packets that follow. A packet of not-coded VOPs: the
        kept quantiser if any (a placeholder), else None; unreadable packets: None.
        """
        try:
            vops = self.vops(data if isinstance(data, bytes) else bytes(data))
        except (BitstreamError, IndexError, ValueError):
            self.last_vops = []
            self._held = []
            return None
        self.last_vops = vops
        quants = [v.quant for v in vops if v.quant is not None]
        if quants:
            self._held = quants[1:]
            return float(quants[0])
        if vops and self._held:
            return float(self._held.pop(0))
        return None


def equivalent_h264_qp(vop_quant: float) -> float:
    """H.264 QP of the same step size as MPEG-4 ``vop_quant`` (see the module docstring).

    The H.263 method's step is ``2 q`` (MPEG method at weight 16 likewise), and H.264's
    ``Qstep = 0.625 * 2 ** (QP / 6)``: ``QP = 6 * log2(2 q / 0.625)``. A first-order equivalence from
    step sizes alone (no in-loop deblocking in MPEG-4 Part 2); to be refined by calibration.
    """
    return 6.0 * math.log2(2.0 * max(float(vop_quant), 1e-6) / 0.625)
