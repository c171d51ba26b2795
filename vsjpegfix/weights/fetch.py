"""Verified, atomic download of one file over HTTP(S), with the standard library only (``urllib``).

The bytes are streamed into ``<dest>.<random>.part`` next to the destination, hashed (SHA-256)
while streaming, checked against the announced ``Content-Length`` and the expected size and
digest, fsynced, and only then moved onto ``dest`` with :func:`os.replace`. On any failure the
partial file is removed and :class:`DownloadError` is raised, so ``dest`` is either absent,
untouched, or complete and verified. What is downloaded (the official FBCNN checkpoints) is in
:mod:`vsjpegfix.weights.download`.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import secrets
import socket
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, BinaryIO, Protocol

_CHUNK = 1 << 20


_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")


_USER_AGENT = "vsjpegfix-downloader/1 (+https://github.com/jiaxi-jiang/FBCNN)"


#: Environment variable overriding the cache directory.
ENV_CACHE = "VSJPEGFIX_CACHE"


class DownloadError(RuntimeError):
    """A download or verification failed; the message is a single line."""


class _Bar(Protocol):
    def update(self, n: int) -> Any: ...
    def close(self) -> Any: ...


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def _progress_bar(total: int | None, desc: str, enabled: bool) -> _Bar:
    """A tqdm byte counter on stderr, or a no-op when disabled or tqdm is missing."""
    if not enabled:
        return _NoBar()
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover - tqdm is a dependency
        return _NoBar()
    return tqdm(total=total, desc=desc, unit="B", unit_scale=True, unit_divisor=1024,
                file=sys.stderr, leave=False, dynamic_ncols=True)


def one_line(obj: object) -> str:
    return " ".join(str(obj).split()) or type(obj).__name__


def norm_sha256(value: str | None) -> str | None:
    """Lower-case a hex SHA-256; ValueError if it is not 64 hex digits."""
    if value is None:
        return None
    v = value.strip().lower()
    if not _SHA256_RE.match(v):
        raise ValueError(f"not a SHA-256 hex digest (64 hex digits): {value!r}")
    return v


def cache_dir() -> Path:
    """Where checkpoints are cached.

    ``$VSJPEGFIX_CACHE`` if set, else ``$XDG_CACHE_HOME/vsjpegfix``, else
    ``~/.cache/vsjpegfix``. Empty variables count as unset.
    """
    env = os.environ.get(ENV_CACHE)
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg:
        return Path(xdg).expanduser() / "vsjpegfix"
    return Path.home() / ".cache" / "vsjpegfix"


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def verify_file(path: str | os.PathLike[str], *, sha256: str | None = None,
                size: int | None = None) -> bool:
    """True when ``path`` is a file with the given size and SHA-256 (each if given).

    With neither ``sha256`` nor ``size`` this only tells that the file exists;
    callers wanting a verified file must supply a digest.
    """
    p = Path(path)
    try:
        st = p.stat()
    except OSError:
        return False
    if not p.is_file():
        return False
    if size is not None and st.st_size != size:
        return False
    expected = norm_sha256(sha256)
    return expected is None or sha256_file(p) == expected


def _fsync_dir(directory: Path) -> None:
    """Best-effort fsync of a directory so a rename survives a crash (POSIX only)."""
    if os.name != "posix":
        return
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _open_part(dest: Path) -> tuple[Path, BinaryIO]:
    """Create ``<dest>.<random>.part`` exclusively (mode 0666 minus umask)."""
    for _ in range(16):
        part = dest.with_name(f"{dest.name}.{secrets.token_hex(6)}.part")
        try:
            fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
        except FileExistsError:
            continue
        return part, os.fdopen(fd, "wb")
    raise FileExistsError(f"could not create a temporary file next to {dest}")


def download(url: str, dest: str | os.PathLike[str], *, sha256: str | None = None,
             size: int | None = None, timeout: float = 60, progress: bool = True,
             allow_unverified: bool = False) -> Path:
    """Download ``url`` to ``dest`` atomically and verify it.

    ``sha256`` (hex) is required unless ``allow_unverified=True``; without it the
    download is refused before any network access. ``size`` (bytes), when given,
    must match the announced ``Content-Length`` and the bytes received. A
    transfer shorter than its ``Content-Length`` is an error. ``timeout`` is the
    socket timeout in seconds (connect and each read). The progress bar goes to
    stderr.

    Returns ``dest`` as a :class:`Path`. Raises :class:`DownloadError` (one line,
    naming the URL) on any failure, including Ctrl-C; the temporary ``.part``
    file is then removed and an existing ``dest`` is left untouched.
    """
    dest = Path(dest)
    expected = norm_sha256(sha256)
    scheme = urllib.parse.urlsplit(url).scheme.lower()
    if scheme not in ("http", "https", "file"):
        raise ValueError(f"unsupported URL scheme {scheme!r} in {url!r} (http, https or file)")
    if size is not None and size < 0:
        raise ValueError(f"size must be >= 0, got {size}")
    if expected is None and not allow_unverified:
        raise DownloadError(
            f"{url}: refusing to download without a known SHA-256; pass sha256=... "
            "(--sha256) or allow_unverified=True to accept an unverified file")

    def fail(what: str) -> DownloadError:
        return DownloadError(f"download of {url} failed: {what}")

    part: Path | None = None
    fh: BinaryIO | None = None
    bar: _Bar | None = None
    try:
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise fail(f"cannot create {dest.parent}: {one_line(e)}") from e
        req = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
        try:
            resp = urllib.request.urlopen(req, timeout=timeout)
        except urllib.error.HTTPError as e:
            e.close()
            raise fail(f"HTTP {e.code} {one_line(e.reason)}") from e
        except urllib.error.URLError as e:
            reason = e.reason
            if isinstance(reason, (TimeoutError, socket.timeout)):
                raise fail(f"timed out after {timeout:g} s") from e
            raise fail(f"cannot connect: {one_line(reason)}") from e
        except (TimeoutError, socket.timeout) as e:
            raise fail(f"timed out after {timeout:g} s") from e
        except (OSError, ValueError, http.client.HTTPException) as e:
            raise fail(f"cannot connect: {one_line(e)}") from e

        with resp:
            length: int | None = None
            header = resp.headers.get("Content-Length")
            if header is not None:
                try:
                    length = int(header)
                except ValueError:
                    length = None
            if length is not None and size is not None and length != size:
                raise fail(f"size mismatch: expected {size} bytes, server announces {length}")

            part, fh = _open_part(dest)
            bar = _progress_bar(length if length is not None else size, dest.name, progress)
            hasher = hashlib.sha256()
            received = 0
            while True:
                try:
                    chunk = resp.read(_CHUNK)
                except (TimeoutError, socket.timeout) as e:
                    raise fail(f"timed out after {timeout:g} s ({received} bytes received)") from e
                except (OSError, http.client.HTTPException) as e:  # reset, IncompleteRead, ...
                    raise fail(f"connection error after {received} bytes: {one_line(e)}") from e
                if not chunk:
                    break
                fh.write(chunk)
                hasher.update(chunk)
                received += len(chunk)
                bar.update(len(chunk))

        if length is not None and received != length:
            raise fail(f"truncated transfer: received {received} of {length} bytes")
        if size is not None and received != size:
            raise fail(f"size mismatch: expected {size} bytes, received {received}")
        got = hasher.hexdigest()
        if expected is not None and got != expected:
            raise fail(f"checksum mismatch: expected {expected}, got {got}")

        fh.flush()
        os.fsync(fh.fileno())
        fh.close()
        fh = None
        os.replace(part, dest)
        part = None
        _fsync_dir(dest.parent)
        if expected is None:
            print(f"warning: {dest} was downloaded UNVERIFIED from {url}; "
                  f"sha256 {got} ({received} bytes)", file=sys.stderr)
        return dest
    except KeyboardInterrupt as e:
        raise DownloadError(f"download of {url} failed: interrupted") from e
    except DownloadError:
        raise
    except OSError as e:  # local write/fsync/rename problems
        raise fail(one_line(e)) from e
    finally:
        if bar is not None:
            try:
                bar.close()
            except Exception:  # noqa: BLE001 - never mask the real outcome
                pass
        if fh is not None:
            try:
                fh.close()
            except OSError:
                pass
        if part is not None:
            try:
                part.unlink()
            except FileNotFoundError:
                pass
            except OSError:
                pass
