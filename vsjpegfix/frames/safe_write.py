"""Never destroy a file: write to a temporary name in the destination folder, rename when complete."""

from __future__ import annotations

import contextlib
import os
import re
import secrets
from pathlib import Path
from typing import Iterator

TEMP_MARK = ".part"  # temporary outputs: ``.NAME.XXXXXXXX.part.EXT`` beside the destination


class OutputError(ValueError):
    """The output path cannot be used (exists, is the input, unwritable folder)."""


def check_output(src: Path, dst: Path, *, overwrite: bool) -> None:
    """Refuse to write ``dst`` when it is ``src``, exists without ``overwrite``, or its folder is missing."""
    if dst.exists() and src.exists() and os.path.samefile(src, dst):
        raise OutputError(f"output {dst} is the input file; choose another name")
    if dst.is_dir():
        raise OutputError(f"output {dst} is a directory")
    if dst.exists() and not overwrite:
        raise OutputError(f"output {dst} exists; pass --overwrite to replace it")
    parent = dst.parent if str(dst.parent) else Path(".")
    if not parent.is_dir():
        raise OutputError(f"output folder {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise OutputError(f"output folder {parent} is not writable")


def temporary_name(dst: Path) -> Path:
    """A hidden temporary path beside ``dst`` that keeps its extension (so muxers pick the format)."""
    return dst.with_name(f".{dst.stem}.{secrets.token_hex(4)}{TEMP_MARK}{dst.suffix}")


_TEMPORARY = re.compile(r"^\..*\.[0-9a-f]{8}" + re.escape(TEMP_MARK) + r"(\.[^.]*)?$")


def is_temporary(name: str) -> bool:
    """Is ``name`` a temporary output of :func:`temporary_name` (``.NAME.XXXXXXXX.part.EXT``)?"""
    return bool(_TEMPORARY.match(name))


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _publish(tmp: Path, dst: Path, overwrite: bool) -> None:
    """Give ``tmp`` the name ``dst`` in one step; without ``overwrite`` never replace a file that appeared meanwhile."""
    if overwrite:
        os.replace(tmp, dst)
        return
    try:
        os.link(tmp, dst)  # fails if dst exists: no window in which another file could be clobbered
    except FileExistsError:
        raise OutputError(f"output {dst} exists; pass --overwrite to replace it") from None
    except OSError:  # no hard links on this file system: check, then rename
        if dst.exists():
            raise OutputError(f"output {dst} exists; pass --overwrite to replace it") from None
        os.replace(tmp, dst)
        return
    tmp.unlink()


@contextlib.contextmanager
def atomic_output(dst: Path, *, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``dst``; on success move it onto ``dst``, on any failure (or Ctrl-C) delete it.

    The data is flushed to disk before the rename, so ``dst`` is either absent (or the old file)
    or complete, whatever happens (crash, SIGKILL, power loss). With ``overwrite=False`` an
    existing ``dst`` is never replaced (:class:`OutputError`).
    """
    dst = Path(dst)
    tmp = temporary_name(dst)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        _publish(tmp, dst, overwrite)
        _fsync_dir(dst.parent if str(dst.parent) else Path("."))
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
