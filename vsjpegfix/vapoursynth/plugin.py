"""VapourSynth filters: ``vsjpegfix.fbcnn``, ``vsjpegfix.fastarcnn``, ``vsjpegfix.arcnn``, ``vsjpegfix.deblock``.

The filters are thin adapters over :class:`vsjpegfix.engine.core.Engine`. Frames are processed in
parallel when VapourSynth requests several at once: ``std.FrameEval`` hands each frame to one of
``num_streams`` ``std.ModifyFrame`` nodes (one ModifyFrame node alone is serialised), each with
its own CUDA stream; ``batch_size`` consecutive frames are restored in one model call and handed
out as they are requested. Nothing is written to stdout (it would corrupt ``vspipe`` output).
"""

from __future__ import annotations

import contextlib
import threading
from collections import OrderedDict
from concurrent.futures import Future
from dataclasses import dataclass
from functools import partial
from typing import Any, Sequence

import numpy as np
import torch
import vapoursynth as vs
from torch import nn

from vsjpegfix.engine.core import Engine
from vsjpegfix.engine.temporal import window_indices
from vsjpegfix.frames.vs_frames import (
    check_format,
    parse_matrix,
    plane_format,
    read_plane,
    write_planes,
)

PROP_QF = "vsjpegfix_qf"
PROP_PREDICTED_QF = "vsjpegfix_qf_predicted"
#: Model presets, best first. Unlike the transcoder (which follows an H.264 stream's quantisers with
#: fbcnn-s's calibrated profile), VapourSynth sources export no QP, so filters run blind: the "fbcnn"
#: preset starts with the FBCNN trained on video (blind: +0.20 dB at x264 QP 37, -0.29 at QP 22), where
#: blind fbcnn-s would stay near identity on video; lower ``strength`` for good-quality sources.
PRESETS: dict[str, tuple[str, ...]] = {
    "fbcnn": ("fbcnn-s-video", "fbcnn-s", "fbcnn_color"),
    "fbcnn-gray": ("fbcnn-s-gray", "fbcnn_gray", "fbcnn-s", "fbcnn_color"),
    "fastarcnn": ("fastarcnn",),
    "arcnn": ("arcnn",),
}

_PARAMS_DOC = """
    Args:
        clip: GRAY, YUV (4:2:0, 4:2:2, 4:4:4, 4:4:0) or RGB clip, 8..16-bit integer or half/single
            float. The output has the same format, size, length and frame rate.
        model: a preset ("fbcnn", "fastarcnn", "arcnn": the best shipped weights of that kind), a
            shipped weights name (see ``vsjpegfix weights list``), an official checkpoint name
            downloaded with ``vsjpegfix weights download``, a path to a ``.safetensors``/``.pth``
            checkpoint (any spandrel-supported 1x restoration model too), or an ``nn.Module``.
        qf: FBCNN quality control. None: blind (the model predicts each frame's quality); a number
            0..100: restore as if JPEG quality were that; a string: the name of a frame property
            holding each frame's QF (frames without it are restored blind).
        qf_offset: added to the predicted or given QF (clamped to 0..100); negative values
            restore more strongly, positive values more gently.
        strength: fraction of the model's correction applied, 0..1 (1: all of it; lower values
            restore more gently, 0 returns the input).
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

    Each output frame keeps the input frame's properties and carries ``vsjpegfix_qf`` (the QF
    that controlled the restoration) and ``vsjpegfix_qf_predicted`` (the blind prediction), for
    models with quality control.
"""


def _error(func: str, message: str) -> vs.Error:
    return vs.Error(f"{func}: {message}")


def _resolve_model(func: str, model: str | nn.Module, gray: bool) -> nn.Module:
    from vsjpegfix.weights import download
    from vsjpegfix.weights.store import WeightsError, load_model, read_manifest

    if isinstance(model, nn.Module):
        return model
    if not isinstance(model, str):
        raise _error(func, f"model must be a name, a path or an nn.Module, not {type(model).__name__}")
    name = model
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
            raise _error(func, f"no weights for preset {name!r} are installed (looked for {', '.join(candidates)}); pass model= a weights name or path")
        name = available[0]
    try:
        return load_model(name)
    except (WeightsError, ValueError) as exc:
        raise _error(func, str(exc)) from None


def _pair(func: str, name: str, value: int | Sequence[int] | None) -> tuple[int, int] | None:
    if value is None:
        return None
    if isinstance(value, int):
        value = (value, value)
    value = tuple(int(v) for v in value)
    if len(value) != 2 or min(value) < 1:
        raise _error(func, f"{name} must be a positive int or a pair of them, got {value}")
    return value  # type: ignore[return-value]


def _shift(clip: vs.VideoNode, d: int) -> vs.VideoNode:
    """Frame ``n`` of the result is frame ``clamp(n + d)`` of ``clip``."""
    n = clip.num_frames
    if d == 0:
        return clip
    if abs(d) >= n:
        return (clip[-1] if d > 0 else clip[0]) * n
    if d > 0:
        return clip[d:] + clip[-1] * d
    return clip[0] * (-d) + clip[: n + d]


def _scene_cut(frames: dict[int, vs.VideoFrame], i: int) -> bool:
    a, b = frames.get(i), frames.get(i + 1)
    return bool((a is not None and a.props.get("_SceneChangeNext", 0)) or (b is not None and b.props.get("_SceneChangePrev", 0)))


@dataclass
class _GroupResult:
    planes: list[list[np.ndarray]]  # per frame of the group, its planes
    predicted: list[float | None]
    used: list[float | None]
    delivered: int = 0


class _Restorer:
    """Owns the engine and the frame-group cache behind the ModifyFrame nodes."""

    def __init__(self, func: str, engine: Engine, clip: vs.VideoNode, *, qf_prop: str | None, matrix: str | None,
                 full_range: bool | None, num_streams: int, strength: float = 1.0) -> None:
        self.func, self.engine, self.clip = func, engine, clip
        self.strength = None if strength == 1.0 else float(strength)
        self.qf_prop, self.matrix, self.full_range = qf_prop, matrix, full_range
        self.batch = engine.batch_size
        self.radius = engine.frames // 2
        self.num_streams = num_streams
        self.streams = (
            [torch.cuda.Stream(device=engine.device) for _ in range(num_streams)] if engine.device.type == "cuda" else None
        )
        self._lock = threading.Lock()
        self._groups: OrderedDict[int, Future] = OrderedDict()
        self._max_groups = 4 * num_streams + 4

    def node(self) -> vs.VideoNode:
        clip, b, k = self.clip, self.batch, self.radius
        shifted: dict[int, vs.VideoNode] = {}
        nodes: dict[tuple[int, int], vs.VideoNode] = {}
        for r in range(b):
            offsets = range(-r - k, b - r + k)
            clips = [shifted.setdefault(d, _shift(clip, d)) for d in offsets]
            for s in range(self.num_streams):
                nodes[(r, s)] = clip.std.ModifyFrame(clips, partial(self._frame, r=r, stream=s))
        return clip.std.FrameEval(lambda n: nodes[(n % b, (n // b) % self.num_streams)], clip_src=clip)

    # -- runs on VapourSynth worker threads
    def _frame(self, n: int, f: list[vs.VideoFrame] | vs.VideoFrame, r: int, stream: int) -> vs.VideoFrame:
        if isinstance(f, vs.VideoFrame):  # ModifyFrame passes a bare frame when given one clip
            f = [f]
        start = n - r
        base = start - self.radius  # absolute index of f[0] (before clamping)
        try:
            result = self._group_result(start, base, f, stream)
        except vs.Error:
            raise
        except Exception as exc:  # shown to the user by VapourSynth as a one-line error
            raise _error(self.func, f"frame {n}: {exc}") from None
        out = f[r + self.radius].copy()
        write_planes(out, result.planes[r])
        if result.used[r] is not None:
            out.props[PROP_QF] = float(result.used[r])
        if result.predicted[r] is not None:
            out.props[PROP_PREDICTED_QF] = float(result.predicted[r])
        return out

    def _group_result(self, start: int, base: int, f: list[vs.VideoFrame], stream: int) -> _GroupResult:
        count = min(self.batch, self.clip.num_frames - start)
        with self._lock:
            future = self._groups.get(start)
            owner = future is None
            if owner:
                future = Future()
                self._groups[start] = future
                while len(self._groups) > self._max_groups:
                    oldest, old = next(iter(self._groups.items()))
                    if not old.done():
                        break
                    del self._groups[oldest]
        if owner:
            try:
                future.set_result(self._compute(start, base, f, count, stream))
            except BaseException as exc:
                future.set_exception(exc)
                with self._lock:
                    self._groups.pop(start, None)
        result = future.result()
        with self._lock:
            result.delivered += 1
            if result.delivered >= count:
                self._groups.pop(start, None)
        return result

    def _compute(self, start: int, base: int, f: list[vs.VideoFrame], count: int, stream: int) -> _GroupResult:
        n_frames = self.clip.num_frames
        by_index = {}
        for pos, frame in enumerate(f):
            idx = base + pos
            if 0 <= idx < n_frames:
                by_index[idx] = frame
        cut = partial(_scene_cut, by_index)
        windows = [window_indices(start + j, self.radius, n_frames, cut) for j in range(count)]
        centres = [by_index[start + j] for j in range(count)]
        fmts = [plane_format(c.format, c.props, matrix=self.matrix, full_range=self.full_range) for c in centres]
        qfs: list[float | None] = [None] * count
        if self.qf_prop is not None:
            qfs = [float(c.props[self.qf_prop]) if self.qf_prop in c.props else None for c in centres]
        # frames sharing a format and a kind of quality control go through the engine together
        runs: list[list[int]] = []
        for j in range(count):
            if runs and fmts[runs[-1][-1]] == fmts[j] and (qfs[runs[-1][-1]] is None) == (qfs[j] is None):
                runs[-1].append(j)
            else:
                runs.append([j])
        planes: list[list[np.ndarray]] = [[] for _ in range(count)]
        predicted: list[float | None] = [None] * count
        used: list[float | None] = [None] * count
        ctx = torch.cuda.stream(self.streams[stream]) if self.streams else contextlib.nullcontext()
        with ctx:
            for run in runs:
                stacks = []
                for p in range(f[0].format.num_planes):
                    per_frame = []
                    for j in run:
                        frames = [read_plane(by_index[i], p) for i in windows[j]]
                        per_frame.append(np.stack(frames) if self.radius else frames[0])
                    stacks.append(np.stack(per_frame))
                qf = None if qfs[run[0]] is None else [qfs[j] for j in run]
                res = self.engine.restore(stacks, fmts[run[0]], qf=qf, strength=self.strength)
                for i, j in enumerate(run):
                    planes[j] = [plane[i] for plane in res.planes]
                    if res.predicted_qf is not None:
                        predicted[j] = res.predicted_qf[i]
                    if res.used_qf is not None:
                        used[j] = res.used_qf[i]
        return _GroupResult(planes, predicted, used)


def deblock(
    clip: vs.VideoNode,
    model: str | nn.Module = "fbcnn",
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
    _func: str = "deblock",
) -> vs.VideoNode:
    """Remove JPEG / H.264 / HEVC compression artifacts with any supported model.
    """
    func = _func
    if not isinstance(clip, vs.VideoNode):
        raise _error(func, "clip must be a VideoNode")
    try:
        check_format(clip.format)
    except ValueError as exc:
        raise _error(func, str(exc)) from None
    if clip.width == 0 or clip.height == 0:
        raise _error(func, "clips with a variable frame size are not supported")
    if luma_only and clip.format.color_family == vs.RGB:
        raise _error(func, "luma_only needs a YUV or GRAY clip")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise _error(func, f"batch_size must be an int >= 1, got {batch_size!r}")
    if not isinstance(num_streams, int) or not 1 <= num_streams <= 32:
        raise _error(func, f"num_streams must be an int in 1..32, got {num_streams!r}")
    if not isinstance(overlap, int) or overlap < 0:
        raise _error(func, f"overlap must be an int >= 0, got {overlap!r}")
    if tiles is not None and tile_size is not None:
        raise _error(func, "pass tiles or tile_size, not both")
    if isinstance(qf, bool) or not (qf is None or isinstance(qf, (int, float, str))):
        raise _error(func, f"qf must be None, a number or a frame property name, got {qf!r}")
    if isinstance(qf, (int, float)) and not 0 <= qf <= 100:
        raise _error(func, f"qf must be in 0..100, got {qf}")
    if not isinstance(qf_offset, (int, float)) or not -100 <= qf_offset <= 100:
        raise _error(func, f"qf_offset must be a number in -100..100, got {qf_offset!r}")
    if isinstance(strength, bool) or not isinstance(strength, (int, float)) or not 0 <= strength <= 1:
        raise _error(func, f"strength must be a number in 0..1, got {strength!r}")
    try:
        matrix_name = parse_matrix(matrix)
    except ValueError as exc:
        raise _error(func, str(exc)) from None

    if device is None:
        dev = "auto"
    elif isinstance(device, bool):
        raise _error(func, f"device must be 'cpu', 'cuda' or a CUDA index, got {device!r}")
    elif isinstance(device, int):
        dev = f"cuda:{device}"
    else:
        dev = str(device)
    if dev != "auto" and dev != "cpu" and not torch.cuda.is_available():
        raise _error(func, f"device {device!r} requested but CUDA is not available")

    net = _resolve_model(func, model, clip.format.color_family == vs.GRAY)
    model_frames = int(getattr(net, "frames", 1))
    if frames is not None and frames != model_frames:
        raise _error(func, f"frames={frames} does not match the model, which takes {model_frames} frame(s)")
    if (qf is not None or qf_offset) and not getattr(net, "has_quality", False):
        raise _error(func, f"{type(net).__name__} has no quality control; qf and qf_offset need an FBCNN model")

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
        raise _error(func, str(exc)) from None
    # Check the colour description now, so a missing matrix fails when the script is evaluated.
    first = clip.get_frame(0)
    try:
        plane_format(first.format, first.props, matrix=matrix_name, full_range=full_range).validate()
    except ValueError as exc:
        raise _error(func, str(exc)) from None
    restorer = _Restorer(
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
