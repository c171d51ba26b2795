"""Interlaced frames: field order from FFmpeg's flags, fields separated and woven back (every plane by rows)."""

from __future__ import annotations

import numpy as np
import pytest

from vsjpegfix.frames.fields import (
    field_order,
    restore_by_fields,
    separate_fields,
    weave_fields,
)


@pytest.mark.parametrize("order,flag,want", [(2, False, "tff"), (3, True, "bff"), (4, True, "bff"), (5, True, "tff"),
                                             (1, True, None), (0, True, "tff"), (0, False, None)])
def test_field_order(order, flag, want):
    assert field_order(order, flag) == want


@pytest.mark.parametrize("height", [8, 10, 7])
def test_separate_and_weave_round_trip_every_plane(height):
    rng = np.random.default_rng(0)
    luma = rng.integers(0, 255, (2, height, 6), dtype=np.uint8)
    chroma = rng.integers(0, 255, (2, (height + 1) // 2, 3), dtype=np.uint8)
    top, bottom = separate_fields([luma, chroma])
    assert np.array_equal(top[0][:, : (height + 1) // 2], luma[:, 0::2])
    assert np.array_equal(bottom[1][:, : chroma.shape[1] // 2], chroma[:, 1::2])  # chroma rows alternate by field too
    assert top[0].shape == bottom[0].shape and top[1].shape == bottom[1].shape
    assert top[1].shape[1] == -(-top[0].shape[1] // 2)  # 4:2:0 fields: chroma half the field's rows, rounded up
    woven = weave_fields(top, bottom, [height, chroma.shape[1]])
    assert np.array_equal(woven[0], luma) and np.array_equal(woven[1], chroma)


def test_restore_by_fields_gives_each_field_its_own_picture():
    """A field-aware engine call: a model that sees a picture's rows alternate (comb) would act on them."""
    from vsjpegfix.engine.colour import PlaneFormat
    from vsjpegfix.engine.core import Engine
    from vsjpegfix.models import FastARCNN

    engine = Engine(FastARCNN(channels=1, residual=True), device="cpu")
    fmt = PlaneFormat("gray", 8, full_range=True)
    top_rows = np.full((1, 8, 16), 200, np.uint8)
    frame = np.empty((1, 16, 16), np.uint8)
    frame[:, 0::2], frame[:, 1::2] = top_rows, 40  # two flat fields: a comb when woven
    by_fields = restore_by_fields(engine, [frame], fmt, strength=[1.0]).planes[0]
    assert by_fields.shape == frame.shape
    alone = engine.restore([top_rows], fmt).planes[0]
    assert np.array_equal(by_fields[:, 0::2], alone)  # the top field restored as a picture of its own
