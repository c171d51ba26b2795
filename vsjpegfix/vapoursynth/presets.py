"""Which model a VapourSynth filter loads: presets, and the ``auto`` choice the command line makes.

``auto`` (the default of :func:`vsjpegfix.vapoursynth.plugin.deblock`) picks the shipped model the
command line would pick for the same input (:data:`vsjpegfix.weights.store.DEFAULT_PREFERENCE`):

* frames carrying quantisers (``vsjpegfix_qp``, from ``source=`` or
  :func:`~vsjpegfix.vapoursynth.props.attach_quantisers`): the ``video-qp`` default, restored along its
  calibrated QP profile as the transcoder restores H.264, HEVC, MPEG-2, MPEG-4 Part 2, the H.263 family, MJPEG and VP9;
* a still (a JPEG's ``vsjpegfix_qf``, or a one-frame clip): the ``image`` default (best blind on the
  still-image validation sets; with a JPEG's QF it follows its JPEG profile);
* other video: the ``video`` default, the model best blind on the video validation set.

GRAY clips take the gray FBCNN where one is installed.
"""

from __future__ import annotations

import vapoursynth as vs
from torch import nn

from vsjpegfix.vapoursynth.props import PROP_QF, PROP_QP

#: Model presets, best first ("auto" is resolved by :func:`auto_kind`).
PRESETS: dict[str, tuple[str, ...]] = {
    "fbcnn": ("fbcnn-s-video", "fbcnn-s", "fbcnn_color"),
    "fbcnn-gray": ("fbcnn-s-gray", "fbcnn_gray", "fbcnn-s", "fbcnn_color"),
    "fastarcnn": ("fastarcnn",),
    "arcnn": ("arcnn",),
}


def error(func: str, message: str) -> vs.Error:
    """A filter's one-line error: ``FUNC: MESSAGE``."""
    return vs.Error(f"{func}: {message}")


def auto_kind(clip: vs.VideoNode) -> str:
    """``"video-qp"``, ``"image"`` or ``"video"`` from the first frame's properties and the clip's length."""
    props = clip.get_frame(0).props
    if PROP_QP in props:
        return "video-qp"
    if PROP_QF in props or clip.num_frames == 1:
        return "image"
    return "video"


def resolve_model(func: str, model: str | nn.Module, clip: vs.VideoNode) -> nn.Module:
    """The model of ``model`` (``auto``, a preset, a shipped or official name, a path, a module) for ``clip``."""
    from vsjpegfix.weights import download
    from vsjpegfix.weights.store import (
        WeightsError,
        default_model_name,
        load_model,
        read_manifest,
    )

    if isinstance(model, nn.Module):
        return model
    if not isinstance(model, str):
        raise error(func, f"model must be a name, a path or an nn.Module, not {type(model).__name__}")
    gray = clip.format.color_family == vs.GRAY
    name = model
    if name == "auto" and gray:
        name = "fbcnn"
    elif name == "auto":
        try:
            name = default_model_name(auto_kind(clip))
        except WeightsError as exc:
            raise error(func, str(exc)) from None
    if name in PRESETS:
        candidates = PRESETS[f"{name}-gray"] if gray and f"{name}-gray" in PRESETS else PRESETS[name]
        shipped = read_manifest()
        available = [
            c
            for c in candidates
            if c in shipped
            or (c in download.OFFICIAL_CHECKPOINTS and (download.cache_dir() / download.OFFICIAL_CHECKPOINTS[c].filename).is_file())
        ]
        if not available:
            raise error(func, f"no weights for preset {name!r} are installed (looked for {', '.join(candidates)}); pass model= a weights name or path")
        name = available[0]
    try:
        return load_model(name)
    except (WeightsError, ValueError) as exc:
        raise error(func, str(exc)) from None
