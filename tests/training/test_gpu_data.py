"""The GPU run's data: sample sets round-trip exactly; clips from stills are coded, cut and labelled as documented."""

import numpy as np
import pytest
from skimage import data

from vsjpegfix.training.degrade_video import qp_label
from vsjpegfix.training.gpu_data import (
    SampleSet,
    read_samples,
    still_clips,
    write_samples,
)


def test_sample_sets_round_trip_exactly(tmp_path):
    rng = np.random.default_rng(0)
    sizes = [(16, 32), (8, 6)]
    ys = [rng.integers(0, 256, s, dtype=np.uint8) for s in sizes]
    uv = [rng.integers(0, 256, (s[0] // 2, s[1] // 2), dtype=np.uint8) for s in sizes]
    clean = [rng.integers(0, 256, (*s, 3), dtype=np.uint8) for s in sizes]
    samples = SampleSet(ys, uv, [u[::-1].copy() for u in uv], clean, np.array([0.25, 0.5], np.float32), [{"qp": 1}, {"qp": 2}])
    size = write_samples(tmp_path / "s.npz", samples)
    assert size == (tmp_path / "s.npz").stat().st_size and not list(tmp_path.glob(".*part*"))
    back = read_samples(tmp_path / "s.npz")
    for key in ("y", "u", "v", "clean"):
        assert all(np.array_equal(a, b) and a.dtype == b.dtype for a, b in zip(getattr(samples, key), getattr(back, key)))
    assert back.label.tolist() == [0.25, 0.5] and back.info == [{"qp": 1}, {"qp": 2}]
    with pytest.raises(ValueError, match="differ in size"):
        back.stacked("y")
    no_clean = SampleSet(ys[:1], uv[:1], uv[:1], None, np.zeros(1, np.float32))
    write_samples(tmp_path / "f.npz", no_clean)
    assert read_samples(tmp_path / "f.npz").clean is None


def test_still_clips_are_coded_centre_frames_with_their_labels():
    image = data.astronaut()
    samples = still_clips([image], 3, size=32, seed=5, qps=[22, 51], codecs=("h264",), intra_fraction=0.0)
    assert [y.shape for y in samples.y] == [(32, 32)] * 3 and [u.shape for u in samples.u] == [(16, 16)] * 3
    assert [c.shape for c in samples.clean] == [(32, 32, 3)] * 3
    assert [i["qp"] for i in samples.info] == [22, 51, 22] and {i["codec"] for i in samples.info} == {"h264"}
    assert samples.label.tolist() == pytest.approx([qp_label(22), qp_label(51), qp_label(22)])
    # the degraded luma follows the clean frame (BT.709 limited range), closer at QP 22 than at QP 51
    luma = lambda c: 16 + (0.2126 * c[..., 0] + 0.7152 * c[..., 1] + 0.0722 * c[..., 2]) * 219 / 255  # noqa: E731
    err = [np.abs(y.astype(float) - luma(c.astype(float))).mean() for y, c in zip(samples.y, samples.clean)]
    assert err[0] < 4 and err[0] < err[1]
    again = still_clips([image], 3, size=32, seed=5, qps=[22, 51], codecs=("h264",), intra_fraction=0.0)
    assert all(np.array_equal(a, b) for a, b in zip(samples.y, again.y))  # a pure function of (seed, i)
