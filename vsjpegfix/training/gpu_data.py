"""The data that travels to the GPU machine for ``scripts/gpu_run.py``: small, decoded, no PyAV needed there.

The GPU machine has no PyAV (no encoder, no decoder), so every clip is coded here and travels
decoded: per sample the degraded frame exactly as the decoder gave it (BT.709 limited-range
YUV 4:2:0 planes: what the engine gets from a decoded video) and, for training and validation,
the clean RGB frame the encoder was fed. Each image is stored as a lossless WebP (about 45 % of
the raw bytes on these clips; Pillow reads it there), all of a set in one ``.npz`` (a "sample set").

:func:`build_bundle` writes the folder (``scripts/gpu_run.py build-data``):

* ``train.npz`` - centre frames of short clips: a camera moved over a random patch of a training
  still (:func:`vsjpegfix.training.degrade_video.moving_clip`), coded by libx264/libx265 at a
  constant QP uniform in 22..51, 80 % with P/B frames; each clip ``size + 32`` pixels square,
  cut to ``size`` (the borders see the codec as the inside of a frame does).
* ``val.npz`` - the same from held-out stills (CBSD68, never trained on) at fixed QPs 27/32/37/42.
* ``test.npz`` - real footage (the developer video sequences): the centre frame of 5-frame
  P/B clips at QPs 27/32/37/42 (H.264 and HEVC), a centre crop of each sequence.
* ``frames.npz`` - whole decoded frames of real footage (x264, QP 32, P/B frames), degraded
  planes only: the speed benchmark's content and its fp16/bf16-vs-fp32 check.
* ``bundle.json`` - how all of it was made (sources, seeds, QPs, sizes, bytes).

Reading (:func:`read_samples`) needs numpy and Pillow only. The builders need PyAV (imported
lazily). :func:`vsjpegfix.training.data.make_clip_sample` cuts clips the same way but keeps RGB
frames (a small overlap, to be unified).
"""

from __future__ import annotations

import io
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from PIL import Image

from vsjpegfix.training.augment import dihedral
from vsjpegfix.training.errors import TrainingError

GRID = 16
MARGIN = 16
PLANES = ("y", "u", "v")
FILES = ("train.npz", "val.npz", "test.npz", "frames.npz")
FIXED_QPS = (27, 32, 37, 42)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


@dataclass
class SampleSet:
    """Degraded 4:2:0 planes (and clean RGB frames) of a set of samples, with FBCNN labels and notes."""

    y: list[np.ndarray]
    u: list[np.ndarray]
    v: list[np.ndarray]
    clean: list[np.ndarray] | None
    label: np.ndarray
    info: list[dict[str, Any]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.y)

    def stacked(self, key: str) -> np.ndarray:
        """One field (``y``, ``u``, ``v`` or ``clean``) as one array; the samples must have one size."""
        items = getattr(self, key)
        if len({a.shape for a in items}) != 1:
            raise TrainingError(f"the {key} images of this set differ in size; use them one by one")
        return np.stack(items)


def _webp(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    # lossless either way; quality/method set the effort (method 6 / quality 100 took 10 s per 192 px image
    # for 1 % fewer bytes than this)
    Image.fromarray(np.ascontiguousarray(a)).save(buf, format="WEBP", lossless=True, quality=80, method=2)
    return buf.getvalue()


def _unwebp(blob: bytes, gray: bool) -> np.ndarray:
    with Image.open(io.BytesIO(blob)) as im:
        a = np.asarray(im.convert("RGB"))
    return np.ascontiguousarray(a[..., 0]) if gray else a  # gray was stored as R = G = B


def write_samples(path: Path, samples: SampleSet) -> int:
    """Write ``samples`` to ``path`` (``.npz``, written to a temporary name first); returns its size in bytes."""
    arrays: dict[str, np.ndarray] = {}
    fields = [("y", samples.y), ("u", samples.u), ("v", samples.v)] + ([("clean", samples.clean)] if samples.clean else [])
    with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
        for key, items in fields:
            blobs = list(pool.map(_webp, items))
            arrays[f"{key}_bytes"] = np.frombuffer(b"".join(blobs), np.uint8)
            arrays[f"{key}_offsets"] = np.cumsum([0] + [len(b) for b in blobs]).astype(np.int64)
    arrays["label"] = np.asarray(samples.label, np.float32)
    arrays["info"] = np.frombuffer(json.dumps(samples.info).encode(), np.uint8)
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.part.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)
    return path.stat().st_size


def read_samples(path: Path) -> SampleSet:
    """Read a sample set written by :func:`write_samples` (numpy and Pillow only)."""
    with np.load(Path(path)) as z:
        arrays = {k: z[k] for k in z.files}
    out: dict[str, list[np.ndarray]] = {}
    with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
        for key in (*PLANES, "clean"):
            if f"{key}_bytes" not in arrays:
                continue
            data, off = arrays[f"{key}_bytes"].tobytes(), arrays[f"{key}_offsets"]
            blobs = [data[a:b] for a, b in zip(off[:-1], off[1:])]
            out[key] = list(pool.map(lambda b: _unwebp(b, key != "clean"), blobs))
    info = json.loads(arrays["info"].tobytes().decode()) if arrays["info"].size else []
    return SampleSet(out["y"], out["u"], out["v"], out.get("clean"), arrays["label"], info)


# ----------------------------------------------------------------------------------- building (PyAV)


def list_images(folder: Path) -> list[Path]:
    """Image files under ``folder`` (recursive), sorted."""
    return sorted(p for p in Path(folder).rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _load_rgb(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.array(im.convert("RGB"))


def _centre_sample(clean: np.ndarray, codec: str, qp: int, intra: bool, margin: int, size: int) -> tuple[list, np.ndarray]:
    """Code clean RGB frames (T, H, W, 3); the centre frame's planes and clean RGB, cut to ``size`` inside ``margin``."""
    from vsjpegfix.training.baselines import encode_decode_yuv420
    from vsjpegfix.training.degrade_video import rgb_to_video_planes

    planes = encode_decode_yuv420(rgb_to_video_planes(clean), codec, qp=qp, intra=intra, preset="veryfast", colorspace=1)
    mid, m, h = clean.shape[0] // 2, margin, margin // 2
    deg = [planes[0][mid, m : m + size, m : m + size]] + [p[mid, h : h + size // 2, h : h + size // 2] for p in planes[1:]]
    return [np.ascontiguousarray(p) for p in deg], np.ascontiguousarray(clean[mid, m : m + size, m : m + size])


def still_clips(images: Sequence[np.ndarray], count: int, *, size: int, seed: int, qps: Sequence[int] | None = None,
                codecs: Sequence[str] = ("h264", "hevc"), frames: int = 3, intra_fraction: float = 0.2) -> SampleSet:
    """``count`` samples from clips over stills; sample ``i`` is a pure function of ``(seed, i)``.

    QP uniform in 22..51 (``qps=None``) or ``qps[i % len(qps)]``; codec random among ``codecs``;
    intra-only with probability ``intra_fraction``, else P/B frames (the centre frame is then inter).
    """
    from vsjpegfix.training.degrade_video import QP_RANGE, moving_clip, qp_label

    if size % GRID:
        raise TrainingError(f"size must be a multiple of {GRID}, got {size}")
    side = size + 2 * MARGIN
    usable = [img for img in images if min(img.shape[:2]) >= side + 16 + 8 * (frames - 1)]
    if not usable:
        raise TrainingError(f"no image is large enough for {side}-pixel clips")
    ys, us, vs, cleans, labels, info = [], [], [], [], [], []
    for i in range(count):
        rng = np.random.default_rng([seed, i])
        img = usable[int(rng.integers(len(usable)))]
        patch_side = side + 16 + 8 * (frames - 1)
        y0 = GRID * int(rng.integers((img.shape[0] - patch_side) // GRID + 1))
        x0 = GRID * int(rng.integers((img.shape[1] - patch_side) // GRID + 1))
        patch = dihedral(img[y0 : y0 + patch_side, x0 : x0 + patch_side], int(rng.integers(8)))
        clean, _ = moving_clip(patch, rng, (side, side), frames)
        codec = codecs[int(rng.integers(len(codecs)))]
        qp = int(rng.integers(QP_RANGE[0], QP_RANGE[1] + 1)) if qps is None else int(qps[i % len(qps)])
        intra = bool(rng.random() < intra_fraction)
        (y, u, v), c = _centre_sample(clean, codec, qp, intra, MARGIN, size)
        ys.append(y), us.append(u), vs.append(v), cleans.append(c), labels.append(qp_label(qp))
        info.append({"codec": codec, "qp": qp, "intra": intra})
    return SampleSet(ys, us, vs, cleans, np.asarray(labels, np.float32), info)


def _video_rgb(path: Path, frames: int, start: int = 0) -> np.ndarray:
    """``frames`` frames of a yuv420p video from ``start`` as RGB (T, H, W, 3) uint8 (its BT.601 tags honoured)."""
    import torch

    from vsjpegfix.engine.colour import PlaneFormat, planes_to_rgb
    from vsjpegfix.training.baselines import read_yuv420

    planes = [p[start : start + frames] for p in read_yuv420(path, frames=start + frames)]
    if planes[0].shape[0] < frames:
        raise TrainingError(f"{path}: fewer than {start + frames} frames")
    rgb = planes_to_rgb([torch.from_numpy(p) for p in planes], PlaneFormat("yuv", 8, subsampling=(1, 1), matrix="bt601"))
    return rgb.mul(255).round().byte().permute(0, 2, 3, 1).numpy()


def video_clips(paths: Sequence[Path], *, crop: int, qps: Sequence[int] = FIXED_QPS,
                codecs: Sequence[str] = ("h264", "hevc"), frames: int = 5) -> SampleSet:
    """Held-out real footage: per video, codec and QP the centre frame of the first ``frames`` frames
    coded with P/B frames, a centre crop of at most ``crop`` pixels (16-pixel grid) inside a 16-pixel margin."""
    from vsjpegfix.training.degrade_video import qp_label

    ys, us, vs, cleans, labels, info = [], [], [], [], [], []
    for path in paths:
        rgb = _video_rgb(path, frames)
        h, w = rgb.shape[1:3]
        side = min(crop, (min(h, w) - 2 * MARGIN) // GRID * GRID)
        y0, x0 = (h - side) // 2 // GRID * GRID - MARGIN, (w - side) // 2 // GRID * GRID - MARGIN
        window = rgb[:, max(0, y0) : max(0, y0) + side + 2 * MARGIN, max(0, x0) : max(0, x0) + side + 2 * MARGIN]
        for codec in codecs:
            for qp in qps:
                (y, u, v), c = _centre_sample(window, codec, int(qp), False, MARGIN, side)
                ys.append(y), us.append(u), vs.append(v), cleans.append(c), labels.append(qp_label(qp))
                info.append({"source": Path(path).name, "codec": codec, "qp": int(qp)})
    return SampleSet(ys, us, vs, cleans, np.asarray(labels, np.float32), info)


def video_frames(paths: Sequence[Path], *, count: int, qp: int = 32, codec: str = "h264") -> SampleSet:
    """Whole frames of real footage, ``count`` per video, as decoded after coding with P/B frames (no clean frames)."""
    from vsjpegfix.training.baselines import encode_decode_yuv420
    from vsjpegfix.training.degrade_video import qp_label, rgb_to_video_planes

    ys, us, vs, info = [], [], [], []
    for path in paths:
        rgb = _video_rgb(path, count)
        rgb = rgb[:, : rgb.shape[1] // 2 * 2, : rgb.shape[2] // 2 * 2]
        planes = encode_decode_yuv420(rgb_to_video_planes(rgb), codec, qp=qp, preset="veryfast", colorspace=1)
        for t in range(count):
            ys.append(planes[0][t]), us.append(planes[1][t]), vs.append(planes[2][t])
            info.append({"source": Path(path).name, "frame": t, "codec": codec, "qp": qp})
    return SampleSet(ys, us, vs, None, np.full(len(ys), qp_label(qp), np.float32), info)


@dataclass(frozen=True)
class BundleSpec:
    """What :func:`build_bundle` makes (the defaults fit the 64 MiB transfer with the repository)."""

    train_count: int = 2800
    train_size: int = 64
    val_count: int = 48
    val_size: int = 96
    test_crop: int = 192
    test_videos: tuple[str, ...] = ("gopro_snowboard_960x540_30f", "talkinghead_384x384_60f", "bar_people_960x506_20f",
                                    "realsense_office_640x480_30f")
    frame_videos: tuple[str, ...] = ("gopro_motorbike_960x540_30f", "temple_1200x800_20f")
    frames_per_video: int = 2
    seed: int = 0


def build_bundle(out: Path, images: Path, val_images: Path, videos: Path, spec: BundleSpec = BundleSpec(),
                 log=print) -> dict[str, Any]:
    """Write the four sample sets and ``bundle.json`` into ``out``; returns the bundle description."""
    t0 = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    train_paths, val_paths = list_images(images), list_images(val_images)
    if not train_paths or not val_paths:
        raise TrainingError(f"no images under {images if not train_paths else val_images}")
    if {p.resolve() for p in train_paths} & {p.resolve() for p in val_paths}:
        raise TrainingError("the training and validation images overlap")
    video = lambda names: [Path(videos) / f"{n}.mkv" for n in names]  # noqa: E731
    sets = {
        "train.npz": lambda: still_clips([_load_rgb(p) for p in train_paths], spec.train_count, size=spec.train_size,
                                         seed=spec.seed),
        "val.npz": lambda: still_clips([_load_rgb(p) for p in val_paths], spec.val_count, size=spec.val_size,
                                       seed=spec.seed + 1, qps=FIXED_QPS, intra_fraction=0.0),
        "test.npz": lambda: video_clips(video(spec.test_videos), crop=spec.test_crop),
        "frames.npz": lambda: video_frames(video(spec.frame_videos), count=spec.frames_per_video),
    }
    described: dict[str, Any] = {}
    for name, make in sets.items():
        t = time.perf_counter()
        samples = make()
        size = write_samples(out / name, samples)
        described[name] = {"samples": len(samples), "bytes": size, "shapes": sorted({str(a.shape) for a in samples.y})}
        log(f"[data] {name}: {len(samples)} samples, {size / 2**20:.2f} MiB ({time.perf_counter() - t:.0f} s)")
    meta = {"spec": {k: list(v) if isinstance(v, tuple) else v for k, v in spec.__dict__.items()},
            "sources": {"train": str(images), "val": str(val_images), "videos": str(videos)},
            "format": "YUV 4:2:0 BT.709 limited range (degraded) + RGB (clean), lossless WebP per image",
            "sets": described, "seconds": round(time.perf_counter() - t0, 1)}
    (out / "bundle.json").write_text(json.dumps(meta, indent=1) + "\n")
    return meta


def transfer_bytes(repo: Path, data: Path) -> tuple[int, int]:
    """Bytes that travel to the GPU machine: the working tree (tracked and not-ignored files) and ``data``."""
    import subprocess

    listed = subprocess.run(["git", "-C", str(repo), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            capture_output=True, check=True).stdout
    tree = sum((Path(repo) / f.decode()).stat().st_size for f in set(listed.split(b"\0")) if f and (Path(repo) / f.decode()).is_file())
    return tree, sum(p.stat().st_size for p in Path(data).rglob("*") if p.is_file())
