"""Interlaced video: which field comes first, and pictures split into their two fields and woven back.

An interlaced frame holds two fields captured at different instants: the even rows (the top
field) and the odd rows (the bottom field). Restored as one picture, motion between the fields
looks like comb-shaped texture to a model; restored field by field, each picture is one instant.
Chroma of interlaced 4:2:0 video is field-based too (chroma row ``2k`` belongs to the top field,
``2k + 1`` to the bottom one), so every plane is split the same way.

Field order as FFmpeg states it (``AVFieldOrder`` of a stream: 0 unknown, 1 progressive, 2 top
first, 3 bottom first, 4 top coded first but bottom displayed first, 5 the reverse) becomes
``"tff"``, ``"bff"`` or None (progressive) here; what counts is the display order.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Sequence

import av
import numpy as np

from vsjpegfix.engine.colour import PlaneFormat
from vsjpegfix.engine.core import Engine, RestoreResult

#: AVFieldOrder -> the field displayed first
FIELD_ORDERS = {2: "tff", 3: "bff", 4: "bff", 5: "tff"}
#: ``"tff"``/``"bff"`` -> the AVFieldOrder an encoder and a muxer are given
AV_FIELD_ORDER = {"tff": 2, "bff": 3}


def field_order(stream_order: int | None, interlaced_frame: bool) -> str | None:
    """``"tff"``, ``"bff"`` or None (progressive) from a stream's AVFieldOrder and whether its first
    frame is flagged interlaced (an interlaced frame of unknown order is taken as top field first,
    FFmpeg's own default)."""
    order = FIELD_ORDERS.get(int(stream_order or 0))
    if order is not None:
        return order
    if int(stream_order or 0) == 1:
        return None
    return "tff" if interlaced_frame else None


def separate_fields(planes: Sequence[np.ndarray]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """``(top, bottom)``: each plane's even rows and odd rows (rows are the second-to-last axis).

    A plane of odd height is first padded with a copy of its last row, so both fields of a plane
    have the same height (and 4:2:0 chroma fields stay half the luma fields' height, rounded up).
    """
    top, bottom = [], []
    for plane in planes:
        p = np.asarray(plane)
        if p.shape[-2] % 2:
            p = np.concatenate([p, p[..., -1:, :]], axis=-2)
        top.append(p[..., 0::2, :])
        bottom.append(p[..., 1::2, :])
    return top, bottom


def weave_fields(top: Sequence[np.ndarray], bottom: Sequence[np.ndarray], heights: Sequence[int]) -> list[np.ndarray]:
    """The inverse of :func:`separate_fields`: planes of rows ``top[0], bottom[0], top[1], ...``,
    cut to the original ``heights``."""
    out = []
    for t, b, h in zip(top, bottom, heights):
        woven = np.empty(t.shape[:-2] + (t.shape[-2] + b.shape[-2], t.shape[-1]), dtype=t.dtype)
        woven[..., 0::2, :] = t
        woven[..., 1::2, :] = b
        out.append(woven[..., :h, :])
    return out


class FieldFlagger:
    """Flags frames interlaced with a field order before they are encoded (FFmpeg's ``setfield``
    filter: PyAV cannot set the flags). Encoders with interlaced coding take the field order from
    these flags (FFmpeg's MPEG-2 encoder writes ``top_field_first`` from them)."""

    def __init__(self, order: str) -> None:
        if order not in AV_FIELD_ORDER:
            raise ValueError(f"field order must be 'tff' or 'bff', got {order!r}")
        self.order = order
        self._graph = None
        self._key: tuple | None = None

    def __call__(self, frame: av.VideoFrame) -> av.VideoFrame:
        key = (frame.width, frame.height, frame.format.name, frame.time_base)
        if self._graph is None or key != self._key:
            graph = av.filter.Graph()
            src = graph.add_buffer(width=frame.width, height=frame.height, format=frame.format.name,
                                   time_base=frame.time_base or Fraction(1, 25))
            node = graph.add("setfield", self.order)
            sink = graph.add("buffersink")
            src.link_to(node)
            node.link_to(sink)
            graph.configure()
            self._graph, self._key = graph, key
        pts, time_base = frame.pts, frame.time_base
        self._graph.push(frame)
        out = self._graph.pull()
        out.pts, out.time_base = pts, time_base
        return out


def _twice(values):
    """Per-frame control values for the frames' top fields then their bottom fields."""
    return None if values is None else list(values) + list(values)


def restore_by_fields(engine: Engine, planes: Sequence[np.ndarray], fmt: PlaneFormat, *, qf=None, strength=None,
                      quantisers=None, strength_scale: float | None = None) -> RestoreResult:
    """:meth:`Engine.restore` of interlaced frames, field by field: each frame's two fields are restored
    as pictures of their own (in one call: the top fields, then the bottom fields) and woven back.

    ``planes``: stacked per frame, ``(N, H, W)`` (or ``(N, T, H, W)`` for temporal models: each
    field then sees the same field of its neighbours); ``qf``/``strength`` per frame or one value;
    ``quantisers`` per frame (each field gets its frame's; the engine's content-adaptive rule then
    measures each field). The quality control and strength reported per frame are its top field's.
    """
    n = int(np.asarray(planes[0]).shape[0])
    heights = [int(np.asarray(p).shape[-2]) for p in planes]
    top, bottom = separate_fields(planes)
    fields = [np.concatenate([t, b]) for t, b in zip(top, bottom)]
    per_frame = lambda v: _twice(v) if isinstance(v, (list, tuple)) else v  # noqa: E731
    result = engine.restore(fields, fmt, qf=per_frame(qf), strength=per_frame(strength),
                            quantisers=None if quantisers is None else _twice(quantisers), strength_scale=strength_scale)
    woven = weave_fields([p[:n] for p in result.planes], [p[n:] for p in result.planes], heights)
    first = lambda v: None if v is None else list(v[:n])  # noqa: E731
    return RestoreResult(woven, first(result.predicted_qf), first(result.used_qf), first(result.strength))
