"""The restoration engine: planes in, planes out.

One engine serves the VapourSynth plugin, the transcoder, the image mode and the scripts. It owns
everything between decoded frames and restored frames: device and precision, colour conversion on
the compute device, padding, tiling with overlap, batching, quality control and the CUDA
out-of-memory fallback.

Input frames are given as planes (one array or tensor per plane, shaped ``(N, h, w)``, or
``(N, T, h, w)`` for a temporal model of T frames whose centre frame is restored) together with a
:class:`~vsjpegfix.engine.colour.PlaneFormat`. The output has the same format and sizes (``(N, h, w)``).
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np
import torch
from torch import nn

from vsjpegfix.engine.accel import (
    Acceleration,
    ColourSteps,
    ModelRunner,
    PendingRestore,
    RestoreResult,
    StreamSlots,
    download,
    record_event,
    to_device,
    upload_plane,
)
from vsjpegfix.engine.colour import (
    PlaneFormat,
    planes_to_rgb,
)
from vsjpegfix.engine.device import (
    EngineError,
    is_oom,
    resolve_device,
    resolve_precision,
)
from vsjpegfix.engine.planes import (
    QualityArg,
    per_frame,
    plane_to_unit,
    qf_to_quality,
    quality_to_qf,
)
from vsjpegfix.engine.restore_pass import restore_planes, strengths_list
from vsjpegfix.engine.strength import rule_for
from vsjpegfix.engine.tiling import TILE_ALIGN, check_tile, spans
from vsjpegfix.quantisers.stream import FrameQuantiser
from vsjpegfix.weights.predictor import FramePredictor
from vsjpegfix.weights.profile import profile_of


class Engine:
    """Runs a restoration model on frames.

    Args:
        model: an ``nn.Module`` from :mod:`vsjpegfix.models` (or a spandrel wrapper), or a model
            spec accepted by :func:`vsjpegfix.weights.store.load_model` (shipped name or path).
        device: ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or a CUDA index.
        precision: ``auto``, ``fp32``, ``fp16`` or ``bf16``.
        tile: maximum tile size in pixels (``(width, height)`` or one int); ``None`` or 0 = whole frames.
        overlap: pixels of context around each tile's core.
        batch_size: frames per model call.
        qf: fixed JPEG quality factor 0..100 (FBCNN models); ``None`` = blind prediction.
        qf_offset: added to the predicted (or fixed) QF, clamped to 0..100.
        luma_only: restore only the Y plane of YUV input (chroma passes through untouched).
        channels_last: use the channels-last memory format (default: on CUDA).
        max_frame_pixels: frames larger than this are tiled (``tile`` or 1024x1024 tiles) even
            when ``tile`` is not set; None = never (large photos set it to bound memory).
        compile_mode, cuda_graphs, pinned, num_streams, cudnn_benchmark, compile_colour: speed options,
            all off by default (:mod:`vsjpegfix.engine.accel`; the CUDA-only ones are refused on the CPU).
    """

    def __init__(
        self,
        model: nn.Module | str | os.PathLike,
        *,
        device: str | int | torch.device | None = "auto",
        precision: str = "auto",
        tile: int | tuple[int, int] | None = None,
        overlap: int = 32,
        batch_size: int = 1,
        qf: float | None = None,
        qf_offset: float = 0.0,
        luma_only: bool = False,
        channels_last: bool | None = None,
        max_frame_pixels: int | None = None,
        compile_mode: str | None = None,
        cuda_graphs: bool = False,
        pinned: bool = False,
        num_streams: int = 1,
        cudnn_benchmark: bool = False,
        compile_colour: bool = False,
    ) -> None:
        #: what the engine runs, for reports: the name or path it was given, else the module's class
        self.model_name = type(model).__name__ if isinstance(model, nn.Module) else os.fspath(model)
        if not isinstance(model, nn.Module):
            from vsjpegfix.weights.store import load_model

            model = load_model(model)
        self.device = resolve_device(device)
        self.dtype = resolve_precision(precision, self.device)
        if batch_size < 1:
            raise EngineError(f"batch_size must be >= 1, got {batch_size}")
        if overlap < 0:
            raise EngineError(f"overlap must be >= 0, got {overlap}")
        self.tile = check_tile(tile)
        self.accel = Acceleration(compile_mode, bool(cuda_graphs), bool(pinned), int(num_streams), bool(cudnn_benchmark),
                                  bool(compile_colour))
        self.accel.check(self.device)
        self.max_frame_pixels = max_frame_pixels
        self.overlap = int(overlap)
        self.batch_size = int(batch_size)
        self.channels = int(getattr(model, "channels", 3))
        self.frames = int(getattr(model, "frames", 1))
        self.has_quality = bool(getattr(model, "has_quality", False))
        self.quality_profile = profile_of(model)  # calibrated strength/control for known source quality
        if (qf is not None or qf_offset) and not self.has_quality:
            raise EngineError(f"{type(model).__name__} has no quality control; qf and qf_offset need an FBCNN model")
        if qf is not None and not 0 <= float(qf) <= 100:
            raise EngineError(f"qf must be in 0..100, got {qf}")
        if not -100 <= float(qf_offset) <= 100:
            raise EngineError(f"qf_offset must be in -100..100, got {qf_offset}")
        self.qf = None if qf is None else float(qf)
        self.qf_offset = float(qf_offset)
        self.luma_only = bool(luma_only)
        self.channels_last = self.device.type == "cuda" if channels_last is None else bool(channels_last)
        model = model.eval().requires_grad_(False).to(self.device, self.dtype)
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.model = model
        if self.accel.cudnn_benchmark:
            torch.backends.cudnn.benchmark = True  # process-wide
        self.runner = ModelRunner(model, self.accel)
        self.colour = ColourSteps(self.accel.compile_colour)
        self._slots = StreamSlots(self.device, self.accel.num_streams) if self.device.type == "cuda" else None
        # one transform object for the engine's life: compiled code and CUDA graphs see the same function
        self._offset_transform = lambda q: qf_to_quality((quality_to_qf(q) + self.qf_offset).clamp(0, 100))

    # ------------------------------------------------------------------ tensors (model space)

    def _quality_args(self, n: int, qf: QualityArg) -> tuple[torch.Tensor | None, Callable | None]:
        """Override tensor and/or transform for FBCNN's quality control for a batch of ``n`` frames."""
        if not self.has_quality:
            return None, None
        fixed = self.qf if qf is None else qf
        offset = self.qf_offset
        if fixed is not None:
            values = to_device(per_frame(fixed, n, "qf", 100.0), self.device, self.accel.pinned)
            return qf_to_quality((values + offset).clamp(0, 100)).reshape(n, 1), None
        if offset:
            return None, self._offset_transform
        return None, None

    def _run(self, x: torch.Tensor, override: torch.Tensor | None, transform: Callable | None):
        """One model call; returns (image, predicted q or None)."""
        x = x.to(self.dtype)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        if self.has_quality:
            y, q = self.runner(x, override.to(self.dtype) if override is not None else None, transform)
            return y.float(), (None if override is not None else q.float())
        return self.runner(x).float(), None

    def _predict_tiled(self, x: torch.Tensor, tile: tuple[int, int]) -> torch.Tensor:
        """Frame-level predicted quality from tiles (area-weighted mean), so all tiles share one value."""
        tw, th = tile
        total = torch.zeros(x.shape[0], 1, device=x.device)
        weight = 0
        for ys, ye, _, _ in spans(x.shape[-2], th, 0, TILE_ALIGN):
            for xs, xe, _, _ in spans(x.shape[-1], tw, 0, TILE_ALIGN):
                area = (ye - ys) * (xe - xs)
                part = x[..., ys:ye, xs:xe].to(self.dtype)
                if self.channels_last:
                    part = part.contiguous(memory_format=torch.channels_last)
                total += self.model.predict_quality(part).float() * area
                weight += area
        return total / weight

    def restore_tensor(self, x: torch.Tensor, qf: QualityArg = None) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """Restore a batch in model space.

        Args:
            x: (N, C*T, H, W) float in [0, 1] on any device.
            qf: per-call QF override (scalar or one per frame); default: the engine's setting.

        Returns:
            ``(restored (N, C, H, W) float32 in [0, 1] on the engine's device, predicted QF (N,) or
            None, used QF (N,) or None)``.
        """
        expected = self.channels * self.frames
        if x.ndim != 4 or x.shape[1] != expected:
            raise EngineError(f"expected input (N, {expected}, H, W) for this model, got {tuple(x.shape)}")
        x = x.to(self.device, non_blocking=True)
        if isinstance(qf, torch.Tensor):
            qf = qf.detach().cpu().numpy()
        if qf is not None and np.ndim(qf) > 0 and np.size(qf) != x.shape[0]:
            raise EngineError(f"got {np.size(qf)} qf values for {x.shape[0]} frames")
        outs, preds, used = [], [], []
        with torch.inference_mode():
            for i in range(0, x.shape[0], self.batch_size):
                chunk = x[i : i + self.batch_size]
                chunk_qf = qf if qf is None or np.ndim(qf) == 0 else np.asarray(qf).reshape(-1)[i : i + self.batch_size]
                override, transform = self._quality_args(chunk.shape[0], chunk_qf)
                y, q_pred = self._restore_chunk(chunk, override, transform)
                outs.append(y.clamp_(0, 1))
                if self.has_quality:
                    if q_pred is not None:
                        preds.append(quality_to_qf(q_pred).reshape(-1))
                        used_q = q_pred if transform is None else transform(q_pred)
                    else:
                        used_q = override
                    used.append(quality_to_qf(used_q).reshape(-1))
        y = torch.cat(outs)
        pred = torch.cat(preds) if preds else None
        use = torch.cat(used) if used else None
        return y, pred, use

    def _restore_chunk(self, x: torch.Tensor, override, transform):
        while True:
            try:
                tile = self._tile_for(x)
                if tile is None or (x.shape[-1] <= tile[0] and x.shape[-2] <= tile[1]):
                    return self._run(x, override, transform)
                return self._restore_tiled(x, override, transform, tile)
            except (torch.OutOfMemoryError, RuntimeError) as exc:
                if not is_oom(exc):
                    raise
                if x.device.type == "cuda":
                    torch.cuda.empty_cache()
                h, w = x.shape[-2:]
                current = self.tile or (w, h)
                new = (max(64, current[0] // 2), max(64, current[1] // 2))
                if new == current:
                    raise
                print(f"vsjpegfix: out of memory on {x.device}; retrying with {new[0]}x{new[1]} tiles", file=sys.stderr)
                self.tile = new

    def _tile_for(self, x: torch.Tensor) -> tuple[int, int] | None:
        """The tile size for this batch: the configured one, or 1024x1024 for frames above max_frame_pixels."""
        if self.tile is None and self.max_frame_pixels and x.shape[-1] * x.shape[-2] > self.max_frame_pixels:
            return (1024, 1024)
        return self.tile

    def _restore_tiled(self, x: torch.Tensor, override, transform, tile: tuple[int, int]):
        tw, th = tile
        q_pred = None
        if self.has_quality and override is None:
            q_pred = self._predict_tiled(x, tile)
            override = q_pred if transform is None else transform(q_pred)
        out = torch.empty(x.shape[0], self.channels, *x.shape[-2:], device=x.device, dtype=torch.float32)
        for ys, ye, ca, cb in spans(x.shape[-2], th, self.overlap, TILE_ALIGN):
            for xs, xe, ra, rb in spans(x.shape[-1], tw, self.overlap, TILE_ALIGN):
                y, _ = self._run(x[..., ys:ye, xs:xe], override, None)
                out[..., ca:cb, ra:rb] = y[..., ca - ys : cb - ys, ra - xs : rb - xs]
        return out, q_pred

    # ------------------------------------------------------------------ planes (frame formats)

    def restore(self, planes: Sequence, fmt: PlaneFormat, *, qf: QualityArg = None, strength: QualityArg = None,
                quantisers: Sequence[FrameQuantiser | None] | None = None, strength_scale: float | None = None) -> RestoreResult:
        """Restore frames given as planes in ``fmt``; returns planes in the same format.

        Args:
            planes: one array/tensor per plane, ``(N, h, w)`` (``(N, T, h, w)`` for temporal models).
                numpy input gives numpy output; tensors give tensors on the engine's device.
            fmt: the planes' format and colour description.
            qf: per-call QF override (scalar or one per frame).
            strength: fraction of the model's correction applied, 0..1 (scalar or one per frame;
                default 1): 0 returns the input samples, 1 the model's output
                (see :mod:`vsjpegfix.weights.profile`).
            quantisers: what each frame's bitstream states (:class:`~vsjpegfix.quantisers.stream.FrameQuantiser`,
                one per frame). Where the model's quality profile has a content-adaptive rule for their
                codec (:mod:`vsjpegfix.weights.predictor`), each frame's strength is measured from it
                (times ``strength_scale``, capped at 1) instead of ``strength``; the result says which.
        """
        return self.submit(planes, fmt, qf=qf, strength=strength, quantisers=quantisers, strength_scale=strength_scale).result()

    def strength_rule(self, quantisers: Sequence[FrameQuantiser | None] | None) -> FramePredictor | None:
        """The content-adaptive rule :meth:`restore` applies to frames with these quantisers, or None."""
        profile = self.quality_profile
        return rule_for(profile.predictor if profile is not None else None, quantisers)

    def submit(self, planes: Sequence, fmt: PlaneFormat, *, qf: QualityArg = None, strength: QualityArg = None,
               quantisers: Sequence[FrameQuantiser | None] | None = None, strength_scale: float | None = None) -> PendingRestore:
        """Queue a :meth:`restore` call (on the next stream with ``num_streams`` > 1) and return at once;
        ``.result()`` waits for it. Keep at most ``num_streams`` calls in flight (:meth:`restore_iter` does)."""
        try:
            fmt.validate()
        except ValueError as exc:
            raise EngineError(str(exc)) from None
        if len(planes) != fmt.num_planes:
            raise EngineError(f"{fmt.family} input needs {fmt.num_planes} planes, got {len(planes)}")
        t = self.frames
        if t > 1 and any(p.ndim != 4 or p.shape[1] != t for p in planes):
            raise EngineError(f"a {t}-frame model needs planes shaped (N, {t}, h, w)")
        if t == 1 and any(p.ndim != 3 for p in planes):
            raise EngineError("planes must be shaped (N, h, w)")
        as_numpy = isinstance(planes[0], np.ndarray)
        out_dtypes = [p.dtype for p in planes]
        with self._slots.take() if self._slots is not None else contextlib.nullcontext():
            tensors = [upload_plane(p, self.device, self.accel.pinned) for p in planes]
            n = tensors[0].shape[0]
            tensors = [p.reshape(n * t, *p.shape[2:]) for p in tensors] if t > 1 else tensors
            rule = self.strength_rule(quantisers)
            if rule is not None and len(quantisers) != n:
                raise EngineError(f"got {len(quantisers)} quantisers for {n} frames")
            restored, pred, used, applied = restore_planes(
                self, tensors, fmt, n, t, qf, None if rule is not None else self._strengths(n, strength), rule, quantisers, strength_scale)
            pinned = self.accel.pinned
            if as_numpy:
                restored = [download(r, pinned) for r in restored]
            scores = [None if v is None else download(v, pinned) for v in (pred, used)]
            event = record_event(self.device)
        return PendingRestore(restored, out_dtypes if as_numpy else None, scores, event, strengths_list(applied))

    def restore_iter(self, calls: Iterable[Sequence], fmt: PlaneFormat) -> Iterator[RestoreResult]:
        """Restore each item of ``calls`` (planes, as for :meth:`restore`) in order, keeping
        ``num_streams`` calls in flight so that transfers and compute of consecutive calls overlap."""
        pending: list[PendingRestore] = []
        for planes in calls:
            pending.append(self.submit(planes, fmt))
            if len(pending) >= self.accel.num_streams:
                yield pending.pop(0).result()
        while pending:
            yield pending.pop(0).result()

    def predict_qf(self, planes: Sequence, fmt: PlaneFormat) -> list[float]:
        """Blind QF prediction for frames given as planes (FBCNN models), without restoring them."""
        if not self.has_quality:
            raise EngineError(f"{type(self.model).__name__} has no quality predictor")
        tensors = [upload_plane(p, self.device) for p in planes]
        if self.channels == 1:
            x = plane_to_unit(tensors[0], fmt, 0).clamp(0, 1)
        else:
            x = planes_to_rgb(tensors, fmt)
            if x.shape[1] == 1:
                x = x.expand(-1, 3, -1, -1)
        if self.frames > 1:
            x = x.repeat(1, self.frames, 1, 1)
        out = []
        with torch.inference_mode():
            for i in range(0, x.shape[0], self.batch_size):
                chunk = x[i : i + self.batch_size]
                tile = self._tile_for(chunk)
                if tile is not None and (chunk.shape[-1] > tile[0] or chunk.shape[-2] > tile[1]):
                    q = self._predict_tiled(chunk, tile)
                else:
                    part = chunk.to(self.dtype)
                    if self.channels_last:
                        part = part.contiguous(memory_format=torch.channels_last)
                    q = self.model.predict_quality(part).float()
                out.extend(float(v) for v in quality_to_qf(q).reshape(-1).cpu())
        return out

    def _strengths(self, n: int, strength: QualityArg) -> torch.Tensor | None:
        """Per-frame strengths as an (N, 1, 1) tensor on the device, or None for full strength."""
        if strength is None:
            return None
        values = per_frame(strength, n, "strength", 1.0)
        if np.all(values == 1):
            return None
        return to_device(values, self.device, self.accel.pinned).reshape(n, 1, 1)
