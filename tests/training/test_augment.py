"""The dihedral augmentation: 8 distinct, invertible transforms, the same on any choice of axes."""

from __future__ import annotations

import numpy as np
import pytest

from vsjpegfix.training.augment import dihedral


def test_eight_distinct_transforms_of_the_spatial_axes():
    a = np.arange(3 * 4 * 2).reshape(3, 4, 2)  # (H, W, C), not square: odd turns swap H and W
    outs = [dihedral(a, m) for m in range(8)]
    assert np.array_equal(outs[0], a)
    assert len({o.tobytes() + bytes(o.shape) for o in outs}) == 8
    for m, o in enumerate(outs):
        assert o.flags.c_contiguous
        assert o.shape == ((4, 3, 2) if m & 1 else (3, 4, 2))
        # the channels travel with their pixels
        assert sorted(map(tuple, o.reshape(-1, 2))) == sorted(map(tuple, a.reshape(-1, 2)))
    assert np.array_equal(outs[4], a[::-1])
    assert np.array_equal(outs[1], np.rot90(a))


def test_leading_frame_axis_matches_per_frame_transform():
    clip = np.random.default_rng(0).integers(0, 255, (5, 6, 6, 3))
    for m in range(8):
        whole = dihedral(clip, m, (-3, -2))
        assert np.array_equal(whole, np.stack([dihedral(f, m) for f in clip]))


def test_rejects_an_unknown_mode():
    with pytest.raises(ValueError, match="0..7"):
        dihedral(np.zeros((2, 2)), 8)
