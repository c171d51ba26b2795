"""MPEG-1/2 slice quantisers against the quantiser FFmpeg's encoder was given, and against its decoder's
per-macroblock export (``venc_params``), on real clips in the containers DVD/TV archives use."""

from __future__ import annotations

import random

import pytest
from qp_clips import BitWriter, decoder_truth, encode, packet_values

from vsjpegfix.quantisers.mpeg2 import (
    NON_LINEAR_QUANTISER_SCALE,
    Mpeg2QpReader,
    equivalent_h264_qp,
)
from vsjpegfix.quantisers.readers import stream_quantiser_reader

pytest.importorskip("skimage.data")

CONTAINERS = [("vob", "vob"), ("mpeg", "mpg"), ("mpegts", "ts"), ("mp4", "mp4"), ("matroska", "mkv"),
              ("mpeg2video", "m2v")]


def _matches_decoder(path, b_frames: bool = True) -> list[float]:
    """Each decoded frame's reader value, looked up by pts, asserted equal to the decoder's export."""
    by_pts = dict(packet_values(path, Mpeg2QpReader))
    truth = decoder_truth(path)
    assert len(by_pts) == len(truth)
    checked = 0
    for pts, _, q in truth:
        if q is not None:  # FFmpeg exports none for the frame it flushes last
            assert by_pts[pts] == q
            checked += 1
    assert checked >= len(truth) - 1
    assert ("B" in {t for _, t, _ in truth}) == b_frames  # reordered frames were matched
    return [by_pts[pts] for pts, _, _ in truth]


@pytest.mark.parametrize("fmt,ext", CONTAINERS)
@pytest.mark.parametrize("code,non_linear", [(6, False), (6, True), (25, True), (31, False)])
def test_fixed_quantiser(tmp_path, fmt, ext, code, non_linear):
    path = encode(tmp_path / f"v.{ext}", "mpeg2video", fmt, q=code, b_frames=2, frames=8,
                  options={"non_linear_quant": "1"} if non_linear else {})
    expected = NON_LINEAR_QUANTISER_SCALE[code] if non_linear else 2 * code
    values = [v for _, v in packet_values(path, lambda e: stream_quantiser_reader("mpeg2video", e))]
    assert values == [expected] * 8
    _matches_decoder(path)


@pytest.mark.parametrize("fmt,ext", [("mpeg", "mpg"), ("mpeg1video", "m1v"), ("avi", "avi")])
def test_mpeg1_reports_mpeg2_units(tmp_path, fmt, ext):
    path = encode(tmp_path / f"v.{ext}", "mpeg1video", fmt, q=7, b_frames=2, frames=8)
    assert [v for _, v in packet_values(path, Mpeg2QpReader)] == [14.0] * 8
    _matches_decoder(path)


@pytest.mark.parametrize("fmt,ext", CONTAINERS)
@pytest.mark.parametrize("non_linear", [False, True])
def test_rate_controlled_b_frame_stream_matches_frames_by_pts(tmp_path, fmt, ext, non_linear):
    """Quantisers vary frame to frame; every frame, B-frames reordered, finds its own by pts."""
    path = encode(tmp_path / f"v.{ext}", "mpeg2video", fmt, q_range=(2, 28), bit_rate=40_000, b_frames=2,
                  frames=14, gop=6, options={"non_linear_quant": "1"} if non_linear else {})
    values = _matches_decoder(path)
    assert len(set(values)) >= 3


def test_mpeg1_rate_controlled(tmp_path):
    path = encode(tmp_path / "v.mpg", "mpeg1video", "mpeg", q_range=(2, 31), bit_rate=40_000, b_frames=2, frames=14)
    assert len(set(_matches_decoder(path))) >= 3


def test_sequences_with_different_quantiser_scale_types(tmp_path):
    """Two raw streams back to back: linear code 3, then non-linear code 25 (64), read picture by picture."""
    a = encode(tmp_path / "a.m2v", "mpeg2video", "mpeg2video", q=3, b_frames=2, frames=6)
    b = encode(tmp_path / "b.m2v", "mpeg2video", "mpeg2video", q=25, b_frames=2, frames=6,
               options={"non_linear_quant": "1"})
    both = tmp_path / "ab.m2v"
    both.write_bytes(a.read_bytes() + b.read_bytes())
    assert [v for _, v in packet_values(both, Mpeg2QpReader)] == [6.0] * 6 + [64.0] * 6


def _field_picture(structure: int, q_scale_type: int, codes: list[int], coding_type: int = 1) -> bytes:
    header = BitWriter().u(0, 10).u(coding_type, 3).u(0xFFFF, 16).u(0, 3).zero_pad().bytes()  # I: extra_bit 0
    ext = (BitWriter().u(8, 4).u(0xFFFF, 16).u(0, 2).u(structure, 2).u(0, 3).u(q_scale_type, 1)
           .u(0, 6).zero_pad().bytes())
    slices = b"".join(b"\x00\x00\x01" + bytes([row + 1]) + BitWriter().u(c, 5).u(0, 1).u(0x55, 8).zero_pad().bytes()
                      for row, c in enumerate(codes))
    return b"\x00\x00\x01\x00" + header + b"\x00\x00\x01\xb5" + ext + slices


def test_two_field_pictures_in_one_packet():
    """Hand-built (FFmpeg's encoder writes frame pictures only): top field codes 4, 4; bottom 10, 10, non-linear."""
    packet = _field_picture(1, 1, [4, 4]) + _field_picture(2, 1, [10, 10], coding_type=2)
    reader = Mpeg2QpReader()
    assert reader.packet_qp(packet) == (4 + 4 + 12 + 12) / 4
    assert [(p.picture_structure, p.coding_type, p.quantiser_scales) for p in reader.last_pictures] == [
        (1, 1, [4, 4]), (2, 2, [12, 12])]


def test_damaged_packets_give_none(tmp_path):
    path = encode(tmp_path / "v.ts", "mpeg2video", "mpegts", q=5, b_frames=2, frames=6)
    packets = []
    import av

    with av.open(str(path)) as c:
        packets = [bytes(p) for p in c.demux(c.streams.video[0]) if p.size]
    reader = Mpeg2QpReader()
    first = packets[0]
    slice_at = next(i for i in range(len(first) - 3) if first[i : i + 3] == b"\x00\x00\x01" and 1 <= first[i + 3] <= 0xAF)
    assert reader.packet_qp(first[:slice_at]) is None  # headers, no slice yet
    assert reader.packet_qp(first[:slice_at + 4]) is None  # slice start code without its quantiser
    assert reader.packet_qp(first[slice_at:]) is None  # slices without a picture header
    zero_code = bytearray(first)
    zero_code[slice_at + 4] &= 0x07  # quantiser_scale_code 0 (forbidden)
    assert reader.packet_qp(bytes(zero_code)) is None
    assert reader.packet_qp(b"") is None
    rng = random.Random(3)
    for _ in range(200):  # garbage and truncations: never an exception, never a made-up value
        data = bytes(rng.randrange(256) for _ in range(rng.randrange(64)))
        assert reader.packet_qp(data) is None
        cut = rng.choice(packets)[: rng.randrange(1, 60)]
        assert reader.packet_qp(cut) in (None, 10.0)
        noisy = bytearray(rng.choice(packets))
        for _ in range(5):
            noisy[rng.randrange(len(noisy))] = rng.randrange(256)
        value = reader.packet_qp(bytes(noisy))
        assert value is None or 1 <= value <= 112
    assert reader.packet_qp(packets[1]) == 10.0  # the reader still works


def test_reader_factory_and_h264_equivalent():
    from vsjpegfix.quantisers.hevc import HevcQpReader
    from vsjpegfix.quantisers.mjpeg import MjpegQpReader
    from vsjpegfix.quantisers.mpeg4 import Mpeg4QpReader
    from vsjpegfix.quantisers.readers import READER_CODECS
    from vsjpegfix.quantisers.vp9 import Vp9QpReader

    expected = {"mpeg1video": Mpeg2QpReader, "mpeg2video": Mpeg2QpReader, "mpeg4": Mpeg4QpReader,
                "mjpeg": MjpegQpReader, "vp9": Vp9QpReader, "hevc": HevcQpReader}
    assert set(expected) == READER_CODECS
    for name, kind in expected.items():
        assert type(stream_quantiser_reader(name, None)) is kind
        assert type(stream_quantiser_reader(name, b"")) is kind
    for name in ("h264", "msmpeg4v3", "vp8", "av1"):
        assert stream_quantiser_reader(name, None) is None
    assert equivalent_h264_qp(16) == pytest.approx(6 * 4.678, abs=0.01)  # Qstep(28.07) = 16
    assert equivalent_h264_qp(2) < equivalent_h264_qp(62) < equivalent_h264_qp(112)
