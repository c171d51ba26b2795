"""MPEG-4 Part 2 VOP quantisers against the quantiser FFmpeg's encoder was given and against its decoder's
per-macroblock export (``venc_params``: 2 * vop_quant), in AVI (Xvid/DivX style), MP4, MKV and raw streams."""

from __future__ import annotations

import random
from fractions import Fraction

import av
import pytest
from qp_clips import BitWriter, decoder_truth, encode, packet_values

from vsjpegfix.quantisers.mpeg4 import Mpeg4QpReader, equivalent_h264_qp
from vsjpegfix.quantisers.readers import stream_quantiser_reader

pytest.importorskip("skimage.data")

CONTAINERS = [("avi", "avi", "XVID"), ("avi", "avi", None), ("mp4", "mp4", None), ("matroska", "mkv", None),
              ("m4v", "m4v", None)]


def _matches_decoder(path) -> tuple[list[float], set[str]]:
    by_pts = dict(packet_values(path, Mpeg4QpReader))
    truth = decoder_truth(path)
    assert len(truth) == len(by_pts)
    checked = 0
    for pts, _, q in truth:
        if q is not None:  # FFmpeg exports none for the frame it flushes last
            assert 2 * by_pts[pts] == q
            checked += 1
    assert checked >= len(truth) - 1
    return [by_pts[pts] for pts, _, _ in truth], {t for _, t, _ in truth}


def _packets(path) -> tuple[bytes | None, list[bytes]]:
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        return s.codec_context.extradata, [bytes(p) for p in c.demux(s) if p.size]


@pytest.mark.parametrize("fmt,ext,tag", CONTAINERS)
@pytest.mark.parametrize("q,b_frames", [(4, 2), (13, 0)])
def test_fixed_quantiser(tmp_path, fmt, ext, tag, q, b_frames):
    path = encode(tmp_path / f"v.{ext}", "mpeg4", fmt, q=q, b_frames=b_frames, frames=8, tag=tag)
    assert [v for _, v in packet_values(path, lambda e: stream_quantiser_reader("mpeg4", e))] == [q] * 8
    _, types = _matches_decoder(path)
    assert ("B" in types) == bool(b_frames)


@pytest.mark.parametrize("fmt,ext,tag", CONTAINERS)
def test_rate_controlled_b_frame_stream_matches_frames_by_pts(tmp_path, fmt, ext, tag):
    path = encode(tmp_path / f"v.{ext}", "mpeg4", fmt, q_range=(2, 31), bit_rate=30_000, b_frames=2, frames=14,
                  gop=6, tag=tag)
    values, types = _matches_decoder(path)
    assert "B" in types and len(set(values)) >= 3


@pytest.mark.parametrize("options,interlaced,quant_type", [
    ({"mpeg_quant": "1"}, False, 1),  # MPEG quantisation (Xvid's "MPEG" matrices)
    ({"flags": "+ildct+ilme"}, True, 0),  # interlaced: two more VOP header bits before the quantiser
    ({"flags": "+qpel+ildct", "mpeg_quant": "1"}, True, 1),
    # (FFmpeg's decoder misdecodes its own interlaced data-partitioned I-frames: no +ildct here)
    ({"flags": "+qpel", "data_partitioning": "1"}, False, 0),
])
def test_vol_variants(tmp_path, options, interlaced, quant_type):
    path = encode(tmp_path / "v.avi", "mpeg4", "avi", q_range=(2, 31), bit_rate=30_000, b_frames=1, frames=10,
                  options=options, tag="XVID")
    values, _ = _matches_decoder(path)
    assert len(set(values)) >= 2
    extradata, packets = _packets(path)
    reader = Mpeg4QpReader(extradata)
    assert (reader._vol.interlaced, reader.quant_type) == (interlaced, quant_type)


def test_mp4_needs_the_vol_from_extradata(tmp_path):
    extradata, packets = _packets(encode(tmp_path / "v.mp4", "mpeg4", "mp4", q=6, frames=4))
    assert b"\x00\x00\x01\x20" not in b"".join(packets)  # VOL only in the extradata (esds)
    assert [Mpeg4QpReader(None).packet_qp(p) for p in packets] == [None] * 4
    reader = Mpeg4QpReader(extradata)
    assert [reader.packet_qp(p) for p in packets] == [6.0] * 4


def _not_coded_vop(time_increment_bits: int) -> bytes:
    return b"\x00\x00\x01\xb6" + (BitWriter().u(1, 2).u(0, 1).u(1, 1).u(0, time_increment_bits).u(1, 1).u(0, 1)
                                  .stuff().bytes())


def test_divx_packed_bitstream(tmp_path):
    """DivX packing of a real Xvid-style AVI: [I] [P+B] [N-VOP] ...; FFmpeg's filter unpacks it back."""
    src = encode(tmp_path / "v.avi", "mpeg4", "avi", q_range=(2, 31), bit_rate=30_000, b_frames=1, frames=9,
                 tag="XVID")
    extradata, packets = _packets(src)
    first = packets[0]
    vop = first.find(b"\x00\x00\x01\xb6")
    packed = [first[:vop] + b"\x00\x00\x01\xb2DivX503b1393p" + first[vop:]]
    for k in range(1, len(packets), 2):
        packed += [packets[k] + packets[k + 1], _not_coded_vop(5)]
    bsf = av.BitStreamFilterContext("mpeg4_unpack_bframes", "mpeg4")
    # av.Packet(bytes) wraps the bytes object itself, and this filter edits the DivX user data in place
    unpacked = [bytes(p) for b in packed for p in bsf.filter(av.Packet(bytearray(b)))]
    unpacked += [bytes(p) for p in bsf.filter(None)]
    assert unpacked[1:] == packets[1:]  # what FFmpeg takes for a packed stream

    reader = Mpeg4QpReader(extradata)
    plain = [reader.packet_qp(p) for p in packets]  # I P B P B ... one VOP each
    reader = Mpeg4QpReader(extradata)
    got = [reader.packet_qp(p) for p in packed]
    assert reader.packed
    assert got == [plain[0]] + [v for k in range(1, len(plain), 2) for v in (plain[k], plain[k + 1])]
    assert [v.coding_type for v in Mpeg4QpReader(extradata).vops(packed[1])] == ["P", "B"]

    path = tmp_path / "packed.avi"  # FFmpeg's decoder on the packed file: pts matching still exact
    with av.open(str(src)) as c, av.open(str(path), "w") as out:
        stream = out.add_stream_from_template(c.streams.video[0])
        for k, data in enumerate(packed):
            p = av.Packet(data)
            p.stream, p.pts, p.dts, p.time_base, p.is_keyframe = stream, k, k, Fraction(1, 25), k == 0
            out.mux(p)
    values, types = _matches_decoder(path)
    assert "B" in types and len(values) == len(packets)


def test_gmc_sprite_and_complexity_estimation_headers():
    """Hand-built VOL/VOPs for syntax no encoder at hand writes: GMC S-VOPs with a 2-point trajectory
    and VOP complexity estimation fields (16-bit time increments: resolution 30000)."""
    vol = (BitWriter().u(0, 1).u(0x11, 8).u(1, 1).u(2, 4).u(1, 3).u(1, 4).u(0, 1).u(0, 2).u(1, 1).u(30000, 16)
           .u(1, 1).u(0, 1).u(1, 1).u(176, 13).u(1, 1).u(144, 13).u(1, 1).u(0, 1).u(1, 1)
           .u(2, 2).u(2, 6).u(1, 2).u(0, 1)  # GMC, 2 warping points, accuracy, no brightness change
           .u(0, 1).u(0, 1).u(0, 1)  # not_8_bit, quant_type, quarter_sample
           .u(0, 1).u(0, 2).u(1, 1)  # complexity estimation on, method 0, no shape fields
           .u(0, 1).u(1, 1).u(1, 1).u(0, 1).u(0, 1).u(1, 1)  # set 1: intra_blocks, inter_blocks; marker
           .u(1, 1).u(0, 1).u(0, 1).u(1, 1).u(1, 1).u(0, 3).u(1, 1)  # no set 2; npm, interpolate_mc_q; marker
           .u(1, 1).u(0, 1).u(0, 1).u(0, 1).u(0, 1).stuff().bytes())
    s_vop = (BitWriter().u(3, 2).u(0, 1).u(1, 1).u(1234, 15).u(1, 1).u(1, 1).u(1, 1)
             .u(0xABCDEF, 24).u(0, 3)  # complexity fields of an S-VOP (I and P sets), intra_dc_vlc_thr
             .u(0b100, 3).u(5, 3).u(1, 1).u(0b00, 2).u(1, 1)  # point 1: du length 3, dv length 0
             .u(0b11110, 5).u(77, 7).u(1, 1).u(0b111111111110, 12).u(9999, 14).u(1, 1)  # point 2: lengths 7, 14
             .u(17, 5).u(1, 3).stuff().bytes())
    b_vop = (BitWriter().u(2, 2).u(0, 1).u(1, 1).u(99, 15).u(1, 1).u(1, 1).u(0x12345678, 32).u(0, 3)
             .u(9, 5).u(1, 3).u(1, 3).stuff().bytes())
    reader = Mpeg4QpReader(b"\x00\x00\x01\x00\x00\x00\x01\x20" + vol)
    assert reader._vol.complexity_bits == (8, 24, 32, 24)
    assert reader.packet_qp(b"\x00\x00\x01\xb6" + s_vop) == 17
    assert reader.packet_qp(b"\x00\x00\x01\xb6" + b_vop) == 9
    assert reader.packet_qp(b"\x00\x00\x01\xb6" + s_vop[:9]) is None  # cut inside the trajectory


def test_damaged_packets_give_none(tmp_path):
    extradata, packets = _packets(encode(tmp_path / "v.avi", "mpeg4", "avi", q=7, b_frames=1, frames=6))
    reader = Mpeg4QpReader()
    assert reader.packet_qp(packets[1]) is None  # no VOL seen yet
    assert reader.packet_qp(packets[0]) == 7.0  # the first packet carries it in-band
    vop = packets[1]
    assert reader.packet_qp(vop[:5]) is None
    broken = bytearray(vop)
    broken[4] &= 0b11101111  # the marker bit after modulo_time_base
    assert reader.packet_qp(bytes(broken)) is None
    assert reader.packet_qp(b"") is None
    rng = random.Random(5)
    for _ in range(200):
        assert reader.packet_qp(bytes(rng.randrange(256) for _ in range(rng.randrange(64)))) is None
        value = reader.packet_qp(rng.choice(packets)[: rng.randrange(1, 12)])
        assert value in (None, 7.0)
        noisy = bytearray(rng.choice(packets))
        for _ in range(4):
            noisy[rng.randrange(len(noisy))] = rng.randrange(256)
        value = reader.packet_qp(bytes(noisy))
        assert value is None or 1 <= value <= 31
    reader = Mpeg4QpReader(extradata)
    assert [reader.packet_qp(p) for p in packets] == [7.0] * 6


def test_reader_factory_and_h264_equivalent():
    assert isinstance(stream_quantiser_reader("mpeg4", b""), Mpeg4QpReader)
    assert equivalent_h264_qp(5) == pytest.approx(24.0)  # step 2 * 5 = Qstep(24)
    assert equivalent_h264_qp(2) < equivalent_h264_qp(31)
