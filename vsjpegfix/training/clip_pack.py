"""Pre-encoded training clips: H.264/HEVC clips coded once and stored, so video training is not
bound by the encoder.

Encoding a clip on the fly costs tens of milliseconds of CPU; a GPU step of a small model costs
less, so video training was data-bound (2-4 steps/s with several loader processes). A pack is a
folder of ``.npy`` arrays, memory-mapped when read:

* ``degraded.npy``: (N, T, S, S, 3) uint8, the decoded frames of each clip;
* ``clean.npy``: (N, S, S, 3) uint8, the clean centre frame;
* ``label.npy``: (N,) float32, FBCNN's quality label of the clip (from its QP);
* ``pack.json``: how it was made (count, size, frames, codecs, QP range, seed, source).

``scripts/pack_video_clips.py`` writes one; ``scripts/train.py --clips DIR`` trains from it, taking
random ``crop``-pixel windows (origins on the 16-pixel grid) and the T' <= T frames around the
centre, flipped/rotated together.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vsjpegfix.training.augment import dihedral

GRID = 16
FILES = ("degraded.npy", "clean.npy", "label.npy")
META = "pack.json"


class PackError(ValueError):
    """A clip pack is missing, incomplete or does not fit the model."""


@dataclass
class ClipPack:
    """A loaded pack (arrays memory-mapped)."""

    degraded: np.ndarray
    clean: np.ndarray
    label: np.ndarray
    meta: dict[str, Any]

    @property
    def count(self) -> int:
        return int(self.degraded.shape[0])

    @property
    def frames(self) -> int:
        return int(self.degraded.shape[1])

    @property
    def size(self) -> int:
        return int(self.degraded.shape[2])


def write_pack(folder: Path, degraded: np.ndarray, clean: np.ndarray, label: np.ndarray, meta: dict[str, Any]) -> None:
    """Write the arrays and ``pack.json`` into ``folder`` (created; ``pack.json`` last, so a pack
    interrupted while being written is recognised as incomplete)."""
    n, t, s, s2, c = degraded.shape
    if s != s2 or c != 3 or clean.shape != (n, s, s, 3) or label.shape != (n,):
        raise PackError(f"inconsistent pack arrays: {degraded.shape}, {clean.shape}, {label.shape}")
    folder.mkdir(parents=True, exist_ok=True)
    for name, arr in zip(FILES, (degraded.astype(np.uint8), clean.astype(np.uint8), label.astype(np.float32))):
        np.save(folder / name, arr)
    (folder / META).write_text(json.dumps({**meta, "count": n, "frames": t, "size": s}, indent=1) + "\n")


def load_pack(folder: Path) -> ClipPack:
    """Open a pack (memory-mapped); :class:`PackError` if it is missing or incomplete."""
    folder = Path(folder)
    if not (folder / META).is_file():
        raise PackError(f"{folder}: not a clip pack (no {META}; written by scripts/pack_video_clips.py)")
    try:
        arrays = [np.load(folder / name, mmap_mode="r") for name in FILES]
    except (OSError, ValueError) as exc:
        raise PackError(f"{folder}: unreadable clip pack ({exc})") from None
    degraded, clean, label = arrays
    if degraded.ndim != 5 or clean.shape != (degraded.shape[0], *degraded.shape[2:]) or label.shape != degraded.shape[:1]:
        raise PackError(f"{folder}: inconsistent clip pack arrays {degraded.shape}, {clean.shape}, {label.shape}")
    return ClipPack(degraded, clean, label, json.loads((folder / META).read_text()))


def sample(pack: ClipPack, rng: np.random.Generator, crop: int, frames: int) -> tuple[np.ndarray, np.ndarray, float]:
    """One training sample: ``(degraded (frames, crop, crop, 3), clean centre (crop, crop, 3), label)``.

    A random clip, a ``crop``-pixel window at an origin on the 16-pixel grid, the ``frames``
    frames around the centre, and one random flip/rotation for all of them.
    """
    if frames > pack.frames or frames % 2 == 0:
        raise PackError(f"a {frames}-frame model needs an odd frame count <= the pack's {pack.frames}")
    if crop > pack.size:
        raise PackError(f"crop {crop} is larger than the pack's clips ({pack.size} pixels)")
    i = int(rng.integers(pack.count))
    room = (pack.size - crop) // GRID
    y = GRID * int(rng.integers(room + 1))
    x = GRID * int(rng.integers(room + 1))
    mode = int(rng.integers(8))
    c, r = pack.frames // 2, frames // 2
    deg = np.asarray(pack.degraded[i, c - r : c + r + 1, y : y + crop, x : x + crop])
    clean = np.asarray(pack.clean[i, y : y + crop, x : x + crop])
    return dihedral(deg, mode, (-3, -2)), dihedral(clean, mode, (-3, -2)), float(pack.label[i])
