"""Tests for vsjpegfix.training.metrics (PSNR / SSIM / PSNR-B as in KAIR / FBCNN)."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
from PIL import Image
from skimage import data
from skimage.metrics import peak_signal_noise_ratio as sk_psnr
from skimage.metrics import structural_similarity as sk_ssim

from vsjpegfix.training import metrics as M


# --------------------------------------------------------------------------
# helpers / fixtures
# --------------------------------------------------------------------------
def _jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=quality)
    buf.seek(0)
    with Image.open(buf) as im:
        return np.asarray(im).copy()


@pytest.fixture(scope="module")
def camera() -> dict[str, np.ndarray]:
    img = data.camera()  # 512x512 uint8 grey
    return {"orig": img, 10: _jpeg(img, 10), 40: _jpeg(img, 40)}


@pytest.fixture(scope="module")
def astronaut() -> dict[str, np.ndarray]:
    img = data.astronaut()[128:384, 128:384]  # 256x256x3 uint8 RGB, kept small for speed
    img = np.ascontiguousarray(img)
    return {"orig": img, 10: _jpeg(img, 10), 40: _jpeg(img, 40)}


def _sk_ssim(a: np.ndarray, b: np.ndarray, data_range: float) -> float:
    return sk_ssim(
        a,
        b,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        data_range=data_range,
        channel_axis=2 if a.ndim == 3 else None,
    )


def _bef_reference(img: np.ndarray, variant: str = "kair") -> float:
    """Straightforward loop version of the Yim & Bovik BEF with the reference code's counts."""
    x = img.astype(np.float64)
    h, w = x.shape
    boundary_cols = set(range(7, w - 1, 8))
    boundary_rows = set(range(7, h - 1, 8))
    d_b = d_bc = 0.0
    for j in range(w - 1):
        s = float(np.sum((x[:, j] - x[:, j + 1]) ** 2))
        if j in boundary_cols:
            d_b += s
        else:
            d_bc += s
    for i in range(h - 1):
        s = float(np.sum((x[i, :] - x[i + 1, :]) ** 2))
        if i in boundary_rows:
            d_b += s
        else:
            d_bc += s
    if variant == "kair":
        n_hb, n_vb = h * (w // 8 - 1), w * (h // 8 - 1)
    else:
        n_hb, n_vb = h * (w / 8 - 1), w * (h / 8 - 1)
    n_hbc, n_vbc = h * (w - 1) - n_hb, w * (h - 1) - n_vb
    d_b /= n_hb + n_vb
    d_bc /= n_hbc + n_vbc
    return math.log2(8) / math.log2(min(h, w)) * (d_b - d_bc) if d_b > d_bc else 0.0


def _mse_from_psnr(p: float, peak: float = 255.0) -> float:
    return peak * peak / 10 ** (p / 10)


# --------------------------------------------------------------------------
# PSNR
# --------------------------------------------------------------------------
@pytest.mark.parametrize("qf", [10, 40])
def test_psnr_matches_skimage(camera, astronaut, qf):
    for imgs in (camera, astronaut):
        ref = imgs["orig"]
        got = M.psnr(ref, imgs[qf])
        assert got == pytest.approx(sk_psnr(ref, imgs[qf], data_range=255), abs=1e-10)


def test_psnr_uint16_matches_skimage():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 65536, size=(40, 48), dtype=np.uint16)
    b = np.clip(a.astype(np.int64) + rng.integers(-900, 900, size=a.shape), 0, 65535).astype(np.uint16)
    assert M.psnr(a, b) == pytest.approx(sk_psnr(a, b, data_range=65535), abs=1e-10)


def test_psnr_constant_error_of_one_is_20log10_255():
    a = np.full((16, 24), 100, dtype=np.uint8)
    b = a + 1
    assert M.psnr(a, b) == pytest.approx(20 * math.log10(255), rel=1e-12)
    # colour: an error of 1 in one channel only -> MSE = 1/3 over all channels
    a3 = np.full((16, 24, 3), 100, dtype=np.uint8)
    b3 = a3.copy()
    b3[..., 1] += 1
    assert M.psnr(a3, b3) == pytest.approx(10 * math.log10(255**2 * 3), rel=1e-12)


def test_psnr_no_uint8_wraparound():
    a = np.zeros((8, 8), dtype=np.uint8)
    b = np.full((8, 8), 255, dtype=np.uint8)
    assert M.psnr(a, b) == pytest.approx(0.0, abs=1e-12)  # MSE = 255**2, computed in float64


def test_identical_images_give_inf_and_ssim_one(astronaut):
    ref = astronaut["orig"]
    assert M.psnr(ref, ref.copy()) == math.inf
    assert M.psnr_y(ref[..., 0], ref[..., 0]) == math.inf
    assert M.ssim(ref, ref.copy()) == pytest.approx(1.0, abs=1e-12)
    ramp = np.add.outer(np.arange(64), np.arange(64)).astype(np.uint8)  # no blocking at all
    assert M.psnrb(ramp, ramp.copy()) == math.inf


@pytest.mark.parametrize("img_name", ["camera", "astronaut"])
def test_quality_increases_with_jpeg_quality(img_name, request):
    imgs = request.getfixturevalue(img_name)
    ref = imgs["orig"]
    assert M.psnr(ref, imgs[40]) > M.psnr(ref, imgs[10]) + 1.0
    assert M.ssim(ref, imgs[40]) > M.ssim(ref, imgs[10])
    assert M.psnrb(ref, imgs[40]) > M.psnrb(ref, imgs[10]) + 1.0


# --------------------------------------------------------------------------
# SSIM
# --------------------------------------------------------------------------
@pytest.mark.parametrize("qf", [10, 40])
def test_ssim_matches_skimage(camera, astronaut, qf):
    # skimage pads (reflect) before filtering but averages its SSIM map only after
    # cropping the filter radius (5 px) -- exactly the positions KAIR's 'valid'
    # filtering keeps -- so with the same Gaussian (sigma 1.5, 11 taps) and
    # population covariances the results agree to rounding error.
    for imgs in (camera, astronaut):
        ref, test = imgs["orig"], imgs[qf]
        assert M.ssim(ref, test) == pytest.approx(_sk_ssim(ref, test, 255), abs=1e-9)


def test_ssim_is_valid_filtering_not_padded(camera):
    ref, test = camera["orig"], camera[10]
    _, full_map = sk_ssim(
        ref, test, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255, full=True
    )
    assert M.ssim(ref, test) == pytest.approx(full_map[5:-5, 5:-5].mean(), abs=1e-9)
    # the padded border really is excluded: the uncropped map gives a different value
    assert abs(M.ssim(ref, test) - full_map.mean()) > 1e-5


def test_ssim_matches_brute_force_window():
    rng = np.random.default_rng(1)
    a = rng.integers(0, 256, size=(20, 23)).astype(np.uint8)
    b = np.clip(a + rng.normal(0, 20, size=a.shape), 0, 255).astype(np.uint8)
    t = np.arange(-5, 6)
    g = np.exp(-(t**2) / (2 * 1.5**2))
    win = np.outer(g, g) / np.outer(g, g).sum()
    x, y = a.astype(np.float64), b.astype(np.float64)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    vals = []
    for i in range(x.shape[0] - 10):
        for j in range(x.shape[1] - 10):
            px, py = x[i : i + 11, j : j + 11], y[i : i + 11, j : j + 11]
            mx, my = (win * px).sum(), (win * py).sum()
            vx = (win * px * px).sum() - mx * mx
            vy = (win * py * py).sum() - my * my
            cxy = (win * px * py).sum() - mx * my
            vals.append(((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2)))
    assert M.ssim(a, b) == pytest.approx(float(np.mean(vals)), abs=1e-12)


def test_ssim_colour_is_mean_of_channels(astronaut):
    ref, test = astronaut["orig"], astronaut[10]
    per_channel = [M.ssim_y(ref[..., c], test[..., c]) for c in range(3)]
    assert M.ssim(ref, test) == pytest.approx(np.mean(per_channel), abs=1e-14)
    assert M.ssim(ref, test) == pytest.approx(M.ssim(test, ref), abs=1e-14)  # symmetric


def test_ssim_too_small_raises():
    a = np.zeros((10, 30), dtype=np.uint8)
    with pytest.raises(ValueError, match="11x11"):
        M.ssim(a, a)


# --------------------------------------------------------------------------
# PSNR-B
# --------------------------------------------------------------------------
def _step(col: int, d: int = 8, size: int = 16) -> np.ndarray:
    img = np.zeros((size, size), dtype=np.uint8)
    img[:, col:] = d
    return img


def test_psnrb_hand_computed_step_on_block_boundary():
    # 16x16, edge of height 8 between columns 7 and 8 (a block boundary):
    # boundary diffs: 16 rows * 8^2 = 1024 over 16*(16//8-1) + 16*(16//8-1) = 32 pairs -> D_B = 32
    # non-boundary diffs: 0 -> D_Bc = 0; eta = log2(8)/log2(16) = 3/4 -> BEF = 24
    flat, blocky = np.zeros((16, 16), np.uint8), _step(8)
    assert M.blocking_effect_factor(blocky) == pytest.approx(24.0, abs=1e-12)
    mse = 8**2 / 2  # half the pixels are off by 8
    assert M.psnr(flat, blocky) == pytest.approx(10 * math.log10(255**2 / mse), abs=1e-12)
    assert M.psnrb(flat, blocky) == pytest.approx(10 * math.log10(255**2 / (mse + 24.0)), abs=1e-12)
    assert M.psnrb_y(flat, blocky) == M.psnrb(flat, blocky)


def test_psnrb_bef_is_measured_on_test_image_only():
    flat, blocky = np.zeros((16, 16), np.uint8), _step(8)
    # blocky *reference*, flat test image: no BEF -> PSNR-B == PSNR
    assert M.psnrb(blocky, flat) == pytest.approx(M.psnr(blocky, flat), abs=1e-12)
    # blocky test image compared with itself: MSE 0 but BEF 24 -> finite
    assert M.psnrb(blocky, blocky) == pytest.approx(10 * math.log10(255**2 / 24.0), abs=1e-12)


def test_psnrb_edge_inside_block_has_no_bef():
    flat, step = np.zeros((16, 16), np.uint8), _step(4)  # edge between columns 3 and 4
    assert M.blocking_effect_factor(step) == 0.0
    assert M.psnrb(flat, step) == M.psnr(flat, step)


def test_psnrb_equals_psnr_without_blocking():
    # A test image whose neighbour differences are identical everywhere has
    # D_B == D_Bc and hence BEF == 0 (for sizes divisible by 8), whatever the reference.
    rng = np.random.default_rng(2)
    ramp = np.add.outer(np.arange(64), 2 * np.arange(64)).astype(np.uint8)
    ref = np.clip(ramp + rng.integers(-5, 6, size=ramp.shape), 0, 255).astype(np.uint8)
    assert M.blocking_effect_factor(ramp) == 0.0
    assert M.psnrb(ref, ramp) == M.psnr(ref, ramp)


@pytest.mark.parametrize("qf", [10, 40])
def test_psnrb_below_psnr_for_jpeg(camera, qf):
    ref, test = camera["orig"], camera[qf]
    bef = M.blocking_effect_factor(test)
    assert bef > 0
    assert M.psnrb(ref, test) < M.psnr(ref, test)
    # MSE_B - MSE is exactly the BEF of the test image ...
    mse_gap = _mse_from_psnr(M.psnrb(ref, test)) - _mse_from_psnr(M.psnr(ref, test))
    assert mse_gap == pytest.approx(bef, rel=1e-9)
    # ... and does not depend on the reference
    other_ref = np.clip(ref.astype(np.int16) + 3, 0, 255).astype(np.uint8)
    mse_gap2 = _mse_from_psnr(M.psnrb(other_ref, test)) - _mse_from_psnr(M.psnr(other_ref, test))
    assert mse_gap2 == pytest.approx(bef, rel=1e-9)


def test_bef_larger_for_stronger_compression(camera):
    assert M.blocking_effect_factor(camera[10]) > M.blocking_effect_factor(camera[40]) > 0


def test_psnrb_grid_follows_border_crop(camera):
    # border=4 moves the 8x8 grid to the middle of the codec's blocks: the JPEG
    # boundaries are no longer on the grid, BEF is 0 and PSNR-B collapses to PSNR;
    # border=8 keeps the grid aligned.
    ref, test = camera["orig"], camera[10]
    assert M.psnrb_y(ref, test, border=4) == M.psnr_y(ref, test, border=4)
    assert M.psnrb_y(ref, test, border=8) < M.psnr_y(ref, test, border=8) - 1.0


@pytest.mark.parametrize("variant", ["kair", "fbcnn"])
@pytest.mark.parametrize("shape", [(64, 64), (61, 45), (40, 77)])
def test_bef_matches_loop_reference(camera, variant, shape):
    img = camera[10][100 : 100 + shape[0], 200 : 200 + shape[1]]
    assert M.blocking_effect_factor(img, variant=variant) == pytest.approx(
        _bef_reference(img, variant), rel=1e-12, abs=1e-12
    )


def test_bef_count_quirk_for_sizes_not_divisible_by_8():
    # The reference code counts h*(w//8 - 1) horizontal boundary pairs although
    # w=20 has two boundary columns (7|8, 15|16): the boundary average is inflated
    # and even a perfectly uniform ramp gets BEF > 0. We reproduce that on purpose.
    ramp = np.add.outer(np.arange(64), np.arange(20)).astype(np.uint8)
    assert M.blocking_effect_factor(ramp[:, :16]) == 0.0
    assert M.blocking_effect_factor(ramp) > 0.0
    assert M.blocking_effect_factor(ramp) == pytest.approx(_bef_reference(ramp, "kair"), rel=1e-12)


def test_psnrb_colour_kair_averages_channel_psnrb(astronaut):
    ref, test = astronaut["orig"], astronaut[10]
    per_channel = [M.psnrb_y(ref[..., c], test[..., c]) for c in range(3)]
    assert M.psnrb(ref, test) == pytest.approx(np.mean(per_channel), abs=1e-12)
    # PSNR-B <= PSNR holds per channel; the colour value is compared with the mean
    # of the per-channel PSNRs (averaging dB is not the same as the RGB PSNR).
    per_channel_psnr = [M.psnr_y(ref[..., c], test[..., c]) for c in range(3)]
    assert all(pb < p for pb, p in zip(per_channel, per_channel_psnr))


def test_psnrb_colour_fbcnn_variant(astronaut):
    ref, test = astronaut["orig"], astronaut[10]
    mse = float(np.mean((ref.astype(np.float64) - test) ** 2))
    bef_y = _bef_reference(M.rgb_to_y(test), "fbcnn")
    expected = 10 * math.log10(255**2 / (mse + bef_y))
    got = M.psnrb(ref, test, variant="fbcnn")
    assert got == pytest.approx(expected, abs=1e-10)
    assert got < M.psnr(ref, test)
    assert got != pytest.approx(M.psnrb(ref, test), abs=1e-3)


def test_psnrb_variants_agree_on_planes_divisible_by_8(camera):
    ref, test = camera["orig"], camera[10]
    assert M.psnrb(ref, test, variant="fbcnn") == pytest.approx(M.psnrb(ref, test), abs=1e-12)
    with pytest.raises(ValueError, match="variant"):
        M.psnrb(ref, test, variant="matlab")  # type: ignore[arg-type]


def test_psnrb_too_small_raises():
    a = np.zeros((15, 40), dtype=np.uint8)
    with pytest.raises(ValueError, match="16x16"):
        M.psnrb(a, a)


# --------------------------------------------------------------------------
# peak / dtype handling
# --------------------------------------------------------------------------
def test_uint16_and_float_scale_like_uint8(astronaut):
    ref8, test8 = astronaut["orig"], astronaut[10]
    ref16, test16 = ref8.astype(np.uint16) * 257, test8.astype(np.uint16) * 257  # 255*257 = 65535
    reff, testf = ref8 / 255.0, test8 / 255.0
    for fn in (M.psnr, M.ssim, M.psnrb):
        v8 = fn(ref8, test8)
        assert fn(ref16, test16) == pytest.approx(v8, rel=1e-9), fn.__name__
        assert fn(reff, testf) == pytest.approx(v8, rel=1e-9), fn.__name__  # float -> peak 1.0
        assert fn(ref8.astype(np.float32), test8.astype(np.float32), peak=255) == pytest.approx(v8, rel=1e-9)
    assert M.ssim(ref16, test16) == pytest.approx(_sk_ssim(ref16, test16, 65535), abs=1e-9)


def test_peak_must_be_explicit_when_ambiguous():
    a8 = np.zeros((16, 16), np.uint8)
    with pytest.raises(ValueError, match="peak"):
        M.psnr(a8, a8.astype(np.float32))
    with pytest.raises(ValueError, match="peak"):
        M.psnr(a8.astype(np.int16), a8.astype(np.int16))
    with pytest.raises(ValueError, match="peak"):
        M.psnr(a8, a8, peak=0)
    b8 = a8 + 1
    assert M.psnr(a8, b8.astype(np.float32), peak=255) == pytest.approx(20 * math.log10(255), rel=1e-12)
    assert M.psnr(a8.astype(np.int16), b8.astype(np.int16), peak=255) == pytest.approx(
        20 * math.log10(255), rel=1e-12
    )


# --------------------------------------------------------------------------
# shape validation and border
# --------------------------------------------------------------------------
@pytest.mark.parametrize("fn", [M.psnr, M.ssim, M.psnrb, M.psnr_y, M.ssim_y, M.psnrb_y])
def test_shape_mismatch_raises(fn):
    a = np.zeros((32, 32), np.uint8)
    b = np.zeros((32, 40), np.uint8)
    with pytest.raises(ValueError, match=r"\(32, 32\).*\(32, 40\)"):
        fn(a, b)


def test_y_functions_reject_rgb_and_accept_hxwx1(astronaut):
    ref, test = astronaut["orig"], astronaut[40]
    for fn in (M.psnr_y, M.ssim_y, M.psnrb_y):
        with pytest.raises(ValueError, match="rgb_to_y"):
            fn(ref, test)
        y_ref, y_test = M.rgb_to_y(ref), M.rgb_to_y(test)
        assert fn(y_ref[..., None], y_test[..., None]) == fn(y_ref, y_test)


def test_border_crop(camera):
    ref, test = camera["orig"], camera[10]
    k = 8
    for fn in (M.psnr, M.ssim, M.psnrb):
        assert fn(ref, test, border=k) == pytest.approx(fn(ref[k:-k, k:-k], test[k:-k, k:-k]), abs=1e-12)
    # differences confined to the border vanish after cropping
    noisy = ref.copy()
    noisy[:3, :] ^= 0xFF
    noisy[:, -3:] ^= 0xFF
    assert M.psnr(ref, noisy) < 30
    assert M.psnr(ref, noisy, border=3) == math.inf
    assert M.ssim(ref, noisy, border=3) == pytest.approx(1.0, abs=1e-12)
    with pytest.raises(ValueError, match="border"):
        M.psnr(ref, test, border=256)
    with pytest.raises(ValueError, match="border"):
        M.psnr(ref, test, border=-1)


# --------------------------------------------------------------------------
# rgb_to_y
# --------------------------------------------------------------------------
def test_rgb_to_y_bt601_studio_range():
    px = np.array([[[0, 0, 0], [255, 255, 255], [255, 0, 0], [0, 255, 0], [0, 0, 255]]], dtype=np.uint8)
    y = M.rgb_to_y(px)
    assert y.dtype == np.uint8
    # 16 + (65.481, 128.553, 24.966) -> 81.481, 144.553, 40.966, rounded
    assert y.tolist() == [[16, 235, 81, 145, 41]]
    yf = M.rgb_to_y(px / 255.0)
    assert yf.dtype == np.float64
    np.testing.assert_allclose(yf * 255, [[16, 235, 81.481, 144.553, 40.966]], atol=1e-9)
    y16 = M.rgb_to_y(px.astype(np.uint16) * 257)
    assert y16.dtype == np.uint16
    assert y16[0, :2].tolist() == [16 * 257, 235 * 257]
    with pytest.raises(ValueError, match="HxWx3"):
        M.rgb_to_y(px[..., :2])


def test_psnr_y_from_rgb(astronaut):
    ref, test = astronaut["orig"], astronaut[10]
    y_ref, y_test = M.rgb_to_y(ref), M.rgb_to_y(test)
    v = M.psnr_y(y_ref, y_test)
    assert v == pytest.approx(sk_psnr(y_ref, y_test, data_range=255), abs=1e-10)
    assert M.ssim_y(y_ref, y_test) == pytest.approx(_sk_ssim(y_ref, y_test, 255), abs=1e-9)
    assert M.psnrb_y(y_ref, y_test) < v
