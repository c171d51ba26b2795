"""Restore every video (and image) under a folder into the same layout under another folder.

A batch can be interrupted at any point (Ctrl-C, SIGTERM, even SIGKILL or a crash) and run again:
an output exists only after its atomic rename, so finished files are skipped; unfinished ones
left as temporary files (``.NAME.XXXXXXXX.part.EXT``) by a killed run are removed at the start of
the next run and redone. A failing file does not stop the others; each file's outcome (restored,
skipped, failed with the reason, ignored with the reason) is returned for the summary and the JSON report.

Videos are recognised by extension (:data:`vsjpegfix.video.containers.VIDEO_SUFFIXES`, raw
elementary streams included) and, for any other extension, by an FFmpeg probe of the file; every
file that is neither video nor image is listed as ignored, never passed over silently. A raw
stream (``.264``, ``.hevc``, ``.m2v``, ...) has no container and no timestamps: its output is
``NAME.EXT.mkv``; so is the output of a video whose container cannot hold the chosen encoder
(``--codec ffv1`` over ``.webm``); the entry's notes say so.

Two batches must not write into the same destination folder at the same time: each removes the
other's temporary files when it starts.
"""

from __future__ import annotations

import fnmatch
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from vsjpegfix.apps.errors import debug_requested, error_line, print_details
from vsjpegfix.frames.image_files import IMAGE_SUFFIXES
from vsjpegfix.frames.safe_write import is_temporary
from vsjpegfix.video.containers import (
    RAW_OUTPUT_SUFFIX,
    RAW_SUFFIXES,
    VIDEO_SUFFIXES,
    default_encoder,
    holds_codec,
    sniff,
)

STATUSES = ("ok", "skipped", "failed", "ignored")
IGNORED_LABEL = "not video or image"  # the summary's word for what "ignored" counts


@dataclass
class BatchEntry:
    """Outcome of one file of a batch."""

    input: str
    output: str
    status: str  # "ok", "skipped", "failed", "ignored"
    reason: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # planning decisions: another output name, and why

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class Job:
    """One file of a batch as planned: restored into ``output`` (``notes`` say why that name), or
    ``ignored`` (the reason) when it is neither video nor image."""

    input: Path
    output: Path | None = None
    kind: str = "video"  # "video" or "image"
    raw: bool = False  # a raw elementary stream (no container, no timestamps)
    notes: list[str] = field(default_factory=list)
    ignored: str = ""
    clash: str = ""  # a video or image not restored: its output is already another input's (fails, with the reason)


def summarize(entries: list[BatchEntry]) -> dict[str, int]:
    """Number of files per status."""
    return {k: sum(e.status == k for e in entries) for k in STATUSES}


def summary_line(counts: dict[str, int]) -> str:
    """``N restored, N skipped, N failed, ignored: N (not video or image)``."""
    return (f"{counts['ok']} restored, {counts['skipped']} skipped, {counts['failed']} failed, "
            f"ignored: {counts.get('ignored', 0)} ({IGNORED_LABEL})")


def find_files(src: Path, pattern: str | None = None) -> Iterator[Path]:
    """Every file under ``src`` (sorted, recursive), optionally filtered by a glob on the relative path or the name.

    Hidden files and folders (a leading dot, e.g. temporary outputs) are not searched.
    """
    for root, dirs, files in os.walk(src):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if name.startswith("."):
                continue
            path = Path(root) / name
            rel = path.relative_to(src).as_posix()
            if pattern and not (fnmatch.fnmatch(rel, pattern) or fnmatch.fnmatch(name, pattern)):
                continue
            yield path


def classify(path: Path, *, images: bool = True) -> Job:
    """Video (by extension, else by an FFmpeg probe: :func:`vsjpegfix.video.containers.sniff`), image
    (by extension) or ignored, with the reason."""
    suffix = path.suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        return Job(path, kind="image") if images else Job(path, kind="image", ignored="an image (videos only)")
    if suffix in VIDEO_SUFFIXES:
        return Job(path, raw=suffix in RAW_SUFFIXES)
    found = sniff(path)
    if not found.video:
        return Job(path, ignored=found.reason)
    return Job(path, raw=found.raw, notes=[f"{path.name}: recognised as {found.format} video by its content"])


def find_media(src: Path, pattern: str | None = None, *, images: bool = True) -> Iterator[Path]:
    """Media files under ``src`` (sorted, recursive): known extensions, and files FFmpeg reads as video."""
    for path in find_files(src, pattern):
        if not classify(path, images=images).ignored:
            yield path


def video_output(job: Job, out: Path, codec: str | None) -> Path:
    """The output of a video: ``out``, or ``out`` + ``.mkv`` for a raw elementary stream (no container,
    no timestamps) and for a container that cannot hold ``codec`` (None: the default encoder for ``out``,
    :func:`~vsjpegfix.video.containers.default_encoder`; a note in ``job.notes`` says which)."""
    if job.raw:
        new = out.with_name(out.name + RAW_OUTPUT_SUFFIX)
        job.notes.append(f"a raw elementary stream (no container, no timestamps): written to {new.name} "
                         "(Matroska, frames at a constant rate)")
        return new
    codec = codec or default_encoder(out)
    if not holds_codec(out.suffix.lower(), codec) and holds_codec(RAW_OUTPUT_SUFFIX, codec):
        new = out.with_name(out.name + RAW_OUTPUT_SUFFIX)
        job.notes.append(f"a {out.suffix or 'no-extension'} file cannot hold {codec} video: written to {new.name}")
        return new
    return out


def plan_batch(src: Path, dst: Path, pattern: str | None, image_suffix: str | None, codec: str | None = None) -> Iterator[Job]:
    """Every file of ``src`` planned (see :class:`Job`): the same relative path under ``dst``; images
    get ``image_suffix`` (None keeps the input's extension); videos as :func:`video_output` says.
    Two inputs planned onto the same output: the second is not restored (``clash`` says why)."""
    taken: dict[Path, Path] = {}
    for path in find_files(src, pattern):
        job = classify(path)
        if job.ignored:
            yield job
            continue
        out = dst / path.relative_to(src)
        if job.kind == "image":
            if image_suffix and path.suffix.lower() in IMAGE_SUFFIXES:
                out = out.with_suffix(image_suffix)
        else:
            out = video_output(job, out, codec)
        key = Path(os.path.normcase(out))
        job.output = out
        if key in taken:
            job.clash = f"its output {out} is already the output of {taken[key]}"
        else:
            taken[key] = path
        yield job


def unrestored_entry(job: Job) -> BatchEntry | None:
    """The entry of a planned file that is not restored (ignored, or its output clashes), else None."""
    if job.ignored:
        return BatchEntry(str(job.input), "", "ignored", job.ignored)
    if job.clash:
        return BatchEntry(str(job.input), str(job.output), "failed", job.clash, notes=job.notes)
    return None


def remove_stale_temporaries(dst: Path) -> list[Path]:
    """Delete temporary outputs left by an interrupted run (hidden ``.NAME.XXXXXXXX.part.EXT`` files)."""
    removed = []
    if not dst.is_dir():
        return removed
    for root, _, files in os.walk(dst):
        for name in files:
            if is_temporary(name):
                path = Path(root) / name
                path.unlink(missing_ok=True)
                removed.append(path)
    return removed


def prepare_destination(src: Path | str, dst: Path | str, *, quiet: bool = False) -> tuple[Path, Path]:
    """Check the folders of a batch, create ``dst`` and remove temporaries of an interrupted run."""
    src, dst = Path(src), Path(dst)
    if not src.is_dir():
        raise ValueError(f"{src} is not a directory")
    src_r, dst_r = src.resolve(), dst.resolve()
    if dst_r == src_r or src_r in dst_r.parents:
        raise ValueError("the destination folder must not be the source folder or inside it")
    try:
        dst.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValueError(f"cannot create the destination folder {dst}: {exc.strerror or exc}") from None
    removed = remove_stale_temporaries(dst)
    if removed and not quiet:
        print(f"vsjpegfix: removed {len(removed)} unfinished output(s) of an interrupted run", file=sys.stderr)
    return src, dst


def run_batch(
    src: Path,
    dst: Path,
    restore_one: Callable[[Path, Path], dict[str, Any]],
    *,
    pattern: str | None = None,
    overwrite: bool = False,
    quiet: bool = False,
    entries: list[BatchEntry] | None = None,
    image_suffix: str | None = ".png",
    codec: str | None = None,
    debug: bool | None = None,
) -> list[BatchEntry]:
    """Apply ``restore_one(input, output)`` to every media file of ``src``; returns one entry per file.

    Videos keep their name (raw streams, and containers that cannot hold ``codec``, get ``.mkv``
    added: :func:`video_output`); images are written with ``image_suffix`` (lossless PNG by default,
    so a restored JPEG is not compressed again; None keeps the input's extension). Files that are
    neither get an ``ignored`` entry with the reason.

    ``entries``, when given, receives each entry as soon as its file is done, so a caller still has
    them when the batch is interrupted (KeyboardInterrupt propagates). A file's failure, whatever
    the exception, is its entry's one-line reason (its traceback on stderr with ``debug``, default:
    ``VSJPEGFIX_DEBUG``).
    """
    src, dst = prepare_destination(src, dst, quiet=quiet)
    entries = [] if entries is None else entries
    debug = debug_requested() if debug is None else debug
    for job in plan_batch(src, dst, pattern, image_suffix, codec):
        entry = unrestored_entry(job)
        if entry is not None:
            entries.append(entry)
            continue
        path, out = job.input, job.output
        if out.exists() and not overwrite:
            entries.append(BatchEntry(str(path), str(out), "skipped", "output exists", notes=job.notes))
            continue
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            details = restore_one(path, out)
        except KeyboardInterrupt:
            raise
        except Exception as exc:  # noqa: BLE001 - one failing file must not stop the batch
            message = error_line(exc)
            entries.append(BatchEntry(str(path), str(out), "failed", message, notes=job.notes))
            if debug:
                print_details(exc)
            if not quiet:
                print(f"vsjpegfix: error: {path}: {message}", file=sys.stderr)
            continue
        entries.append(BatchEntry(str(path), str(out), "ok", details=details, notes=job.notes))
    return entries
