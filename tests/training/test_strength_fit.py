"""vsjpegfix.training.strength_fit: scoring as the engine applies strengths, oracles, the rule's fit and the
leave-one-sequence-out split with nested margins (synthetic sets, seconds)."""

from __future__ import annotations

import numpy as np
import pytest

from vsjpegfix.quantisers.stream import FrameQuantiser
from vsjpegfix.training import strength_fit as sf
from vsjpegfix.training.errors import TrainingError
from vsjpegfix.training.metrics import psnr_y
from vsjpegfix.training.video_set import Encode
from vsjpegfix.weights.predictor import FramePredictor, design

THETA = (0.64, 0.46, 0.08, -0.01, -0.10, -0.49, 0.07, -0.38, 0.68, 0.01, -0.02)  # near the shipped x264 rule


def _features(rng: np.random.Generator, k: int) -> dict[str, np.ndarray]:
    pict = rng.integers(0, 3, k)
    return {"qp": rng.uniform(24, 42, k), "tex": rng.uniform(1, 8, k), "rd": rng.uniform(0.5, 3, k), "blk": rng.uniform(0.9, 1.6, k),
            "I": (pict == 0).astype(float), "B": (pict == 2).astype(float), "aq": rng.integers(0, 2, k).astype(float)}


def _encode(rng, seq: str, codec: str = "x264", k: int = 3, size: int = 48, theta=THETA, want=None, extra=False) -> Encode:
    """Frames whose clean version is the decoded one plus ``want`` (default: the rule ``theta`` at the
    frame's features) times the model's correction, rounded: that strength is the frame's optimum."""
    feats = _features(rng, k)
    s = np.clip(design(feats, sf.RULE_TERMS) @ np.asarray(theta), 0, 1) if want is None else np.full(k, want)
    decoded = rng.integers(40, 200, (k, size, size)).astype(np.uint8)
    d = rng.normal(0, 4, (k, size, size)).astype(np.float32)
    clean = np.clip(np.rint(decoded + s[:, None, None] * d), 0, 255).astype(np.uint8)
    quant = [FrameQuantiser("h264", float(q), float(q), "P") for q in feats["qp"]]
    return Encode(seq, codec, "qp37", clean, decoded, quant, {"m": d}, {"m": feats}, extra=extra)


def test_frame_gains_are_the_engine_rounding_scored_independently():
    rng = np.random.default_rng(0)
    enc = _encode(rng, "a")
    s = np.array([0.0, 0.5, 1.0])
    out = sf.restored_luma(enc, {"m": s})
    expect = np.clip(np.rint(enc.decoded.astype(np.float32) + s[:, None, None].astype(np.float32) * enc.corrections["m"]), 0, 255)
    assert np.array_equal(out, expect.astype(np.uint8))
    gains = sf.frame_gains(enc, {"m": s}, ssim=True)
    for k in range(3):
        assert gains["delta_psnr_y"][k] == pytest.approx(psnr_y(enc.clean[k], out[k]) - psnr_y(enc.clean[k], enc.decoded[k]))
    assert gains["delta_psnr_y"][0] == 0 and gains["delta_ssim_y"][0] == 0  # strength 0: the input itself
    assert np.all(gains["delta_psnr_y"][1:] != 0)


def test_ls_box_and_ls2_box_against_a_grid_search():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(40, 2))
    D1, D2 = rng.uniform(0.5, 3, 40), rng.uniform(0.5, 3, 40)
    X = a[:, 0] * np.sqrt(D1 * D2) * 0.9 * np.tanh(a[:, 1])  # |X| < sqrt(D1 D2): a positive definite problem
    R1, R2 = rng.normal(0, 2, 40), rng.normal(0, 2, 40)
    s1, s2 = sf.ls2_box(D1, D2, X, R1, R2)
    grid = np.linspace(0, sf.ORACLE_MAX, 151)
    A, B = np.meshgrid(grid, grid, indexing="ij")
    for i in range(40):
        f = D1[i] * A**2 + D2[i] * B**2 + 2 * X[i] * A * B - 2 * R1[i] * A - 2 * R2[i] * B
        got = D1[i] * s1[i] ** 2 + D2[i] * s2[i] ** 2 + 2 * X[i] * s1[i] * s2[i] - 2 * R1[i] * s1[i] - 2 * R2[i] * s2[i]
        assert got <= f.min() + 1e-9 and 0 <= s1[i] <= sf.ORACLE_MAX and 0 <= s2[i] <= sf.ORACLE_MAX
    one = sf.ls_box(D1, R1)
    assert np.allclose(one, np.clip(R1 / D1, 0, sf.ORACLE_MAX))
    assert sf.ls_box(np.zeros(2), np.ones(2)).tolist() == [0.0, 0.0]


def test_block_oracle_finds_per_block_strengths():
    rng = np.random.default_rng(2)
    k, size = 2, 64
    decoded = rng.integers(60, 190, (k, size, size)).astype(np.uint8)
    d = rng.normal(0, 6, (k, size, size)).astype(np.float32)
    blocks = rng.uniform(0.1, 1.2, (k, 2, 2))
    S = np.repeat(np.repeat(blocks, 32, 1), 32, 2)
    clean = np.clip(np.rint(decoded + S * d), 0, 255).astype(np.uint8)
    enc = Encode("a", "x264", "qp37", clean, decoded, [], {"m": d, "n": rng.normal(0, 2, (k, size, size)).astype(np.float32)})
    per_block = sf.oracle_strengths(enc, ["m"], 32)["m"]
    assert per_block.shape == (k, size, size) and np.abs(per_block - S).max() < 0.02
    per_frame = sf.oracle_strengths(enc, ["m"], 0)["m"]
    assert per_frame.shape == (k,)
    g32 = sf.frame_gains(enc, {"m": per_block})["delta_psnr_y"]
    gframe = sf.frame_gains(enc, {"m": per_frame})["delta_psnr_y"]
    assert np.all(g32 > gframe + 0.5)
    two = sf.oracle_strengths(enc, ["m", "n"], 32)  # a useless second correction gets (almost) nothing
    assert np.abs(two["m"] - S).max() < 0.05 and np.abs(two["n"]).max() < 0.1
    with pytest.raises(TrainingError):
        sf.oracle_strengths(enc, ["m", "n", "m"], 32)


def test_fit_recovers_the_rule_that_made_the_optimum():
    rng = np.random.default_rng(3)
    n = 3000
    feats = _features(rng, n)
    s = np.clip(design(feats, sf.RULE_TERMS) @ np.asarray(THETA), 0, 1)
    D = rng.uniform(1e3, 1e5, n)
    data = sf.FitData(feats, D, D * s, np.ones(n), np.array(["a"] * n), np.array(["x264"] * n))
    rule = sf.fit_rule(data, np.ones(n, bool), ridge=0.0)
    assert np.abs(rule.strengths(feats) - s).max() < 1e-3
    with pytest.raises(TrainingError):
        sf.fit_rule(data, np.zeros(n, bool))
    low = sf.shifted(rule, 0.1)
    assert low.margin == 0.1 and low.theta[0] == pytest.approx(rule.theta[0] - 0.1) and low.theta[1:] == rule.theta[1:]


def _set(rng, seqs=("a", "b", "c", "d"), theta=THETA) -> list[Encode]:
    return [_encode(rng, s, codec, theta=theta) for s in seqs for codec in ("x264", "x265") for _ in range(2)]


def test_margins_are_zero_when_every_sequence_follows_one_rule():
    rng = np.random.default_rng(4)
    encodes = _set(rng)
    data = sf.fit_data(encodes, "m")
    assert sf.choose_margins(encodes, data, "m", ["a", "b", "c", "d"]) == {"x264": 0.0, "x265": 0.0}
    assert sf.choose_margins(encodes, data, "m", ["a"]) == {"x264": max(sf.MARGINS), "x265": max(sf.MARGINS)}
    final = sf.final_rules(encodes, "m")
    assert set(final) == {"h264", "hevc"} and all(r.margin == 0.0 for r in final.values())
    assert set(sf.by_encoder(final)) == {"x264", "x265"}


def test_held_out_rule_never_sees_its_sequence():
    rng = np.random.default_rng(5)
    encodes = _set(rng)
    held = sf.held_out_rules(encodes, "m")
    assert set(held) == {"a", "b", "c", "d"} and all(set(r) == {"x264", "x265"} for r in held.values())
    # sequence "d" now wants no correction at all: its own held-out rule must not change, the others' must
    changed = [e if e.seq != "d" else _encode(rng, "d", e.codec, want=0.0) for e in encodes]
    again = sf.held_out_rules(changed, "m")
    assert again["d"] == held["d"]
    assert any(again[s] != held[s] for s in "abc")
    # a sequence that wants 0 pushes the margins of the rules trained with it up
    assert max(r.margin for s in "abc" for r in again[s].values()) > 0.0
    extra = _encode(rng, "carphone", extra=True)
    assert "carphone" not in set(sf.fit_data(changed + [extra], "m").seq)


def test_profile_strengths_follow_the_qp_profile():
    from vsjpegfix.weights.profile import QualityProfile

    profile = QualityProfile.from_dict({"h264_qp": [[20, None, 0.0], [40, None, 1.0]], "jpeg_qf": []})
    enc = _encode(np.random.default_rng(6), "a")
    expect = np.clip((np.array([q.qp for q in enc.quantisers]) - 20) / 20, 0, 1)
    assert np.allclose(sf.profile_strengths(enc, profile), expect)
    rule = FramePredictor(("1",), (0.25,))
    assert np.allclose(sf.rule_strengths(enc, "m", rule), 0.25)
