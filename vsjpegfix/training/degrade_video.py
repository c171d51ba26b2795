"""Video-codec degradations: H.264 and HEVC through PyAV (libx264, libx265).

A short clip is made by moving a crop window over a still image (pan, zoom and a small jitter),
so that the artifacts of inter prediction on real motion appear; the clip is encoded at a
constant QP (or CRF), intra-only or with P/B frames, decoded back, and paired with the clean
crops. Colour goes through :mod:`vsjpegfix.engine.colour` (BT.709, limited range, 4:2:0), exactly the
conversion the engine applies to decoded video, so training and inference see the same pixels.

Each sample carries FBCNN's quality label on the same 0..1 scale as JPEG (``1 - QF/100``, the QF
from :func:`vsjpegfix.quantisers.mapping.qp_to_qf`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from vsjpegfix.engine.colour import PlaneFormat, planes_to_rgb, rgb_to_planes
from vsjpegfix.quantisers.mapping import qp_to_qf
from vsjpegfix.training.baselines import encode_decode_yuv420
from vsjpegfix.training.degrade import Degraded, register_degradation

CODECS = {"h264": ("libx264", "h264"), "hevc": ("libx265", "hevc")}
VIDEO_FORMAT = PlaneFormat("yuv", 8, subsampling=(1, 1), matrix="bt709")
QP_RANGE = (22, 51)


@dataclass(frozen=True)
class Motion:
    """Camera motion of a synthetic clip: pixels per frame, zoom per frame, jitter amplitude."""

    dx: float = 0.0
    dy: float = 0.0
    zoom: float = 0.0
    jitter: float = 0.0


def random_motion(rng: np.random.Generator, max_speed: float = 3.0) -> Motion:
    """Random pan (up to ``max_speed`` px/frame), zoom (up to 1 %/frame) and jitter (up to 0.7 px)."""
    return Motion(
        float(rng.uniform(-max_speed, max_speed)),
        float(rng.uniform(-max_speed, max_speed)),
        float(rng.uniform(-0.01, 0.01)),
        float(rng.uniform(0.0, 0.7)),
    )


def moving_crops(image: np.ndarray, size: tuple[int, int], frames: int, motion: Motion, rng: np.random.Generator) -> np.ndarray:
    """``frames`` crops of ``size`` = (width, height) following ``motion`` over an RGB still.

    Returns (T, H, W, 3) uint8. The path is centred in the image so that it stays inside it.
    """
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError("moving_crops needs an RGB image (HxWx3)")
    w, h = size
    ih, iw = image.shape[:2]
    t_mid = (frames - 1) / 2
    max_zoom = 1 + abs(motion.zoom) * t_mid
    need_w = w * max_zoom + abs(motion.dx) * (frames - 1) + 2 * motion.jitter + 4
    need_h = h * max_zoom + abs(motion.dy) * (frames - 1) + 2 * motion.jitter + 4
    if need_w > iw or need_h > ih:
        raise ValueError(f"image {iw}x{ih} too small for {frames} crops of {w}x{h} with this motion")
    cx = iw / 2 + float(rng.uniform(-(iw - need_w) / 2, (iw - need_w) / 2))
    cy = ih / 2 + float(rng.uniform(-(ih - need_h) / 2, (ih - need_h) / 2))
    pil = Image.fromarray(image)
    out = np.empty((frames, h, w, 3), np.uint8)
    for t in range(frames):
        s = 1.0 + motion.zoom * (t - t_mid)
        jx, jy = rng.uniform(-motion.jitter, motion.jitter, size=2) if motion.jitter else (0.0, 0.0)
        x0 = cx + motion.dx * (t - t_mid) + jx - w * s / 2
        y0 = cy + motion.dy * (t - t_mid) + jy - h * s / 2
        frame = pil.transform((w, h), Image.Transform.AFFINE, (s, 0.0, x0, 0.0, s, y0), resample=Image.Resampling.BICUBIC)
        out[t] = np.asarray(frame)
    return out


def rgb_to_video_planes(rgb: np.ndarray) -> list[np.ndarray]:
    """RGB frames (T, H, W, 3) uint8 -> BT.709 limited-range 4:2:0 planes ``[Y, U, V]`` (what the encoders get)."""
    x = torch.from_numpy(rgb).permute(0, 3, 1, 2).float() / 255.0
    return [p.numpy() for p in rgb_to_planes(x, VIDEO_FORMAT)]


def _to_rgb(planes: list[np.ndarray]) -> np.ndarray:
    rgb = planes_to_rgb([torch.from_numpy(p) for p in planes], VIDEO_FORMAT)
    return (rgb.permute(0, 2, 3, 1) * 255.0).round().clamp(0, 255).byte().numpy()


def encode_decode(
    clean: np.ndarray, codec: str = "h264", *, qp: int | None = None, crf: float | None = None, intra: bool = False,
    preset: str = "veryfast",
) -> np.ndarray:
    """Encode RGB frames (T, H, W, 3; even H and W) with libx264/libx265 and decode them back.

    Exactly one of ``qp`` (constant quantiser) and ``crf`` is given. ``intra`` makes every frame
    a keyframe; otherwise P/B frames follow the first keyframe. The frames travel as BT.709
    limited-range 4:2:0 (:func:`vsjpegfix.training.baselines.encode_decode_yuv420` does the coding).
    """
    if codec not in CODECS:
        raise ValueError(f"unknown codec {codec!r}; use {', '.join(CODECS)}")
    if clean.ndim != 4 or clean.shape[1] % 2 or clean.shape[2] % 2:
        raise ValueError("frame size must be even for 4:2:0")
    decoded = encode_decode_yuv420(rgb_to_video_planes(clean), codec, qp=qp, crf=crf, intra=intra, preset=preset, colorspace=1)
    return _to_rgb(decoded)


def qp_label(qp: float) -> float:
    """FBCNN quality label of a QP (via :func:`vsjpegfix.quantisers.mapping.qp_to_qf`)."""
    return 1.0 - qp_to_qf(qp) / 100.0


def moving_clip(
    image: np.ndarray, rng: np.random.Generator, size: tuple[int, int], frames: int, max_speed: float = 3.0
) -> tuple[np.ndarray, Motion]:
    """Clean frames of a clip with random motion over ``image``; the motion is halved (up to 4 times) until it fits."""
    motion = random_motion(rng, max_speed)
    for _ in range(4):
        try:
            return moving_crops(image, size, frames, motion, rng), motion
        except ValueError:
            motion = Motion(motion.dx / 2, motion.dy / 2, motion.zoom / 2, motion.jitter)
    raise ValueError("image too small for a clip of this size")


def fixed_clip(
    image: np.ndarray, rng: np.random.Generator, *, size: tuple[int, int] = (96, 96), frames: int = 7,
    codec: str = "h264", qp: int = 37, intra: bool = False,
) -> VideoSample:
    """A clip from a still with random motion (from ``rng``) but a given codec, QP and GOP type.

    With a seeded ``rng`` this makes fixed evaluation clips (e.g. a validation set at one QP).
    """
    clean, motion = moving_clip(image, rng, size, frames)
    degraded = encode_decode(clean, codec, qp=qp, intra=intra)
    return VideoSample(clean, degraded, qp_label(qp), f"{codec} qp={qp}{' intra' if intra else ''} motion=({motion.dx:.1f},{motion.dy:.1f})")


@dataclass(frozen=True)
class VideoSample:
    """A degraded clip and its clean frames (T, H, W, 3 uint8 each), with the quality label."""

    clean: np.ndarray
    degraded: np.ndarray
    label: float
    info: str


def random_clip(
    image: np.ndarray, rng: np.random.Generator, *, size: tuple[int, int] = (96, 96), frames: int = 7,
    codecs: tuple[str, ...] = ("h264", "hevc"), intra_fraction: float = 0.2,
) -> VideoSample:
    """A random clip from a still: random motion, codec, QP in 22..51, intra-only or inter."""
    clean, motion = moving_clip(image, rng, size, frames)
    codec = codecs[int(rng.integers(len(codecs)))]
    qp = int(rng.integers(QP_RANGE[0], QP_RANGE[1] + 1))
    intra = bool(rng.random() < intra_fraction)
    degraded = encode_decode(clean, codec, qp=qp, intra=intra)
    return VideoSample(clean, degraded, qp_label(qp), f"{codec} qp={qp}{' intra' if intra else ''} motion=({motion.dx:.1f},{motion.dy:.1f})")


def _centre_frame_sample(clean: np.ndarray, rng: np.random.Generator, codecs: tuple[str, ...]) -> Degraded:
    """Single-frame training pair from a clip made inside ``clean``: the centre (inter) frame."""
    h, w = clean.shape[:2]
    size = (max(64, (w * 2 // 3) // 16 * 16), max(64, (h * 2 // 3) // 16 * 16))
    sample = random_clip(clean, rng, size=size, frames=5, codecs=codecs, intra_fraction=0.2)
    mid = sample.clean.shape[0] // 2
    return Degraded(sample.clean[mid], sample.degraded[mid], sample.label, sample.info)


@register_degradation("h264")
def random_h264(clean: np.ndarray, rng: np.random.Generator) -> Degraded:
    """Centre frame of a short H.264 clip panned over the patch (QP 22..51)."""
    return _centre_frame_sample(clean, rng, ("h264",))


@register_degradation("hevc")
def random_hevc(clean: np.ndarray, rng: np.random.Generator) -> Degraded:
    """Centre frame of a short HEVC clip panned over the patch (QP 22..51)."""
    return _centre_frame_sample(clean, rng, ("hevc",))


@register_degradation("jpeg_video_mix")
def random_jpeg_video_mix(clean: np.ndarray, rng: np.random.Generator) -> Degraded:
    """Half JPEG mix, half H.264/HEVC (for the video-capable models)."""
    from vsjpegfix.training.degrade import DEGRADATIONS

    if rng.random() < 0.5:
        return DEGRADATIONS["mix"](clean, rng)
    return _centre_frame_sample(clean, rng, ("h264", "hevc"))


@register_degradation("jpeg_video_mix_hq")
def random_jpeg_video_mix_hq(clean: np.ndarray, rng: np.random.Generator) -> Degraded:
    """Half ``"mix_hq"`` (JPEG with 10 % near-clean), half H.264/HEVC (for the video-capable FBCNN)."""
    from vsjpegfix.training.degrade import DEGRADATIONS

    if rng.random() < 0.5:
        return DEGRADATIONS["mix_hq"](clean, rng)
    return _centre_frame_sample(clean, rng, ("h264", "hevc"))
