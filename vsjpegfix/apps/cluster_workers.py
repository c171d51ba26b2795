"""The Ray side of a cluster batch: long-lived restoration actors and the pool that replaces dead ones.

Each actor builds its engines once (:class:`vsjpegfix.apps.restore.Engines`) and restores whole files
(:func:`vsjpegfix.apps.restore.restore_file`) or segments of them
(:func:`vsjpegfix.video.segment_restore.restore_segment`).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vsjpegfix.apps.cluster_setup import CPUS_PER_WORKER, MAX_ATTEMPTS
from vsjpegfix.frames.safe_write import is_temporary


class RestoreWorker:
    """One long-lived actor: builds the engine once, then restores the files it is given."""

    def __init__(self, options: dict[str, Any], threads: int = 1) -> None:
        import torch

        from vsjpegfix.apps.restore import Engines

        torch.set_num_threads(max(1, threads))
        self.args = argparse.Namespace(**options)
        self.engines = Engines(self.args)
        self.engines("video-qp")  # load the model for H.264/HEVC once, up front (the others when first needed)
        self.frames = 0

    def info(self) -> dict[str, Any]:
        import socket

        import ray

        ctx = ray.get_runtime_context()
        return {"node_id": ctx.get_node_id(), "node_ip": ray.util.get_node_ip_address(), "host": socket.gethostname(),
                "actor_id": ctx.get_actor_id(), "pid": os.getpid()}

    def update(self, n: int = 1) -> None:  # the "overall bar" of restore_file: counts frames
        self.frames += n

    def progress(self) -> int:
        return self.frames

    def restore(self, src: str, dst: str) -> dict[str, Any]:
        """Restore one file; any failure comes back as a :class:`~vsjpegfix.apps.errors.FileFailure`
        (one line, and the original traceback for ``--debug``)."""
        from vsjpegfix.apps.errors import as_failure
        from vsjpegfix.apps.restore import restore_file

        try:
            Path(dst).parent.mkdir(parents=True, exist_ok=True)
            return restore_file(self.engines, Path(src), Path(dst), self.args, overall=self)
        except Exception as exc:  # noqa: BLE001 - the error boundary of a worker
            raise as_failure(exc) from None

    def model_frames(self) -> int:
        """Frames the video models see at once (T of a temporal model, else 1; the largest of the kinds)."""
        return max(int(self.engines(kind).frames) for kind in ("video-qp", "video"))

    def restore_segment(self, src: str, dst: str, segment) -> dict[str, Any]:
        """Restore one :class:`~vsjpegfix.video.segment_plan.Segment` of ``src`` into the temporary file ``dst``."""
        from vsjpegfix.apps.errors import as_failure
        from vsjpegfix.apps.restore import input_kind, transcode_options
        from vsjpegfix.video.segment_plan import SegmentMismatch
        from vsjpegfix.video.segment_restore import restore_segment

        try:
            Path(dst).parent.mkdir(parents=True, exist_ok=True)
            engine = self.engines(input_kind(Path(src), self.args))
            return restore_segment(engine, Path(src), Path(dst), segment, transcode_options(self.args), overall=self)
        except SegmentMismatch:
            raise  # the driver restores the file whole instead
        except Exception as exc:  # noqa: BLE001 - the error boundary of a worker
            raise as_failure(exc) from None


def remove_temporaries_of(out: Path) -> list[Path]:
    """Delete the temporary files of output ``out`` (``.STEM.XXXXXXXX.part.EXT`` beside it)."""
    removed = []
    if not out.parent.is_dir():
        return removed
    prefix, suffix = f".{out.stem}.", out.suffix
    for p in out.parent.iterdir():
        name = p.name
        if is_temporary(name) and name.startswith(prefix) and name.endswith(suffix) and len(name) == len(prefix) + 8 + len(".part") + len(suffix):
            with contextlib.suppress(OSError):
                p.unlink()
                removed.append(p)
    return removed


def one_line(exc: BaseException) -> str:
    """The user-facing line of an error raised on a worker (its own exception, not Ray's wrapping)."""
    cause = getattr(exc, "cause", None)
    if isinstance(cause, BaseException) and str(cause):
        exc = cause
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    if "creation task" in lines[0] and len(lines) > 1:  # an actor that could not start: its exception is last
        return lines[-1]
    return lines[0]


@dataclass
class Slot:
    actor: Any = None
    info: dict[str, Any] = field(default_factory=dict)
    frames: int = 0  # the actor's own count, as last polled
    at_start: int = 0  # its count when the current file was handed out


class Pool:
    def __init__(self, options: dict[str, Any], workers: int | None) -> None:
        import ray

        resources = ray.cluster_resources()
        gpus, cpus = resources.get("GPU", 0), resources.get("CPU", 1)
        if workers is None:
            workers = int(gpus) if gpus >= 1 else max(1, int(cpus // CPUS_PER_WORKER))
        if workers < 1:
            raise ValueError("--ray-workers must be at least 1")
        self.size = workers
        if gpus >= 1:
            share = {"num_gpus": min(1.0, gpus / workers), "num_cpus": min(1.0, cpus / workers)}
            threads = max(1, int(cpus // workers))
        else:
            per = cpus / workers
            share = {"num_cpus": int(per) if per >= 1 else max(0.01, int(per * 100) / 100)}
            threads = max(1, int(per))
        self.remote = ray.remote(RestoreWorker).options(max_concurrency=2, **share)
        self.options, self.threads = options, threads
        self.replaced = 0
        slots = [Slot(actor=self.remote.remote(options, threads)) for _ in range(workers)]
        infos = [s.actor.info.remote() for s in slots]
        try:
            for s, ref in zip(slots, infos):
                s.info = ray.get(ref)
        except Exception as exc:  # noqa: BLE001 - a worker cannot build its engine: the options are wrong
            for s in slots:
                ray.kill(s.actor)
            raise ValueError(f"cannot start a Ray worker: {one_line(exc)}") from None
        self.slots = slots

    def replace(self, slot: Slot) -> None:
        import ray

        with contextlib.suppress(Exception):
            ray.kill(slot.actor)
        self.replaced += 1
        if self.replaced > MAX_ATTEMPTS * max(self.size, 1) * 4:
            raise RuntimeError("too many Ray workers died; giving up")
        slot.actor = self.remote.remote(self.options, self.threads)
        slot.frames = slot.at_start = 0
        try:
            slot.info = ray.get(slot.actor.info.remote())
        except Exception as exc:  # noqa: BLE001
            raise RuntimeError(f"cannot start a Ray worker: {one_line(exc)}") from None

    def shutdown(self) -> None:
        import ray

        for s in self.slots:
            with contextlib.suppress(Exception):
                ray.kill(s.actor)


def is_mismatch(exc: BaseException) -> bool:
    """Did a segment fail because the plan cannot reproduce the whole-file result (restore it whole)?"""
    from vsjpegfix.video.segment_plan import SegmentMismatch

    return isinstance(exc, SegmentMismatch) or isinstance(getattr(exc, "cause", None), SegmentMismatch)


def wait_and_clean(out: Path, segments: bool = False) -> None:
    from vsjpegfix.video.segment_plan import remove_segment_temporaries

    def clean() -> list[Path]:
        return remove_segment_temporaries(out) if segments else remove_temporaries_of(out)

    deadline = time.monotonic() + 2.0
    while True:  # a killed actor's process may take a moment to go
        clean()
        if time.monotonic() > deadline:
            return
        time.sleep(0.2)
        if not clean():
            return


def poll_progress(ray, running: dict, bar, ready: bool = False) -> None:
    """Move the bar to the frames the busy workers have done."""
    items = list(running.values())
    if not items:
        return
    refs = [slot.actor.progress.remote() for slot, _ in items]
    try:
        counts = ray.get(refs, timeout=0.2 if not ready else 2.0)
    except Exception:  # noqa: BLE001 - a dying worker: the next poll or the result tells
        return
    delta = 0
    for (slot, _), n in zip(items, counts):
        delta += n - slot.frames
        slot.frames = n
    if delta:
        bar.update(delta)
