"""Engine speed options: torch.compile (model, colour steps), CUDA graphs, pinned transfers, CUDA streams, cuDNN autotuning.

Every option is off by default; ``scripts/gpu_run.py`` (stage 1, :mod:`vsjpegfix.training.gpu_bench`)
measures each of them on a GPU, with the output checked against the eager engine, before any
default changes.

* ``compile_mode``: the model goes through :func:`torch.compile` with that mode (one of
  :data:`COMPILE_MODES`; shapes are static, so each new frame or tile size compiles once more).
  Works on the CPU too (inductor needs a C++ compiler there).
* ``cuda_graphs``: the model call is captured as a CUDA graph per input shape (and stream) after
  two warm-up calls, and replayed from static input buffers; its outputs are copied out of the
  graph's buffers at once, so callers never see them overwritten.
* ``pinned``: frames go up and come back through page-locked host memory, taken from (and given
  back to) PyTorch's caching host allocator, which reuses the blocks once their copies have
  finished; copies are then asynchronous.
* ``num_streams``: :meth:`~vsjpegfix.engine.core.Engine.submit` puts each call on the next of N
  CUDA streams, so the upload, compute and download of consecutive calls overlap
  (:meth:`~vsjpegfix.engine.core.Engine.restore_iter` keeps N calls in flight).
* ``cudnn_benchmark``: ``torch.backends.cudnn.benchmark`` (process-wide): cuDNN times its
  convolution algorithms for each new shape and keeps the fastest.
* ``compile_colour``: the colour steps around the model (planes -> RGB, correction -> planes) go
  through :func:`torch.compile` (mode ``default``), which fuses their ~250 small kernels per call
  (chroma resampling tap by tap) into a few; the first call of each shape and format runs eagerly
  (it fills the filter-tap caches that the compiled code reads). Works on the CPU too.

CUDA-only options on a CPU engine are refused with an :class:`~vsjpegfix.engine.device.EngineError`
naming them (no silent fallback), as are combinations that would capture graphs twice.
"""

from __future__ import annotations

import contextlib
import itertools
import sys
import threading
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import numpy as np
import torch
from torch import nn

from vsjpegfix.engine.colour import PlaneFormat, planes_to_rgb
from vsjpegfix.engine.device import EngineError
from vsjpegfix.engine.planes import corrected_planes

COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
#: compile modes whose inductor backend captures CUDA graphs itself
GRAPHING_COMPILE_MODES = ("reduce-overhead", "max-autotune")
WARMUP_CALLS = 2  # eager/compiled calls before a CUDA graph is captured (cuDNN and allocator settle)


@dataclass(frozen=True)
class Acceleration:
    """The engine's speed options (see the module docstring); all off by default."""

    compile_mode: str | None = None
    cuda_graphs: bool = False
    pinned: bool = False
    num_streams: int = 1
    cudnn_benchmark: bool = False
    compile_colour: bool = False

    def check(self, device: torch.device) -> None:
        """Raise :class:`EngineError` for an unknown mode, CUDA-only options off CUDA, or clashing options."""
        if self.compile_mode is not None and self.compile_mode not in COMPILE_MODES:
            raise EngineError(f"unknown compile mode {self.compile_mode!r}; use one of {', '.join(COMPILE_MODES)}")
        if int(self.num_streams) < 1:
            raise EngineError(f"num_streams must be >= 1, got {self.num_streams}")
        cuda_only = [name for name, on in (
            ("cuda_graphs", self.cuda_graphs), ("pinned", self.pinned), ("num_streams > 1", self.num_streams > 1),
            ("cudnn_benchmark", self.cudnn_benchmark),
        ) if on]  # fmt: skip
        if cuda_only and device.type != "cuda":
            raise EngineError(f"{', '.join(cuda_only)} need a CUDA device; this engine runs on {device}")
        if self.compile_mode in GRAPHING_COMPILE_MODES and (self.cuda_graphs or self.num_streams > 1):
            raise EngineError(
                f"compile mode {self.compile_mode!r} captures CUDA graphs itself; with cuda_graphs or num_streams > 1 "
                "use compile mode 'default' or 'max-autotune-no-cudagraphs'"
            )

    def describe(self) -> str:
        """Short label, e.g. ``eager`` or ``compile=default+graphs+pinned+streams2+cudnn+colour``."""
        parts = [f"compile={self.compile_mode}"] if self.compile_mode else []
        parts += ["graphs"] if self.cuda_graphs else []
        parts += ["pinned"] if self.pinned else []
        parts += [f"streams{self.num_streams}"] if self.num_streams > 1 else []
        parts += ["cudnn"] if self.cudnn_benchmark else []
        parts += ["colour"] if self.compile_colour else []
        return "+".join(parts) or "eager"


@dataclass
class _Graph:
    graph: Any
    x: torch.Tensor
    override: torch.Tensor | None
    outputs: tuple


class ModelRunner:
    """Calls the model as the engine asks: eagerly, compiled, or by replaying captured CUDA graphs.

    ``runner(x, override, transform)`` returns what the model returns (FBCNN-style models:
    ``(image, quality)``; others: the image). Graphs are kept per CUDA stream (the engine's own
    streams, or the callers', e.g. the VapourSynth filter's threads), so that calls in flight on
    different streams never share static buffers; filling the inputs, the replay and the copy of
    the outputs are queued under a lock, so threads sharing a stream do not interleave them. A
    quality ``transform`` is captured into the graph; the engine's transform depends only on its
    fixed ``qf_offset``.
    """

    def __init__(self, model: nn.Module, accel: Acceleration) -> None:
        self.model = model
        self.accel = accel
        self.has_quality = bool(getattr(model, "has_quality", False))
        self.forward: Callable = model
        if accel.compile_mode is not None:
            self.forward = torch.compile(model, mode=accel.compile_mode, dynamic=False)
        self.graphs: dict[tuple, _Graph] = {}
        self._lock = threading.Lock()

    def _call(self, x: torch.Tensor, override: torch.Tensor | None, transform: Callable | None):
        if self.accel.compile_mode in GRAPHING_COMPILE_MODES:
            torch.compiler.cudagraph_mark_step_begin()  # each call is a new step: earlier outputs were copied
        if self.has_quality:
            return self.forward(x, override, transform)
        return self.forward(x)

    def __call__(self, x: torch.Tensor, override: torch.Tensor | None = None, transform: Callable | None = None):
        if not self.accel.cuda_graphs:
            return self._call(x, override, transform)
        stream = torch.cuda.current_stream(x.device).cuda_stream
        key = (stream, tuple(x.shape), x.stride(), x.dtype, None if override is None else tuple(override.shape),
               transform is None)
        with self._lock:
            entry = self.graphs.get(key)
            if entry is None:
                entry = self.graphs[key] = self._capture(x, override, transform)
            entry.x.copy_(x)
            if override is not None:
                entry.override.copy_(override)
            entry.graph.replay()
            return tuple(t.clone() for t in entry.outputs) if self.has_quality else entry.outputs[0].clone()

    def _capture(self, x: torch.Tensor, override: torch.Tensor | None, transform: Callable | None) -> _Graph:
        """Warm up on a side stream, then capture one call into a CUDA graph with static buffers."""
        static_x = torch.empty_strided(x.shape, x.stride(), dtype=x.dtype, device=x.device).copy_(x)
        static_o = None if override is None else override.clone()
        side = torch.cuda.Stream(x.device)
        side.wait_stream(torch.cuda.current_stream(x.device))
        with torch.cuda.stream(side):
            for _ in range(WARMUP_CALLS):
                self._call(static_x, static_o, transform)
        torch.cuda.current_stream(x.device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, capture_error_mode="thread_local"):  # other threads may use the GPU meanwhile
            out = self._call(static_x, static_o, transform)
        outputs = tuple(out) if isinstance(out, (tuple, list)) else (out,)
        return _Graph(graph, static_x, static_o, outputs)


class ColourSteps:
    """The colour steps around the model, eager or compiled (``compile_colour``; see the module docstring).

    :meth:`to_rgb` is :func:`~vsjpegfix.engine.colour.planes_to_rgb`, :meth:`corrected` is
    :func:`~vsjpegfix.engine.planes.corrected_planes`. A compiled step that raises (e.g. a guard
    fails and tracing meets an emptied cache) falls back to eager for good, with a note on stderr.
    """

    def __init__(self, compiled: bool) -> None:
        self.compiled = compiled
        self._fns = {"rgb": planes_to_rgb, "corrected": corrected_planes}
        self._compiled = {k: torch.compile(f, dynamic=False) for k, f in self._fns.items()} if compiled else {}
        self._seen: set[tuple] = set()

    def _call(self, name: str, key: tuple, *args):
        if not self.compiled or (name, *key) not in self._seen:
            self._seen.add((name, *key))  # the first call of a shape runs eagerly: it fills the tap caches
            return self._fns[name](*args)
        try:
            return self._compiled[name](*args)
        except Exception as exc:  # noqa: BLE001  (a speed option must not lose the frames)
            self.compiled = False
            print(f"vsjpegfix: compiled colour conversion failed ({type(exc).__name__}: {exc}); using eager", file=sys.stderr)
            return self._fns[name](*args)

    def to_rgb(self, planes: list[torch.Tensor], fmt: PlaneFormat) -> torch.Tensor:
        return self._call("rgb", (fmt, *[(p.shape, p.dtype, p.device) for p in planes]), planes, fmt)

    def corrected(self, y: torch.Tensor, x: torch.Tensor, original: list[torch.Tensor], fmt: PlaneFormat,
                  strength: torch.Tensor | None) -> list[torch.Tensor]:
        key = (fmt, y.shape, y.device, strength is None, *[(p.shape, p.dtype) for p in original])
        return self._call("corrected", key, y, x, original, fmt, strength)


# ---------------------------------------------------------------------------------------------- results, transfers, streams


@dataclass
class RestoreResult:
    """Restored planes plus the quality control used per frame (FBCNN-style models only)."""

    planes: list
    predicted_qf: list[float] | None = None
    used_qf: list[float] | None = None
    strength: list[float] | None = None  # per frame, when the model's content-adaptive rule chose it


class PendingRestore:
    """A queued :meth:`~vsjpegfix.engine.core.Engine.submit` call; :meth:`result` waits for it (once) and returns its :class:`RestoreResult`."""

    def __init__(self, planes: list, dtypes: list | None, scores: list, event, strength: list[float] | None = None) -> None:
        self._parts, self._result, self._strength = (planes, dtypes, scores, event), None, strength

    def result(self) -> RestoreResult:
        if self._result is None:
            planes, dtypes, scores, event = self._parts
            if event is not None:
                event.synchronize()
            if dtypes is not None:  # numpy in, numpy out
                planes = [p.numpy().astype(dt, copy=False) for p, dt in zip(planes, dtypes)]
            else:
                planes = list(hand_over(planes, event))
            pred, used = ([float(v) for v in t.cpu()] if t is not None else None for t in scores)
            self._result, self._parts = RestoreResult(planes, pred, used, self._strength), None
        return self._result


def upload_plane(plane: np.ndarray | torch.Tensor, device: torch.device, pinned: bool = False) -> torch.Tensor:
    """A plane (numpy or tensor) on ``device``: uint16 as int32 code values, uint8/float16/float32 as they are.

    With ``pinned`` a numpy plane is copied into page-locked memory first, so the upload is asynchronous.
    """
    if isinstance(plane, torch.Tensor):
        t = plane.to(torch.int32) if plane.dtype == torch.uint16 else plane
        return t.to(device, non_blocking=True)
    arr = np.ascontiguousarray(plane)
    wide = arr.dtype == np.uint16
    if wide:
        arr = arr.view(np.int16)
    elif arr.dtype not in (np.uint8, np.float16, np.float32):
        raise EngineError(f"unsupported plane dtype {plane.dtype}; use uint8, uint16, float16 or float32")
    t = torch.from_numpy(arr)
    if pinned:
        t = t.pin_memory()
    t = t.to(device, non_blocking=True)
    return t.to(torch.int32) & 0xFFFF if wide else t


def to_device(values: np.ndarray, device: torch.device, pinned: bool = False) -> torch.Tensor:
    """A small host array (per-frame QF or strength) on ``device``; asynchronous when ``pinned``."""
    t = torch.from_numpy(np.ascontiguousarray(values))
    if pinned:
        t = t.pin_memory()
    return t.to(device, non_blocking=pinned)


def download(t: torch.Tensor, pinned: bool = False) -> torch.Tensor:
    """``t`` on the host: into page-locked memory without waiting when ``pinned`` (wait for the call's event)."""
    if not pinned or t.device.type != "cuda":
        return t.cpu()
    return torch.empty(t.shape, dtype=t.dtype, pin_memory=True).copy_(t, non_blocking=True)


class StreamSlots:
    """Round-robin CUDA streams for the engine's calls (one slot, the current stream, when ``count`` is 1)."""

    def __init__(self, device: torch.device, count: int) -> None:
        self.device = device
        self.streams = [torch.cuda.Stream(device) for _ in range(count)] if count > 1 else [None]
        self._count = itertools.count()  # next() is atomic: threads may share the engine

    def take(self) -> contextlib.AbstractContextManager:
        """A context that makes the next stream current (after the caller's pending work), or changes nothing."""
        stream = self.streams[next(self._count) % len(self.streams)]
        if stream is None:
            return contextlib.nullcontext()
        stream.wait_stream(torch.cuda.current_stream(self.device))  # inputs the caller made on its stream
        return torch.cuda.stream(stream)


def record_event(device: torch.device) -> torch.cuda.Event | None:
    """An event after the work queued so far on the current stream (None off CUDA)."""
    if device.type != "cuda":
        return None
    event = torch.cuda.Event()
    event.record(torch.cuda.current_stream(device))
    return event


def hand_over(tensors: list[torch.Tensor], event: torch.cuda.Event | None) -> Iterator[torch.Tensor]:
    """Device results made on a slot's stream, made safe to use on the caller's current stream."""
    for t in tensors:
        if event is not None and t.device.type == "cuda":
            current = torch.cuda.current_stream(t.device)
            current.wait_event(event)
            t.record_stream(current)  # the allocator must not reuse t while the caller's stream reads it
        yield t
