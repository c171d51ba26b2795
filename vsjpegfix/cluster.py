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

from .batch import BatchEntry, is_temporary, plan_outputs, prepare_destination

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

        from .cli import build_engine

        torch.set_num_threads(max(1, threads))
        self.args = argparse.Namespace(**options)
        self.engine = build_engine(self.args)
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
        return _restore_file(self.engine, Path(src), Path(dst), self.args, overall=self)


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
) -> list[BatchEntry]:
    """:func:`vsjpegfix.batch.run_batch` on the actors of the connected Ray cluster (see the module notes).

    ``options`` are the worker options (:func:`worker_options`). Returns the entries in the order
    of :func:`vsjpegfix.batch.find_media`, like the local mode; ``entries``, when given, receives
    each entry as soon as its file is done. ``bar`` (a tqdm bar in frames) follows the frames done
    by every worker. ``on_dispatch(input, worker_info)`` is called as each file is handed out.
    """
    import ray
    from ray.exceptions import RayActorError, RayTaskError

    src, dst = prepare_destination(src, dst, quiet=quiet)
    options = {**options, "overwrite": overwrite, "quiet": True}
    entries = [] if entries is None else entries
    jobs: list[tuple[Path, Path]] = []
    done: dict[int, BatchEntry] = {}
    todo: deque[int] = deque()
    for path, out in plan_outputs(src, dst, pattern, image_suffix):
        jobs.append((path, out))
        if out.exists() and not overwrite:
            done[len(jobs) - 1] = BatchEntry(str(path), str(out), "skipped", "output exists")
            entries.append(done[len(jobs) - 1])
        else:
            todo.append(len(jobs) - 1)
    if todo:
        _dispatch(jobs, todo, done, entries, options, workers, max_attempts, quiet, bar, on_dispatch, ray, RayActorError, RayTaskError)
    return [done[i] for i in range(len(jobs))]


def _dispatch(jobs, todo, done, entries, options, workers, max_attempts, quiet, bar, on_dispatch, ray, RayActorError, RayTaskError) -> None:
    pool = _Pool(options, workers)
    if bar is not None:  # the rate counts from when the workers are ready
        bar.start_t = bar.last_print_t = time.time()
    attempts = [0] * len(jobs)
    running: dict[Any, tuple[_Slot, int]] = {}
    idle = list(pool.slots)

    def finish(i: int, entry: BatchEntry) -> None:
        done[i] = entry
        entries.append(entry)
        if bar is not None:
            bar.set_postfix_str(f"{len(done)}/{len(jobs)} file(s) done, {len(pool.slots)} worker(s)", refresh=True)

    try:
        while todo or running:
            while todo and idle:
                slot, i = idle.pop(0), todo.popleft()
                attempts[i] += 1
                slot.at_start = slot.frames
                path, out = jobs[i]
                if on_dispatch is not None:
                    on_dispatch(path, dict(slot.info))
                running[slot.actor.restore.remote(str(path), str(out))] = (slot, i)
            ready, _ = ray.wait(list(running), num_returns=1, timeout=0.5)
            if bar is not None:
                _poll(ray, running, bar)
            for ref in ready:
                slot, i = running.pop(ref)
                path, out = jobs[i]
                try:
                    details = ray.get(ref)
                except RayActorError as exc:  # the worker died (killed, crashed, node lost): retry elsewhere
                    remove_temporaries_of(out)
                    if bar is not None:
                        bar.update(-(slot.frames - slot.at_start))
                    lost = dict(slot.info)
                    pool.replace(slot)
                    idle.append(slot)
                    if attempts[i] < max_attempts:
                        todo.appendleft(i)
                        if not quiet:
                            print(f"vsjpegfix: worker {lost.get('pid')} on {lost.get('node_ip')} died on {path}; retrying", file=sys.stderr)
                    else:
                        message = f"the worker died on each of {attempts[i]} tries ({_one_line(exc)})"
                        finish(i, ClusterEntry(str(path), str(out), "failed", message, worker=lost, attempts=attempts[i]))
                        if not quiet:
                            print(f"vsjpegfix: error: {path}: {message}", file=sys.stderr)
                    continue
                except RayTaskError as exc:  # the file itself failed: reported, as in the local mode
                    remove_temporaries_of(out)
                    idle.append(slot)
                    message = _one_line(exc)
                    finish(i, ClusterEntry(str(path), str(out), "failed", message, worker=dict(slot.info), attempts=attempts[i]))
                    if not quiet:
                        print(f"vsjpegfix: error: {path}: {message}", file=sys.stderr)
                    continue
                idle.append(slot)
                if bar is not None:
                    _poll(ray, {ref: (slot, i)}, bar, ready=True)
                finish(i, ClusterEntry(str(path), str(out), "ok", details=details, worker=dict(slot.info), attempts=attempts[i]))
    finally:
        for slot, i in running.values():  # interrupted: nothing half-written stays behind
            with contextlib.suppress(Exception):
                ray.kill(slot.actor)
        pool.shutdown()
        for slot, i in running.values():
            _wait_and_clean(jobs[i][1])


def _wait_and_clean(out: Path) -> None:
    deadline = time.monotonic() + 2.0
    while True:  # a killed actor's process may take a moment to go
        remove_temporaries_of(out)
        if time.monotonic() > deadline:
            return
        time.sleep(0.2)
        if not remove_temporaries_of(out):
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
        )
    finally:
        if started:
            ray.shutdown()
