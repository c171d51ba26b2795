"""Per-picture quality of a Motion JPEG stream, read from each frame's quantisation tables.

Every MJPEG packet is a JPEG image (ITU-T T.81 Annex B; AVI ``MJPG``/``AVI1`` variants often omit the
Huffman tables, which this reader never needs), or two for interlaced video (one per field, one
after the other). The reader walks the marker segments of each image up to its start of scan (B.2.4):
the DQT segments (B.2.4.1: several tables per segment, 8-bit ``Pq = 0`` or 16-bit ``Pq = 1``
precision, entries in zig-zag order) and the frame header (B.2.2), whose components name the table
each one uses (``Tq``). Tables stay defined for later images, as in a decoder.

**The value is a quality factor, not a quantiser**: :attr:`MjpegQpReader.scale` is ``"qf"``, and
:meth:`MjpegQpReader.packet_qp` returns the IJG (libjpeg) quality factor 1..100 that
:func:`vsjpegfix.quantisers.jpeg.estimate_qf` derives from the tables the image's components use, by
table id (table 0 compared with the scaled luminance table, table 1 if any with the chrominance
one), just as the project reads a JPEG file's quality through Pillow: a frame gives the QF the same
JPEG saved as a file would. Exact for tables made by libjpeg's quality scaling, the nearest
equivalent for others (FFmpeg's own ``mjpeg`` encoder writes MPEG-1's intra matrix times
``qscale / 8`` as the one table of every component, for instance, which no QF makes exactly). Higher means finer, the reverse of the other readers. For two fields the mean QF
is returned. :meth:`MjpegQpReader.packet_quality` gives the full estimate (``exact``, ``mismatch``).

Step size: a JPEG table entry is the step of that coefficient of the orthonormal 8x8 DCT (B.2.4.1,
A.3.4), and at QF 50 the IJG luminance table's low frequencies step by about 10-20;
:func:`equivalent_h264_qp` uses the project's mapping :func:`vsjpegfix.quantisers.mapping.qf_to_qp` (QF 50 ~ QP 30,
each halving of the scale factor -6).

A packet that is not a JPEG (no SOI marker), has no tables, or whose tables or frame header are
damaged gives None. Each packet is one frame in every container, with its frame's pts (MJPEG has
no reordering), so packets are matched to frames by pts as :class:`vsjpegfix.quantisers.stream.StreamQp` does.
"""

from __future__ import annotations

from vsjpegfix.quantisers.jpeg import QualityEstimate, estimate_qf

__all__ = ["ZIGZAG", "MjpegQpReader", "equivalent_h264_qp", "jpeg_tables"]

#: Natural (row-major) index of the k-th coefficient in zig-zag order (T.81 Figure A.6).
ZIGZAG = (
    0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5,
    12, 19, 26, 33, 40, 48, 41, 34, 27, 20, 13, 6, 7, 14, 21, 28,
    35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51,
    58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63,
)

_SOI, _EOI, _SOS, _DQT = 0xD8, 0xD9, 0xDA, 0xDB
#: Start-of-frame markers (T.81 Table B.1): SOF0..3, 5..7, 9..11, 13..15 (not DHT C4, JPG C8, DAC CC).
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
#: Markers without a length: TEM, RST0..7, SOI, EOI.
_STANDALONE = frozenset({0x01, *range(0xD0, 0xDA)})


class JpegError(ValueError):
    """A marker segment that cannot be read."""


def _read_dqt(segment: bytes, tables: dict[int, list[int]]) -> None:
    i = 0
    while i < len(segment):
        precision, table_id = segment[i] >> 4, segment[i] & 15
        width = 2 if precision == 1 else 1
        if precision > 1 or table_id > 3 or i + 1 + 64 * width > len(segment):
            raise JpegError("bad DQT segment")
        raw = segment[i + 1 : i + 1 + 64 * width]
        values = [int.from_bytes(raw[k * width : (k + 1) * width], "big") for k in range(64)]
        natural = [0] * 64
        for k, v in enumerate(values):
            natural[ZIGZAG[k]] = v
        tables[table_id] = natural
        i += 1 + 64 * width


def _read_sof(segment: bytes) -> list[int]:
    if len(segment) < 6:
        raise JpegError("short frame header")
    count = segment[5]
    if count < 1 or len(segment) < 6 + 3 * count:
        raise JpegError("bad frame header")
    return [segment[6 + 3 * c + 2] for c in range(count)]  # Tq of each component


def jpeg_tables(data: bytes, tables: dict[int, list[int]] | None = None) -> list[dict[int, list[int]]]:
    """The quantisation tables (natural order) in use by each JPEG image in ``data``, by table id.

    For each image (from SOI to its start of scan) the dict holds the tables its components name
    (usually 0 for luminance, 1 for chrominance; a single table 0 when every component uses it):
    the input :func:`vsjpegfix.quantisers.jpeg.estimate_qf` takes, as Pillow reports a JPEG file's.
    ``tables``: the table definitions known before (updated in place). Raises :class:`JpegError`
    on a damaged segment, or when a component names an undefined table.
    """
    tables = {} if tables is None else tables
    images: list[dict[int, list[int]]] = []
    n = len(data)
    start = data.find(b"\xff\xd8")
    while start >= 0:
        i = start + 2
        components: list[int] | None = None
        while True:
            while i < n and data[i] == 0xFF and i + 1 < n and data[i + 1] == 0xFF:
                i += 1  # fill bytes
            if i + 1 >= n or data[i] != 0xFF:
                raise JpegError("marker expected")
            marker = data[i + 1]
            if marker in _STANDALONE:
                if marker in (_SOI, _EOI):
                    raise JpegError("image without a scan")
                i += 2
                continue
            if i + 4 > n:
                raise JpegError("truncated marker segment")
            length = int.from_bytes(data[i + 2 : i + 4], "big")
            if length < 2 or i + 2 + length > n:
                raise JpegError("truncated marker segment")
            segment = data[i + 4 : i + 2 + length]
            if marker == _DQT:
                _read_dqt(segment, tables)
            elif marker in _SOF:
                components = _read_sof(segment)
            elif marker == _SOS:
                if components is None:
                    raise JpegError("scan before the frame header")
                try:
                    images.append({t: tables[t] for t in sorted(set(components))})
                except KeyError:
                    raise JpegError("component uses an undefined table") from None
                i += 2 + length
                break
            i += 2 + length
        # entropy-coded data never holds FF D8 (an FF there is followed by 00 or a RST marker)
        start = data.find(b"\xff\xd8", i)
    return images


class MjpegQpReader:
    """Reads the IJG quality factor (1..100, *not* a quantiser) of each Motion JPEG packet.

    ``extradata``: unused by MJPEG (AVI/MOV store none that matters); accepted for the common
    interface. Quantisation tables defined in one packet stay known for later ones.
    """

    scale = "qf"

    def __init__(self, extradata: bytes | None = None):
        self._tables: dict[int, list[int]] = {}
        self.last_estimates: list[QualityEstimate] = []  # one per image of the last packet read

    def packet_quality(self, data: bytes) -> list[QualityEstimate] | None:
        """The quality estimate of each image (field) in the packet, or None if one cannot be read."""
        try:
            images = jpeg_tables(data if isinstance(data, bytes) else bytes(data), self._tables)
            return [estimate_qf(t) for t in images] if images else None
        except (ValueError, IndexError):
            return None

    def packet_qp(self, data: bytes) -> float | None:
        """The packet's IJG quality factor (mean over its fields), or None. Higher = finer."""
        estimates = self.packet_quality(data)
        self.last_estimates = estimates or []
        return sum(e.qf for e in estimates) / len(estimates) if estimates else None


def equivalent_h264_qp(qf: float) -> float:
    """H.264-equivalent QP of an IJG quality factor: :func:`vsjpegfix.quantisers.mapping.qf_to_qp` (QF 50 ~ QP 30)."""
    from vsjpegfix.quantisers.mapping import qf_to_qp

    return qf_to_qp(qf)
