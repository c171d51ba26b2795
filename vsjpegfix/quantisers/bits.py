"""Bit-level reading shared by the per-picture quantiser readers.

* :class:`BitReader`: an MSB-first reader with the descriptors of the video coding standards:
  ``u(n)``/``f(n)`` (fixed-length unsigned, ITU-T H.264/H.265 7.2, ISO/IEC 13818-2 and 14496-2
  ``uimsbf``/``bslbf``), ``ue(v)``/``se(v)`` (Exp-Golomb, H.264 9.1 and H.265 9.2) and VP9's ``su(n)``
  (VP9 bitstream specification 4.9: magnitude, then sign), with marker bits, byte alignment and the
  bit position.
* :func:`remove_emulation_prevention`: an H.264/HEVC NAL unit payload to its RBSP (H.264 7.4.1,
  H.265 7.4.2: ``emulation_prevention_three_byte`` after two zero bytes).
* :func:`annexb_units`, :func:`length_units`: the NAL units of an H.264/HEVC packet, in Annex B or
  length-prefixed (``avcC``/``hvcC``) framing.
* :func:`start_code_units`: the units of a stream framed by ``00 00 01`` start codes (MPEG-1/2
  video ISO/IEC 11172-2 / 13818-2 6.2, MPEG-4 Part 2 ISO/IEC 14496-2 6.2, H.264/HEVC Annex B).

Reading past the end of the data, or an impossible code, raises :class:`BitstreamError` (a
``ValueError``): a reader catches it and reports no quantiser for that packet.
"""

from __future__ import annotations

__all__ = ["BitReader", "BitstreamError", "annexb_units", "length_units", "remove_emulation_prevention", "start_code_units"]


class BitstreamError(ValueError):
    """The data ended before a syntax element, or holds a value the syntax forbids."""


class BitReader:
    """MSB-first bit reader over ``data`` (bytes-like), starting at bit ``pos``.

    ``pos`` is the bit position of the next read (0 = the most significant bit of ``data[0]``).
    Reading past the end raises :class:`BitstreamError`, never returns made-up zeros.
    """

    __slots__ = ("data", "pos", "_size")

    def __init__(self, data: bytes | bytearray | memoryview, pos: int = 0):
        self.data = bytes(data)
        self._size = len(self.data) * 8
        if not 0 <= pos <= self._size:
            raise BitstreamError("start position outside the data")
        self.pos = pos

    @property
    def bits_left(self) -> int:
        """Bits between the position and the end of the data."""
        return self._size - self.pos

    @property
    def byte_aligned(self) -> bool:
        return not self.pos & 7

    def u(self, n: int) -> int:
        """The next ``n`` bits as an unsigned integer, most significant first (``n`` = 0 reads nothing)."""
        if n <= 0:
            if n < 0:
                raise BitstreamError("negative bit count")
            return 0
        end = self.pos + n
        if end > self._size:
            raise BitstreamError("read past the end of the data")
        first, last = self.pos >> 3, (end + 7) >> 3
        chunk = int.from_bytes(self.data[first:last], "big")
        self.pos = end
        return (chunk >> ((last << 3) - end)) & ((1 << n) - 1)

    f = u  # the fixed-pattern descriptor reads the same way

    def peek(self, n: int) -> int:
        """The next ``n`` bits without moving the position."""
        pos = self.pos
        try:
            return self.u(n)
        finally:
            self.pos = pos

    def flag(self) -> bool:
        """One bit as a bool."""
        return bool(self.u(1))

    def skip(self, n: int) -> None:
        """Move past ``n`` bits (they must exist)."""
        if n < 0 or self.pos + n > self._size:
            raise BitstreamError("skip past the end of the data")
        self.pos += n

    def marker(self) -> None:
        """A ``marker_bit`` (always 1 in MPEG-1/2/4 video): a 0 means the parse went astray."""
        if not self.u(1):
            raise BitstreamError("marker bit is 0")

    def ue(self) -> int:
        """Unsigned Exp-Golomb code ``ue(v)`` (at most 32 bits of value)."""
        zeros = 0
        while not self.u(1):
            zeros += 1
            if zeros > 31:
                raise BitstreamError("bad Exp-Golomb code")
        return (1 << zeros) - 1 + self.u(zeros)

    def se(self) -> int:
        """Signed Exp-Golomb code ``se(v)``: 0, 1, -1, 2, -2, ..."""
        k = self.ue()
        return (k + 1) // 2 if k & 1 else -(k // 2)

    def su(self, n: int) -> int:
        """VP9's ``su(n)``: an ``n``-bit magnitude followed by a sign bit (1 = negative)."""
        value = self.u(n)
        return -value if self.u(1) else value

    def align(self) -> None:
        """Skip to the next byte boundary (nothing when already aligned)."""
        self.pos = min(self._size, (self.pos + 7) & ~7)


def remove_emulation_prevention(data: bytes | bytearray | memoryview) -> bytes:
    """An H.264/HEVC NAL unit payload with its emulation prevention bytes removed (its RBSP).

    Every ``0x03`` that follows two zero bytes is dropped (H.264 7.4.1, H.265 7.4.2); the count of
    zeros restarts after a dropped byte, so ``00 00 03 03`` keeps its second ``03``. Pass the payload
    after the NAL unit header (or with it: the header never holds ``00 00``).
    """
    return bytes(data).replace(b"\x00\x00\x03", b"\x00\x00")


def start_code_units(data: bytes | bytearray | memoryview) -> list[tuple[int, bytes]]:
    """The units of a start-code framed stream: ``(code, payload)`` for every ``00 00 01 code``.

    ``code`` is the byte after the prefix (MPEG-1/2: ``0x00`` picture, ``0x01..0xAF`` slice,
    ``0xB3`` sequence header, ``0xB5`` extension...; MPEG-4 Part 2: ``0x20..0x2F`` VOL,
    ``0xB6`` VOP...); ``payload`` runs from the byte after it up to the next start code prefix
    (trailing zero bytes, which may belong to that prefix, are kept). Bytes before the first start
    code are ignored; a prefix at the very end without a code byte is dropped.
    """
    data = bytes(data)
    units: list[tuple[int, bytes]] = []
    i = data.find(b"\x00\x00\x01")
    while 0 <= i and i + 3 < len(data):
        j = data.find(b"\x00\x00\x01", i + 4)
        units.append((data[i + 3], data[i + 4 : j if j >= 0 else len(data)]))
        i = j
    return units


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
