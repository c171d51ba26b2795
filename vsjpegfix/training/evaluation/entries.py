"""The models under evaluation: each wrapped in an :class:`~vsjpegfix.engine.core.Engine` as a
:class:`ModelEntry` that restores an image (RGB planes or full-range gray) or a YUV 4:2:0 clip
(temporal models get the real neighbouring frames).

The models run in fp32 by default: RGB images as RGB planes, gray images as full-range gray, the
video as untagged SD YUV 4:2:0 (BT.601, limited range); temporal models get the image repeated,
or the neighbouring frames. FBCNN models run blind (quality predicted per image/frame) unless a
QF controls them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from vsjpegfix.engine.colour import PlaneFormat
from vsjpegfix.engine.control import restore_arguments
from vsjpegfix.engine.core import Engine
from vsjpegfix.engine.temporal import window_indices
from vsjpegfix.quantisers.stream import FrameQuantiser
from vsjpegfix.weights.profile import QualityProfile, control_for_qps

RGB8 = PlaneFormat("rgb", 8)
GRAY8 = PlaneFormat("gray", 8, full_range=True)
#: The untagged SD carphone clip: BT.601, limited range, 4:2:0.
VIDEO_FMT = PlaneFormat("yuv", 8, subsampling=(1, 1), matrix="bt601")


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

    def restore_video(self, planes: Sequence[np.ndarray], qps: Sequence[float] | None = None,
                      quantisers: Sequence[FrameQuantiser] | None = None) -> tuple[list[np.ndarray], float | None]:
        """YUV 4:2:0 planes (T, h, w) -> restored planes, plus the mean predicted QF.

        ``qps`` (one per frame): follow the model's calibrated QP profile, as the transcoder does on
        H.264 (:func:`vsjpegfix.weights.profile.control_for_qps`, batch by batch). ``quantisers`` (one
        :class:`~vsjpegfix.quantisers.stream.FrameQuantiser` per frame) instead: exactly as the transcoder
        runs (:func:`vsjpegfix.engine.control.restore_arguments`: the model's strength rule for the codec
        where it has one, else the profile). A temporal model restores frame i from the frames ``window_indices(i, frames // 2, T)``:
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
            kwargs: dict = {}
            if quantisers is not None:
                kwargs = restore_arguments(self.engine, [quantisers[i] for i in idx], "profile")
            elif qps is not None:
                qf, strength = control_for_qps(self.profile, [qps[i] for i in idx], self.has_quality)
                kwargs = {"qf": qf, "strength": strength}
            result = self.engine.restore(chunk, VIDEO_FMT, **kwargs)
            for o, r in zip(outs, result.planes):
                o.append(r)
            if result.predicted_qf:
                preds.extend(result.predicted_qf)
        return [np.concatenate(o) for o in outs], (float(np.mean(preds)) if preds else None)


def resolve_models(specs: Sequence[str] | None, *, device: str = "auto", precision: str = "fp32", tile: int | None = None,
                   batch_size: int = 4) -> tuple[list[ModelEntry], str]:
    """Build the model list (``specs``: shipped names, official checkpoint names or weight files; None:
    every shipped model); returns it and a note on where it came from. Labels are the names, or
    the file stems, made unique with ``-2``, ``-3``..."""
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
        engine = Engine(model, device=device, precision=precision, tile=tile, batch_size=batch_size)
        params = sum(p.numel() for p in model.parameters())
        entries.append(ModelEntry(label, spec, engine, type(model).__name__, params, batch=batch_size))
    return entries, note


def find_model(name: str, models: Sequence[ModelEntry]) -> ModelEntry | None:
    """A model of the run by label, else by the spec it was given as."""
    return next((m for m in models if m.label == name), None) or next((m for m in models if m.spec == name), None)
