"""``vsjpegfix batch SRC DST --ray``: the batch spread over the workers of a Ray cluster.

Long-lived actors (one per GPU, or one per few CPU cores without GPUs) each load the model once,
from the model spec string and the engine options (so they pickle cheaply), and restore whole files
with the same code as the local batch mode. The driver hands one file to each idle actor and the
next one as each finishes (``ray.wait``), so a faster worker takes more files.

Outputs follow the local batch rules (:mod:`vsjpegfix.batch`): written under a temporary name beside
the output and renamed when complete, finished outputs skipped on a rerun, stale temporaries removed.
A worker that dies mid-file loses nothing: its temporary file is removed, the actor is replaced and
the file is tried again on another actor, at most ``max_attempts`` times in all; a file whose
worker died on every try is reported as failed. An error raised by the restoration itself (a
broken input, say) is reported at once, as in the local mode, without a retry.

With ``segment_seconds`` (``--segment-seconds N``), a video long enough is split at the keyframes of
the input into segments of at least N seconds, restored by different workers and joined by the
driver without re-encoding (:mod:`vsjpegfix.segments`): the output has the frame count, timestamps,
streams and metadata of a whole-file restoration. A segment whose worker dies is retried like a
file; a segment that fails fails its file (no partial output; every segment temporary removed); a
file the segments cannot reproduce (timestamps the plan cannot follow) is restored whole instead.

Every Ray process of a cluster started here (``--ray`` without an address) listens on 127.0.0.1.
Workers of an existing cluster must be able to import ``vsjpegfix`` and read SRC and write DST at
the same paths (a shared file system).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .batch import VIDEO_SUFFIXES, BatchEntry, is_temporary, plan_outputs, prepare_destination

MAX_ATTEMPTS = 3
CPUS_PER_WORKER = 4  # without GPUs: one actor per this many CPU cores, unless told otherwise
ROOT = Path(__file__).resolve().parent.parent

# the options of ``vsjpegfix batch`` a worker needs to build its engine and write a file
WORKER_OPTIONS = (
    "model", "device", "precision", "qf", "qf_offset", "tile", "overlap", "batch_size", "luma_only",
    "codec", "crf", "preset", "pix_fmt", "matrix", "overwrite",
)


@dataclass
class ClusterEntry(BatchEntry):
    """A batch entry plus the worker that produced it and the number of tries."""

    worker: dict[str, Any] = field(default_factory=dict)
    attempts: int = 0


def worker_options(args: argparse.Namespace) -> dict[str, Any]:
    """The plain, picklable options a worker rebuilds its engine from."""
    return {**{k: getattr(args, k) for k in WORKER_OPTIONS}, "quiet": True}


def add_cluster_options(p: argparse.ArgumentParser) -> None:
    """The options of ``vsjpegfix batch`` that only the Ray mode uses, beyond ``--ray``/``--ray-workers``."""
    p.add_argument("--segment-seconds", type=float, default=0.0, metavar="N",
                   help="with --ray: split each video longer than 1.5 N seconds at the input's keyframes into segments of at "
                   "least N seconds, restored by different workers and joined without re-encoding (same frames and timestamps "
                   "as restoring it whole; 0 = never split) (default: 0)")


# ---------------------------------------------------------------------------- Ray set-up


@contextlib.contextmanager
def _loopback(pythonpath: bool = False):
    """Keep Ray on 127.0.0.1: it replaces a loopback node address by the machine's outward one unless
    multi-machine "clusters" are switched off (read when the address is resolved, and by its processes)."""
    from ray._private import ray_constants

    keys = ("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "PYTHONPATH")
    saved = {k: os.environ.get(k) for k in keys}
    saved_flag = ray_constants.ENABLE_RAY_CLUSTER
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    if pythonpath:  # the workers of a cluster started here import vsjpegfix from where the driver does
        os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), saved["PYTHONPATH"]) if p)
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = saved_flag
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _is_loopback(address: str) -> bool:
    host = address.rsplit(":", 1)[0].strip("[]")
    return host in ("localhost", "::1") or host.startswith("127.")


def init_ray(address: str | None = None, *, num_cpus: int | None = None) -> bool:
    """Connect to Ray; returns True when a local cluster was started here (the caller shuts it down).

    ``address``: None or "local" starts a local cluster on 127.0.0.1; "auto" joins the running
    cluster of this machine; anything else is a cluster address. Nothing is done when Ray is
    already initialised in this process.
    """
    import ray

    if ray.is_initialized():
        return False
    if address in (None, "", "local"):
        with _loopback(pythonpath=True):
            ray.init(
                address="local", num_cpus=num_cpus, include_dashboard=False, _node_ip_address="127.0.0.1",
                object_store_memory=200 * 2**20, log_to_driver=False, logging_level="ERROR",
            )
        return True
    if address == "auto":
        from ray._private.services import canonicalize_bootstrap_address

        with _loopback(), contextlib.suppress(Exception):  # a cluster on 127.0.0.1 stays there
            address = canonicalize_bootstrap_address("auto") or address
    if _is_loopback(address):
        with _loopback():
            ray.init(address=address, _node_ip_address="127.0.0.1", log_to_driver=False, logging_level="ERROR")
    else:
        ray.init(address=address, log_to_driver=False, logging_level="ERROR")
    return False


class RestoreWorker:
    """One long-lived actor: builds the engine once, then restores the files it is given."""

    def __init__(self, options: dict[str, Any], threads: int = 1) -> None:
        import torch

        from .cli import Engines

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

    def update(self, n: int = 1) -> None:  # the "overall bar" of _restore_file: counts frames
        self.frames += n

    def progress(self) -> int:
        return self.frames

    def restore(self, src: str, dst: str) -> dict[str, Any]:
        from .cli import _restore_file

        Path(dst).parent.mkdir(parents=True, exist_ok=True)
        return _restore_file(self.engines, Path(src), Path(dst), self.args, overall=self)

    def model_frames(self) -> int:
        """Frames the video models see at once (T of a temporal model, else 1; the largest of the kinds)."""
        return max(int(self.engines(kind).frames) for kind in ("video-qp", "video"))

    def restore_segment(self, src: str, dst: str, segment) -> dict[str, Any]:
        """Restore one :class:`~vsjpegfix.segments.Segment` of ``src`` into the temporary file ``dst``."""
        from .cli import input_kind, transcode_options
        from .segments import restore_segment

        Path(dst).parent.mkdir(parents=True, exist_ok=True)
        engine = self.engines(input_kind(Path(src), self.args))
        return restore_segment(engine, Path(src), Path(dst), segment, transcode_options(self.args), overall=self)


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


def _one_line(exc: BaseException) -> str:
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
class _Slot:
    actor: Any = None
    info: dict[str, Any] = field(default_factory=dict)
    frames: int = 0  # the actor's own count, as last polled
    at_start: int = 0  # its count when the current file was handed out


class _Pool:
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
        slots = [_Slot(actor=self.remote.remote(options, threads)) for _ in range(workers)]
        infos = [s.actor.info.remote() for s in slots]
        try:
            for s, ref in zip(slots, infos):
                s.info = ray.get(ref)
        except Exception as exc:  # noqa: BLE001 - a worker cannot build its engine: the options are wrong
            for s in slots:
                ray.kill(s.actor)
            raise ValueError(f"cannot start a Ray worker: {_one_line(exc)}") from None
        self.slots = slots

    def replace(self, slot: _Slot) -> None:
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
            raise RuntimeError(f"cannot start a Ray worker: {_one_line(exc)}") from None

    def shutdown(self) -> None:
        import ray

        for s in self.slots:
            with contextlib.suppress(Exception):
                ray.kill(s.actor)


def run_cluster(
    src: Path,
    dst: Path,
    options: dict[str, Any],
    *,
    workers: int | None = None,
    pattern: str | None = None,
    overwrite: bool = False,
    quiet: bool = False,
    entries: list[BatchEntry] | None = None,
    image_suffix: str | None = ".png",
    max_attempts: int = MAX_ATTEMPTS,
    bar=None,
    on_dispatch: Callable[[Path, dict[str, Any]], None] | None = None,
    segment_seconds: float = 0.0,
) -> list[BatchEntry]:
    """:func:`vsjpegfix.batch.run_batch` on the actors of the connected Ray cluster (see the module notes).

    ``options`` are the worker options (:func:`worker_options`). Returns the entries in the order
    of :func:`vsjpegfix.batch.find_media`, like the local mode; ``entries``, when given, receives
    each entry as soon as its file is done. ``bar`` (a tqdm bar in frames) follows the frames done
    by every worker. ``on_dispatch(input, worker_info)`` is called as each file is handed out (for
    a segment, ``worker_info`` also has ``segment``, its index, and ``temporary``, its file).
    ``segment_seconds`` > 0 splits videos longer than 1.5 times that into segments restored in
    parallel (:mod:`vsjpegfix.segments`).
    """
    import ray

    if segment_seconds < 0:
        raise ValueError("--segment-seconds must be 0 (off) or more")
    src, dst = prepare_destination(src, dst, quiet=quiet)
    options = {**options, "overwrite": overwrite, "quiet": True}
    entries = [] if entries is None else entries
    jobs: list[tuple[Path, Path]] = []
    done: dict[int, BatchEntry] = {}
    todo: deque[tuple[int, int | None]] = deque()
    for path, out in plan_outputs(src, dst, pattern, image_suffix):
        jobs.append((path, out))
        if out.exists() and not overwrite:
            done[len(jobs) - 1] = BatchEntry(str(path), str(out), "skipped", "output exists")
            entries.append(done[len(jobs) - 1])
        else:
            todo.append((len(jobs) - 1, None))
    if todo:
        run = _Run(ray, jobs, todo, done, entries, options, max_attempts, quiet, bar, on_dispatch, segment_seconds, overwrite)
        run.dispatch(workers)
    return [done[i] for i in range(len(jobs))]


@dataclass
class _Split:
    """A file being restored in segments: its plan, the finished segments, every temporary handed out."""

    plan: Any  # vsjpegfix.segments.SegmentPlan
    started: float
    parts: dict[int, dict[str, Any]] = field(default_factory=dict)
    paths: dict[int, Path] = field(default_factory=dict)
    workers: dict[int, dict[str, Any]] = field(default_factory=dict)
    attempts: dict[int, int] = field(default_factory=dict)
    temporaries: set[Path] = field(default_factory=set)
    active: bool = True


class _Run:
    """The driver's loop: files (or their segments) to idle actors, results in, retries, joins."""

    def __init__(self, ray, jobs, todo, done, entries, options, max_attempts, quiet, bar, on_dispatch, segment_seconds, overwrite) -> None:
        self.ray, self.jobs, self.todo, self.done, self.entries = ray, jobs, todo, done, entries
        self.options, self.max_attempts, self.quiet, self.bar, self.on_dispatch = options, max_attempts, quiet, bar, on_dispatch
        self.segment_seconds, self.overwrite = segment_seconds, overwrite
        self.attempts = [0] * len(jobs)
        self.splits: dict[int, _Split] = {}
        self.planned: set[int] = set()
        self.notes: dict[int, list[str]] = {}  # warnings for the report of a file restored whole
        self.radius = 0
        self.pool: _Pool | None = None

    def finish(self, i: int, entry: BatchEntry) -> None:
        self.done[i] = entry
        self.entries.append(entry)
        if self.bar is not None:
            self.bar.set_postfix_str(f"{len(self.done)}/{len(self.jobs)} file(s) done, {len(self.pool.slots)} worker(s)", refresh=True)

    def fail(self, i: int, message: str, worker: dict[str, Any], attempts: int) -> None:
        path, out = self.jobs[i]
        self.finish(i, ClusterEntry(str(path), str(out), "failed", message, worker=worker, attempts=attempts))
        if not self.quiet:
            print(f"vsjpegfix: error: {path}: {message}", file=sys.stderr)

    # ------------------------------------------------------------ segments
    def plan(self, i: int) -> bool:
        """Split file ``i`` into segment tasks if it is a video long enough; True when it was."""
        from .segments import SegmentMismatch, plan_file

        self.planned.add(i)
        path = self.jobs[i][0]
        if self.segment_seconds <= 0 or path.suffix.lower() not in VIDEO_SUFFIXES:
            return False
        try:
            plan = plan_file(path, self.segment_seconds, self.radius)
        except SegmentMismatch as exc:
            self.notes.setdefault(i, []).append(f"not split into segments: {_one_line(exc)}")
            return False
        except Exception:  # noqa: BLE001 - an unreadable file: restoring it whole reports why
            return False
        if plan is None:
            return False
        self.splits[i] = _Split(plan, time.perf_counter())
        self.todo.extendleft((i, s.index) for s in reversed(plan.segments))
        return True

    def abandon(self, i: int) -> None:
        """Stop restoring file ``i`` in segments: drop its queued segments, delete its temporaries."""
        from .segments import remove_segment_temporaries

        split = self.splits[i]
        split.active = False
        for task in [t for t in self.todo if t[0] == i and t[1] is not None]:
            self.todo.remove(task)
        if self.bar is not None:
            self.bar.update(-sum(int(p.get("frames", 0)) for p in split.parts.values()))
        for p in split.temporaries:
            with contextlib.suppress(OSError):
                p.unlink()
        remove_segment_temporaries(self.jobs[i][1])

    def whole_instead(self, i: int, reason: str) -> None:
        self.abandon(i)
        self.notes.setdefault(i, []).append(f"not split into segments: {reason}")
        self.todo.appendleft((i, None))

    def join(self, i: int) -> None:
        from .segments import SegmentMismatch, join_segments, merge_reports, remove_segment_temporaries

        path, out = self.jobs[i]
        split = self.splits[i]
        n = len(split.plan.segments)
        try:
            joined = join_segments(path, out, [split.paths[k] for k in range(n)], split.plan, overwrite=self.overwrite, quiet=True)
        except SegmentMismatch as exc:
            self.whole_instead(i, _one_line(exc))
            return
        except Exception as exc:  # noqa: BLE001 - reported for this file, as any failure
            self.abandon(i)
            self.fail(i, _one_line(exc), split.workers.get(0, {}), max(split.attempts.values()))
            return
        split.active = False
        for p in split.temporaries:
            with contextlib.suppress(OSError):
                p.unlink()
        remove_segment_temporaries(out)
        parts = [split.parts[k] for k in range(n)]
        details = merge_reports(path, out, parts, joined, time.perf_counter() - split.started)
        details["segments"] = [
            {"index": k, "first_frame": parts[k]["first_frame"], "frames": parts[k]["frames"], "seconds": round(parts[k]["seconds"], 3),
             "worker": split.workers[k], "attempts": split.attempts[k]}
            for k in range(n)
        ]
        self.finish(i, ClusterEntry(str(path), str(out), "ok", details=details, worker=split.workers[0], attempts=max(split.attempts.values())))

    # ------------------------------------------------------------ the loop
    def dispatch(self, workers: int | None) -> None:
        from ray.exceptions import RayActorError, RayTaskError

        from .segments import segment_temporary

        ray = self.ray
        self.pool = pool = _Pool(self.options, workers)
        if self.segment_seconds > 0:
            self.radius = ray.get(pool.slots[0].actor.model_frames.remote()) // 2
        if self.bar is not None:  # the rate counts from when the workers are ready
            self.bar.start_t = self.bar.last_print_t = time.time()
        running: dict[Any, tuple[_Slot, int, int | None, Path | None]] = {}
        idle = list(pool.slots)
        todo = self.todo
        try:
            while todo or running:
                while todo and idle:
                    i, k = todo.popleft()
                    if k is None and i not in self.planned and self.plan(i):
                        continue
                    slot = idle.pop(0)
                    slot.at_start = slot.frames
                    path, out = self.jobs[i]
                    if k is None:
                        self.attempts[i] += 1
                        if self.on_dispatch is not None:
                            self.on_dispatch(path, dict(slot.info))
                        running[slot.actor.restore.remote(str(path), str(out))] = (slot, i, None, None)
                        continue
                    split = self.splits[i]
                    split.attempts[k] = split.attempts.get(k, 0) + 1
                    tmp = segment_temporary(out, k)
                    split.temporaries.add(tmp)
                    if self.on_dispatch is not None:
                        self.on_dispatch(path, {**slot.info, "segment": k, "temporary": str(tmp)})
                    running[slot.actor.restore_segment.remote(str(path), str(tmp), split.plan.segments[k])] = (slot, i, k, tmp)
                ready, _ = ray.wait(list(running), num_returns=1, timeout=0.5)
                if self.bar is not None:
                    _poll(ray, {ref: v[:2] for ref, v in running.items()}, self.bar)
                for ref in ready:
                    slot, i, k, tmp = running.pop(ref)
                    if k is None:
                        self._file_done(ref, slot, i, idle, RayActorError, RayTaskError)
                    else:
                        self._segment_done(ref, slot, i, k, tmp, idle, RayActorError, RayTaskError)
        finally:
            for slot, *_ in running.values():  # interrupted: nothing half-written stays behind
                with contextlib.suppress(Exception):
                    ray.kill(slot.actor)
            pool.shutdown()
            for _, i, k, _ in running.values():
                if k is None:
                    _wait_and_clean(self.jobs[i][1])
            for i, split in self.splits.items():
                if split.active or any(v[1] == i for v in running.values()):
                    _wait_and_clean(self.jobs[i][1], segments=True)

    def _lost_worker(self, slot: _Slot, out: Path | None, idle: list) -> dict[str, Any]:
        if out is not None:
            remove_temporaries_of(out)
        if self.bar is not None:
            self.bar.update(-(slot.frames - slot.at_start))
        lost = dict(slot.info)
        self.pool.replace(slot)
        idle.append(slot)
        return lost

    def _file_done(self, ref, slot: _Slot, i: int, idle: list, RayActorError, RayTaskError) -> None:
        ray = self.ray
        path, out = self.jobs[i]
        try:
            details = ray.get(ref)
        except RayActorError as exc:  # the worker died (killed, crashed, node lost): retry elsewhere
            lost = self._lost_worker(slot, out, idle)
            if self.attempts[i] < self.max_attempts:
                self.todo.appendleft((i, None))
                if not self.quiet:
                    print(f"vsjpegfix: worker {lost.get('pid')} on {lost.get('node_ip')} died on {path}; retrying", file=sys.stderr)
            else:
                self.fail(i, f"the worker died on each of {self.attempts[i]} tries ({_one_line(exc)})", lost, self.attempts[i])
            return
        except RayTaskError as exc:  # the file itself failed: reported, as in the local mode
            remove_temporaries_of(out)
            idle.append(slot)
            self.fail(i, _one_line(exc), dict(slot.info), self.attempts[i])
            return
        idle.append(slot)
        if self.bar is not None:
            _poll(ray, {ref: (slot, i)}, self.bar, ready=True)
        if self.notes.get(i) and isinstance(details, dict):
            details["warnings"] = [*self.notes[i], *details.get("warnings", [])]
        self.finish(i, ClusterEntry(str(path), str(out), "ok", details=details, worker=dict(slot.info), attempts=self.attempts[i]))

    def _segment_done(self, ref, slot: _Slot, i: int, k: int, tmp: Path, idle: list, RayActorError, RayTaskError) -> None:
        ray = self.ray
        path, out = self.jobs[i]
        split = self.splits[i]
        try:
            details = ray.get(ref)
        except RayActorError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink()
            lost = self._lost_worker(slot, None, idle)
            if not split.active:
                return
            if split.attempts[k] < self.max_attempts:
                self.todo.appendleft((i, k))
                if not self.quiet:
                    print(f"vsjpegfix: worker {lost.get('pid')} on {lost.get('node_ip')} died on segment {k} of {path}; retrying", file=sys.stderr)
            else:
                self.abandon(i)
                self.fail(i, f"the worker died on each of {split.attempts[k]} tries of segment {k} ({_one_line(exc)})", lost, split.attempts[k])
            return
        except RayTaskError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink()
            idle.append(slot)
            if not split.active:
                return
            if _is_mismatch(exc):
                self.whole_instead(i, _one_line(exc))
            else:
                self.abandon(i)
                self.fail(i, _one_line(exc), dict(slot.info), split.attempts[k])
            return
        idle.append(slot)
        if self.bar is not None:
            _poll(ray, {ref: (slot, i)}, self.bar, ready=True)
        if not split.active:
            with contextlib.suppress(OSError):
                tmp.unlink()
            return
        split.parts[k], split.paths[k], split.workers[k] = details, tmp, dict(slot.info)
        if len(split.parts) == len(split.plan.segments):
            self.join(i)


def _is_mismatch(exc: BaseException) -> bool:
    """Did a segment fail because the plan cannot reproduce the whole-file result (restore it whole)?"""
    from .segments import SegmentMismatch

    return isinstance(exc, SegmentMismatch) or isinstance(getattr(exc, "cause", None), SegmentMismatch)


def _wait_and_clean(out: Path, segments: bool = False) -> None:
    from .segments import remove_segment_temporaries

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


def _poll(ray, running: dict, bar, ready: bool = False) -> None:
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


def run_from_args(args: argparse.Namespace, entries: list[BatchEntry], bar=None) -> list[BatchEntry]:
    """The ``--ray`` part of ``vsjpegfix batch``: connect (or start a local cluster), run, shut down."""
    try:
        import ray
    except ImportError:
        raise ValueError("--ray needs Ray: pip install 'vsjpegfix[cluster]'") from None
    address = None if args.ray in ("", "local") else args.ray
    started = init_ray(address)
    try:
        return run_cluster(
            args.src, args.dst, worker_options(args), workers=args.ray_workers, pattern=args.glob,
            overwrite=args.overwrite, quiet=args.quiet, entries=entries, bar=bar,
            image_suffix=None if args.image_format == "keep" else f".{args.image_format}",
            segment_seconds=float(getattr(args, "segment_seconds", 0.0) or 0.0),
        )
    finally:
        if started:
            ray.shutdown()
