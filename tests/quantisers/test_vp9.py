"""VP9 ``base_q_idx`` against the quantiser libvpx was given and against FFmpeg's VP9 decoder's export
(``venc_params``), in WebM/MKV, MP4 and IVF: superframes with hidden alt-ref frames, show_existing_frame,
segmentation, profile 1."""

from __future__ import annotations

import random

import av
import pytest
from qp_clips import decoder_truth, encode, packet_values, photo_frames

from vsjpegfix.quantisers.readers import stream_quantiser_reader
from vsjpegfix.quantisers.vp9 import (
    AC_QLOOKUP_8BIT,
    Vp9QpReader,
    equivalent_h264_qp,
    superframe_frames,
)

pytest.importorskip("skimage.data")

FAST = {"deadline": "good", "cpu-used": "8", "b": "0"}
CONTAINERS = [("webm", "webm"), ("matroska", "mkv"), ("mp4", "mp4"), ("ivf", "ivf")]


def _matches_decoder(path) -> list[float]:
    by_pts = dict(packet_values(path, Vp9QpReader))
    truth = decoder_truth(path, base=True)
    assert len(truth) == len(by_pts)
    for pts, _, q in truth:
        assert by_pts[pts] == q
    return [q for _, _, q in truth]


@pytest.mark.parametrize("fmt,ext", CONTAINERS)
@pytest.mark.parametrize("quantizer", [20, 45])
def test_fixed_quantizer(tmp_path, fmt, ext, quantizer):
    """libvpx's 0..63 quantizer maps to q index 4 * q (below 63); qmin = qmax pins it for every frame."""
    path = encode(tmp_path / f"v.{ext}", "libvpx-vp9", fmt, q=quantizer, frames=6,
                  options={**FAST, "crf": str(quantizer)})
    values = [v for _, v in packet_values(path, lambda e: stream_quantiser_reader("vp9", e))]
    assert values == [4 * quantizer] * 6
    _matches_decoder(path)


@pytest.mark.parametrize("fmt,ext", CONTAINERS)
def test_constant_quality_varies_by_frame(tmp_path, fmt, ext):
    path = encode(tmp_path / f"v.{ext}", "libvpx-vp9", fmt, frames=10, options={**FAST, "crf": "30"})
    assert len(set(_matches_decoder(path))) >= 3


def _two_pass(path, frames: int = 16):
    """Two-pass good-quality encode: libvpx then makes hidden alt-ref frames, packed into superframes."""
    stats = None
    for flag in (1 << 9, 1 << 10):  # AV_CODEC_FLAG_PASS1, AV_CODEC_FLAG_PASS2
        with av.open(str(path), "w", format="webm") as out:
            s = out.add_stream("libvpx-vp9", rate=25)
            s.width, s.height, s.pix_fmt = 160, 96, "yuv420p"
            s.codec_context.flags |= flag
            if stats is not None:
                s.codec_context.stats_in = stats
            s.codec_context.options = {"deadline": "good", "cpu-used": "4", "crf": "30", "b": "0",
                                       "lag-in-frames": "25", "auto-alt-ref": "1"}
            for t, rgb in enumerate(photo_frames(frames, 160, 96)):
                frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
                frame.pts = t
                for p in s.encode(frame):
                    out.mux(p)
            for p in s.encode():
                out.mux(p)
            stats = s.codec_context.stats_out
    return path


def test_superframes_report_the_shown_frame_and_show_existing_the_referenced_one(tmp_path):
    """Hidden alt-ref frames are skipped; a show_existing_frame packet (1 byte: frame marker, profile 0,
    show_existing_frame, slot), injected after each superframe and at the end for every slot, gets the
    quantiser of the frame FFmpeg's decoder then shows."""
    path = _two_pass(tmp_path / "v.webm")
    _matches_decoder(path)
    with av.open(str(path)) as c:
        packets = [bytes(p) for p in c.demux(c.streams.video[0]) if p.size]
    reader = Vp9QpReader()
    ctx = av.CodecContext.create("vp9", "r")
    ctx.thread_count = 1  # no frame-threading delay: each packet's frame comes out of its own decode call
    ctx.options = {"export_side_data": "venc_params"}

    def show_existing(slot: int) -> float | None:
        value = reader.packet_qp(bytes([0x88 | slot]))
        assert reader.last_frames[0].kind == "show-existing"
        frames = ctx.decode(av.Packet(bytes([0x88 | slot])))
        assert len(frames) == 1
        assert value == frames[0].side_data.get("VIDEO_ENC_PARAMS").qp
        return value

    hidden, shown_again = [], []
    for data in packets:
        value = reader.packet_qp(data)
        frames = reader.last_frames
        decoded = ctx.decode(av.Packet(data))
        assert len(decoded) == 1 and decoded[0].side_data.get("VIDEO_ENC_PARAMS").qp == value
        if len(frames) > 1:
            assert len(superframe_frames(data)) == len(frames)
            assert [f.shown for f in frames] == [False, True]
            assert value == frames[1].base_q_idx != frames[0].base_q_idx
            hidden.append(frames[0].base_q_idx)
            slot = (frames[0].refresh_frame_flags & -frames[0].refresh_frame_flags).bit_length() - 1
            shown_again.append(show_existing(slot))
    assert hidden and shown_again == hidden  # the alt-ref frames, shown by show_existing_frame
    assert len({show_existing(slot) for slot in range(8)}) >= 2
    assert Vp9QpReader().packet_qp(bytes([0x89])) is None  # a slot the reader has not seen filled


@pytest.mark.parametrize("pix_fmt", ["yuv444p", "gbrp"])  # profile 1: subsampling bits, RGB colour space
def test_profile_1(tmp_path, pix_fmt):
    path = encode(tmp_path / "v.webm", "libvpx-vp9", "webm", frames=6, pix_fmt=pix_fmt, options={**FAST, "crf": "30"})
    assert len(set(_matches_decoder(path))) >= 2


def test_lossless_and_error_resilient(tmp_path):
    lossless = encode(tmp_path / "l.webm", "libvpx-vp9", "webm", frames=4, options={**FAST, "lossless": "1"})
    assert _matches_decoder(lossless) == [0.0] * 4
    resilient = encode(tmp_path / "e.webm", "libvpx-vp9", "webm", frames=6,
                       options={**FAST, "crf": "30", "error-resilient": "1"})
    assert len(set(_matches_decoder(resilient))) >= 2


@pytest.mark.parametrize("aq_mode", ["1", "3"])
def test_segmentation_keeps_the_base_and_reports_segment_deltas(tmp_path, aq_mode):
    path = encode(tmp_path / "v.webm", "libvpx-vp9", "webm", frames=8, options={**FAST, "crf": "30", "aq-mode": aq_mode})
    _matches_decoder(path)  # base_q_idx, the frame-level value
    reader = Vp9QpReader()
    with av.open(str(path)) as c:
        segments = []
        for p in c.demux(c.streams.video[0]):
            if p.size:
                reader.packet_qp(bytes(p))
                segments.append(reader.last_frames[0].segment_q)
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        s.codec_context.options = {"export_side_data": "venc_params"}
        for frame, segment in zip(c.decode(s), segments):
            params = frame.side_data.get("VIDEO_ENC_PARAMS")
            deltas = {params.block_params(i).delta_qp for i in range(params.nb_blocks)}
            if deltas:
                values, absolute = segment
                assert not absolute and deltas <= {v or 0 for v in values}
    assert sum(s is not None for s in segments) >= 4


def test_damaged_packets_give_none(tmp_path):
    path = encode(tmp_path / "v.ivf", "libvpx-vp9", "ivf", frames=4, q=30, options={**FAST, "crf": "30"})
    with av.open(str(path)) as c:
        packets = [bytes(p) for p in c.demux(c.streams.video[0]) if p.size]
    reader = Vp9QpReader()
    assert reader.packet_qp(packets[0][:3]) is None  # cut inside the key frame's sync code
    assert reader.packet_qp(b"\x00" + packets[0][1:]) is None  # frame_marker 0
    broken = bytearray(packets[0])
    broken[2] ^= 0xFF  # the sync code
    assert reader.packet_qp(bytes(broken)) is None
    index = bytes([0xC9, 0xFF, 0x00, 0xFF, 0x00, 0xC9])  # a superframe index promising 2 x 255 bytes
    assert reader.packet_qp(packets[1] + index) is None
    assert reader.packet_qp(b"") is None
    rng = random.Random(9)
    for _ in range(300):
        data = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 40)))
        value = reader.packet_qp(data)  # random bytes can be a valid header: just no exception
        assert value is None or 0 <= value <= 255
        assert reader.packet_qp(rng.choice(packets)[: rng.randrange(1, 6)]) in (None, 120.0)
    reader = Vp9QpReader()
    assert [reader.packet_qp(p) for p in packets] == [120.0] * 4


def test_table_and_h264_equivalent():
    assert len(AC_QLOOKUP_8BIT) == 256 and AC_QLOOKUP_8BIT[0] == 4 and AC_QLOOKUP_8BIT[255] == 1828
    assert all(a < b for a, b in zip(AC_QLOOKUP_8BIT, AC_QLOOKUP_8BIT[1:]))
    assert equivalent_h264_qp(255) == pytest.approx(51.1, abs=0.05)  # ac_q 1828 / 8 = Qstep(51.1)
    assert equivalent_h264_qp(0) < equivalent_h264_qp(120) < equivalent_h264_qp(200)
