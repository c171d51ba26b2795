"""Degradations shared by training and evaluation (vsjpegfix.training.degrade)."""

import math
import random

import numpy as np
import pytest
from skimage import data

from vsjpegfix.training.degrade import (
    DEGRADATIONS,
    Degraded,
    double_jpeg,
    jpeg,
    quality_label,
    register_degradation,
    sample_qf,
    shift_crop,
)
from vsjpegfix.training.metrics import psnr


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return np.ascontiguousarray(data.astronaut()[96:288, 160:352])  # 192x192 RGB


def test_jpeg_quality_ordering(astronaut):
    low, high = jpeg(astronaut, 10), jpeg(astronaut, 90)
    assert low.shape == high.shape == astronaut.shape and low.dtype == np.uint8
    assert psnr(astronaut, low) + 5 < psnr(astronaut, high)


def test_jpeg_gray_and_single_channel(astronaut):
    gray = astronaut[..., 1].copy()
    out = jpeg(gray, 30)
    assert out.shape == gray.shape and out.dtype == np.uint8
    assert 25 < psnr(gray, out) < 45
    assert jpeg(gray[..., None], 30).shape == gray.shape


def test_jpeg_is_deterministic_and_uses_420(astronaut):
    np.testing.assert_array_equal(jpeg(astronaut, 40), jpeg(astronaut, 40))
    # 4:2:0 (default) loses more colour detail than 4:4:4
    assert psnr(astronaut, jpeg(astronaut, 90)) < psnr(astronaut, jpeg(astronaut, 90, subsampling=0))


@pytest.mark.parametrize("bad", [0, 101, 2.5, True])
def test_jpeg_rejects_bad_quality(astronaut, bad):
    with pytest.raises(ValueError):
        jpeg(astronaut, bad)


def test_jpeg_rejects_bad_images():
    with pytest.raises(ValueError):
        jpeg(np.zeros((8, 8, 3), np.float32), 50)
    with pytest.raises(ValueError):
        jpeg(np.zeros((8, 8, 4), np.uint8), 50)


def test_double_jpeg_shift_and_target(astronaut):
    out = double_jpeg(astronaut, 30, 50, (3, 5))
    target = shift_crop(astronaut, (3, 5))
    assert out.shape == target.shape == (189, 187, 3)
    np.testing.assert_array_equal(target, astronaut[3:, 5:])
    # same as doing it by hand
    np.testing.assert_array_equal(out, jpeg(jpeg(astronaut, 30)[3:, 5:], 50))
    # the degraded image matches its cropped target (not the uncropped one)
    assert psnr(target, out) > 25
    # aligned double JPEG keeps the shape
    assert double_jpeg(astronaut, 30, 50, (0, 0)).shape == astronaut.shape


def test_shift_crop_rejects_bad_shifts(astronaut):
    with pytest.raises(ValueError):
        shift_crop(astronaut, (-1, 0))
    with pytest.raises(ValueError):
        shift_crop(astronaut, (0, 192))


def test_sample_qf_distribution():
    rng = np.random.default_rng(0)
    qfs = np.array([sample_qf(rng) for _ in range(20000)])
    assert qfs.min() == 8 and qfs.max() == 96
    inside = np.mean((qfs >= 10) & (qfs <= 60))
    # 0.75 + 0.25 * 51/89 of the samples fall in 10..60
    assert abs(inside - (0.75 + 0.25 * 51 / 89)) < 0.015
    assert abs(np.mean(qfs > 60) - 0.25 * 36 / 89) < 0.01
    # deterministic for a seed; random.Random works too
    assert [sample_qf(np.random.default_rng(5)) for _ in range(3)] == [sample_qf(np.random.default_rng(5)) for _ in range(3)]
    r = random.Random(1)
    assert all(8 <= sample_qf(r) <= 96 for _ in range(200))


def test_quality_label():
    assert quality_label(100) == 0.0
    assert quality_label(10) == pytest.approx(0.9)
    assert quality_label(75) == pytest.approx(0.25)


@pytest.mark.parametrize("name", ["jpeg", "double_jpeg", "mix"])
def test_registry_degradations(astronaut, name):
    rng = np.random.default_rng(3)
    for _ in range(8):
        out = DEGRADATIONS[name](astronaut[:64, :64], rng)
        assert isinstance(out, Degraded)
        assert out.clean.shape == out.degraded.shape and out.clean.dtype == out.degraded.dtype == np.uint8
        assert 57 <= out.clean.shape[0] <= 64
        if name == "jpeg":
            assert out.clean.shape == (64, 64, 3) and 0.04 <= out.label <= 0.92
        if name == "double_jpeg":
            assert math.isnan(out.label)
        # clean is the exact crop of the input
        h, w = out.clean.shape[:2]
        np.testing.assert_array_equal(out.clean, astronaut[64 - h : 64, 64 - w : 64])


def test_mix_hq_adds_near_clean_jpeg(astronaut):
    rng = np.random.default_rng(5)
    infos = [DEGRADATIONS["mix_hq"](astronaut[:64, :64], rng) for _ in range(300)]
    near_clean = [d for d in infos if d.info.startswith("jpeg q=") and int(d.info.split("=")[1]) >= 97]
    # QF 97..100 only comes from the near-clean branch (FBCNN's distribution stops at 96): ~10 % x 4/16
    assert 1 <= len(near_clean) <= 25
    for d in near_clean:
        qf = int(d.info.split("=")[1])
        assert d.label == pytest.approx(quality_label(qf)) and d.label <= 0.03
        assert psnr(d.clean, d.degraded) > 38  # near-clean input
    doubles = sum(math.isnan(d.label) for d in infos)
    assert 40 <= doubles <= 100  # ~0.9 x 25 % double JPEG stays in the mix


def test_register_degradation_rejects_duplicates():
    with pytest.raises(ValueError):
        register_degradation("jpeg")(lambda clean, rng: Degraded(clean, clean, 0.0))
