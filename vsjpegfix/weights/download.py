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

import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vsjpegfix.weights.fetch import (
    ENV_CACHE,
    DownloadError,
    cache_dir,
    download,
    norm_sha256,
    sha256_file,
    verify_file,
)

__all__ = [
    "RELEASE_URL",
    "OfficialCheckpoint",
    "OFFICIAL_CHECKPOINTS",
    "DownloadError",
    "ENV_BASE_URL",
    "ENV_CACHE",
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


#: Environment variable overriding the download host (a mirror, or a test server).
ENV_BASE_URL = "VSJPEGFIX_BASE_URL"


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
    override = norm_sha256(sha256)
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
