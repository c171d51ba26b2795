"""Motion JPEG quality factors read from each packet's tables: against the tables FFmpeg's encoder is known
to write for a fixed qscale, against Pillow's parse of the same packets, and against JPEGs of known IJG quality."""

from __future__ import annotations

import io
import random
from fractions import Fraction

import av
import numpy as np
import pytest
from PIL import Image
from qp_clips import H, W, encode, packet_values, photo_frames

from vsjpegfix.quantisers.jpeg import STD_CHROMA, STD_LUMA, estimate_qf, ijg_table
from vsjpegfix.quantisers.mapping import qf_to_qp
from vsjpegfix.quantisers.mjpeg import MjpegQpReader, equivalent_h264_qp, jpeg_tables
from vsjpegfix.quantisers.readers import stream_quantiser_reader

pytest.importorskip("skimage.data")

#: MPEG-1's default intra matrix (ISO/IEC 11172-2 2.4.3.2, natural order): what FFmpeg's mjpeg encoder scales.
MPEG1_INTRA = np.array([
    8, 16, 19, 22, 26, 27, 29, 34, 16, 16, 22, 24, 27, 29, 34, 37,
    19, 22, 26, 27, 29, 34, 34, 38, 22, 22, 26, 27, 29, 34, 37, 40,
    22, 26, 27, 29, 32, 35, 40, 48, 26, 27, 29, 32, 35, 40, 48, 58,
    26, 27, 29, 34, 38, 46, 56, 69, 27, 29, 35, 38, 46, 56, 69, 83,
])
CONTAINERS = [("avi", "avi"), ("matroska", "mkv"), ("mov", "mov")]


def _ffmpeg_table(qscale: int) -> list[int]:
    """The table FFmpeg's mjpeg encoder writes for ``qscale``: the matrix times qscale / 8, DC step 8."""
    t = np.minimum((MPEG1_INTRA * qscale) >> 3, 255)
    t[0] = 8
    return t.tolist()


def _packets(path) -> list[bytes]:
    with av.open(str(path)) as c:
        return [bytes(p) for p in c.demux(c.streams.video[0]) if p.size]


def _pillow_qf(data: bytes) -> float:
    with Image.open(io.BytesIO(data)) as im:
        return estimate_qf(im.quantization).qf


@pytest.mark.parametrize("fmt,ext", CONTAINERS)
@pytest.mark.parametrize("qscale", [3, 12, 31])
def test_ffmpeg_fixed_qscale(tmp_path, fmt, ext, qscale):
    path = encode(tmp_path / f"v.{ext}", "mjpeg", fmt, q=qscale, frames=6, pix_fmt="yuvj420p")
    expected = estimate_qf([_ffmpeg_table(qscale)])
    assert not expected.exact  # FFmpeg's tables are not IJG ones: the nearest QF
    values = [v for _, v in packet_values(path, lambda e: stream_quantiser_reader("mjpeg", e))]
    assert values == [expected.qf] * 6
    for data in _packets(path):
        assert jpeg_tables(data) == [{0: _ffmpeg_table(qscale)}]  # one DQT table, used by every component


def test_ffmpeg_qscale_order():
    qf = [estimate_qf([_ffmpeg_table(q)]).qf for q in (2, 3, 6, 12, 31)]
    assert qf == sorted(qf, reverse=True) and len(set(qf)) == 5


@pytest.mark.parametrize("fmt,ext", CONTAINERS)
def test_rate_controlled_stream_against_pillow(tmp_path, fmt, ext):
    path = encode(tmp_path / f"v.{ext}", "mjpeg", fmt, q_range=(2, 31), bit_rate=300_000, frames=12,
                  pix_fmt="yuvj420p")
    values = packet_values(path, MjpegQpReader)
    assert [v for _, v in values] == [_pillow_qf(d) for d in _packets(path)]
    assert len({v for _, v in values}) >= 3


def _pillow_jpeg(rgb: np.ndarray, **kwargs) -> bytes:
    out = io.BytesIO()
    Image.fromarray(rgb).save(out, "JPEG", **kwargs)
    return out.getvalue()


def _mux(path, packets: list[bytes], fmt: str) -> None:
    with av.open(str(path), "w", format=fmt) as out:
        stream = out.add_stream("mjpeg", rate=25)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuvj420p"
        for k, data in enumerate(packets):
            p = av.Packet(data)
            p.stream, p.pts, p.dts, p.time_base, p.is_keyframe = stream, k, k, Fraction(1, 25), True
            out.mux(p)


@pytest.mark.parametrize("fmt,ext", CONTAINERS)
def test_ijg_quality_per_frame_by_pts(tmp_path, fmt, ext):
    """libjpeg (Pillow) frames at known qualities in each container: exact QFs, matched to decoded frames by pts."""
    qualities = [10, 35, 50, 75, 90, 97]
    _mux(tmp_path / f"v.{ext}", [_pillow_jpeg(f, quality=q) for f, q in zip(photo_frames(6), qualities)], fmt)
    by_pts = dict(packet_values(tmp_path / f"v.{ext}", MjpegQpReader))
    with av.open(str(tmp_path / f"v.{ext}")) as c:
        decoded = [f.pts for f in c.decode(video=0)]
    assert [by_pts[pts] for pts in decoded] == qualities
    reader = MjpegQpReader()
    reader.packet_qp(_pillow_jpeg(photo_frames(1)[0], quality=50))
    assert reader.last_estimates[0].exact


def test_sixteen_bit_tables_and_gray():
    rgb = photo_frames(1)[0]
    tables = [ijg_table(STD_LUMA, 5, baseline=False).tolist(), ijg_table(STD_CHROMA, 5, baseline=False).tolist()]
    data = _pillow_jpeg(rgb, qtables=tables)
    dqt = data.find(b"\xff\xdb")
    assert data[dqt + 4] >> 4 == 1  # Pq = 1: 16-bit entries
    reader = MjpegQpReader()
    assert reader.packet_qp(data) == 5.0 and reader.last_estimates[0].exact
    assert reader.packet_qp(_pillow_jpeg(rgb[..., 0], quality=42)) == 42.0  # one component


def test_avi1_field_pair_without_huffman_tables():
    """Interlaced MJPEG as capture cards write it: AVI1 APP0, no DHT (decoders use the standard tables),
    one JPEG per field in the packet. The packet's QF is the mean of its fields'."""
    top, bottom = photo_frames(1, W, H // 2)[0], photo_frames(2, W, H // 2)[1]

    def strip(data: bytes, field: int) -> bytes:
        out, i = bytearray(data[:2] + b"\xff\xe0\x00\x10AVI1" + bytes([field]) + b"\x00" * 9), 2
        while data[i + 1] != 0xDA:  # copy the segments before the scan, minus DHT and APPn
            n = int.from_bytes(data[i + 2 : i + 4], "big")
            if data[i + 1] != 0xC4 and not 0xE0 <= data[i + 1] <= 0xEF:
                out += data[i : i + 2 + n]
            i += 2 + n
        return bytes(out + data[i:])

    packet = strip(_pillow_jpeg(top, quality=40), 1) + strip(_pillow_jpeg(bottom, quality=60), 2)
    assert b"\xff\xc4" not in packet
    reader = MjpegQpReader()
    assert reader.packet_qp(packet) == 50.0
    assert [e.qf for e in reader.last_estimates] == [40.0, 60.0]
    ctx = av.CodecContext.create("mjpeg", "r")  # FFmpeg decodes the packet: it is a valid MJPEG frame
    assert len(ctx.decode(av.Packet(packet))) == 1


def test_damaged_packets_give_none():
    data = _pillow_jpeg(photo_frames(1)[0], quality=65)
    reader = MjpegQpReader()
    assert reader.packet_qp(data) == 65.0
    sof = data.find(b"\xff\xc0")
    assert MjpegQpReader().packet_qp(data[: data.find(b"\xff\xdb") + 30]) is None  # cut inside the DQT
    assert MjpegQpReader().packet_qp(data[:sof]) is None  # tables, but no frame header and scan
    no_tables = bytearray(data)
    dqt = data.find(b"\xff\xdb")
    no_tables[dqt + 1] = 0xFE  # the DQT becomes a comment: the frame uses an undefined table
    assert MjpegQpReader().packet_qp(bytes(no_tables)) is None
    zero = bytearray(data)
    zero[dqt + 5] = 0  # a zero step
    assert MjpegQpReader().packet_qp(bytes(zero)) is None
    assert reader.packet_qp(b"") is None and reader.packet_qp(b"RIFF....AVI ") is None
    rng = random.Random(11)
    for _ in range(200):
        assert reader.packet_qp(bytes(rng.randrange(256) for _ in range(rng.randrange(80)))) is None
        cut = data[: rng.randrange(1, sof + 40)]
        assert reader.packet_qp(cut) in (None, 65.0)
        noisy = bytearray(data)
        for _ in range(3):
            noisy[rng.randrange(2, sof + 20)] = rng.randrange(256)
        value = reader.packet_qp(bytes(noisy))
        assert value is None or 1 <= value <= 100
    assert MjpegQpReader().packet_qp(data) == 65.0


def test_h264_equivalent_is_the_projects_mapping():
    assert equivalent_h264_qp(50) == qf_to_qp(50) == 30.0
    assert MjpegQpReader.scale == "qf"
