"""H.264/HEVC degradations: real libx264/libx265 round trips on clips panned over a real photo."""

import numpy as np
import pytest
from skimage import data

from vsjpegfix.quantisers.mapping import qp_to_qf
from vsjpegfix.training.degrade import DEGRADATIONS
from vsjpegfix.training.degrade_video import (
    Motion,
    encode_decode,
    moving_crops,
    qp_label,
    random_clip,
)
from vsjpegfix.training.metrics import psnr


@pytest.fixture(scope="module")
def photo():
    return data.astronaut()


def test_moving_crops_follow_the_motion(photo):
    rng = np.random.default_rng(0)
    clip = moving_crops(photo, (64, 48), 4, Motion(dx=2.0, dy=0.0), rng)
    assert clip.shape == (4, 48, 64, 3) and clip.dtype == np.uint8
    # an integer pan of 2 px/frame: frame t+1 is frame t moved left by 2 px
    assert np.abs(clip[1][:, :-2].astype(int) - clip[0][:, 2:].astype(int)).max() <= 1
    assert not np.array_equal(clip[0], clip[1])
    with pytest.raises(ValueError, match="too small"):
        moving_crops(photo[:50, :50], (64, 48), 4, Motion(), rng)


@pytest.mark.parametrize("codec", ["h264", "hevc"])
def test_round_trip_quality_falls_with_qp(photo, codec):
    clean = moving_crops(photo, (96, 64), 5, Motion(1.5, 0.5, 0.0, 0.3), np.random.default_rng(1))
    scores = []
    for qp in (22, 37, 51):
        out = encode_decode(clean, codec, qp=qp)
        assert out.shape == clean.shape and out.dtype == np.uint8
        scores.append(np.mean([psnr(c, o) for c, o in zip(clean, out)]))
    assert scores[0] > scores[1] > scores[2]
    assert scores[0] > 33 and scores[2] < 28


def test_intra_and_inter_differ_and_args_are_checked(photo):
    clean = moving_crops(photo, (64, 64), 4, Motion(2.0, 1.0), np.random.default_rng(2))
    inter = encode_decode(clean, "h264", qp=40)
    intra = encode_decode(clean, "h264", qp=40, intra=True)
    assert np.array_equal(inter[0], intra[0])  # both start with the same keyframe
    assert not np.array_equal(inter[2], intra[2])
    with pytest.raises(ValueError, match="exactly one"):
        encode_decode(clean, "h264")
    with pytest.raises(ValueError, match="unknown codec"):
        encode_decode(clean, "vp9", qp=30)


def test_random_clip_and_registered_degradations(photo):
    rng = np.random.default_rng(3)
    sample = random_clip(photo, rng, size=(64, 64), frames=3, codecs=("h264",))
    assert sample.clean.shape == sample.degraded.shape == (3, 64, 64, 3)
    qp = int(sample.info.split("qp=")[1].split()[0])
    assert sample.label == pytest.approx(1 - qp_to_qf(qp) / 100)
    assert 0 <= qp_label(22) < qp_label(51) <= 1
    for name in ("h264", "jpeg_video_mix"):
        d = DEGRADATIONS[name](photo[:128, :128], rng)
        assert d.clean.shape == d.degraded.shape and d.clean.dtype == np.uint8
        assert 0 <= d.label <= 1 or np.isnan(d.label)
