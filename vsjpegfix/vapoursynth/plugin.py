"""VapourSynth filters: ``vsjpegfix.fbcnn``, ``vsjpegfix.fastarcnn``, ``vsjpegfix.arcnn``, ``vsjpegfix.deblock``,
and ``vsjpegfix.attach_quantisers``.

The filters are thin adapters over :class:`vsjpegfix.engine.core.Engine` (:mod:`.restorer`: parallel
frame groups, the transcoder's quality control from the frames' quantisers, interlaced frames by
fields); models come from :mod:`.presets`, the file's quantisers from :mod:`.props`. Nothing is
written to stdout (it would corrupt ``vspipe`` output).
"""

from __future__ import annotations

import os
from typing import Any, Sequence

import torch
import vapoursynth as vs
from torch import nn

from vsjpegfix.engine.core import Engine
from vsjpegfix.frames.vs_frames import check_format, parse_matrix, plane_format
from vsjpegfix.vapoursynth.presets import PRESETS, error, resolve_model
from vsjpegfix.vapoursynth.props import PROP_PREDICTED_QF, PROP_QF, attach_quantisers
from vsjpegfix.vapoursynth.restorer import PROP_STRENGTH, Restorer

__all__ = ["deblock", "fbcnn", "fastarcnn", "arcnn", "attach_quantisers", "PRESETS", "PROP_QF", "PROP_PREDICTED_QF",
           "PROP_STRENGTH"]

_PARAMS_DOC = """
    Args:
        clip: GRAY, YUV (4:2:0, 4:2:2, 4:4:4, 4:4:0) or RGB clip, 8..16-bit integer or half/single
            float. The output has the same format, size, length and frame rate.
        model: "auto" (``deblock``'s default: the model the command line picks for the input - with
            quantisers (``source=``) the ``video-qp`` default and its QP profile, for a still the
            ``image`` default, for other video the ``video`` default, the best blind on the video
            validation set; see :mod:`vsjpegfix.vapoursynth.presets`), a
            preset ("fbcnn", "fastarcnn", "arcnn": the best shipped weights of that kind), a
            shipped weights name (see ``vsjpegfix weights list``), an official checkpoint name
            downloaded with ``vsjpegfix weights download``, a path to a ``.safetensors``/``.pth``
            checkpoint (any spandrel-supported 1x restoration model too), or an ``nn.Module``.
        qf: FBCNN quality control. None: blind (the model predicts each frame's quality); a number
            0..100: restore as if JPEG quality were that; a string: the name of a frame property
            holding each frame's QF (frames without it are restored blind).
        qf_offset: added to the predicted or given QF (clamped to 0..100); negative values
            restore more strongly, positive values more gently.
        strength: fraction of the model's correction applied, 0..1 (1: all of it; lower values
            restore more gently, 0 returns the input). Where a profile applies (frames with a
            quantiser or a JPEG QF) it scales the profile's strength instead.
        source: the file ``clip`` was read from (by a frame-accurate source filter): its per-frame
            quantisers are read and attached as frame properties first (``attach_quantisers``), so
            the filter restores as the transcoder does: each frame along the model's calibrated
            profile at its quantiser (H.264, HEVC, MPEG-1/2, MPEG-4 Part 2, DivX 3/H.263/FLV/WMV 7-8, MJPEG, VP9; a JPEG
            still: its QF). Properties already on the frames win over the file's.
        luma_only: restore only the luma (Y) plane of YUV clips; chroma passes through untouched.
        device: "cpu", a CUDA device index (0, 1, ...), "cuda" or None (CUDA if available).
        fp16: half precision (CUDA only). None: on for CUDA, off for the CPU.
        tiles: split each frame into this many tiles (an int, or (horizontal, vertical)).
        tile_size: tile size in pixels (an int or (width, height)); exclusive with ``tiles``.
        overlap: pixels of context around each tile.
        batch_size: consecutive frames restored in one model call.
        num_streams: frames restored concurrently (CUDA streams on a GPU).
        frames: temporal models only: frames in the stack (neighbours = frames // 2 on each side);
            None takes the model's own; clamped at the clip ends and not taken across scene cuts
            marked by ``_SceneChangePrev``/``_SceneChangeNext``.
        matrix: colour matrix ("709", "601", "2020") for YUV clips whose ``_Matrix`` property is
            missing or unspecified; the property wins when present.
        full_range: range for integer YUV/GRAY clips without a ``_Range`` property (default:
            limited, the H.264/HEVC default); the property wins when present.

    Frames with a ``vsjpegfix_qp`` property (from ``source=`` or ``attach_quantisers``) follow the
    model's calibrated QP profile (``vsjpegfix.engine.control.restore_arguments``, the transcoder's rule: the per-QP strength, or the content-adaptive rule where the profile has one for the codec);
    a ``vsjpegfix_qf`` property (a JPEG's QF) its JPEG profile; with neither, or with ``qf=`` given,
    the model runs blind (or at that control). Interlaced frames (``_FieldBased`` 1 or 2) are restored
    field by field and woven back. Each output frame keeps the input frame's properties and carries
    ``vsjpegfix_qf`` (the QF that controlled the restoration) and ``vsjpegfix_qf_predicted`` (the
    blind prediction), for models with quality control, and ``vsjpegfix_strength`` where not 1.
"""


def _pair(func: str, name: str, value: int | Sequence[int] | None) -> tuple[int, int] | None:
    if value is None:
        return None
    if isinstance(value, int):
        value = (value, value)
    value = tuple(int(v) for v in value)
    if len(value) != 2 or min(value) < 1:
        raise error(func, f"{name} must be a positive int or a pair of them, got {value}")
    return value  # type: ignore[return-value]


def deblock(
    clip: vs.VideoNode,
    model: str | nn.Module = "auto",
    qf: float | str | None = None,
    qf_offset: float = 0.0,
    strength: float = 1.0,
    luma_only: bool = False,
    device: int | str | None = None,
    fp16: bool | None = None,
    tiles: int | Sequence[int] | None = None,
    tile_size: int | Sequence[int] | None = None,
    overlap: int = 32,
    batch_size: int = 1,
    num_streams: int = 1,
    frames: int | None = None,
    matrix: str | int | None = None,
    full_range: bool | None = None,
    source: str | os.PathLike | None = None,
    _func: str = "deblock",
) -> vs.VideoNode:
    """Remove JPEG / H.264 / HEVC / MPEG-2 / MPEG-4 / MJPEG / VP9 compression artifacts with any supported model.
    """
    func = _func
    if not isinstance(clip, vs.VideoNode):
        raise error(func, "clip must be a VideoNode")
    if source is not None:
        clip = attach_quantisers(clip, source, _func=func)
    try:
        check_format(clip.format)
    except ValueError as exc:
        raise error(func, str(exc)) from None
    if clip.width == 0 or clip.height == 0:
        raise error(func, "clips with a variable frame size are not supported")
    if luma_only and clip.format.color_family == vs.RGB:
        raise error(func, "luma_only needs a YUV or GRAY clip")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise error(func, f"batch_size must be an int >= 1, got {batch_size!r}")
    if not isinstance(num_streams, int) or not 1 <= num_streams <= 32:
        raise error(func, f"num_streams must be an int in 1..32, got {num_streams!r}")
    if not isinstance(overlap, int) or overlap < 0:
        raise error(func, f"overlap must be an int >= 0, got {overlap!r}")
    if tiles is not None and tile_size is not None:
        raise error(func, "pass tiles or tile_size, not both")
    if isinstance(qf, bool) or not (qf is None or isinstance(qf, (int, float, str))):
        raise error(func, f"qf must be None, a number or a frame property name, got {qf!r}")
    if isinstance(qf, (int, float)) and not 0 <= qf <= 100:
        raise error(func, f"qf must be in 0..100, got {qf}")
    if not isinstance(qf_offset, (int, float)) or not -100 <= qf_offset <= 100:
        raise error(func, f"qf_offset must be a number in -100..100, got {qf_offset!r}")
    if isinstance(strength, bool) or not isinstance(strength, (int, float)) or not 0 <= strength <= 1:
        raise error(func, f"strength must be a number in 0..1, got {strength!r}")
    try:
        matrix_name = parse_matrix(matrix)
    except ValueError as exc:
        raise error(func, str(exc)) from None

    if device is None:
        dev = "auto"
    elif isinstance(device, bool):
        raise error(func, f"device must be 'cpu', 'cuda' or a CUDA index, got {device!r}")
    elif isinstance(device, int):
        dev = f"cuda:{device}"
    else:
        dev = str(device)
    if dev != "auto" and dev != "cpu" and not torch.cuda.is_available():
        raise error(func, f"device {device!r} requested but CUDA is not available")

    net = resolve_model(func, model, clip)
    model_frames = int(getattr(net, "frames", 1))
    if frames is not None and frames != model_frames:
        raise error(func, f"frames={frames} does not match the model, which takes {model_frames} frame(s)")
    if (qf is not None or qf_offset) and not getattr(net, "has_quality", False):
        raise error(func, f"{type(net).__name__} has no quality control; qf and qf_offset need an FBCNN model")

    tile = _pair(func, "tile_size", tile_size)
    if tiles is not None:
        tx, ty = _pair(func, "tiles", tiles)  # type: ignore[misc]
        tile = (-(-clip.width // tx) + 2 * overlap if tx > 1 else clip.width, -(-clip.height // ty) + 2 * overlap if ty > 1 else clip.height)
    precision = "auto" if fp16 is None else ("fp16" if fp16 else "fp32")
    try:
        engine = Engine(
            net,
            device=dev,
            precision=precision,
            tile=tile,
            overlap=overlap,
            batch_size=batch_size,
            qf=qf if isinstance(qf, (int, float)) else None,
            qf_offset=float(qf_offset),
            luma_only=luma_only,
        )
    except ValueError as exc:
        raise error(func, str(exc)) from None
    # Check the colour description now, so a missing matrix fails when the script is evaluated.
    first = clip.get_frame(0)
    try:
        plane_format(first.format, first.props, matrix=matrix_name, full_range=full_range).validate()
    except ValueError as exc:
        raise error(func, str(exc)) from None
    restorer = Restorer(
        func, engine, clip, qf_prop=qf if isinstance(qf, str) else None, matrix=matrix_name,
        full_range=full_range, num_streams=num_streams, strength=float(strength),
    )
    return restorer.node()


def fbcnn(clip: vs.VideoNode, model: str | nn.Module = "fbcnn", qf: float | str | None = None, qf_offset: float = 0.0, **kwargs: Any) -> vs.VideoNode:
    """FBCNN (Jiang et al., ICCV 2021): blind artifact removal with an adjustable quality control.
    """
    return deblock(clip, model=model, qf=qf, qf_offset=qf_offset, _func="fbcnn", **kwargs)


def fastarcnn(clip: vs.VideoNode, model: str | nn.Module = "fastarcnn", **kwargs: Any) -> vs.VideoNode:
    """Fast ARCNN (Dong et al.): light, fast artifact removal (no quality control).
    """
    return deblock(clip, model=model, _func="fastarcnn", **kwargs)


def arcnn(clip: vs.VideoNode, model: str | nn.Module = "arcnn", **kwargs: Any) -> vs.VideoNode:
    """ARCNN (Dong et al.): the original four-layer artifact-reduction network (no quality control).
    """
    return deblock(clip, model=model, _func="arcnn", **kwargs)


for _f in (deblock, fbcnn, fastarcnn, arcnn):
    _f.__doc__ = (_f.__doc__ or "").rstrip() + "\n" + _PARAMS_DOC
