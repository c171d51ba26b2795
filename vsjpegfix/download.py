"""Verified download of the official FBCNN checkpoints.

The checkpoints are the assets of the upstream release
https://github.com/jiaxi-jiang/FBCNN/releases/tag/v1.0 (Apache-2.0). They are
fetched with the standard library only (``urllib``) and written atomically:
the bytes are streamed into ``<dest>.<random>.part`` next to the destination,
hashed (SHA-256) while streaming, checked against the announced
``Content-Length`` and the expected size and digest, fsynced, and only then
moved onto ``dest`` with :func:`os.replace`. On any failure the partial file
is removed and :class:`DownloadError` is raised, so ``dest`` is either absent,
untouched, or complete and verified.

Verification policy: a file is only accepted when its SHA-256 is known, either
from :data:`OFFICIAL_CHECKPOINTS` or passed explicitly (``sha256=`` /
``--sha256``). When no digest is known the download is refused unless the
caller opts out with ``allow_unverified=True``; the digest actually received
is then printed on stderr so it can be pinned.

Provenance of the pinned values: the upstream project publishes no sizes or
digests. The values below are those that independent public projects recorded
for the v1.0 assets (see the comment above :data:`OFFICIAL_CHECKPOINTS`). A
download that does not match is rejected, never silently accepted.
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Protocol

__all__ = [
    "RELEASE_URL",
    "OfficialCheckpoint",
    "OFFICIAL_CHECKPOINTS",
    "DownloadError",
    "cache_dir",
    "download",
    "fetch_official",
    "get_checkpoint",
    "list_official",
    "official_url",
    "sha256_file",
    "verify_file",
]

#: Base URL of the upstream release that holds the checkpoints.
RELEASE_URL = "https://github.com/jiaxi-jiang/FBCNN/releases/download/v1.0/"

#: Environment variable overriding the cache directory.
ENV_CACHE = "VSJPEGFIX_CACHE"
#: Environment variable overriding the download host (a mirror, or a test server).
ENV_BASE_URL = "VSJPEGFIX_BASE_URL"

_CHUNK = 1 << 20
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_USER_AGENT = "vsjpegfix-downloader/1 (+https://github.com/jiaxi-jiang/FBCNN)"


class DownloadError(RuntimeError):
    """A download or verification failed; the message is a single line."""


@dataclass(frozen=True)
class OfficialCheckpoint:
    """One upstream FBCNN checkpoint and what is known about its bytes."""

    name: str
    filename: str
    url: str
    size: int | None
    sha256: str | None
    channels: int
    description: str


# Sizes and digests of the v1.0 assets. None of them is published by the FBCNN
# project itself; they are the values recorded by independent public projects:
#   fbcnn_color.pth:       size 287755111 in openvinotoolkit/open_model_zoo
#                          models/public/fbcnn/model.yml (which pins a sha384 of the
#                          same file); size and sha256 identical in several other
#                          independent repositories.
#   fbcnn_gray_double.pth: sha256 recorded identically by two independent
#                          repositories, size by one of them.
#   fbcnn_gray.pth:        sha256 recorded by one repository; no exact size found
#                          (so size is None and only the digest is checked).
OFFICIAL_CHECKPOINTS: dict[str, OfficialCheckpoint] = {
    c.name: c
    for c in (
        OfficialCheckpoint(
            name="fbcnn_color",
            filename="fbcnn_color.pth",
            url=RELEASE_URL + "fbcnn_color.pth",
            size=287_755_111,
            sha256="8b0e4ef23d59cf7ac934a342cb31a17619e4fa4a0b3374a9d78c5174312387e8",
            channels=3,
            description="FBCNN, colour (RGB), single JPEG; blind QF prediction",
        ),
        OfficialCheckpoint(
            name="fbcnn_gray",
            filename="fbcnn_gray.pth",
            url=RELEASE_URL + "fbcnn_gray.pth",
            size=None,
            sha256="7beec25b883a6c3bd7d103429b78a2371f7e85c1f5261a6e2e5d0702d9e9f977",
            channels=1,
            description="FBCNN, grayscale (luma), single JPEG",
        ),
        OfficialCheckpoint(
            name="fbcnn_gray_double",
            filename="fbcnn_gray_double.pth",
            url=RELEASE_URL + "fbcnn_gray_double.pth",
            size=287_745_895,
            sha256="4444b8b2393649a4acd5d8730410ec3106d15b6e262a49081e4e87b44cfa5cea",
            channels=1,
            description="FBCNN-A, grayscale (luma), trained with double-JPEG degradation",
        ),
    )
}


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


def _one_line(obj: object) -> str:
    return " ".join(str(obj).split()) or type(obj).__name__


def _norm_sha256(value: str | None) -> str | None:
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
    expected = _norm_sha256(sha256)
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
    expected = _norm_sha256(sha256)
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
            raise fail(f"cannot create {dest.parent}: {_one_line(e)}") from e
        req = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
        try:
            resp = urllib.request.urlopen(req, timeout=timeout)
        except urllib.error.HTTPError as e:
            e.close()
            raise fail(f"HTTP {e.code} {_one_line(e.reason)}") from e
        except urllib.error.URLError as e:
            reason = e.reason
            if isinstance(reason, (TimeoutError, socket.timeout)):
                raise fail(f"timed out after {timeout:g} s") from e
            raise fail(f"cannot connect: {_one_line(reason)}") from e
        except (TimeoutError, socket.timeout) as e:
            raise fail(f"timed out after {timeout:g} s") from e
        except (OSError, ValueError, http.client.HTTPException) as e:
            raise fail(f"cannot connect: {_one_line(e)}") from e

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
                    raise fail(f"connection error after {received} bytes: {_one_line(e)}") from e
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
        raise fail(_one_line(e)) from e
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


def get_checkpoint(name: str) -> OfficialCheckpoint:
    """The official checkpoint called ``name`` (``.pth`` suffix allowed); ValueError if unknown."""
    key = name.strip()
    if key.endswith(".pth"):
        key = key[: -len(".pth")]
    try:
        return OFFICIAL_CHECKPOINTS[key]
    except KeyError:
        valid = ", ".join(OFFICIAL_CHECKPOINTS)
        raise ValueError(f"unknown checkpoint {name!r}; valid names: {valid}") from None


def official_url(name: str, base_url: str | None = None) -> str:
    """The URL ``name`` is fetched from: ``base_url`` or ``$VSJPEGFIX_BASE_URL`` + filename, else upstream."""
    ck = get_checkpoint(name)
    base = base_url if base_url is not None else os.environ.get(ENV_BASE_URL) or None
    if not base:
        return ck.url
    return base.rstrip("/") + "/" + urllib.parse.quote(ck.filename)


def fetch_official(name: str, *, base_url: str | None = None,
                   cache: str | os.PathLike[str] | None = None, force: bool = False,
                   sha256: str | None = None, allow_unverified: bool = False,
                   timeout: float = 60, progress: bool = True) -> Path:
    """Path to the verified checkpoint ``name``, downloading it into the cache if needed.

    ``base_url`` (or ``$VSJPEGFIX_BASE_URL``) replaces the upstream host: the file
    is fetched from ``<base_url>/<filename>``. ``cache`` defaults to
    :func:`cache_dir`. A cached file is re-verified (size and SHA-256) on every
    call and re-downloaded if it does not match; ``force=True`` always downloads
    (the cached file is replaced only by a verified download). ``sha256``
    overrides the pinned digest. When no digest is known at all the file is
    refused (:class:`DownloadError`) unless ``allow_unverified=True``.
    """
    ck = get_checkpoint(name)
    override = _norm_sha256(sha256)
    expected = override or ck.sha256
    # The pinned size belongs to the pinned digest; an explicit other digest drops it.
    size = ck.size if override is None or override == ck.sha256 else None
    url = official_url(ck.name, base_url)
    dest = Path(cache).expanduser() if cache is not None else cache_dir()
    dest = dest / ck.filename

    if expected is None and not allow_unverified:
        raise DownloadError(
            f"{ck.name}: no SHA-256 is known for {ck.filename}, so it cannot be verified; "
            "pass sha256=... (--sha256) or allow_unverified=True")
    if not force and dest.is_file():
        if expected is None:
            return dest  # allow_unverified: accept what is there
        if verify_file(dest, sha256=expected, size=size):
            return dest
        print(f"warning: cached {dest} does not match its checksum; downloading it again",
              file=sys.stderr)
    return download(url, dest, sha256=expected, size=size, timeout=timeout,
                    progress=progress, allow_unverified=allow_unverified)


def list_official(cache: str | os.PathLike[str] | None = None,
                  base_url: str | None = None) -> list[dict[str, Any]]:
    """One dict per official checkpoint, for ``vsjpegfix weights list``.

    Keys: name, filename, channels, size, sha256, url, path (the cached file if
    present, else None; presence only, not re-hashed), description.
    """
    root = Path(cache).expanduser() if cache is not None else cache_dir()
    rows = []
    for ck in OFFICIAL_CHECKPOINTS.values():
        p = root / ck.filename
        rows.append({
            "name": ck.name,
            "filename": ck.filename,
            "channels": ck.channels,
            "size": ck.size,
            "sha256": ck.sha256,
            "url": official_url(ck.name, base_url),
            "path": p if p.is_file() else None,
            "description": ck.description,
        })
    return rows
