"""The shared bit reader and emulation-prevention helpers, against naive references and the HEVC reader's own."""

from __future__ import annotations

import random

import pytest
from qp_clips import BitWriter

from vsjpegfix.quantisers.bits import (
    BitReader,
    BitstreamError,
    remove_emulation_prevention,
    start_code_units,
)
from vsjpegfix.quantisers.hevc import _rbsp as hevc_rbsp


def _bits(data: bytes) -> str:
    return "".join(f"{b:08b}" for b in data)


def test_fixed_length_reads_match_the_bit_string():
    rng = random.Random(1)
    data = bytes(rng.randrange(256) for _ in range(64))
    text = _bits(data)
    r, pos = BitReader(data), 0
    while True:
        n = rng.choice([0, 1, 2, 3, 5, 7, 8, 9, 13, 16, 24, 31, 32, 33])
        if pos + n > len(text):
            break
        assert r.peek(n) == (int(text[pos : pos + n], 2) if n else 0)
        assert r.u(n) == (int(text[pos : pos + n], 2) if n else 0)
        pos += n
        assert r.pos == pos and r.bits_left == len(text) - pos and r.byte_aligned == (pos % 8 == 0)


def test_exp_golomb_and_signed_codes():
    assert [BitReader(bytes([b])).ue() for b in (0b10000000, 0b01000000, 0b01100000, 0b00100000)] == [0, 1, 2, 3]
    values = [0, 1, 2, 3, 7, 8, 254, 255, 65535, 2**31]
    signed = [0, 1, -1, 2, -2, 100, -100, 2**20, -(2**20)]
    w = BitWriter()
    for v in values:
        w.ue(v)
    for v in signed:
        w.se(v)
    w.zero_pad()
    r = BitReader(w.bytes())
    assert [r.ue() for _ in values] == values
    assert [r.se() for _ in signed] == signed


def test_vp9_su_flag_marker_skip_align():
    r = BitReader(bytes([0b0101_1_10_1, 0b1000_0000, 0xFF, 0xFF]))
    assert r.su(4) == -5  # magnitude 0101, sign 1
    assert r.su(1) == 1  # magnitude 1, sign 0
    assert r.flag() is True
    r.marker()
    r.align()
    assert r.pos == 16
    r.align()
    assert r.pos == 16
    r.skip(7)
    r.align()
    assert r.pos == 24
    with pytest.raises(BitstreamError):
        BitReader(b"\x7f").marker()


def test_errors_are_value_errors_and_leave_the_position():
    r = BitReader(b"\xff\x00")
    r.u(12)
    with pytest.raises(BitstreamError):
        r.u(5)
    assert r.pos == 12
    with pytest.raises(ValueError):
        r.skip(5)
    with pytest.raises(BitstreamError):
        BitReader(b"\x00" * 5).ue()  # more than 31 leading zeros
    with pytest.raises(BitstreamError):
        BitReader(b"").flag()


@pytest.mark.parametrize("body,rbsp", [
    (b"\x00\x00\x03\x01", b"\x00\x00\x01"),
    (b"\x00\x00\x03\x03", b"\x00\x00\x03"),  # the count of zeros restarts after a dropped byte
    (b"\x00\x00\x03\x00\x00\x03", b"\x00\x00\x00\x00"),
    (b"\x00\x03\x00\x00\x03", b"\x00\x03\x00\x00"),
    (b"\x12\x00\x00\x03", b"\x12\x00\x00"),  # cabac_zero_word at the end
    (b"\x00\x00\x02", b"\x00\x00\x02"),
])
def test_emulation_prevention(body, rbsp):
    assert remove_emulation_prevention(body) == rbsp


def test_emulation_prevention_matches_the_hevc_readers_loop():
    rng = random.Random(7)
    for _ in range(300):
        body = bytes(rng.choice([0, 0, 0, 3, 3, 1, 2, 0x80]) for _ in range(rng.randrange(1, 40)))
        assert remove_emulation_prevention(body) == hevc_rbsp(b"\x40\x01" + body)


def test_start_code_units():
    data = b"\xff\x00\x00\x01\xb3abc\x00\x00\x01\x00\x12\x00\x00\x00\x01\x01q\x00\x00\x01"
    assert start_code_units(data) == [(0xB3, b"abc"), (0x00, b"\x12\x00"), (0x01, b"q")]
    assert start_code_units(b"no start code") == []
