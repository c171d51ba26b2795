"""vsjpegfix.engine.strength and the engine's content-adaptive strength (a rule in the model's profile)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage import data

from vsjpegfix.engine.colour import PlaneFormat, rgb_to_planes
from vsjpegfix.engine.control import restore_arguments
from vsjpegfix.engine.core import Engine
from vsjpegfix.engine.device import EngineError
from vsjpegfix.engine.strength import (
    frame_features,
    frame_statistics,
    luma_code_scale,
    predicted_strengths,
)
from vsjpegfix.models import ARCNN
from vsjpegfix.quantisers.stream import FrameQuantiser
from vsjpegfix.weights.predictor import FramePredictor, StrengthPredictor
from vsjpegfix.weights.profile import QualityProfile

YUV = PlaneFormat("yuv", 8, subsampling=(1, 1), matrix="bt709")
RULE = FramePredictor(("1", "q", "lratio", "B"), (0.55, 0.5, -0.3, -0.2))


def _direct_statistics(x: np.ndarray, d: np.ndarray) -> tuple[float, float, float]:
    """tex, blk, rd of one frame, counted step by step (the definition in vsjpegfix.weights.predictor)."""
    x = x.astype(np.float64)
    h, w = x.shape
    across, inside, n_across, n_inside = 0.0, 0.0, 0, 0
    for j in range(w - 1):  # horizontal steps j -> j + 1
        step = np.abs(x[:, j + 1] - x[:, j]).sum()
        if j % 8 == 7:
            across, n_across = across + step, n_across + h
        else:
            inside, n_inside = inside + step, n_inside + h
    for i in range(h - 1):
        step = np.abs(x[i + 1] - x[i]).sum()
        if i % 8 == 7:
            across, n_across = across + step, n_across + w
        else:
            inside, n_inside = inside + step, n_inside + w
    tex = (across + inside) / (2 * h * w)
    blk = (across / n_across + 0.5) / (inside / n_inside + 0.5)
    return tex, blk, float(np.sqrt(np.mean(d.astype(np.float64) ** 2)))


@pytest.mark.parametrize("shape", [(48, 64), (37, 29), (8, 9)])
def test_statistics_match_the_definition(shape):
    rng = np.random.default_rng(1)
    x = rng.integers(16, 235, (2, *shape)).astype(np.float32)
    x[:, :, ::8] += 20  # some blockiness
    d = rng.normal(0, 2, (2, *shape)).astype(np.float32)
    got = frame_statistics(torch.from_numpy(x), torch.from_numpy(d))
    for k in range(2):
        tex, blk, rd = _direct_statistics(x[k], d[k])
        assert got["tex"][k] == pytest.approx(tex) and got["blk"][k] == pytest.approx(blk) and got["rd"][k] == pytest.approx(rd, rel=1e-5)


def test_blocky_frames_measure_blockier():
    flat = np.tile(np.arange(64, dtype=np.float32), (64, 1))[None]
    blocky = flat.copy()
    blocky[0] = np.repeat(np.repeat(flat[0, ::8, ::8], 8, 0), 8, 1)  # 8x8 blocks of constant value
    a = frame_statistics(torch.from_numpy(flat), torch.zeros(1, 64, 64))["blk"][0]
    b = frame_statistics(torch.from_numpy(blocky), torch.zeros(1, 64, 64))["blk"][0]
    assert b > 2 * a


def test_features_are_on_the_8_bit_limited_scale():
    assert luma_code_scale(YUV) == 1.0
    assert luma_code_scale(PlaneFormat("yuv", 10, subsampling=(1, 1), matrix="bt709")) == 0.25
    assert luma_code_scale(PlaneFormat("yuv", 8, subsampling=(1, 1), matrix="bt709", full_range=True)) == pytest.approx(219 / 255)
    assert luma_code_scale(PlaneFormat("yuv", 32, is_float=True, subsampling=(0, 0), matrix="bt709")) == 219
    rng = np.random.default_rng(2)
    x8 = torch.from_numpy(rng.integers(16, 235, (2, 32, 32)).astype(np.float32))
    d8 = torch.from_numpy(rng.normal(0, 1, (2, 32, 32)).astype(np.float32))
    q = [FrameQuantiser("h264", 35.0, 35.0, "P"), FrameQuantiser("h264", 30.0, 30.0, "B")]
    s8 = predicted_strengths(RULE, x8, d8, YUV, q)
    s10 = predicted_strengths(RULE, x8 * 4, d8 * 4, PlaneFormat("yuv", 10, subsampling=(1, 1), matrix="bt709"), q)
    np.testing.assert_allclose(s8, s10, atol=1e-6)
    f = frame_features(x8, d8, q)
    assert list(f["qp"]) == [35.0, 30.0] and list(f["B"]) == [0.0, 1.0] and list(f["I"]) == [0.0, 0.0]
    np.testing.assert_allclose(s8, RULE.strengths(f))
    np.testing.assert_allclose(predicted_strengths(RULE, x8, d8, YUV, q, scale=0.5), s8 * 0.5)


def _engine_with_rule(rule: FramePredictor = RULE) -> Engine:
    torch.manual_seed(0)
    engine = Engine(ARCNN(), device="cpu")  # a random model: a correction of a few code values
    engine.quality_profile = QualityProfile(h264_qp=((20.0, None, 0.0), (40.0, None, 1.0)),
                                            predictor=StrengthPredictor({"h264": rule}))
    return engine


def _frames():
    rgb = np.stack([data.astronaut()[100:148, 150:214], data.coffee()[100:148, 150:214]])
    x = torch.from_numpy(rgb).permute(0, 3, 1, 2).float() / 255
    return [p.numpy() for p in rgb_to_planes(x, YUV)]


def test_engine_applies_the_rule_per_frame():
    engine = _engine_with_rule()
    planes = _frames()
    quantisers = [FrameQuantiser("h264", 37.0, 37.0, "P"), FrameQuantiser("h264", 26.0, 26.0, "B")]
    full = engine.restore(planes, YUV)  # the whole correction
    ruled = engine.restore(planes, YUV, quantisers=quantisers)
    assert ruled.strength is not None and len(ruled.strength) == 2
    # the strength the rule gives for each frame's measured features
    d = torch.from_numpy(full.planes[0].astype(np.float32) - planes[0].astype(np.float32))
    assert 0 < ruled.strength[1] < ruled.strength[0] < 1  # lower QP and a B frame: gentler
    # the output is the original plus strength x correction (rounded), frame by frame
    for k, s in enumerate(ruled.strength):
        partial = engine.restore([p[k : k + 1] for p in planes], YUV, strength=s)
        for a, b in zip(ruled.planes, partial.planes):
            np.testing.assert_array_equal(a[k], b[0])
    again = predicted_strengths(RULE, torch.from_numpy(planes[0]).float(), d, YUV, quantisers)
    np.testing.assert_allclose(ruled.strength, again, atol=0.02)  # correction from the rounded output: close
    scaled = engine.restore(planes, YUV, quantisers=quantisers, strength_scale=0.5)
    np.testing.assert_allclose(scaled.strength, np.array(ruled.strength) * 0.5, atol=1e-6)


def test_the_rule_applies_only_to_its_codec_and_known_quantisers():
    engine = _engine_with_rule()
    planes = _frames()
    hevc = [FrameQuantiser("hevc", 37.0, 37.0, "P")] * 2
    assert engine.strength_rule(hevc) is None and engine.restore(planes, YUV, quantisers=hevc).strength is None
    assert engine.strength_rule([FrameQuantiser("h264", 37.0, 37.0), None]) is None
    assert engine.strength_rule(None) is None
    with pytest.raises(EngineError, match="2 quantisers for 1 frames"):
        engine.restore([p[:1] for p in planes], YUV, quantisers=[FrameQuantiser("h264", 37.0, 37.0)] * 2)
    # what the transcoder asks the engine for: the rule in profile mode, the per-QP strengths otherwise
    h264 = [FrameQuantiser("h264", 37.0, 37.0, "P")] * 2
    assert restore_arguments(engine, h264, "profile") == {"qf": None, "quantisers": h264, "strength_scale": None}
    args = restore_arguments(engine, hevc, "profile", 0.5)
    assert args["strength"] == pytest.approx([0.85 * 0.5] * 2) and "quantisers" not in args
    assert restore_arguments(engine, h264, "auto") == {"qf": None, "strength": None}


def test_the_rule_works_for_rgb_and_gray_models():
    from vsjpegfix.models import FastARCNN

    torch.manual_seed(1)
    engine = Engine(FastARCNN(channels=1), device="cpu")
    engine.quality_profile = QualityProfile(predictor=StrengthPredictor({"h264": RULE}))
    planes = _frames()
    q = [FrameQuantiser("h264", 40.0, 40.0, "P")] * 2
    out = engine.restore(planes, YUV, quantisers=q)
    assert out.strength is not None and all(0 < s < 1 for s in out.strength)
    rgb_fmt = PlaneFormat("rgb", 8)
    rgb = [np.ascontiguousarray(np.stack([data.astronaut()[100:148, 150:214, c]] * 2)) for c in range(3)]
    out = _engine_with_rule().restore(rgb, rgb_fmt, quantisers=q)
    assert out.strength is not None and len(out.strength) == 2
