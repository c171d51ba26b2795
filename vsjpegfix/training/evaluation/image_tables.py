"""The image tables: ``colour`` and ``gray`` (JPEG at several QFs) and ``double`` (non-aligned double
JPEG, with FBCNN-D's dominant-QF correction), one function each, over
:func:`run_image_table` (any list of ``(setting, degrade)`` cases).

Rows: the compressed input, the classical filter (:mod:`vsjpegfix.training.baselines`) and every
model; ``<model> +profile`` rows (calibrated quality profile at the known QF) in the single-JPEG
tables, ``<model> dominant-QF`` rows in the double table. Metrics: PSNR, SSIM and PSNR-B
(``variant="fbcnn"``: one MSE over RGB plus the BEF of the output's BT.601 luma), no border.
"""

from __future__ import annotations

import itertools
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from PIL import Image

from vsjpegfix.quantisers.jpeg import detect_double_jpeg, dominant_qf
from vsjpegfix.training import baselines
from vsjpegfix.training.degrade import double_jpeg, jpeg, shift_crop
from vsjpegfix.training.errors import TrainingError
from vsjpegfix.training.evaluation.entries import ModelEntry
from vsjpegfix.training.evaluation.report import Accumulator, Log, Table, log_stderr
from vsjpegfix.training.metrics import psnr, psnrb, ssim

IMAGE_SUFFIXES = (".png", ".bmp", ".tif", ".tiff", ".jpg", ".jpeg", ".webp")
QFS = (10, 20, 30, 40)
DOUBLE_QFS = (10, 30, 50)
SHIFT = (4, 4)
#: ``(setting, degrade(clean) -> (reference, degraded))``: one column of settings of an image table
Case = tuple[dict, Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]]


def first_images(folder: Path, limit: int | None) -> list[Path]:
    """The image files of ``folder`` (not recursive), sorted by name, the first ``limit`` of them."""
    if not folder.is_dir():
        raise TrainingError(f"image folder {folder} does not exist (use --images DIR)")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise TrainingError(f"no images in {folder}")
    return files[:limit] if limit else files


def centre_crop(img: np.ndarray, crop: int | None) -> np.ndarray:
    """The centre ``crop`` x ``crop`` pixels of ``img`` (at most; the whole image without ``crop``)."""
    if not crop:
        return img
    h, w = img.shape[:2]
    ch, cw = min(crop, h), min(crop, w)
    y0, x0 = (h - ch) // 2, (w - cw) // 2
    return np.ascontiguousarray(img[y0 : y0 + ch, x0 : x0 + cw])


def load_rgb(path: Path, crop: int | None) -> np.ndarray:
    """An image file as HxWx3 uint8 RGB, centre-cropped by ``crop``."""
    with Image.open(path) as im:
        return centre_crop(np.asarray(im.convert("RGB")), crop)


def to_gray(rgb: np.ndarray) -> np.ndarray:
    """Pillow's ``L``: full-range BT.601 luma, rounded (see the module docstring)."""
    return np.asarray(Image.fromarray(rgb, "RGB").convert("L"))


def image_metrics(clean: np.ndarray, test: np.ndarray) -> dict[str, float]:
    """PSNR, SSIM and PSNR-B (FBCNN variant) of ``test`` against ``clean``."""
    return {"psnr": psnr(clean, test), "ssim": ssim(clean, test), "psnrb": psnrb(clean, test, variant="fbcnn")}


def run_image_table(name: str, title: str, images: list[np.ndarray], cases: Sequence[Case],
                    classical: Callable[[np.ndarray], np.ndarray], models: Sequence[ModelEntry],
                    dominant: bool = False, profiles: bool = False, log: Log = log_stderr) -> Table:
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


def jpeg_cases(qfs: Sequence[int]) -> list[Case]:
    """Single JPEG (Pillow/libjpeg, 4:2:0 for colour) at each QF, scored against the clean image."""
    return [({"qf": q}, lambda img, q=q: (img, jpeg(img, q))) for q in qfs]


def colour_table(images: list[np.ndarray], models: Sequence[ModelEntry], qfs: Sequence[int] = QFS, *,
                 profiles: bool = True, log: Log = log_stderr) -> Table:
    """``colour``: JPEG of the RGB ``images`` at each QF, scored on RGB (``models``: the colour ones)."""
    t = run_image_table("colour", f"Colour JPEG, Pillow 4:2:0 ({len(images)} images, RGB)", images, jpeg_cases(qfs),
                        baselines.deblock_rgb, models, profiles=profiles, log=log)
    t.notes.append("PSNR-B: FBCNN variant (RGB MSE + BEF of the BT.601 luma)")
    return t


def gray_table(images: list[np.ndarray], models: Sequence[ModelEntry], qfs: Sequence[int] = QFS, *,
               profiles: bool = True, log: Log = log_stderr) -> Table:
    """``gray``: JPEG of the gray versions (:func:`to_gray`) of the RGB ``images`` at each QF."""
    grays = [to_gray(im) for im in images]
    return run_image_table("gray", f"Gray JPEG ({len(images)} images, Pillow 'L' luma)", grays, jpeg_cases(qfs),
                           baselines.deblock_gray, models, profiles=profiles, log=log)


def double_table(images: list[np.ndarray], models: Sequence[ModelEntry], qfs: Sequence[int] = DOUBLE_QFS,
                 shift: tuple[int, int] = SHIFT, *, log: Log = log_stderr) -> Table:
    """``double``: ``JPEG(shift(JPEG(x, QF1)), QF2)`` for every (QF1, QF2) in ``qfs``, scored against the
    clean image cropped by the shift; FBCNN-type models also get their dominant-QF row."""
    shift = (int(shift[0]), int(shift[1]))
    cases = [({"qf1": q1, "qf2": q2}, lambda img, q1=q1, q2=q2: (shift_crop(img, shift), double_jpeg(img, q1, q2, shift)))
             for q1, q2 in itertools.product(qfs, repeat=2)]
    t = run_image_table("double", f"Non-aligned double JPEG, shift {shift} ({len(images)} images, RGB)", images,
                        cases, baselines.deblock_rgb, models, dominant=True, log=log)
    t.notes.append("JPEG(shift(JPEG(x, QF1)), QF2), scored against the clean image cropped by the shift")
    if any(m.has_quality for m in models):
        t.notes.append("dominant-QF: FBCNN controlled with min(QF2, detected QF1) (QF2 known, QF1 detected on the "
                       "decoded image; detection time included); detected: share of the images where the "
                       "earlier compression was found")
    return t
