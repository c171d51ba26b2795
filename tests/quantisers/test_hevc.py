"""HEVC slice-header QPs against what libx265 itself reports per frame (its CSV log), over real encodes."""

from __future__ import annotations

import csv
from pathlib import Path

import av
import numpy as np
import pytest

from vsjpegfix.quantisers.hevc import HevcQpReader

skimage_data = pytest.importorskip("skimage.data")
W, H = 160, 96


def _encode(path: Path, params: str, fmt: str, frames: int = 12, pix_fmt: str = "yuv420p") -> list[float]:
    """Encode a panning crop of a real photo; returns x265's per-frame QP in decode (encode) order."""
    log = Path(path.stem + ".csv")  # relative (the caller chdirs to tmp_path): x265-params cannot quote '=' in a path
    _write(path, f"{params}:log-level=error:csv={log}:csv-log-level=1", fmt, frames, pix_fmt)
    with log.open() as f:  # x265 writes its log when the encoder is freed, on leaving _write
        rows = [{k.strip(): v for k, v in r.items()} for r in csv.DictReader(f)]
    assert len(rows) == frames
    return [float(r["QP"]) for r in sorted(rows, key=lambda r: int(r["Encode Order"]))]


def _write(path: Path, params: str, fmt: str, frames: int, pix_fmt: str) -> None:
    img = skimage_data.astronaut()
    with av.open(str(path), "w", format=fmt) as out:
        s = out.add_stream("libx265", rate=25)
        s.width, s.height, s.pix_fmt = W, H, pix_fmt
        s.codec_context.options = {"preset": "ultrafast", "x265-params": params}
        for t in range(frames):
            crop = np.ascontiguousarray(img[40 + 3 * t : 40 + 3 * t + H, 60 + 4 * t : 60 + 4 * t + W])
            frame = av.VideoFrame.from_ndarray(crop, format="rgb24").reformat(format=pix_fmt)
            frame.pts = t
            for p in s.encode(frame):
                out.mux(p)
        for p in s.encode():
            out.mux(p)


def _read(path: Path) -> list[float | None]:
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        reader = HevcQpReader(s.codec_context.extradata)
        return [reader.packet_qp(bytes(p)) for p in c.demux(s) if p.size]


def _close(got: list[float | None], truth: list[float]) -> bool:
    """Same QPs: x265 logs rate control's fractional QP (CRF), which its slices round to the nearest integer."""
    return len(got) == len(truth) and all(g is not None and abs(g - t) <= 0.5 for g, t in zip(got, truth))


# Without adaptive quantisation every coding unit sits at its slice's QP, so x265's per-frame mean is exact.
NO_AQ = "aq-mode=0:cutree=0"


@pytest.mark.parametrize("fmt,ext", [("mp4", "mp4"), ("matroska", "mkv"), ("hevc", "hevc")])
@pytest.mark.parametrize("params", [
    "qp=30",  # I/P/B offsets
    f"crf=31:{NO_AQ}:bframes=4:b-pyramid=1:weightp=1:weightb=1:ref=3",  # rate control, weighted prediction
    f"qp=24:{NO_AQ}:slices=3:keyint=5:min-keyint=5:repeat-headers=1",  # several slices, IDRs, in-band headers
    f"crf=36:{NO_AQ}:scaling-list=default:sao=0:open-gop=1:keyint=6",  # scaling lists in the SPS, CRA pictures
])
def test_slice_qp_matches_the_encoders_frame_qp(tmp_path, monkeypatch, fmt, ext, params):
    monkeypatch.chdir(tmp_path)
    truth = _encode(tmp_path / f"v.{ext}", params, fmt)
    got = _read(tmp_path / f"v.{ext}")
    assert _close(got, truth)
    assert len(set(got)) > 1  # I, P and B pictures differ: the comparison could fail


def test_ten_bit_stream(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    truth = _encode(tmp_path / "v10.mkv", f"crf=30:{NO_AQ}", "matroska", frames=8, pix_fmt="yuv420p10le")
    assert _close(_read(tmp_path / "v10.mkv"), truth)


def test_adaptive_quantisation_gives_the_base_qp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # with AQ/cutree the coding units move around the slice QP; the reader sees the slice QP only
    truth = _encode(tmp_path / "aq.mp4", "crf=30", "mp4")
    got = _read(tmp_path / "aq.mp4")
    assert all(g is not None and abs(g - t) <= 10 for g, t in zip(got, truth, strict=True))


def test_unreadable_input_gives_none(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _encode(tmp_path / "v.mp4", "qp=30", "mp4", frames=3)
    with av.open(str(tmp_path / "v.mp4")) as c:
        s = c.streams.video[0]
        packets = [bytes(p) for p in c.demux(s) if p.size]
        extradata = s.codec_context.extradata
    reader = HevcQpReader(extradata)
    assert reader.packet_qp(packets[0][:12]) is None  # cut inside the slice header
    assert reader.packet_qp(b"\x00\x00\x00\x04\x26\x01\xcc\x00") is None  # an IDR slice of an unknown PPS (id 5)
    assert reader.packet_qp(b"") is None
    assert HevcQpReader(None).packet_qp(packets[0]) is None  # no parameter sets seen yet
    assert reader.packet_qp(packets[0]) == 27  # still fine after the bad ones
