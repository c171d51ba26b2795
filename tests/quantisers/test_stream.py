"""vsjpegfix.quantisers: the H.264/HEVC QP -> JPEG quality factor mapping used by ``--qf qp``."""

import numpy as np
import pytest

from vsjpegfix.quantisers.mapping import QP_AT_QF50, qf_to_qp, qp_to_qf


@pytest.mark.parametrize("qp,qf", [(30, 50.0), (36, 25.0), (42, 12.5), (24, 75.0), (18, 87.5)])
def test_anchor_values_from_the_docstring(qp, qf):
    assert qp_to_qf(qp) == pytest.approx(qf)
    assert qf_to_qp(qf) == pytest.approx(qp)
    assert QP_AT_QF50 == 30


def test_each_six_qp_halves_the_qf_below_50():
    for qp in np.arange(30, 51, 0.5):
        assert qp_to_qf(qp + 6) == pytest.approx(qp_to_qf(qp) / 2)


def test_monotone_decreasing_continuous_and_in_range():
    qps = np.linspace(-12, 51, 2001)  # 10-bit H.264 reaches QP -12
    qfs = np.array([qp_to_qf(q) for q in qps])
    assert np.all(np.diff(qfs) < 0)  # strictly: a higher quantiser is always a lower quality
    assert np.all((qfs >= 1) & (qfs <= 100))
    assert np.max(np.abs(np.diff(qfs))) < 0.2  # no jump (the two JPEG scaling branches meet at QF 50)
    assert qp_to_qf(0) == pytest.approx(100 - 100 * 2 ** (-5) / 2)
    assert qp_to_qf(51) == pytest.approx(50 / 2 ** 3.5)
    assert qp_to_qf(-100) == pytest.approx(100) and qp_to_qf(-1000) == 100 and qp_to_qf(500) == 1  # clamped


def test_inverse_round_trips():
    for qp in np.linspace(0, 51, 103):
        assert qf_to_qp(qp_to_qf(qp)) == pytest.approx(qp, abs=1e-9)
    for qf in np.linspace(4.5, 98, 95):
        assert qp_to_qf(qf_to_qp(qf)) == pytest.approx(qf, abs=1e-9)
    qfs = np.linspace(1, 99, 99)
    assert np.all(np.diff([qf_to_qp(q) for q in qfs]) < 0)
    assert qf_to_qp(500) == qf_to_qp(100) and qf_to_qp(-5) == qf_to_qp(1)  # clamped to 1..100


@pytest.mark.parametrize("encoder,container", [("libx264", "mp4"), ("libx265", "matroska")])
def test_stream_qp_reads_each_frame_in_display_order(tmp_path, encoder, container):
    import av

    from vsjpegfix.quantisers.stream import StreamQp

    path = tmp_path / f"v.{container}"
    rng = np.random.default_rng(0)
    with av.open(str(path), "w", format=container) as out:
        s = out.add_stream(encoder, rate=25)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        # constant QP 34, I and B frames offset from it (x264 --ipratio/--pbratio, x265 the same names)
        opts = "qp=34:ipratio=1.4:pbratio=1.3:bframes=2:b-adapt=0:aq-mode=0:scenecut=0"
        s.codec_context.options = {"x264-params": opts} if encoder == "libx264" else {"x265-params": f"{opts}:log-level=error"}
        for i in range(7):
            frame = av.VideoFrame.from_ndarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8), format="rgb24")
            frame = frame.reformat(format="yuv420p")
            frame.pts = i
            for p in s.encode(frame):
                out.mux(p)
        for p in s.encode():
            out.mux(p)
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        reader = StreamQp(stream)
        got = []
        for packet in c.demux(stream):
            reader.packet(packet)
            got += [(f.pts, "?IPB"[int(f.pict_type)], reader.frame(f)) for f in packet.decode()]  # AVPictureType
    assert reader.missing == 0 and len(got) == 7
    by_type = {"I": (31,), "P": (34,), "B": (35, 36)}  # a B frame used as a reference sits between P and B
    for _, kind, q in sorted(got):
        assert q.qp in by_type[kind] and q.value == q.qp and q.picture_type == kind, (kind, q)
        assert q.codec == ("h264" if encoder == "libx264" else "hevc")
        assert (q.blocks is not None) == (encoder == "libx264")  # H.264's macroblock QPs come with it
    assert {kind for _, kind, _ in got} == {"I", "P", "B"}


def test_stream_qp_refuses_a_codec_without_quantisers(tmp_path):
    import av

    from vsjpegfix.quantisers.stream import StreamQp

    with av.open(str(tmp_path / "v.mkv"), "w") as out:
        s = out.add_stream("libvpx", rate=25)  # VP8: no reader
        with pytest.raises(ValueError, match="libvpx|vp8"):
            StreamQp(s)


def test_cropped_h264_reads_by_block_positions(tmp_path):
    """The blocks carry their own positions: frame cropping beyond the grid's padding reads like any stream."""
    import av
    from media import cropped_h264

    from vsjpegfix.quantisers.stream import StreamQp, frame_qp, macroblock_qps

    path = cropped_h264(tmp_path / "crop.264", qp=30)
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        reader = StreamQp(stream)
        frames = list(c.decode(stream))
        qps = [reader.frame(f) for f in frames]
        params = frames[0].side_data.get("VIDEO_ENC_PARAMS")
        assert (frames[0].width, frames[0].height) == (40, 48) and params.nb_blocks == 16
        with pytest.raises(RuntimeError, match="match number of blocks"):
            params.qp_map()  # PyAV's map: what the transcoder crashed on before
        blocks = macroblock_qps(params, frames[0].width, frames[0].height)
        assert frame_qp(frames[0]) == pytest.approx(np.mean(blocks.qp))
    assert reader.missing == 0 and len(qps) == 4
    # --qf qp 30, no adaptive quantisation: I frames 30 - 6*log2(1.4)/... rounded; every block the same QP
    assert all(q is not None and 25 <= q.qp <= 32 for q in qps), qps
    # clipped to the 40x48 picture: the blocks of column 48 and row 48 of the 64x64 grid are left out
    assert len(blocks) == 9
    assert blocks.x.min() == 0 and (blocks.x + blocks.w).max() == 40 and (blocks.y + blocks.h).max() == 48
    assert sorted(set(blocks.w.tolist())) == [8, 16] and set(blocks.h.tolist()) == {16}
    assert np.all(blocks.qp == blocks.qp[0])


def test_macroblock_qps_of_an_uncropped_frame_match_pyav_map(tmp_path):
    """The ordinary case (1088 coded rows shown as 1080, here 48 as 44): every block, the mean PyAV's map gives."""
    import av

    from vsjpegfix.quantisers.stream import frame_qp, macroblock_qps

    path = tmp_path / "v.mp4"
    with av.open(str(path), "w") as out:
        s = out.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = 64, 44, "yuv420p"
        s.codec_context.options = {"x264-params": "crf=26"}  # adaptive quantisation: block QPs differ
        rng = np.random.default_rng(2)
        for i in range(2):
            img = np.full((44, 64, 3), 120, np.uint8)  # flat left half, noisy right half
            img[:, 32:] = rng.integers(0, 255, (44, 32, 3), dtype=np.uint8)
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts = i
            out.mux(s.encode(frame.reformat(format="yuv420p")))
        out.mux(s.encode())
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        stream.codec_context.options = {"export_side_data": "venc_params"}
        for frame in c.decode(stream):
            params = frame.side_data.get("VIDEO_ENC_PARAMS")
            blocks = macroblock_qps(params, frame.width, frame.height)
            assert len(blocks) == params.nb_blocks == 12
            qmap = params.qp_map()  # one QP per macroblock of the coded grid (3 x 4)
            rows = np.array([16, 16, 12], float)[:, None] * np.ones((1, 4))  # pixels of each block in the picture
            assert frame_qp(frame) == pytest.approx(float(np.average(qmap, weights=rows)))  # area-weighted
            assert (blocks.y + blocks.h).max() == 44  # the last row clipped to the picture
            assert len(set(blocks.qp.tolist())) > 1


def _encode_static(path, encoder: str, params: str, frames: int = 24, size: tuple[int, int] = (160, 96)) -> None:
    """A static background with a small moving square: most macroblocks of P/B frames are skipped."""
    import av
    from skimage import data

    w, h = size
    still = np.tile(data.astronaut()[:h, : w // 2], (1, 2, 1))
    with av.open(str(path), "w") as out:
        s = out.add_stream(encoder, rate=25)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        s.codec_context.options = {"x264-params": params} if encoder == "libx264" else {"x265-params": f"{params}:log-level=error"}
        for i in range(frames):
            img = still.copy()
            img[30:46, 10 + 4 * i : 26 + 4 * i] = 255
            frame = av.VideoFrame.from_ndarray(img, format="rgb24").reformat(format="yuv420p")
            frame.pts = i
            out.mux(s.encode(frame))
        out.mux(s.encode())


def test_static_background_frames_read_their_real_quantiser(tmp_path):
    """Skipped macroblocks carry the slice QP; frame-threaded decoding used to export stale (zero) QPs
    for some frames, which the profile took for near-lossless ones. Read as the transcoder reads."""
    import av

    from vsjpegfix.quantisers.stream import StreamQp

    path = tmp_path / "static.mkv"
    _encode_static(path, "libx264", "qp=37", frames=30, size=(640, 352))  # frames large enough for the race
    for _ in range(8):  # timing-dependent: with frame threads about 3 % of these frames read low (0 .. 30)
        with av.open(str(path)) as c:
            stream = c.streams.video[0]
            stream.codec_context.thread_type = "AUTO"  # what the transcoder asks for before StreamQp
            reader = StreamQp(stream)
            assert stream.codec_context.thread_type.name == "SLICE"
            got = [reader.frame(f) for f in c.decode(stream)]
        assert len(got) == 30 and reader.missing == 0
        # x264 at QP 37: I frames a little finer, P at 37, B coarser; never a near-lossless reading
        assert all(34 <= q.qp <= 41 for q in got), [round(q.qp, 1) for q in got]
        assert not any(q.adaptive for q in got)


@pytest.mark.parametrize("encoder,params,adaptive", [
    ("libx264", "qp=30", False), ("libx264", "crf=30", True), ("libx265", "qp=30", False), ("libx265", "crf=30", True),
])
def test_adaptive_quantisation_is_detected(tmp_path, encoder, params, adaptive):
    """CRF encodes quantise adaptively (the frame QP is a base); constant-QP encodes do not."""
    import av

    from vsjpegfix.quantisers.stream import StreamQp

    path = tmp_path / "v.mkv"
    _encode_static(path, encoder, params, frames=6)
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        reader = StreamQp(stream)
        got = []
        for packet in c.demux(stream):
            reader.packet(packet)
            got += [reader.frame(f) for f in packet.decode()]
    assert len(got) == 6 and all(q is not None for q in got)
    assert got[-1].adaptive is adaptive and reader.adaptive is adaptive


@pytest.mark.parametrize("codec", ["mpeg2video", "mpeg4", "mjpeg", "vp9"])
def test_codec_tables_are_shipped_monotone_and_interpolated(codec):
    from vsjpegfix.quantisers.mapping import codec_qp, codec_tables, first_order_qp

    table = codec_tables()[codec]  # made by scripts/calibrate_codecs.py
    xs = [p[0] for p in table["points"]]
    assert xs == sorted(xs) and table["calibration"].startswith("scripts/calibrate_codecs.py")
    lo, hi = xs[0], xs[-1]
    values = np.linspace(lo - 5, hi + 5, 200)
    qps = np.array([codec_qp(codec, v) for v in values])
    sign = -1 if codec == "mjpeg" else 1  # MJPEG's value is a quality factor: higher is finer
    assert np.all(sign * np.diff(qps) >= 0) and np.all((qps >= 10) & (qps <= 52))
    (x0, y0), (x1, y1) = table["points"][1], table["points"][2]
    assert codec_qp(codec, (x0 + x1) / 2) == pytest.approx((y0 + y1) / 2)
    assert codec_qp(codec, 10.0, [[0.0, 20.0], [20.0, 40.0]]) == pytest.approx(30.0)  # another table
    assert np.isfinite(first_order_qp(codec, xs[2]))


def test_h264_and_hevc_values_are_their_own_qp():
    from vsjpegfix.quantisers.mapping import codec_qp

    assert codec_qp("h264", 31.5) == 31.5 and codec_qp("hevc", 20.0) == 20.0
    with pytest.raises(ValueError, match="no quantiser mapping"):
        codec_qp("vp8", 10.0)


def test_the_h263_family_takes_mpeg4s_scale_and_table():
    """MS-MPEG4 (DivX 3), H.263, FLV, WMV 7/8 and RealVideo 1/2 state H.263's QUANT, MPEG-4 Part 2's
    vop_quant: the same mapping, table and first-order equivalence; MPEG-1 takes MPEG-2's."""
    from vsjpegfix.quantisers.mapping import H263_FAMILY, SAME_SCALE, codec_qp, first_order_qp
    from vsjpegfix.quantisers.stream import QP_CODECS

    assert {"msmpeg4", "flv", "h263", "wmv2"} <= H263_FAMILY <= QP_CODECS
    for codec in H263_FAMILY:
        assert SAME_SCALE[codec] == "mpeg4"
        for v in (2.0, 7.5, 31.0):
            assert codec_qp(codec, v) == codec_qp("mpeg4", v) and first_order_qp(codec, v) == first_order_qp("mpeg4", v)
    assert codec_qp("mpeg1video", 12.0) == codec_qp("mpeg2video", 12.0)
    assert codec_qp("msmpeg4", 4.0) < codec_qp("msmpeg4", 20.0)
