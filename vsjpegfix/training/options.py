"""The options of a training run (:func:`vsjpegfix.training.trainer.train`), checked and normalised.

Field names are those of ``scripts/train.py``'s command line (``--val-every`` is ``val_every``);
the checkpoint keeps them under ``args``, so a stored run can be rebuilt with
:meth:`TrainOptions.from_dict`. Contradicting or out-of-range values raise
:class:`~vsjpegfix.training.errors.TrainingError` with the message the command line prints.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from vsjpegfix.training.degrade_video import CODECS
from vsjpegfix.training.errors import TrainingError

_PATHS = ("train", "val", "out", "clips", "init", "export")


@dataclass
class TrainOptions:
    """Everything a training run needs; defaults are the command line's (see ``scripts/train.py --help``).

    ``config`` is a dict or JSON text or the path of a ``.json`` file; ``codecs`` a tuple or
    comma-separated text. After construction: ``config`` is a dict, ``codecs`` a tuple,
    ``val_video`` is true for temporal models, ``name`` defaults to the export file's stem and
    ``hardware`` to a note on ``device``.
    """

    train: Path
    val: Path
    arch: str = "fastarcnn"
    config: Any = field(default_factory=dict)
    channels: int = 3
    steps: int = 1000
    batch: int = 32
    crop: int = 64
    lr: float = 1e-3
    schedule: str = "cosine"
    min_lr: float = 0.02
    decay_every: int = 2000
    warmup: int = 100
    degrade: str = "mix"
    frames: int = 1
    codecs: Any = ("h264", "hevc")
    intra_fraction: float = 0.2
    clips: Path | None = None
    clips_fraction: float = 1.0
    seed: int = 0
    device: str = "cpu"
    no_amp: bool = False
    threads: int = 2
    channels_last: bool = True
    workers: int = 1
    out: Path = Path("out/train")
    resume: bool = False
    save_every: int = 500
    log_every: int = 50
    val_every: int = 1000
    val_qf: int = 10
    val_video: bool = False
    val_qp: int = 37
    val_n: int = 10
    val_crop: int = 256
    max_minutes: float = 0
    stop_at: int = 0
    init: Path | None = None
    tail_init_scale: float = 0.1
    export: Path | None = None
    name: str | None = None
    description: str = ""
    task: str | None = None
    hardware: str | None = None
    no_progress: bool = False

    def __post_init__(self) -> None:
        for key in _PATHS:
            value = getattr(self, key)
            if value is not None and not isinstance(value, Path):
                setattr(self, key, Path(value))
        if self.crop < 8 or self.crop % 8:
            raise TrainingError("--crop must be a positive multiple of 8")
        if self.batch < 1 or self.steps < 0:
            raise TrainingError("--batch must be >= 1 and --steps >= 0")
        if self.frames < 1 or self.frames % 2 == 0:
            raise TrainingError(f"--frames must be a positive odd number (the centre frame is restored), got {self.frames}")
        codecs = self.codecs.split(",") if isinstance(self.codecs, str) else self.codecs
        self.codecs = tuple(c.strip() for c in codecs if c.strip())
        if not self.codecs or any(c not in CODECS for c in self.codecs):
            raise TrainingError(f"--codecs: choose from {', '.join(CODECS)}")
        if not 0.0 <= self.intra_fraction <= 1.0:
            raise TrainingError("--intra-fraction must be in 0..1")
        if not 0.0 <= self.clips_fraction <= 1.0:
            raise TrainingError("--clips-fraction must be in 0..1")
        if self.clips is not None and self.channels != 3:
            raise TrainingError("--clips needs --channels 3 (the clips are RGB)")
        if not 0 <= self.val_qp <= 51:
            raise TrainingError("--val-qp must be in 0..51")
        self.val_video = bool(self.val_video or self.frames > 1)
        if self.channels != 3 and self.val_video:
            raise TrainingError("--frames > 1 and --val-video need --channels 3 (the clips are RGB)")
        if isinstance(self.config, str):
            try:
                text = Path(self.config).read_text() if self.config.strip().endswith(".json") else self.config
                self.config = json.loads(text)
            except (OSError, ValueError) as exc:
                raise TrainingError(f"--config: {exc}") from None
        if not isinstance(self.config, dict):
            raise TrainingError("--config must be a JSON object")
        if self.name is None and self.export is not None:
            self.name = self.export.stem
        if self.hardware is None:
            self.hardware = "CUDA GPU" if self.device.startswith("cuda") else f"{os.cpu_count()}-core CPU"

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> TrainOptions:
        """Options from a mapping (a checkpoint's ``args``, ``vars()`` of parsed arguments); unknown keys are ignored."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names})

    def as_dict(self) -> dict[str, Any]:
        """Plain data (paths as text, tuples as lists): what a checkpoint stores under ``args``."""
        return plain(dataclasses.asdict(self))


def plain(obj: Any) -> Any:
    """Paths -> str and tuples -> lists, recursively, so that a checkpoint loads with ``weights_only=True``."""
    if isinstance(obj, dict):
        return {k: plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj
