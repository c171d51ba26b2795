"""A model's content-adaptive strength rule fitted on the video set, and how any strength scores there.

Scoring (:func:`frame_gains`): strengths applied to the cached corrections of
:mod:`vsjpegfix.training.video_set` exactly as the engine applies them (rounded, clamped), scored
as each frame's Y-PSNR gain over the decoded input (and Y-SSIM on request).

Oracles (:func:`oracle_strengths`): least-squares strengths that see the clean frame, per frame or
per ``B x B`` block (piecewise constant, clipped to ``0..1.5``), for one model or for two models'
corrections together (the exact 2x2 box-constrained solution per block). Training-only statistics
(``D = <d, d>``, ``R = <d, c - x>``, ``X = <d1, d2>`` per block).

The rule (:func:`fit_rule`): ``s = clip(theta . phi, 0, 1)`` per frame with the terms of
:mod:`vsjpegfix.weights.predictor` computed from the run-time features, fitted per codec by
weighted least squares on the restored error ``sum_f w_f (D_f s_f^2 - 2 R_f s_f)`` (frame weight
``w_f = 1 / input SSE``: each frame's relative error counts alike; closed-form normal equations for
the unclipped problem, then L-BFGS-B on the clipped one, a small ridge). A safety margin is
subtracted from the intercept: the smallest of :data:`MARGINS` with which leave-one-sequence-out
over the training sequences loses no more than :data:`TOLERANCE` dB on any held-out sequence at any
point (:func:`choose_margins`). :func:`held_out_rules` nests that inside leave-one-sequence-out
(each held-out sequence's rule and margin come from the other sequences alone);
:func:`final_rules` is the rule to ship (every sequence, margin from leave-one-out over all).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from vsjpegfix.engine.planes import apply_delta
from vsjpegfix.training.errors import TrainingError
from vsjpegfix.training.metrics import ssim_y
from vsjpegfix.training.video_set import CODEC_NAMES, FORMAT, Encode
from vsjpegfix.weights.predictor import FramePredictor, design
from vsjpegfix.weights.profile import control_for_qps

#: the shipped rule's terms (:data:`vsjpegfix.weights.predictor.TERMS`): QP (quadratic), frame type,
#: correction vs texture (and with QP), texture, blockiness, adaptive quantisation (and with QP)
RULE_TERMS = ("1", "q", "q2", "I", "B", "lratio", "qlratio", "ltex", "blk", "aq", "aqq")
#: candidate safety margins (subtracted from the intercept)
MARGINS = (0.0, 0.05, 0.1, 0.15, 0.2, 0.3)
#: the largest loss (dB) a held-out sequence may show at any point
TOLERANCE = 0.02
ORACLE_MAX = 1.5
#: per-model strengths: a value per frame ``(K,)`` or per pixel ``(K, h, w)``
Strengths = Mapping[str, np.ndarray]


# ----------------------------------------------------------------------------- scoring

def _psnr(ref: torch.Tensor, test: torch.Tensor) -> np.ndarray:
    mse = ((ref.double() - test.double()) ** 2).mean(dim=(1, 2)).numpy()
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(255.0 ** 2 / mse)


def restored_luma(enc: Encode, strengths: Strengths) -> np.ndarray:
    """The luma the engine would give with these strengths (two models: the sum of both scaled corrections)."""
    x = torch.from_numpy(enc.decoded)
    delta = None
    for model, s in strengths.items():
        st = torch.as_tensor(np.asarray(s, np.float32))
        part = torch.from_numpy(enc.corrections[model]) * (st.reshape(-1, 1, 1) if st.ndim <= 1 else st)
        delta = part if delta is None else delta + part
    return x.numpy().copy() if delta is None else apply_delta(x, delta, FORMAT).numpy()


def input_psnr(enc: Encode) -> np.ndarray:
    """Y-PSNR of each decoded frame (cached on the object)."""
    if not hasattr(enc, "_psnr_in"):
        enc._psnr_in = _psnr(torch.from_numpy(enc.clean), torch.from_numpy(enc.decoded))  # type: ignore[attr-defined]
    return enc._psnr_in  # type: ignore[attr-defined]


def output_gains(enc: Encode, out: np.ndarray, ssim: bool = False) -> dict[str, np.ndarray]:
    """Per frame ``delta_psnr_y`` (and with ``ssim``: ``ssim_y``, ``delta_ssim_y``) of an output luma."""
    res = {"delta_psnr_y": _psnr(torch.from_numpy(enc.clean), torch.from_numpy(out)) - input_psnr(enc)}
    if ssim:
        if not hasattr(enc, "_ssim_in"):
            enc._ssim_in = np.array([ssim_y(c, x) for c, x in zip(enc.clean, enc.decoded)])  # type: ignore[attr-defined]
        res["ssim_y"] = np.array([ssim_y(c, o) for c, o in zip(enc.clean, out)])
        res["delta_ssim_y"] = res["ssim_y"] - enc._ssim_in  # type: ignore[attr-defined]
    return res


def frame_gains(enc: Encode, strengths: Strengths, ssim: bool = False) -> dict[str, np.ndarray]:
    """Per frame scores of ``strengths`` applied as the engine applies them (see :func:`output_gains`)."""
    return output_gains(enc, restored_luma(enc, strengths), ssim)


# ----------------------------------------------------------------------------- per-block statistics and oracles

def block_sums(a: torch.Tensor, block: int) -> torch.Tensor:
    """Sums of ``(K, h, w)`` over ``block x block`` tiles (zero padded at the far edges); block 0: whole frames ``(K, 1, 1)``."""
    if block == 0:
        return a.sum(dim=(1, 2), keepdim=True)
    h, w = a.shape[-2:]
    a = F.pad(a, (0, -w % block, 0, -h % block))
    return F.avg_pool2d(a[:, None], block, divisor_override=1)[:, 0]


def expand(values: np.ndarray, block: int, h: int, w: int) -> np.ndarray:
    """Per-block values ``(K, rows, cols)`` as a piecewise-constant per-pixel map ``(K, h, w)`` (block 0: ``(K,)``)."""
    if block == 0:
        return np.asarray(values).reshape(-1)
    return np.repeat(np.repeat(values, block, axis=1), block, axis=2)[:, :h, :w]


def ls_box(D: np.ndarray, R: np.ndarray, lo: float = 0.0, hi: float = ORACLE_MAX) -> np.ndarray:
    """Per block ``argmin_s D s^2 - 2 R s`` on ``[lo, hi]`` (``lo`` where ``D`` is 0)."""
    D = np.asarray(D, np.float64)
    return np.clip(np.divide(R, D, out=np.full_like(D, lo), where=D > 0), lo, hi)


def ls2_box(D1, D2, X, R1, R2, lo: float = 0.0, hi: float = ORACLE_MAX) -> tuple[np.ndarray, np.ndarray]:
    """Per block ``argmin D1 a^2 + D2 b^2 + 2 X a b - 2 R1 a - 2 R2 b`` on ``[lo, hi]^2``: the interior
    solution where it is feasible, else the best minimiser on the box's edges (exact)."""
    D1, D2, X, R1, R2 = (np.asarray(v, np.float64) for v in (D1, D2, X, R1, R2))

    def f(a, b):
        return D1 * a * a + D2 * b * b + 2 * X * a * b - 2 * R1 * a - 2 * R2 * b

    det = D1 * D2 - X * X
    ok = det > 1e-9 * np.maximum(D1 * D2, 1e-30)
    with np.errstate(divide="ignore", invalid="ignore"):
        a = np.where(ok, (R1 * D2 - R2 * X) / np.where(ok, det, 1), lo)
        b = np.where(ok, (R2 * D1 - R1 * X) / np.where(ok, det, 1), lo)
    inside = ok & (a >= lo) & (a <= hi) & (b >= lo) & (b <= hi)
    candidates = [(np.where(inside, a, lo), np.where(inside, b, lo), inside)]
    for fixed in (lo, hi):
        edge = np.full_like(D1, fixed)
        candidates.append((edge, ls_box(D2, R2 - X * fixed, lo, hi), np.ones_like(inside)))
        candidates.append((ls_box(D1, R1 - X * fixed, lo, hi), edge, np.ones_like(inside)))
    best_a, best_b = np.full_like(D1, lo), np.full_like(D1, lo)
    best = f(best_a, best_b)
    for a, b, valid in candidates:
        val = np.where(valid, f(a, b), np.inf)
        better = val < best
        best_a, best_b, best = np.where(better, a, best_a), np.where(better, b, best_b), np.where(better, val, best)
    return best_a, best_b


def oracle_strengths(enc: Encode, models: Sequence[str], block: int) -> dict[str, np.ndarray]:
    """Least-squares strengths (they see the clean frame) per frame (``block`` 0) or per block, for one
    model or two together; per-pixel maps ``(K, h, w)`` for blocks, ``(K,)`` per frame."""
    e = torch.from_numpy(enc.clean).double() - torch.from_numpy(enc.decoded).double()
    d = [torch.from_numpy(enc.corrections[m]).double() for m in models]
    D = [block_sums(v * v, block).numpy() for v in d]
    R = [block_sums(v * e, block).numpy() for v in d]
    if len(models) == 1:
        values = [ls_box(D[0], R[0])]
    elif len(models) == 2:
        values = list(ls2_box(D[0], D[1], block_sums(d[0] * d[1], block).numpy(), R[0], R[1]))
    else:
        raise TrainingError("oracles take one or two models")
    h, w = enc.clean.shape[-2:]
    return {m: expand(v, block, h, w) for m, v in zip(models, values)}


def profile_strengths(enc: Encode, profile) -> np.ndarray:
    """Today's per-QP strength of each frame (the model's quality profile at the frame's quantiser)."""
    return np.array([control_for_qps(profile, [q.qp], False)[1][0] for q in enc.quantisers], np.float64)


# ----------------------------------------------------------------------------- fitting the rule

@dataclass
class FitData:
    """One model's frames of the set (extras left out): run-time features and the objective's terms."""

    features: dict[str, np.ndarray]
    D: np.ndarray
    R: np.ndarray
    weight: np.ndarray
    seq: np.ndarray
    codec: np.ndarray


def fit_data(encodes: Sequence[Encode], model: str) -> FitData:
    """Per frame: the run-time features, ``D = <d, d>``, ``R = <d, c - x>``, weight ``1 / max(input SSE, 1)``."""
    feats: dict[str, list[np.ndarray]] = {}
    D, R, W, S, C = [], [], [], [], []
    for enc in encodes:
        if enc.extra:
            continue
        e = enc.clean.astype(np.float64) - enc.decoded.astype(np.float64)
        d = enc.corrections[model].astype(np.float64)
        for k, v in enc.features[model].items():
            feats.setdefault(k, []).append(np.asarray(v, np.float64))
        D.append((d * d).sum(axis=(1, 2)))
        R.append((d * e).sum(axis=(1, 2)))
        W.append(1.0 / np.maximum((e * e).sum(axis=(1, 2)), 1.0))
        S.append(np.full(len(d), enc.seq))
        C.append(np.full(len(d), enc.codec))
    if not D:
        raise TrainingError("no sequences to fit on")
    return FitData({k: np.concatenate(v) for k, v in feats.items()}, *(np.concatenate(a) for a in (D, R, W, S, C)))


def fit_rule(data: FitData, mask: np.ndarray, terms: Sequence[str] = RULE_TERMS, *, s_max: float = 1.0,
             ridge: float = 1e-3) -> FramePredictor:
    """``theta`` minimising ``sum_f w_f (D_f s_f^2 - 2 R_f s_f) + ridge * mean(w D) * |theta|^2`` with
    ``s_f = clip(theta . phi_f, 0, s_max)`` over the frames of ``mask``."""
    from scipy.optimize import minimize

    if not np.any(mask):
        raise TrainingError("no frames to fit on")
    phi = design({k: v[mask] for k, v in data.features.items()}, terms)
    wD, wR = data.weight[mask] * data.D[mask], data.weight[mask] * data.R[mask]
    lam = ridge * wD.sum() / max(len(terms), 1)
    theta0 = np.linalg.solve(phi.T @ (phi * wD[:, None]) + lam * np.eye(len(terms)), phi.T @ wR)

    def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
        z = phi @ theta
        s = np.clip(z, 0.0, s_max)
        active = (z > 0.0) & (z < s_max)
        value = float(np.sum(wD * s * s - 2.0 * wR * s)) + lam * float(theta @ theta)
        return value, phi.T @ (active * (2.0 * wD * s - 2.0 * wR)) + 2.0 * lam * theta

    best = minimize(objective, theta0, jac=True, method="L-BFGS-B", options={"maxiter": 500})
    theta = best.x if best.fun <= objective(theta0)[0] else theta0
    return FramePredictor(tuple(terms), tuple(float(t) for t in theta))


def shifted(rule: FramePredictor, margin: float) -> FramePredictor:
    """The rule with ``margin`` subtracted from its intercept (recorded as its margin)."""
    theta = list(rule.theta)
    theta[rule.terms.index("1")] -= margin
    return FramePredictor(rule.terms, tuple(theta), float(margin))


def rule_strengths(enc: Encode, model: str, rule: FramePredictor) -> np.ndarray:
    """Each frame's strength under ``rule`` (the run-time features, as the engine computes it)."""
    return rule.strengths(enc.features[model])


Rules = Mapping[str, FramePredictor]  # codec (x264/x265) -> rule


def worst_gains(encodes: Sequence[Encode], model: str, rules_for: Callable[[str], Rules]) -> dict[str, float]:
    """Per codec, the worst (sequence, point) mean gain of the rules (``rules_for(sequence)``)."""
    worst: dict[str, float] = {}
    for enc in encodes:
        rule = rules_for(enc.seq)[enc.codec]
        g = float(np.mean(frame_gains(enc, {model: rule_strengths(enc, model, rule)})["delta_psnr_y"]))
        worst[enc.codec] = min(worst.get(enc.codec, np.inf), g)
    return worst


def choose_margins(encodes: Sequence[Encode], data: FitData, model: str, seqs: Sequence[str], *,
                   terms: Sequence[str] = RULE_TERMS, candidates: Sequence[float] = MARGINS,
                   tol: float = TOLERANCE) -> dict[str, float]:
    """Per codec, the smallest margin with which leave-one-out over ``seqs`` (each fitted on the others of
    ``seqs`` only) loses no more than ``tol`` dB on any of them at any point; the largest candidate when
    none does or when ``seqs`` has fewer than two sequences."""
    codecs = sorted(str(c) for c in set(data.codec))
    if len(seqs) < 2:
        return {c: float(max(candidates)) for c in codecs}
    inner = {(s, c): fit_rule(data, np.isin(data.seq, list(seqs)) & (data.seq != s) & (data.codec == c), terms)
             for s in seqs for c in codecs}
    subset = [e for e in encodes if e.seq in seqs and not e.extra]
    worst = {m: worst_gains(subset, model, lambda s, m=m: {c: shifted(inner[(s, c)], m) for c in codecs}) for m in candidates}
    out = {}
    for c in codecs:
        ok = [m for m in candidates if worst[m][c] >= -tol]
        out[c] = float(min(ok)) if ok else float(max(candidates))
    return out


def held_out_rules(encodes: Sequence[Encode], model: str, terms: Sequence[str] = RULE_TERMS) -> dict[str, Rules]:
    """Leave-one-sequence-out with nested margins: for each sequence of the set, the rules per codec fitted
    on the other sequences, shifted by the margin chosen on those sequences alone (:func:`choose_margins`)."""
    data = fit_data(encodes, model)
    seqs = sorted(set(data.seq))
    out = {}
    for held in seqs:
        train = [s for s in seqs if s != held]
        margins = choose_margins(encodes, data, model, train, terms=terms)
        out[held] = {c: shifted(fit_rule(data, (data.seq != held) & (data.codec == c), terms), margins[c])
                     for c in sorted(str(c) for c in set(data.codec))}
    return out


def final_rules(encodes: Sequence[Encode], model: str, terms: Sequence[str] = RULE_TERMS) -> dict[str, FramePredictor]:
    """The rules to ship, by FFmpeg codec name (``h264``, ``hevc``): fitted on every sequence of the set,
    shifted by the margin leave-one-out over all of them needs."""
    data = fit_data(encodes, model)
    margins = choose_margins(encodes, data, model, sorted(set(data.seq)), terms=terms)
    return {CODEC_NAMES[c]: shifted(fit_rule(data, data.codec == c, terms), margins[c]) for c in sorted(str(c) for c in set(data.codec))}


def by_encoder(rules: Mapping[str, FramePredictor]) -> dict[str, FramePredictor]:
    """Rules keyed by FFmpeg codec name (``h264``) re-keyed by the set's encoder name (``x264``)."""
    names = {v: k for k, v in CODEC_NAMES.items()}
    return {names[c]: r for c, r in rules.items() if c in names}
