"""Restore every video (and image) under a folder into the same layout under another folder.

A batch can be interrupted at any point (Ctrl-C, SIGTERM, even SIGKILL or a crash) and run again:
an output exists only after its atomic rename, so finished files are skipped; unfinished ones
left as temporary files (``.NAME.XXXXXXXX.part.EXT``) by a killed run are removed at the start of
the next run and redone. A failing file does not stop the others; each file's outcome (restored,
skipped, failed with the reason) is returned for the summary and the JSON report.

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

from vsjpegfix.frames.image_files import IMAGE_SUFFIXES
from vsjpegfix.frames.safe_write import is_temporary

VIDEO_SUFFIXES = {".mp4", ".mkv", ".mov", ".m4v", ".avi", ".webm", ".ts", ".m2ts", ".mts", ".flv", ".wmv", ".mpg", ".mpeg", ".3gp", ".y4m"}
STATUSES = ("ok", "skipped", "failed")


@dataclass
class BatchEntry:
    """Outcome of one file of a batch."""

    input: str
    output: str
    status: str  # "ok", "skipped", "failed"
    reason: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def summarize(entries: list[BatchEntry]) -> dict[str, int]:
    """Number of files per status."""
    return {k: sum(e.status == k for e in entries) for k in STATUSES}


def find_media(src: Path, pattern: str | None = None, *, images: bool = True) -> Iterator[Path]:
    """Media files under ``src`` (sorted, recursive), optionally filtered by a glob on the relative path.

    Hidden files and folders (a leading dot, e.g. temporary outputs) are skipped.
    """
    suffixes = VIDEO_SUFFIXES | (IMAGE_SUFFIXES if images else set())
    for root, dirs, files in os.walk(src):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            path = Path(root) / name
            if name.startswith(".") or path.suffix.lower() not in suffixes:
                continue
            rel = path.relative_to(src).as_posix()
            if pattern and not (fnmatch.fnmatch(rel, pattern) or fnmatch.fnmatch(name, pattern)):
                continue
            yield path


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


def plan_outputs(src: Path, dst: Path, pattern: str | None, image_suffix: str | None) -> Iterator[tuple[Path, Path]]:
    """``(input, output)`` for every media file of ``src``: same relative path under ``dst``;
    images get ``image_suffix`` (None keeps the input's extension)."""
    for path in find_media(src, pattern):
        out = dst / path.relative_to(src)
        if image_suffix and path.suffix.lower() in IMAGE_SUFFIXES:
            out = out.with_suffix(image_suffix)
        yield path, out


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
) -> list[BatchEntry]:
    """Apply ``restore_one(input, output)`` to every media file of ``src``; returns one entry per file.

    Videos keep their name; images are written with ``image_suffix`` (lossless PNG by default, so
    a restored JPEG is not compressed again; None keeps the input's extension).

    ``entries``, when given, receives each entry as soon as its file is done, so a caller still has
    them when the batch is interrupted (KeyboardInterrupt propagates).
    """
    src, dst = prepare_destination(src, dst, quiet=quiet)
    entries = [] if entries is None else entries
    for path, out in plan_outputs(src, dst, pattern, image_suffix):
        if out.exists() and not overwrite:
            entries.append(BatchEntry(str(path), str(out), "skipped", "output exists"))
            continue
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            details = restore_one(path, out)
        except KeyboardInterrupt:
            raise
        except Exception as exc:  # noqa: BLE001 - one failing file must not stop the batch
            message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            entries.append(BatchEntry(str(path), str(out), "failed", message))
            if not quiet:
                print(f"vsjpegfix: error: {path}: {message}", file=sys.stderr)
            continue
        entries.append(BatchEntry(str(path), str(out), "ok", details=details))
    return entries
