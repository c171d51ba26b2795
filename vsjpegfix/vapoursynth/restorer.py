"""The frame-group restorer behind the VapourSynth filters (:func:`vsjpegfix.vapoursynth.plugin.deblock`).

Frames are processed in parallel when VapourSynth requests several at once: ``std.FrameEval`` hands
each frame to one of ``num_streams`` ``std.ModifyFrame`` nodes (one ModifyFrame node alone is
serialised), each with its own CUDA stream; ``batch_size`` consecutive frames are restored in one
model call and handed out as they are requested.

Quality control per frame, the transcoder's rule (:func:`vsjpegfix.engine.control.restore_arguments`):
a frame with a quantiser (``vsjpegfix_qp``) follows the model's calibrated QP profile; a JPEG's
``vsjpegfix_qf`` follows its JPEG profile (and controls an FBCNN); frames of a ``qf=`` property are
controlled by it; others run blind. A ``strength`` other than 1 scales the profile's strength (or is
the strength where no profile applies). Interlaced frames (``_FieldBased`` 1 or 2) are restored field
by field (:func:`vsjpegfix.frames.fields.restore_by_fields`).
"""

from __future__ import annotations

import contextlib
import threading
from collections import OrderedDict
from concurrent.futures import Future
from dataclasses import dataclass
from functools import partial

import numpy as np
import torch
import vapoursynth as vs

from vsjpegfix.engine.control import restore_arguments
from vsjpegfix.engine.core import Engine
from vsjpegfix.engine.temporal import window_indices
from vsjpegfix.frames.fields import restore_by_fields
from vsjpegfix.frames.vs_frames import plane_format, read_plane, write_planes
from vsjpegfix.vapoursynth.presets import error
from vsjpegfix.vapoursynth.props import (
    PROP_PREDICTED_QF,
    PROP_QF,
    file_qf,
    frame_quantiser,
)
from vsjpegfix.weights.profile import scale_strength

PROP_STRENGTH = "vsjpegfix_strength"


def shift_clip(clip: vs.VideoNode, d: int) -> vs.VideoNode:
    """Frame ``n`` of the result is frame ``clamp(n + d)`` of ``clip``."""
    n = clip.num_frames
    if d == 0:
        return clip
    if abs(d) >= n:
        return (clip[-1] if d > 0 else clip[0]) * n
    if d > 0:
        return clip[d:] + clip[-1] * d
    return clip[0] * (-d) + clip[: n + d]


def scene_cut(frames: dict[int, vs.VideoFrame], i: int) -> bool:
    """Whether ``_SceneChangeNext`` of frame ``i`` or ``_SceneChangePrev`` of frame ``i + 1`` marks a cut."""
    a, b = frames.get(i), frames.get(i + 1)
    return bool((a is not None and a.props.get("_SceneChangeNext", 0)) or (b is not None and b.props.get("_SceneChangePrev", 0)))


@dataclass
class GroupResult:
    planes: list[list[np.ndarray]]  # per frame of the group, its planes
    predicted: list[float | None]
    used: list[float | None]
    strength: list[float | None]
    delivered: int = 0


class Restorer:
    """Owns the engine and the frame-group cache behind the ModifyFrame nodes."""

    def __init__(self, func: str, engine: Engine, clip: vs.VideoNode, *, qf_prop: str | None, matrix: str | None,
                 full_range: bool | None, num_streams: int, strength: float = 1.0) -> None:
        self.func, self.engine, self.clip = func, engine, clip
        self.strength = None if strength == 1.0 else float(strength)
        self.qf_prop, self.matrix, self.full_range = qf_prop, matrix, full_range
        profile = engine.quality_profile
        self.profile = profile
        # the frames' own quality (quantisers, a JPEG's QF) is followed unless qf= fixes or names the control
        self.follow = engine.qf is None and qf_prop is None and profile is not None
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
            clips = [shifted.setdefault(d, shift_clip(clip, d)) for d in offsets]
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
            raise error(self.func, f"frame {n}: {exc}") from None
        out = f[r + self.radius].copy()
        write_planes(out, result.planes[r])
        if result.used[r] is not None:
            out.props[PROP_QF] = float(result.used[r])
        if result.predicted[r] is not None:
            out.props[PROP_PREDICTED_QF] = float(result.predicted[r])
        if result.strength[r] is not None:
            out.props[PROP_STRENGTH] = float(result.strength[r])
        return out

    def _group_result(self, start: int, base: int, f: list[vs.VideoFrame], stream: int) -> GroupResult:
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

    def _kind(self, props) -> tuple[str, object]:
        """How a frame is controlled: ``("qp", FrameQuantiser)``, ``("jpeg", qf)``, ``("prop", qf)`` or ``("blind", None)``."""
        if self.follow:
            q = frame_quantiser(props)
            if q is not None and self.profile.has_qp:
                return "qp", q
            qf = file_qf(props)
            if qf is not None and (self.profile.has_qf or self.engine.has_quality):
                return "jpeg", qf
        if self.qf_prop is not None and self.qf_prop in props:
            return "prop", float(props[self.qf_prop])
        return "blind", None

    def _control(self, kind: str, values: list) -> dict:
        """Keyword arguments of :meth:`Engine.restore` (``qf``, ``strength`` per frame or one value, or the
        quantisers for the profile's content-adaptive rule) for a run of frames of one kind."""
        if kind == "qp":
            return restore_arguments(self.engine, values, "profile", self.strength)
        if kind == "jpeg":
            qf = list(values) if self.engine.has_quality else None
            if not self.profile.has_qf:
                return {"qf": qf, "strength": self.strength}
            return {"qf": qf, "strength": [scale_strength(self.profile.for_jpeg_qf(v), self.strength) for v in values]}
        if kind == "prop":
            return {"qf": list(values), "strength": self.strength}
        return {"qf": None, "strength": self.strength}

    def _compute(self, start: int, base: int, f: list[vs.VideoFrame], count: int, stream: int) -> GroupResult:
        n_frames = self.clip.num_frames
        by_index = {}
        for pos, frame in enumerate(f):
            idx = base + pos
            if 0 <= idx < n_frames:
                by_index[idx] = frame
        cut = partial(scene_cut, by_index)
        windows = [window_indices(start + j, self.radius, n_frames, cut) for j in range(count)]
        centres = [by_index[start + j] for j in range(count)]
        fmts = [plane_format(c.format, c.props, matrix=self.matrix, full_range=self.full_range) for c in centres]
        kinds = [self._kind(c.props) for c in centres]
        fields = [int(c.props.get("_FieldBased", 0)) in (1, 2) for c in centres]
        # frames sharing a format, a kind of quality control and a structure go through the engine together
        runs: list[list[int]] = []
        for j in range(count):
            key = (fmts[j], kinds[j][0], fields[j])
            if runs and (fmts[runs[-1][-1]], kinds[runs[-1][-1]][0], fields[runs[-1][-1]]) == key:
                runs[-1].append(j)
            else:
                runs.append([j])
        planes: list[list[np.ndarray]] = [[] for _ in range(count)]
        predicted: list[float | None] = [None] * count
        used: list[float | None] = [None] * count
        strengths: list[float | None] = [None] * count
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
                args = self._control(kinds[run[0]][0], [kinds[j][1] for j in run])
                if fields[run[0]]:
                    res = restore_by_fields(self.engine, stacks, fmts[run[0]], **args)
                else:
                    res = self.engine.restore(stacks, fmts[run[0]], **args)
                strength = res.strength if res.strength is not None else args.get("strength")
                for i, j in enumerate(run):
                    planes[j] = [plane[i] for plane in res.planes]
                    if res.predicted_qf is not None:
                        predicted[j] = res.predicted_qf[i]
                    if res.used_qf is not None:
                        used[j] = res.used_qf[i]
                    strengths[j] = strength[i] if isinstance(strength, list) else strength
        return GroupResult(planes, predicted, used, strengths)
