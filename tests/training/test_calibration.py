"""Calibration of the quality profiles (vsjpegfix.training.calibration, calibration_data): the least-squares
strength, the monotone fits and the samples."""

import numpy as np
import pytest

from vsjpegfix.training.calibration import Sums, isotonic
from vsjpegfix.training.calibration_data import area_down, check_videos, load_images
from vsjpegfix.training.errors import TrainingError


def test_sums_least_squares_strength():
    rng = np.random.default_rng(0)
    inp = rng.integers(50, 200, (16, 16)).astype(np.float64)
    d = rng.normal(0, 4, inp.shape)
    clean = inp + 0.6 * d + rng.normal(0, 1, inp.shape)  # the model's correction is 0.6 too strong... and noise
    sums = Sums()
    sums.add(clean, inp, inp + d)
    r = clean - inp
    assert sums.best_strength() == pytest.approx(float((r * d).sum() / (d * d).sum()))
    assert 0.5 < sums.best_strength() < 0.7
    s = sums.best_strength()
    assert sums.gain(s) > sums.gain(1.0) and sums.gain(s) > sums.gain(s - 0.1) and sums.gain(0.0) == 0.0
    # normalised: every sample has the same say, whatever its error
    a, b = Sums(), Sums()
    for w in (1.0, 10.0):
        a.add(w * clean, w * inp, w * (inp + d), normalise=True)
    b.add(clean, inp, inp + d, normalise=True)
    assert a.best_strength() == pytest.approx(b.best_strength())
    assert Sums().best_strength() == 0.0  # no correction measured: leave the input


def test_isotonic_pools_adjacent_violators():
    assert isotonic([1, 3, 2, 4]) == [1, 2.5, 2.5, 4]
    assert isotonic([0.9, 0.5, 0.7, 0.1], increasing=False) == pytest.approx([0.9, 0.6, 0.6, 0.1])
    assert isotonic([3, 2, 1]) == [2, 2, 2]


def test_samples(tmp_path):
    plane = np.array([[[0, 2, 10, 11], [4, 6, 12, 13], [1, 1, 0, 0], [1, 2, 0, 255]]], np.uint8)
    assert area_down(plane, 2).tolist() == [[[3, 12], [1, 64]]]
    check_videos([tmp_path / "bikes.mp4"])
    with pytest.raises(TrainingError, match="carphone"):
        check_videos([tmp_path / "carphone_pristine.mp4"])
    with pytest.raises(TrainingError, match="no images"):
        load_images(tmp_path, 2, 0)
