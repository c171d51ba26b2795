"""The command line's error boundary: whatever a file does, the user sees one line naming it.

Errors the code raises on purpose (:data:`EXPECTED`: bad options, unreadable or broken files,
encoder refusals, a full disk) already carry a one-line message for the user and are shown as
they are. Anything else is a defect or a case nobody foresaw (an exception from deep inside PyAV,
numpy or torch on a strange file): it is shown as one line with the file's name and the
exception's type, and its traceback only with ``--debug`` or ``VSJPEGFIX_DEBUG=1``. Used by the
single-file command, the local batch and the Ray workers alike.
"""

from __future__ import annotations

import os
import sys
import traceback

DEBUG_ENV = "VSJPEGFIX_DEBUG"


class FileFailure(Exception):
    """A file failed: ``message`` is its one line; ``details`` the original traceback (for ``--debug``).

    Plain and picklable, so it crosses from a Ray worker to the driver whatever the original was.
    """

    def __init__(self, message: str, details: str = "") -> None:
        super().__init__(message, details)
        self.message, self.details = message, details

    def __str__(self) -> str:
        return self.message


def _expected() -> tuple[type[BaseException], ...]:
    import av

    from vsjpegfix.engine.device import EngineError
    from vsjpegfix.video.report import TranscodeError
    from vsjpegfix.weights.download import DownloadError

    return (ValueError, OSError, av.FFmpegError, EngineError, TranscodeError, DownloadError, FileFailure)


def is_expected(exc: BaseException) -> bool:
    """Is ``exc`` an error raised on purpose, whose message is written for the user?"""
    return isinstance(exc, _expected())


def error_line(exc: BaseException, path: object = None) -> str:
    """The one line for ``exc``: an expected error's own message; otherwise ``PATH: unexpected
    error (Type: message)`` with a pointer to ``--debug``."""
    text = str(exc)
    line = next((s.strip() for s in text.splitlines() if s.strip()), "") or type(exc).__name__
    if is_expected(exc):
        return line
    where = f"{path}: " if path is not None and str(path) not in line else ""
    return f"{where}unexpected error ({type(exc).__name__}: {line}); run with --debug or {DEBUG_ENV}=1 for the traceback"


def debug_requested(argv: list[str] | None = None) -> bool:
    """``--debug`` among the arguments (before a ``--``), or ``VSJPEGFIX_DEBUG`` set to anything but 0/empty."""
    if os.environ.get(DEBUG_ENV, "").strip() not in ("", "0"):
        return True
    args = list(argv or [])
    return "--debug" in (args[: args.index("--")] if "--" in args else args)


def as_failure(exc: BaseException, path: object = None) -> FileFailure:
    """``exc`` as a :class:`FileFailure` (its one line, and its traceback for ``--debug``)."""
    if isinstance(exc, FileFailure):
        return exc
    return FileFailure(error_line(exc, path), "".join(traceback.format_exception(exc)))


def print_details(exc: BaseException) -> None:
    """The traceback behind a failure, on stderr (``--debug``)."""
    details = getattr(exc, "details", "") or "".join(traceback.format_exception(exc))
    sys.stderr.write(details if details.endswith("\n") else details + "\n")
