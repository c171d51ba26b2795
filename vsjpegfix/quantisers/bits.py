"""Bitstream reading shared by the quantiser readers: an MSB-first bit reader, emulation-prevention
removal, and the NAL-unit framings of H.264/HEVC (Annex B start codes, or length prefixes after
``avcC``/``hvcC``).
"""

from __future__ import annotations


class BitReader:
    """MSB-first bit reader over bytes (an RBSP, emulation prevention bytes already removed).

    Reading past the end raises ``IndexError``: callers give up on that unit.
    """

    def __init__(self, data: bytes, pos: int = 0):
        self.data, self.pos = data, pos

    def u(self, n: int) -> int:
        """The next ``n`` bits as an unsigned integer."""
        value = 0
        for _ in range(n):
            byte = self.data[self.pos >> 3]
            value = (value << 1) | ((byte >> (7 - (self.pos & 7))) & 1)
            self.pos += 1
        return value

    def flag(self) -> bool:
        """The next bit as a bool."""
        return bool(self.u(1))

    def ue(self) -> int:
        """An unsigned Exp-Golomb code (``ue(v)``)."""
        zeros = 0
        while not self.u(1):
            zeros += 1
            if zeros > 31:
                raise ValueError("bad Exp-Golomb code")
        return (1 << zeros) - 1 + self.u(zeros)

    def se(self) -> int:
        """A signed Exp-Golomb code (``se(v)``)."""
        k = self.ue()
        return (k + 1) // 2 if k & 1 else -(k // 2)

    def align(self) -> None:
        """Skip to the next byte boundary."""
        self.pos = (self.pos + 7) & ~7

    @property
    def left(self) -> int:
        """Bits left to read."""
        return len(self.data) * 8 - self.pos


def unescape(body: bytes) -> bytes:
    """Remove the emulation prevention bytes (``00 00 03`` -> ``00 00``) of a NAL unit's payload."""
    if b"\x00\x00\x03" not in body:
        return body
    out = bytearray()
    zeros = 0
    for b in body:
        if zeros >= 2 and b == 3:
            zeros = 0
            continue
        out.append(b)
        zeros = zeros + 1 if b == 0 else 0
    return bytes(out)


def annexb_units(data: bytes) -> list[bytes]:
    """The NAL units of an Annex B byte stream (split at ``00 00 01`` start codes, trailing zeros dropped)."""
    units, i, n = [], 0, len(data)
    starts = []
    while True:
        j = data.find(b"\x00\x00\x01", i)
        if j < 0:
            break
        starts.append(j + 3)
        i = j + 3
    for k, s in enumerate(starts):
        end = starts[k + 1] - 3 if k + 1 < len(starts) else n
        units.append(data[s:end].rstrip(b"\x00") if k + 1 < len(starts) else data[s:end])
    return units


def length_units(data: bytes, size: int) -> list[bytes]:
    """The NAL units of a length-prefixed packet (``size``-byte big-endian lengths, as in MP4/MKV)."""
    units, i = [], 0
    while i + size <= len(data):
        n = int.from_bytes(data[i : i + size], "big")
        i += size
        if n == 0 or i + n > len(data):
            break
        units.append(data[i : i + n])
        i += n
    return units
