"""Restore every video (and image) under a folder into the same layout under another folder.

A batch can be interrupted at any point and run again: finished outputs exist only after their
atomic rename, so they are skipped; unfinished ones left as temporary files by a killed run are
removed and redone. A failing file does not stop the others.
"""

from __future__ import annotations

import fnmatch
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from .image_io import IMAGE_SUFFIXES

VIDEO_SUFFIXES = {".mp4", ".mkv", ".mov", ".m4v", ".avi", ".webm", ".ts", ".m2ts", ".mts", ".flv", ".wmv", ".mpg", ".mpeg", ".3gp", ".y4m"}
TEMP_MARK = ".part"


@dataclass
class BatchEntry:
    """Outcome of one file of a batch."""

    input: str
    output: str
    status: str  # "ok", "skipped", "failed"
    reason: str = ""
    details: dict[str, Any] = field(default_factory=dict)


def find_media(src: Path, pattern: str | None = None, *, images: bool = True) -> Iterator[Path]:
    """Media files under ``src`` (sorted, recursive), optionally filtered by a glob on the relative path."""
    suffixes = VIDEO_SUFFIXES | (IMAGE_SUFFIXES if images else set())
    for root, dirs, files in os.walk(src):
        dirs.sort()
        for name in sorted(files):
            path = Path(root) / name
            if name.startswith(".") or path.suffix.lower() not in suffixes:
                continue
            rel = path.relative_to(src).as_posix()
            if pattern and not (fnmatch.fnmatch(rel, pattern) or fnmatch.fnmatch(name, pattern)):
                continue
            yield path


def remove_stale_temporaries(dst: Path) -> list[Path]:
    """Delete temporary outputs (``.NAME.XXXXXXXX.part.EXT``) left by an interrupted run."""
    removed = []
    if not dst.is_dir():
        return removed
    for root, _, files in os.walk(dst):
        for name in files:
            if name.startswith(".") and TEMP_MARK + "." in name or name.endswith(TEMP_MARK):
                path = Path(root) / name
                path.unlink(missing_ok=True)
                removed.append(path)
    return removed


def run_batch(
    src: Path,
    dst: Path,
    restore_one: Callable[[Path, Path], dict[str, Any]],
    *,
    pattern: str | None = None,
    overwrite: bool = False,
    quiet: bool = False,
) -> list[BatchEntry]:
    """Apply ``restore_one(input, output)`` to every media file of ``src``; returns one entry per file."""
    if not src.is_dir():
        raise ValueError(f"{src} is not a directory")
    src_r, dst_r = src.resolve(), dst.resolve()
    if dst_r == src_r or src_r in dst_r.parents:
        raise ValueError("the destination folder must not be the source folder or inside it")
    dst.mkdir(parents=True, exist_ok=True)
    removed = remove_stale_temporaries(dst)
    if removed and not quiet:
        print(f"vsjpegfix: removed {len(removed)} unfinished output(s) of an interrupted run", file=sys.stderr)
    entries: list[BatchEntry] = []
    for path in find_media(src, pattern):
        out = dst / path.relative_to(src)
        if out.exists() and not overwrite:
            entries.append(BatchEntry(str(path), str(out), "skipped", "output exists"))
            continue
        out.parent.mkdir(parents=True, exist_ok=True)
        try:
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
