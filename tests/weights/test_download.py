"""Tests for vsjpegfix.weights.download against a real local HTTP server (no internet)."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from vsjpegfix.weights import download as dl
from vsjpegfix.weights import fetch

PAYLOAD = os.urandom(200_000)
PAYLOAD_SHA = hashlib.sha256(PAYLOAD).hexdigest()
WRONG_SHA = "0" * 64


class _Handler(BaseHTTPRequestHandler):
    """Routes: /ok, /<name>.pth, /truncated, /slow, /status/<code>[/...]."""

    hits: list[str] = []

    def log_message(self, *args: object) -> None:  # keep pytest output clean
        pass

    def _send_body(self, body: bytes, length: int | None = None) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body) if length is None else length))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        type(self).hits.append(self.path)
        path = self.path.split("?", 1)[0]
        if path.startswith("/status/"):
            self.send_error(int(path.split("/")[2]))
        elif path == "/ok" or path.endswith(".pth"):
            self._send_body(PAYLOAD)
        elif path == "/truncated":
            # Announce the full length, send half, then close the connection.
            self._send_body(PAYLOAD[: len(PAYLOAD) // 2], length=len(PAYLOAD))
            self.wfile.flush()
            self.close_connection = True
        elif path == "/slow":
            time.sleep(1.5)
            try:
                self._send_body(PAYLOAD)
            except OSError:
                pass
        else:
            self.send_error(404)


@pytest.fixture
def server():
    """A ThreadingHTTPServer on 127.0.0.1 (ephemeral port); yields its base URL."""
    _Handler.hits = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch, tmp_path):
    """No test may read a user's cache or be redirected by the caller's environment."""
    monkeypatch.delenv(dl.ENV_BASE_URL, raising=False)
    monkeypatch.setenv(dl.ENV_CACHE, str(tmp_path / "cache"))


def _parts(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.part"))


# ------------------------------------------------------------------ download()


def test_success_verified_and_no_part_left(server, tmp_path):
    dest = tmp_path / "sub" / "model.pth"
    out = dl.download(server + "ok", dest, sha256=PAYLOAD_SHA, size=len(PAYLOAD), progress=False)
    assert out == dest
    assert dest.read_bytes() == PAYLOAD
    assert dl.sha256_file(dest) == PAYLOAD_SHA
    assert dl.verify_file(dest, sha256=PAYLOAD_SHA, size=len(PAYLOAD))
    assert _parts(dest.parent) == []


def test_success_with_progress_bar(server, tmp_path, capsys):
    dest = tmp_path / "model.pth"
    dl.download(server + "ok", dest, sha256=PAYLOAD_SHA.upper(), progress=True)
    assert dest.read_bytes() == PAYLOAD
    assert capsys.readouterr().out == ""  # the bar goes to stderr only


def test_checksum_mismatch(server, tmp_path):
    dest = tmp_path / "model.pth"
    with pytest.raises(dl.DownloadError) as ei:
        dl.download(server + "ok", dest, sha256=WRONG_SHA, progress=False)
    msg = str(ei.value)
    assert "checksum mismatch" in msg and WRONG_SHA in msg and PAYLOAD_SHA in msg
    assert server + "ok" in msg and "\n" not in msg
    assert not dest.exists()
    assert _parts(tmp_path) == []


def test_size_mismatch_rejected_before_body(server, tmp_path):
    dest = tmp_path / "model.pth"
    with pytest.raises(dl.DownloadError, match="size mismatch"):
        dl.download(server + "ok", dest, sha256=PAYLOAD_SHA, size=len(PAYLOAD) + 1, progress=False)
    assert not dest.exists()
    assert _parts(tmp_path) == []


def test_truncated_transfer(server, tmp_path):
    dest = tmp_path / "model.pth"
    with pytest.raises(dl.DownloadError) as ei:
        dl.download(server + "truncated", dest, sha256=PAYLOAD_SHA, progress=False)
    assert "truncated transfer: received 100000 of 200000 bytes" in str(ei.value)
    assert not dest.exists()
    assert _parts(tmp_path) == []


def test_truncated_transfer_detected_even_unverified(server, tmp_path):
    dest = tmp_path / "model.pth"
    with pytest.raises(dl.DownloadError, match="truncated transfer"):
        dl.download(server + "truncated", dest, allow_unverified=True, progress=False)
    assert not dest.exists()
    assert _parts(tmp_path) == []


@pytest.mark.parametrize("code", [500, 404])
def test_http_error_status(server, tmp_path, code):
    dest = tmp_path / "model.pth"
    with pytest.raises(dl.DownloadError) as ei:
        dl.download(server + f"status/{code}", dest, sha256=PAYLOAD_SHA, progress=False)
    assert f"HTTP {code}" in str(ei.value)
    assert f"status/{code}" in str(ei.value)
    assert not dest.exists()
    assert _parts(tmp_path) == []


def test_connection_refused(tmp_path):
    with socket.socket() as s:  # grab a free port, then close it: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dest = tmp_path / "model.pth"
    with pytest.raises(dl.DownloadError, match="cannot connect"):
        dl.download(f"http://127.0.0.1:{port}/ok", dest, sha256=PAYLOAD_SHA, timeout=2, progress=False)
    assert not dest.exists()
    assert _parts(tmp_path) == []


def test_timeout(server, tmp_path):
    dest = tmp_path / "model.pth"
    with pytest.raises(dl.DownloadError, match="timed out"):
        dl.download(server + "slow", dest, sha256=PAYLOAD_SHA, timeout=0.3, progress=False)
    assert not dest.exists()
    assert _parts(tmp_path) == []


def test_keyboard_interrupt_cleans_up(server, tmp_path, monkeypatch):
    class Boom:
        def update(self, n):
            raise KeyboardInterrupt

        def close(self):
            pass

    monkeypatch.setattr(fetch, "_progress_bar", lambda total, desc, enabled: Boom())
    dest = tmp_path / "model.pth"
    with pytest.raises(dl.DownloadError, match="interrupted"):
        dl.download(server + "ok", dest, sha256=PAYLOAD_SHA, progress=True)
    assert not dest.exists()
    assert _parts(tmp_path) == []


def test_failed_redownload_keeps_existing_good_file(server, tmp_path):
    dest = tmp_path / "model.pth"
    dl.download(server + "ok", dest, sha256=PAYLOAD_SHA, progress=False)
    for url, sha in ((server + "status/500", PAYLOAD_SHA), (server + "ok", WRONG_SHA),
                     (server + "truncated", PAYLOAD_SHA)):
        with pytest.raises(dl.DownloadError):
            dl.download(url, dest, sha256=sha, progress=False)
        assert dest.read_bytes() == PAYLOAD
        assert _parts(tmp_path) == []


def test_unverified_refused_without_opt_in(server, tmp_path):
    dest = tmp_path / "model.pth"
    with pytest.raises(dl.DownloadError, match="allow_unverified"):
        dl.download(server + "ok", dest, progress=False)
    assert _Handler.hits == []  # refused before any request
    assert not dest.exists()


def test_unverified_opt_in_reports_digest(server, tmp_path, capsys):
    dest = tmp_path / "model.pth"
    dl.download(server + "ok", dest, allow_unverified=True, progress=False)
    assert dest.read_bytes() == PAYLOAD
    err = capsys.readouterr().err
    assert "UNVERIFIED" in err and PAYLOAD_SHA in err


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="SHA-256"):
        dl.download("http://127.0.0.1:9/x", tmp_path / "x", sha256="abc")
    with pytest.raises(ValueError, match="scheme"):
        dl.download("ftp://example.invalid/x", tmp_path / "x", sha256=PAYLOAD_SHA)


# ------------------------------------------------------------------ fetch_official()


@pytest.fixture
def pinned_color(monkeypatch):
    """fbcnn_color with its expected digest and size replaced by the test payload's."""
    ck = dataclasses.replace(dl.OFFICIAL_CHECKPOINTS["fbcnn_color"], sha256=PAYLOAD_SHA, size=len(PAYLOAD))
    monkeypatch.setitem(dl.OFFICIAL_CHECKPOINTS, "fbcnn_color", ck)
    return ck


def test_fetch_official_downloads_then_uses_cache(server, tmp_path, pinned_color):
    cache = tmp_path / "c"
    path = dl.fetch_official("fbcnn_color", base_url=server, cache=cache, progress=False)
    assert path == cache / "fbcnn_color.pth"
    assert path.read_bytes() == PAYLOAD
    assert _Handler.hits == ["/fbcnn_color.pth"]
    assert _parts(cache) == []

    # Cached and verified: no second request.
    assert dl.fetch_official("fbcnn_color", base_url=server, cache=cache, progress=False) == path
    assert len(_Handler.hits) == 1

    # A corrupted cache entry is detected and replaced.
    path.write_bytes(PAYLOAD[:-1] + bytes([PAYLOAD[-1] ^ 1]))
    dl.fetch_official("fbcnn_color", base_url=server, cache=cache, progress=False)
    assert path.read_bytes() == PAYLOAD
    assert len(_Handler.hits) == 2

    # force=True downloads again.
    dl.fetch_official("fbcnn_color", base_url=server, cache=cache, force=True, progress=False)
    assert len(_Handler.hits) == 3


def test_fetch_official_env_base_url_and_default_cache(server, tmp_path, monkeypatch, pinned_color):
    monkeypatch.setenv(dl.ENV_BASE_URL, server.rstrip("/"))
    path = dl.fetch_official("fbcnn_color.pth", progress=False)
    assert path == tmp_path / "cache" / "fbcnn_color.pth"
    assert path.read_bytes() == PAYLOAD
    rows = {r["name"]: r for r in dl.list_official()}
    assert rows["fbcnn_color"]["path"] == path
    assert rows["fbcnn_color"]["url"] == server + "fbcnn_color.pth"
    assert rows["fbcnn_gray"]["path"] is None


def test_fetch_official_failed_force_keeps_cached_file(server, tmp_path, pinned_color):
    cache = tmp_path / "c"
    path = dl.fetch_official("fbcnn_color", base_url=server, cache=cache, progress=False)
    with pytest.raises(dl.DownloadError, match="HTTP 500"):
        dl.fetch_official("fbcnn_color", base_url=server + "status/500", cache=cache,
                          force=True, progress=False)
    assert path.read_bytes() == PAYLOAD
    assert _parts(cache) == []


def test_fetch_official_real_digest_rejects_other_bytes(server, tmp_path):
    # The pinned upstream digest/size do not match the test payload: must fail, leave nothing.
    cache = tmp_path / "c"
    with pytest.raises(dl.DownloadError, match="mismatch"):
        dl.fetch_official("fbcnn_color", base_url=server, cache=cache, progress=False)
    assert not (cache / "fbcnn_color.pth").exists()
    assert _parts(cache) == []


def test_fetch_official_explicit_sha256_override(server, tmp_path):
    cache = tmp_path / "c"
    path = dl.fetch_official("fbcnn_gray_double", base_url=server, cache=cache,
                             sha256=PAYLOAD_SHA, progress=False)
    assert path.read_bytes() == PAYLOAD


def test_fetch_official_unknown_digest_policy(server, tmp_path, monkeypatch):
    ck = dataclasses.replace(dl.OFFICIAL_CHECKPOINTS["fbcnn_gray"], sha256=None, size=None)
    monkeypatch.setitem(dl.OFFICIAL_CHECKPOINTS, "fbcnn_gray", ck)
    cache = tmp_path / "c"
    with pytest.raises(dl.DownloadError, match="cannot be verified"):
        dl.fetch_official("fbcnn_gray", base_url=server, cache=cache, progress=False)
    assert _Handler.hits == []
    path = dl.fetch_official("fbcnn_gray", base_url=server, cache=cache, allow_unverified=True,
                             progress=False)
    assert path.read_bytes() == PAYLOAD


def test_unknown_name():
    with pytest.raises(ValueError) as ei:
        dl.fetch_official("fbcnn_colour")
    msg = str(ei.value)
    assert "fbcnn_colour" in msg
    for name in ("fbcnn_color", "fbcnn_gray", "fbcnn_gray_double"):
        assert name in msg
    assert not isinstance(ei.value, KeyError)


# ------------------------------------------------------------------ metadata and cache_dir()


def test_official_table():
    assert set(dl.OFFICIAL_CHECKPOINTS) == {"fbcnn_color", "fbcnn_gray", "fbcnn_gray_double"}
    for name, ck in dl.OFFICIAL_CHECKPOINTS.items():
        assert ck.name == name
        assert ck.filename == name + ".pth"
        assert ck.url == "https://github.com/jiaxi-jiang/FBCNN/releases/download/v1.0/" + ck.filename
        assert ck.channels == (3 if name == "fbcnn_color" else 1)
        assert ck.sha256 is None or len(ck.sha256) == 64 and ck.sha256 == ck.sha256.lower()
        assert ck.size is None or ck.size > 0
    with pytest.raises(dataclasses.FrozenInstanceError):
        dl.OFFICIAL_CHECKPOINTS["fbcnn_color"].sha256 = None  # type: ignore[misc]


def test_list_official_shape(tmp_path):
    rows = dl.list_official(cache=tmp_path)
    assert [r["name"] for r in rows] == ["fbcnn_color", "fbcnn_gray", "fbcnn_gray_double"]
    for r in rows:
        assert {"name", "size", "sha256", "url", "path"} <= set(r)
        assert r["path"] is None
        assert r["url"].startswith("https://github.com/jiaxi-jiang/FBCNN/releases/download/v1.0/")


def test_cache_dir_env(monkeypatch, tmp_path):
    monkeypatch.setenv("VSJPEGFIX_CACHE", str(tmp_path / "explicit"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert dl.cache_dir() == tmp_path / "explicit"
    monkeypatch.delenv("VSJPEGFIX_CACHE")
    assert dl.cache_dir() == tmp_path / "xdg" / "vsjpegfix"
    monkeypatch.setenv("XDG_CACHE_HOME", "")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert dl.cache_dir() == tmp_path / "home" / ".cache" / "vsjpegfix"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert dl.cache_dir() == tmp_path / "home" / ".cache" / "vsjpegfix"
