"""The video validation set (issue #17): real sequences through x264/x265, cached.

For each clean sequence of a folder (lossless 4:2:0 video, e.g. ``shared/data/video``):

1. a centred crop (at most ``crop x crop``, even offsets) of its first ``enc_frames`` frames;
2. encoded with libx264/libx265 (:func:`vsjpegfix.training.baselines.encode_yuv420`: preset
   ``medium``, the encoders' default GOP with P and B frames, one thread, so the bits are the same
   on every machine) at constant QP 22/27/32/37/42 and CRF 18/23/28 (CRF with the encoders'
   default adaptive quantisation and cu-tree), and decoded with each frame's quantiser as the
   transcoder reads it (:class:`~vsjpegfix.quantisers.stream.FrameQuantiser`: QP, picture type,
   the adaptive flag), keeping ``eval_frames`` frames spread over the encode;
3. each model's correction of those frames and the rule's run-time features
   (:mod:`vsjpegfix.training.video_set_build`), and the classical baseline (:func:`load_classical`).

Everything is cached as ``.npz`` under ``cache_dir/<key>/`` (atomic writes; a rerun computes only
what is missing; keep it outside the repository). In memory the set is a list of :class:`Encode`;
:func:`restored` applies strengths exactly as the engine does
(:func:`vsjpegfix.engine.planes.apply_delta`). ``extra`` clips (carphone) are evaluated like the
others but never fitted or chosen on (:attr:`Encode.extra`).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch

from vsjpegfix.engine.colour import PlaneFormat
from vsjpegfix.engine.planes import apply_delta
from vsjpegfix.quantisers.stream import FrameQuantiser
from vsjpegfix.training import baselines
from vsjpegfix.training.errors import TrainingError

#: rate-control points: constant QP, then CRF (the encoders' default AQ and cu-tree)
POINTS: tuple[tuple[str, int], ...] = (("qp", 22), ("qp", 27), ("qp", 32), ("qp", 37), ("qp", 42),
                                       ("crf", 18), ("crf", 23), ("crf", 28))
CODECS = ("x264", "x265")
#: the FFmpeg codec name a decoded stream reports (the key of a model's rule per codec)
CODEC_NAMES = {"x264": "h264", "x265": "hevc"}
#: the models of the set: each runs as the transcoder runs it by default (FBCNN: its profile's control QF)
MODELS = ("arcnn", "fbcnn-s")
#: the engine format of the decoded frames: the streams are tagged BT.601, limited range, left chroma siting
FORMAT = PlaneFormat("yuv", 8, subsampling=(1, 1), matrix="bt601")
PICTURE_CODES = {"I": 1, "P": 2, "B": 3}
VIDEO_SUFFIXES = (".mkv", ".y4m", ".mp4")
MIN_CROP = 64
Log = Callable[[str], None]


@dataclass(frozen=True)
class VideoSetConfig:
    """What the set is made of; :attr:`key` names its cache folder (each result is cached on its own,
    so sequences, codecs, points and models may change without invalidating the rest)."""

    video_dir: Path
    cache_dir: Path
    crop: int = 256
    enc_frames: int = 20
    eval_frames: int = 8
    preset: str = "medium"
    codecs: tuple[str, ...] = CODECS
    points: tuple[tuple[str, int], ...] = POINTS
    sequences: tuple[str, ...] | None = None  # file stems; None = every video file of video_dir
    extra: tuple[Path, ...] = ()  # clips evaluated but never fitted or chosen on (carphone)

    def __post_init__(self) -> None:
        if self.crop < MIN_CROP:  # libx265 in CRF mode corrupted its heap on 48x48 frames (fine from 64x64)
            raise TrainingError(f"crop {self.crop} is below {MIN_CROP}: libx265 needs frames of at least one 64x64 coding tree unit")
        if not 1 <= self.eval_frames <= self.enc_frames:
            raise TrainingError(f"eval_frames must be in 1..enc_frames ({self.enc_frames}), got {self.eval_frames}")

    @property
    def key(self) -> str:
        return f"v1_crop{self.crop}_f{self.enc_frames}_e{self.eval_frames}_{self.preset}"

    @property
    def root(self) -> Path:
        return Path(self.cache_dir) / self.key

    def sequence_paths(self) -> list[Path]:
        """The set's sequences (sorted by name), then the extra clips."""
        folder = Path(self.video_dir)
        if not folder.is_dir():
            raise TrainingError(f"no video folder {folder}")
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)
        if self.sequences is not None:
            by_stem = {p.stem: p for p in files}
            missing = [s for s in self.sequences if s not in by_stem]
            if missing:
                raise TrainingError(f"sequences not in {folder}: {', '.join(missing)}")
            files = [by_stem[s] for s in self.sequences]
        if not files:
            raise TrainingError(f"no video files ({', '.join(VIDEO_SUFFIXES)}) in {folder}")
        return files + [Path(p) for p in self.extra]

    def frame_indices(self) -> np.ndarray:
        return eval_frame_indices(self.enc_frames, self.eval_frames)


def point_name(point: tuple[str, int]) -> str:
    """``qp37``, ``crf23``."""
    return f"{point[0]}{point[1]}"


def parse_points(texts: Sequence[str]) -> tuple[tuple[str, int], ...]:
    """``["qp37", "crf23"]`` -> ``(("qp", 37), ("crf", 23))`` (:class:`TrainingError` for anything else)."""
    out = []
    for text in texts:
        mode = "crf" if text.lower().startswith("crf") else "qp" if text.lower().startswith("qp") else ""
        try:
            value = int(text[len(mode):]) if mode else -1
        except ValueError:
            value = -1
        if not 0 <= value <= 51:
            raise TrainingError(f"bad point {text!r}: use qpN or crfN with N in 0..51 (e.g. qp37, crf23)")
        out.append((mode, value))
    return tuple(out)


def eval_frame_indices(n_frames: int, count: int) -> np.ndarray:
    """``count`` frame indices spread evenly over ``0..n_frames-1`` (first and last included)."""
    count = min(count, n_frames)
    return np.unique(np.round(np.linspace(0, n_frames - 1, count)).astype(np.int64))


def centre_crop(planes: Sequence[np.ndarray], crop: int) -> list[np.ndarray]:
    """Centred crop of 4:2:0 planes ``[Y (T,H,W), U, V]`` to at most ``crop x crop`` (even sizes and offsets)."""
    y, u, v = planes
    h, w = y.shape[-2:]
    ch, cw = min(h, crop) // 2 * 2, min(w, crop) // 2 * 2
    y0, x0 = (h - ch) // 4 * 2, (w - cw) // 4 * 2
    cy, cx = slice(y0 // 2, (y0 + ch) // 2), slice(x0 // 2, (x0 + cw) // 2)
    return [y[..., y0 : y0 + ch, x0 : x0 + cw], u[..., cy, cx], v[..., cy, cx]]


# ----------------------------------------------------------------------------- cache files

def save_npz(path: Path, data: Mapping[str, Any]) -> None:
    """Write arrays to ``path`` atomically (a temporary name, renamed when complete)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.part")
    with open(tmp, "wb") as fh:
        np.savez(fh, **{k: np.asarray(v) for k, v in data.items()})
    os.replace(tmp, path)


def load_npz(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def cached(path: Path, compute: Callable[[], Mapping[str, Any]]) -> dict[str, np.ndarray]:
    """The arrays cached at ``path``, computed (and saved) when missing or unreadable."""
    if path.exists():
        try:
            return load_npz(path)
        except (OSError, ValueError, EOFError):
            path.unlink(missing_ok=True)  # damaged by an interrupted run: computed again
    data = compute()
    save_npz(path, data)
    return load_npz(path)


# ----------------------------------------------------------------------------- sequences and encodes

def load_clean(cfg: VideoSetConfig, path: Path) -> dict[str, np.ndarray]:
    """The cropped clean planes ``y``, ``u``, ``v`` (enc_frames, h, w) of a sequence (cached)."""

    def compute() -> dict[str, np.ndarray]:
        try:
            planes = baselines.read_yuv420(path, frames=cfg.enc_frames)
        except ValueError as exc:
            raise TrainingError(str(exc)) from None
        if planes[0].shape[0] < cfg.enc_frames:
            raise TrainingError(f"{path.name}: {planes[0].shape[0]} frames, the set needs {cfg.enc_frames}")
        y, u, v = (np.ascontiguousarray(p) for p in centre_crop(planes, cfg.crop))
        return {"y": y, "u": u, "v": v}

    return cached(cfg.root / "clean" / f"{path.stem}.npz", compute)


def encode_point(planes: Sequence[np.ndarray], codec: str, point: tuple[str, int], preset: str = "medium") -> tuple[bytes, list[np.ndarray], list[FrameQuantiser]]:
    """One round trip: ``(stream bytes (Matroska), decoded planes, each frame's quantiser)``."""
    mode, value = point
    data = baselines.encode_yuv420(planes, codec, qp=value if mode == "qp" else None, crf=value if mode == "crf" else None,
                                   preset=preset)
    stats: dict[str, Any] = {}
    decoded = baselines.decode_yuv420(data, stats=stats)
    quantisers = stats["quantisers"]
    if decoded[0].shape[0] != planes[0].shape[0] or any(q is None for q in quantisers):
        raise TrainingError(f"{codec} {point_name(point)}: {decoded[0].shape[0]} frames for {planes[0].shape[0]}, "
                            f"{sum(q is None for q in quantisers)} without a quantiser")
    return data, decoded, quantisers


def quantiser_arrays(quantisers: Sequence[FrameQuantiser]) -> dict[str, np.ndarray]:
    """What the rule reads of each frame's quantiser, as arrays (``qp``, ``pict`` code, ``adaptive``)."""
    return {"qp": np.array([q.qp for q in quantisers], np.float64),
            "pict": np.array([PICTURE_CODES.get(q.picture_type or "", 0) for q in quantisers], np.uint8),
            "adaptive": np.array([bool(q.adaptive) for q in quantisers])}


def quantisers_of(codec_name: str, arrays: Mapping[str, np.ndarray]) -> list[FrameQuantiser]:
    """:class:`FrameQuantiser` objects back from :func:`quantiser_arrays` (without macroblocks: the rule does not read them)."""
    names = {v: k for k, v in PICTURE_CODES.items()}
    return [FrameQuantiser(codec_name, float(q), float(q), names.get(int(p)), None, bool(a))
            for q, p, a in zip(arrays["qp"], arrays["pict"], arrays["adaptive"])]


def load_encode(cfg: VideoSetConfig, path: Path, codec: str, point: tuple[str, int]) -> dict[str, np.ndarray]:
    """One cached round trip: decoded ``y``, ``u``, ``v`` of the evaluated frames, their ``qp``, ``pict``,
    ``adaptive``; ``all_pict`` (every frame), ``bytes`` (coded video), ``stream`` (the Matroska bytes)."""

    def compute() -> dict[str, np.ndarray]:
        clean = load_clean(cfg, path)
        t0 = time.perf_counter()
        data, decoded, quantisers = encode_point([clean["y"], clean["u"], clean["v"]], codec, point, cfg.preset)
        idx = cfg.frame_indices()
        q_all = quantiser_arrays(quantisers)
        out = {k: v[idx] for k, v in q_all.items()}
        out.update(y=decoded[0][idx], u=decoded[1][idx], v=decoded[2][idx], frames=idx, all_pict=q_all["pict"],
                   codec_name=np.array(quantisers[0].codec), stream=np.frombuffer(data, np.uint8), bytes=np.array(len(data)),
                   seconds=np.array(time.perf_counter() - t0))
        return out

    return cached(cfg.root / "enc" / path.stem / f"{codec}_{point_name(point)}.npz", compute)


def load_classical(cfg: VideoSetConfig, path: Path, codec: str, point: tuple[str, int]) -> dict[str, np.ndarray]:
    """The classical baseline's luma (:func:`vsjpegfix.training.baselines.deblock_yuv420`, its default
    video filter) of the evaluated frames (cached)."""

    def compute() -> dict[str, np.ndarray]:
        enc = load_encode(cfg, path, codec, point)
        t0 = time.perf_counter()
        y = baselines.deblock_yuv420([enc["y"], enc["u"], enc["v"]])[0]
        return {"y": y, "filter": np.array(baselines.default_filter("video")),
                "seconds": np.array((time.perf_counter() - t0) / len(y))}

    return cached(cfg.root / "classical" / path.stem / f"{codec}_{point_name(point)}.npz", compute)


# ----------------------------------------------------------------------------- the set in memory

@dataclass
class Encode:
    """One (sequence, codec, point) of the set in memory: the evaluated frames' clean and decoded luma,
    quantisers, each model's luma correction and runtime features (and its control QF)."""

    seq: str
    codec: str
    point: str
    clean: np.ndarray  # (K, h, w) uint8
    decoded: np.ndarray  # (K, h, w) uint8
    quantisers: list[FrameQuantiser]
    corrections: dict[str, np.ndarray] = field(default_factory=dict)  # model -> (K, h, w) float32
    features: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)  # model -> feature -> (K,)
    classical: np.ndarray | None = None  # (K, h, w) uint8
    extra: bool = False  # never fitted or chosen on
    bytes: int = 0
    seconds: dict[str, float] = field(default_factory=dict)  # model (or "classical") -> seconds per frame

    @property
    def codec_name(self) -> str:
        return self.quantisers[0].codec


FEATURE_KEYS = ("tex", "blk", "rd", "qp", "I", "B", "aq")


def restored(decoded: Sequence[np.ndarray], corrections: Sequence[np.ndarray], strengths: np.ndarray | float) -> list[np.ndarray]:
    """Planes ``x + s * d`` rounded and clamped exactly as the engine applies a correction
    (:func:`vsjpegfix.engine.planes.apply_delta`, float32 strength); ``strengths``: a scalar, one
    value per frame or one per pixel ``(N, h, w)`` (luma only)."""
    s = torch.as_tensor(np.asarray(strengths, np.float32))
    s = s.reshape(-1, 1, 1) if s.ndim <= 1 else s
    return [apply_delta(torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(np.ascontiguousarray(d)) * s, FORMAT).numpy()
            for x, d in zip(decoded, corrections)]
