"""Per-picture quantiser of an HEVC stream, read from its slice headers.

FFmpeg's HEVC decoder exports no quantisers, so each slice segment header is parsed up to
``slice_qp_delta`` (``SliceQpY = 26 + init_qp_minus26 (PPS) + slice_qp_delta``), with the parameter
sets from the ``hvcC`` extradata or in-band. The picture's QP is the mean over its independent slice
segments; coding-unit deltas are not seen, so with adaptive quantisation (CRF/ABR: the PPS enables
``cu_qp_delta``, :attr:`HevcQpReader.adaptive`) it is the frame's base quantiser.

Anything unexpected (a parameter set not seen yet, an extension the parser does not know, a
damaged NAL unit) gives ``None`` for that packet: the caller then restores it without a QP.
Syntax per ITU-T H.265 (V8) sections 7.3.2.2, 7.3.2.3, 7.3.6 and 7.3.7.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from vsjpegfix.quantisers.bits import BitReader, annexb_units, length_units, remove_emulation_prevention

#: NAL unit types (H.265 table 7-1).
_VCL_MAX = 31  # 0..31 are VCL (slice segment) NAL units
_IRAP = range(16, 24)
_IDR = (19, 20)
_SPS, _PPS = 33, 34
_B, _P, _I = 0, 1, 2


#: Bytes of a slice NAL unit read for its header (the header is far shorter; the slice data that
#: follows, up to megabytes, is never copied or scanned).
SLICE_HEADER_BYTES = 2048


def _rbsp(nal: bytes, limit: int | None = None) -> bytes:
    """The NAL unit's payload after its 2-byte header (its first ``limit`` bytes), emulation prevention bytes removed."""
    return remove_emulation_prevention(nal[2 : None if limit is None else 2 + limit])


def _ceil_log2(n: int) -> int:
    return max(0, math.ceil(math.log2(n))) if n > 1 else 0


@dataclass
class _Rps:
    """A short-term reference picture set: (delta POC, used by the current picture) before / after it."""

    s0: list[tuple[int, bool]] = field(default_factory=list)
    s1: list[tuple[int, bool]] = field(default_factory=list)

    @property
    def used(self) -> int:
        return sum(u for _, u in self.s0) + sum(u for _, u in self.s1)


def _st_rps(r: BitReader, idx: int, count: int, sets: list[_Rps]) -> _Rps:
    """``st_ref_pic_set(idx)`` (7.3.7) with the derivation of its pictures (7-61, 7-62)."""
    if idx and r.flag():  # inter_ref_pic_set_prediction_flag
        delta_idx = r.ue() + 1 if idx == count else 1
        ref = sets[idx - delta_idx]
        sign = r.u(1)
        delta_rps = (1 - 2 * sign) * (r.ue() + 1)
        n = len(ref.s0) + len(ref.s1)
        used, use = [], []
        for _ in range(n + 1):
            u = r.flag()
            used.append(u)
            use.append(True if u else r.flag())
        neg = len(ref.s0)
        out = _Rps()
        for j in range(len(ref.s1) - 1, -1, -1):
            d = ref.s1[j][0] + delta_rps
            if d < 0 and use[neg + j]:
                out.s0.append((d, used[neg + j]))
        if delta_rps < 0 and use[n]:
            out.s0.append((delta_rps, used[n]))
        for j in range(neg):
            d = ref.s0[j][0] + delta_rps
            if d < 0 and use[j]:
                out.s0.append((d, used[j]))
        for j in range(neg - 1, -1, -1):
            d = ref.s0[j][0] + delta_rps
            if d > 0 and use[j]:
                out.s1.append((d, used[j]))
        if delta_rps > 0 and use[n]:
            out.s1.append((delta_rps, used[n]))
        for j in range(len(ref.s1)):
            d = ref.s1[j][0] + delta_rps
            if d > 0 and use[neg + j]:
                out.s1.append((d, used[neg + j]))
        return out
    out = _Rps()
    negatives, positives = r.ue(), r.ue()
    if negatives > 16 or positives > 16:
        raise ValueError("bad reference picture set")
    poc = 0
    for _ in range(negatives):
        poc -= r.ue() + 1
        out.s0.append((poc, r.flag()))
    poc = 0
    for _ in range(positives):
        poc += r.ue() + 1
        out.s1.append((poc, r.flag()))
    return out


def _skip_profile_tier_level(r: BitReader, sub_layers_minus1: int) -> None:
    r.u(88)  # general profile space .. general_inbld/reserved flag
    r.u(8)  # general_level_idc
    present = [(r.flag(), r.flag()) for _ in range(sub_layers_minus1)]
    if sub_layers_minus1 > 0:
        r.u(2 * (8 - sub_layers_minus1))
    for profile, level in present:
        if profile:
            r.u(88)
        if level:
            r.u(8)


def _skip_scaling_list_data(r: BitReader) -> None:
    for size_id in range(4):
        for _ in range(0, 6, 3 if size_id == 3 else 1):
            if not r.flag():  # scaling_list_pred_mode_flag
                r.ue()
                continue
            if size_id > 1:
                r.se()
            for _ in range(min(64, 1 << (4 + (size_id << 1)))):
                r.se()


@dataclass
class _Sps:
    chroma_array_type: int
    separate_colour_planes: bool
    address_bits: int
    poc_lsb_bits: int
    rps: list[_Rps]
    long_term: bool
    lt_used: list[bool]
    temporal_mvp: bool
    sao: bool


def _parse_sps(rbsp: bytes) -> tuple[int, _Sps]:
    r = BitReader(rbsp)
    r.u(4)  # sps_video_parameter_set_id
    sub_layers_minus1 = r.u(3)
    r.u(1)
    _skip_profile_tier_level(r, sub_layers_minus1)
    sps_id = r.ue()
    chroma_format = r.ue()
    separate = chroma_format == 3 and r.flag()
    width, height = r.ue(), r.ue()
    if r.flag():  # conformance window
        for _ in range(4):
            r.ue()
    r.ue(), r.ue()  # bit depths
    poc_lsb_bits = r.ue() + 4
    ordering_all = r.flag()
    for _ in range(0 if ordering_all else sub_layers_minus1, sub_layers_minus1 + 1):
        r.ue(), r.ue(), r.ue()
    min_cb_log2 = r.ue() + 3
    ctb_log2 = min_cb_log2 + r.ue()
    for _ in range(4):  # transform block sizes, hierarchy depths
        r.ue()
    if r.flag() and r.flag():  # scaling_list_enabled_flag, sps_scaling_list_data_present_flag
        _skip_scaling_list_data(r)
    r.flag()  # amp_enabled_flag
    sao = r.flag()
    if r.flag():  # pcm_enabled_flag
        r.u(8)
        r.ue(), r.ue()
        r.u(1)
    count = r.ue()
    if count > 64:
        raise ValueError("bad num_short_term_ref_pic_sets")
    sets: list[_Rps] = []
    for i in range(count):
        sets.append(_st_rps(r, i, count, sets))
    long_term = r.flag()
    lt_used = []
    if long_term:
        for _ in range(r.ue()):
            r.u(poc_lsb_bits)
            lt_used.append(r.flag())
    temporal_mvp = r.flag()
    ctb = 1 << ctb_log2
    ctbs = ((width + ctb - 1) // ctb) * ((height + ctb - 1) // ctb)
    return sps_id, _Sps(0 if separate else chroma_format, separate, _ceil_log2(ctbs), poc_lsb_bits, sets,
                        long_term, lt_used, temporal_mvp, sao)


@dataclass
class _Pps:
    sps_id: int
    dependent_slices: bool
    output_flag: bool
    extra_bits: int
    cabac_init: bool
    ref_l0: int
    ref_l1: int
    init_qp: int
    weighted_pred: bool
    weighted_bipred: bool
    lists_modification: bool
    cu_qp_delta: bool = False  # coding units may change the QP (adaptive quantisation): slice QP is a base


def _parse_pps(rbsp: bytes) -> tuple[int, _Pps]:
    r = BitReader(rbsp)
    pps_id, sps_id = r.ue(), r.ue()
    dependent, output_flag, extra_bits = r.flag(), r.flag(), r.u(3)
    r.flag()  # sign_data_hiding_enabled_flag
    cabac_init = r.flag()
    ref_l0, ref_l1 = r.ue() + 1, r.ue() + 1
    init_qp = 26 + r.se()
    r.flag(), r.flag()  # constrained_intra_pred_flag, transform_skip_enabled_flag
    cu_qp_delta = r.flag()  # cu_qp_delta_enabled_flag
    if cu_qp_delta:
        r.ue()
    r.se(), r.se()
    r.flag()  # pps_slice_chroma_qp_offsets_present_flag
    weighted_pred, weighted_bipred = r.flag(), r.flag()
    r.flag()  # transquant_bypass_enabled_flag
    tiles = r.flag()
    r.flag()  # entropy_coding_sync_enabled_flag
    if tiles:
        cols, rows = r.ue() + 1, r.ue() + 1
        if not r.flag():  # uniform_spacing_flag
            for _ in range(cols - 1 + rows - 1):
                r.ue()
        r.flag()
    r.flag()  # pps_loop_filter_across_slices_enabled_flag
    if r.flag():  # deblocking_filter_control_present_flag
        r.flag()
        if not r.flag():  # pps_deblocking_filter_disabled_flag
            r.se(), r.se()
    if r.flag():  # pps_scaling_list_data_present_flag
        _skip_scaling_list_data(r)
    lists_modification = r.flag()
    return pps_id, _Pps(sps_id, dependent, output_flag, extra_bits, cabac_init, ref_l0, ref_l1, init_qp,
                        weighted_pred, weighted_bipred, lists_modification, cu_qp_delta)


def _skip_pred_weight_table(r: BitReader, sps: _Sps, slice_type: int, refs: tuple[int, int]) -> None:
    r.ue()
    if sps.chroma_array_type:
        r.se()
    for n in refs[: 2 if slice_type == _B else 1]:
        luma = [r.flag() for _ in range(n)]
        chroma = [r.flag() for _ in range(n)] if sps.chroma_array_type else [False] * n
        for lw, cw in zip(luma, chroma):
            if lw:
                r.se(), r.se()
            if cw:
                for _ in range(4):
                    r.se()


def _slice_qp(nal_type: int, rbsp: bytes, sps_sets: dict[int, _Sps], pps_sets: dict[int, _Pps]) -> tuple[int, int] | None:
    """``(SliceQpY, slice_type)`` of an independent slice segment; None for a dependent one (no QP of its own)."""
    r = BitReader(rbsp)
    first = r.flag()
    if nal_type in _IRAP:
        r.flag()  # no_output_of_prior_pics_flag
    pps = pps_sets[r.ue()]
    sps = sps_sets[pps.sps_id]
    if not first:
        if pps.dependent_slices and r.flag():
            return None
        r.u(sps.address_bits)
    r.u(pps.extra_bits)
    slice_type = r.ue()
    if slice_type > 2:
        raise ValueError("bad slice_type")
    if pps.output_flag:
        r.flag()
    if sps.separate_colour_planes:
        r.u(2)
    temporal_mvp = False
    used = 0
    if nal_type not in _IDR:
        r.u(sps.poc_lsb_bits)
        if not r.flag():  # short_term_ref_pic_set_sps_flag
            used = _st_rps(r, len(sps.rps), len(sps.rps), sps.rps).used
        else:
            idx = r.u(_ceil_log2(len(sps.rps))) if len(sps.rps) > 1 else 0
            used = sps.rps[idx].used
        if sps.long_term:
            from_sps = r.ue() if sps.lt_used else 0
            for i in range(from_sps + r.ue()):
                if i < from_sps:
                    k = r.u(_ceil_log2(len(sps.lt_used))) if len(sps.lt_used) > 1 else 0
                    used += sps.lt_used[k]
                else:
                    r.u(sps.poc_lsb_bits)
                    used += r.flag()
                if r.flag():  # delta_poc_msb_present_flag
                    r.ue()
        if sps.temporal_mvp:
            temporal_mvp = r.flag()
    if sps.sao:
        r.flag()
        if sps.chroma_array_type:
            r.flag()
    if slice_type != _I:
        refs = (pps.ref_l0, pps.ref_l1)
        if r.flag():  # num_ref_idx_active_override_flag
            refs = (r.ue() + 1, r.ue() + 1 if slice_type == _B else pps.ref_l1)
        if pps.lists_modification and used > 1:
            for n in refs[: 2 if slice_type == _B else 1]:
                if r.flag():
                    r.u(_ceil_log2(used) * n)
        if slice_type == _B:
            r.flag()  # mvd_l1_zero_flag
        if pps.cabac_init:
            r.flag()
        if temporal_mvp:
            from_l0 = r.flag() if slice_type == _B else True
            if refs[0 if from_l0 else 1] > 1:
                r.ue()
        if (pps.weighted_pred and slice_type == _P) or (pps.weighted_bipred and slice_type == _B):
            _skip_pred_weight_table(r, sps, slice_type, refs)
        r.ue()  # five_minus_max_num_merge_cand
    qp = pps.init_qp + r.se()
    if not -12 <= qp <= 51:
        raise ValueError("slice QP out of range")
    return qp, slice_type


class HevcQpReader:
    """Reads the mean slice QP of each HEVC packet (one access unit), keeping the parameter sets it sees.

    ``extradata``: ``hvcC`` (MP4/MKV; packets then length-prefixed) or Annex B parameter sets (start codes).
    :attr:`adaptive` turns True once a picture parameter set enables coding-unit QP changes.
    """

    def __init__(self, extradata: bytes | None = None):
        self.adaptive = False  # a PPS seen with cu_qp_delta_enabled_flag (x265 CRF/ABR with AQ, cuTree)
        self.picture_type: str | None = None  # of the last packet read
        self._sps: dict[int, _Sps] = {}
        self._pps: dict[int, _Pps] = {}
        self._length_size = 0
        data = bytes(extradata or b"")
        if len(data) >= 23 and data[0] == 1:  # hvcC (ISO/IEC 14496-15 8.3.3.1)
            self._length_size = (data[21] & 3) + 1
            i, arrays = 23, data[22]
            for _ in range(arrays):
                if i + 3 > len(data):
                    break
                count = int.from_bytes(data[i + 1 : i + 3], "big")
                i += 3
                for _ in range(count):
                    n = int.from_bytes(data[i : i + 2], "big")
                    self._parameter_set(data[i + 2 : i + 2 + n])
                    i += 2 + n
        elif data:
            for unit in annexb_units(data):
                self._parameter_set(unit)

    def _units(self, data: bytes) -> list[bytes]:
        return length_units(data, self._length_size) if self._length_size else annexb_units(data)

    def _parameter_set(self, nal: bytes) -> None:
        if len(nal) < 3 or (nal[1] >> 3) != 0:  # base layer (nuh_layer_id 0) only
            return
        kind = (nal[0] >> 1) & 0x3F
        try:
            if kind == _SPS:
                key, sps = _parse_sps(_rbsp(nal))
                self._sps[key] = sps
            elif kind == _PPS:
                key, pps = _parse_pps(_rbsp(nal))
                self._pps[key] = pps
                self.adaptive = self.adaptive or pps.cu_qp_delta
        except (IndexError, ValueError, KeyError):
            pass  # an unreadable parameter set: slices that refer to it get no QP

    def packet_qp(self, data: bytes) -> float | None:
        """Mean SliceQpY over the packet's independent slice segments (None if there are none or they cannot be read);
        :attr:`picture_type` becomes the first slice's type (``"I"``/``"P"``/``"B"``, as FFmpeg types the picture)."""
        qps, self.picture_type = [], None
        for nal in self._units(data if isinstance(data, bytes) else bytes(data)):
            if len(nal) < 3 or (nal[1] >> 3) != 0:
                continue
            kind = (nal[0] >> 1) & 0x3F
            if kind in (_SPS, _PPS):
                self._parameter_set(nal)
            elif kind <= _VCL_MAX and kind not in range(10, 16) and kind not in range(22, 32):
                try:
                    qp = _slice_qp(kind, _rbsp(nal, SLICE_HEADER_BYTES), self._sps, self._pps)
                except (IndexError, ValueError, KeyError):
                    return None
                if qp is not None:
                    self.picture_type = self.picture_type or "BPI"[qp[1]]
                    qps.append(qp[0])
        return sum(qps) / len(qps) if qps else None
