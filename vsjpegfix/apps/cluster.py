"""``vsjpegfix batch SRC DST --ray``: the batch spread over the workers of a Ray cluster.

Long-lived actors (one per GPU, or one per few CPU cores without GPUs) each load the model once,
from the model spec string and the engine options (so they pickle cheaply), and restore whole files
with the same code as the local batch mode. The driver hands one file to each idle actor and the
next one as each finishes (``ray.wait``), so a faster worker takes more files.

The files and their outputs are planned as in the local mode (:func:`vsjpegfix.apps.batch.plan_batch`: raw
streams into ``.mkv``, ignored files listed with the reason). Outputs follow the local batch rules
(:mod:`vsjpegfix.frames.safe_write`): written under a temporary name beside
the output and renamed when complete, finished outputs skipped on a rerun, stale temporaries removed.
A worker that dies mid-file loses nothing: its temporary file is removed, the actor is replaced and
the file is tried again on another actor, at most ``max_attempts`` times in all; a file whose
worker died on every try is reported as failed. An error raised by the restoration itself (a
broken input, say) is reported at once, as in the local mode, without a retry.

With ``segment_seconds`` (``--segment-seconds N``), a video long enough is split at the keyframes of
the input into segments of at least N seconds, restored by different workers and joined by the
driver without re-encoding (:mod:`vsjpegfix.video.segment_join`): the output has the frame count, timestamps,
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
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from vsjpegfix.apps.batch import BatchEntry, Job, plan_batch, prepare_destination, unrestored_entry
from vsjpegfix.apps.cluster_setup import MAX_ATTEMPTS, init_ray, worker_options
from vsjpegfix.apps.cluster_workers import (
    Pool,
    Slot,
    is_mismatch,
    one_line,
    poll_progress,
    remove_temporaries_of,
    wait_and_clean,
)
from vsjpegfix.apps.errors import print_details


@dataclass
class ClusterEntry(BatchEntry):
    """A batch entry plus the worker that produced it and the number of tries."""

    worker: dict[str, Any] = field(default_factory=dict)
    attempts: int = 0


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
    """:func:`vsjpegfix.apps.batch.run_batch` on the actors of the connected Ray cluster (see the module notes).

    ``options`` are the worker options (:func:`worker_options`). Returns the entries in the order
    of :func:`vsjpegfix.apps.batch.find_media`, like the local mode; ``entries``, when given, receives
    each entry as soon as its file is done. ``bar`` (a tqdm bar in frames) follows the frames done
    by every worker. ``on_dispatch(input, worker_info)`` is called as each file is handed out (for
    a segment, ``worker_info`` also has ``segment``, its index, and ``temporary``, its file).
    ``segment_seconds`` > 0 splits videos longer than 1.5 times that into segments restored in
    parallel (:mod:`vsjpegfix.video.segment_join`).
    """
    import ray

    if segment_seconds < 0:
        raise ValueError("--segment-seconds must be 0 (off) or more")
    src, dst = prepare_destination(src, dst, quiet=quiet)
    options = {**options, "overwrite": overwrite, "quiet": True}
    entries = [] if entries is None else entries
    jobs: list[tuple[Path, Path]] = []
    planned: list[Job] = []
    done: dict[int, BatchEntry] = {}
    todo: deque[tuple[int, int | None]] = deque()
    for job in plan_batch(src, dst, pattern, image_suffix, options.get("codec")):
        jobs.append((job.input, job.output))
        planned.append(job)
        if unrestored_entry(job) is not None:
            done[len(jobs) - 1] = unrestored_entry(job)
            entries.append(done[len(jobs) - 1])
        elif job.output.exists() and not overwrite:
            done[len(jobs) - 1] = BatchEntry(str(job.input), str(job.output), "skipped", "output exists", notes=job.notes)
            entries.append(done[len(jobs) - 1])
        else:
            todo.append((len(jobs) - 1, None))
    if todo:
        run = _Run(ray, jobs, planned, todo, done, entries, options, max_attempts, quiet, bar, on_dispatch, segment_seconds, overwrite)
        run.dispatch(workers)
    return [done[i] for i in range(len(jobs))]


@dataclass
class _Split:
    """A file being restored in segments: its plan, the finished segments, every temporary handed out."""

    plan: Any  # vsjpegfix.video.segment_plan.SegmentPlan
    started: float
    parts: dict[int, dict[str, Any]] = field(default_factory=dict)
    paths: dict[int, Path] = field(default_factory=dict)
    workers: dict[int, dict[str, Any]] = field(default_factory=dict)
    attempts: dict[int, int] = field(default_factory=dict)
    temporaries: set[Path] = field(default_factory=set)
    active: bool = True


class _Run:
    """The driver's loop: files (or their segments) to idle actors, results in, retries, joins."""

    def __init__(self, ray, jobs, specs, todo, done, entries, options, max_attempts, quiet, bar, on_dispatch, segment_seconds, overwrite) -> None:
        self.ray, self.jobs, self.specs, self.todo, self.done, self.entries = ray, jobs, specs, todo, done, entries
        self.options, self.max_attempts, self.quiet, self.bar, self.on_dispatch = options, max_attempts, quiet, bar, on_dispatch
        self.segment_seconds, self.overwrite = segment_seconds, overwrite
        self.attempts = [0] * len(jobs)
        self.splits: dict[int, _Split] = {}
        self.planned: set[int] = set()
        self.notes: dict[int, list[str]] = {}  # warnings for the report of a file restored whole
        self.radius = 0
        self.pool: Pool | None = None

    def finish(self, i: int, entry: BatchEntry) -> None:
        entry.notes = list(self.specs[i].notes)
        self.done[i] = entry
        self.entries.append(entry)
        if self.bar is not None:
            self.bar.set_postfix_str(f"{len(self.done)}/{len(self.jobs)} file(s) done, {len(self.pool.slots)} worker(s)", refresh=True)

    def fail(self, i: int, message: str, worker: dict[str, Any], attempts: int, exc: BaseException | None = None) -> None:
        path, out = self.jobs[i]
        if exc is not None and self.options.get("debug"):
            print_details(getattr(exc, "cause", None) or exc)
        self.finish(i, ClusterEntry(str(path), str(out), "failed", message, worker=worker, attempts=attempts))
        if not self.quiet:
            print(f"vsjpegfix: error: {path}: {message}", file=sys.stderr)

    # ------------------------------------------------------------ segments
    def plan(self, i: int) -> bool:
        """Split file ``i`` into segment tasks if it is a video long enough; True when it was."""
        from vsjpegfix.video.segment_plan import SegmentMismatch, plan_file

        self.planned.add(i)
        path = self.jobs[i][0]
        spec = self.specs[i]
        if self.segment_seconds <= 0 or spec.kind != "video" or spec.raw:
            return False  # images, and raw streams (no timestamps to split at), are restored whole
        if self.options.get("start") or self.options.get("duration") is not None:
            self.notes.setdefault(i, []).append("not split into segments: --start/--duration restore a part of it")
            return False
        try:
            plan = plan_file(path, self.segment_seconds, self.radius)
        except SegmentMismatch as exc:
            self.notes.setdefault(i, []).append(f"not split into segments: {one_line(exc)}")
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
        from vsjpegfix.video.segment_plan import remove_segment_temporaries

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
        from vsjpegfix.video.segment_join import join_segments, merge_reports
        from vsjpegfix.video.segment_plan import (
            SegmentMismatch,
            remove_segment_temporaries,
        )

        path, out = self.jobs[i]
        split = self.splits[i]
        n = len(split.plan.segments)
        try:
            joined = join_segments(path, out, [split.paths[k] for k in range(n)], split.plan, overwrite=self.overwrite, quiet=True)
        except SegmentMismatch as exc:
            self.whole_instead(i, one_line(exc))
            return
        except Exception as exc:  # noqa: BLE001 - reported for this file, as any failure
            self.abandon(i)
            self.fail(i, one_line(exc), split.workers.get(0, {}), max(split.attempts.values()))
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

        from vsjpegfix.video.segment_plan import segment_temporary

        ray = self.ray
        self.pool = pool = Pool(self.options, workers)
        if self.segment_seconds > 0:
            self.radius = ray.get(pool.slots[0].actor.model_frames.remote()) // 2
        if self.bar is not None:  # the rate counts from when the workers are ready
            self.bar.start_t = self.bar.last_print_t = time.time()
        running: dict[Any, tuple[Slot, int, int | None, Path | None]] = {}
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
                    poll_progress(ray, {ref: v[:2] for ref, v in running.items()}, self.bar)
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
                    wait_and_clean(self.jobs[i][1])
            for i, split in self.splits.items():
                if split.active or any(v[1] == i for v in running.values()):
                    wait_and_clean(self.jobs[i][1], segments=True)

    def _lost_worker(self, slot: Slot, out: Path | None, idle: list) -> dict[str, Any]:
        if out is not None:
            remove_temporaries_of(out)
        if self.bar is not None:
            self.bar.update(-(slot.frames - slot.at_start))
        lost = dict(slot.info)
        self.pool.replace(slot)
        idle.append(slot)
        return lost

    def _file_done(self, ref, slot: Slot, i: int, idle: list, RayActorError, RayTaskError) -> None:
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
                self.fail(i, f"the worker died on each of {self.attempts[i]} tries ({one_line(exc)})", lost, self.attempts[i])
            return
        except RayTaskError as exc:  # the file itself failed: reported, as in the local mode
            remove_temporaries_of(out)
            idle.append(slot)
            self.fail(i, one_line(exc), dict(slot.info), self.attempts[i], exc)
            return
        idle.append(slot)
        if self.bar is not None:
            poll_progress(ray, {ref: (slot, i)}, self.bar, ready=True)
        if self.notes.get(i) and isinstance(details, dict):
            details["warnings"] = [*self.notes[i], *details.get("warnings", [])]
        self.finish(i, ClusterEntry(str(path), str(out), "ok", details=details, worker=dict(slot.info), attempts=self.attempts[i]))

    def _segment_done(self, ref, slot: Slot, i: int, k: int, tmp: Path, idle: list, RayActorError, RayTaskError) -> None:
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
                self.fail(i, f"the worker died on each of {split.attempts[k]} tries of segment {k} ({one_line(exc)})", lost, split.attempts[k])
            return
        except RayTaskError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink()
            idle.append(slot)
            if not split.active:
                return
            if is_mismatch(exc):
                self.whole_instead(i, one_line(exc))
            else:
                self.abandon(i)
                self.fail(i, one_line(exc), dict(slot.info), split.attempts[k], exc)
            return
        idle.append(slot)
        if self.bar is not None:
            poll_progress(ray, {ref: (slot, i)}, self.bar, ready=True)
        if not split.active:
            with contextlib.suppress(OSError):
                tmp.unlink()
            return
        split.parts[k], split.paths[k], split.workers[k] = details, tmp, dict(slot.info)
        if len(split.parts) == len(split.plan.segments):
            self.join(i)


def run_from_args(args: argparse.Namespace, entries: list[BatchEntry], bar=None) -> list[BatchEntry]:
    """The ``--ray`` part of ``vsjpegfix batch``: connect (or start a local cluster), run, shut down."""
    try:
        import ray
    except ImportError:
        raise ValueError("--ray needs Ray: pip install 'vsjpegfix[cluster]'") from None
    from vsjpegfix.apps.restore import parse_controls

    parse_controls(args)  # --strength, --start, --duration as numbers for the workers
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
