"""The archive codecs' round trip (MPEG-2, MPEG-4 Part 2, MJPEG, VP9 at a fixed quantiser) and their calibration
onto the H.264 QP scale."""

from __future__ import annotations

import numpy as np
import pytest

from vsjpegfix.training import codec_calibration
from vsjpegfix.training.archive_codecs import encode_decode_archive
from vsjpegfix.training.calibration import Sums
from vsjpegfix.training.metrics import psnr_y


def _clip(t: int = 5, size: int = 48) -> list[np.ndarray]:
    from skimage import data

    img = data.astronaut()[100:100 + size + 2 * t, 150:150 + size + 2 * t].mean(axis=2).astype(np.uint8)
    y = np.stack([img[k:k + size, 2 * k:2 * k + size] for k in range(t)])
    u = np.full((t, size // 2, size // 2), 120, np.uint8)
    return [y, u, u.copy()]


@pytest.mark.parametrize("codec,fine,coarse,value", [("mpeg2video", 2, 20, 40.0), ("mpeg4", 2, 20, 20.0),
                                                     ("mjpeg", 2, 20, None), ("vp9", 10, 50, 200.0)])
def test_round_trip_reads_each_frames_quantiser(codec, fine, coarse, value):
    clean = _clip()
    stats: dict = {}
    coarse_planes = encode_decode_archive(clean, codec, coarse, stats=stats)
    fine_planes = encode_decode_archive(clean, codec, fine)
    assert [p.shape for p in coarse_planes] == [p.shape for p in clean]
    assert all(q is not None for q in stats["quantisers"]) and len(stats["quantisers"]) == 5
    if value is not None:
        assert {q.value for q in stats["quantisers"]} == {value}
    assert {q.picture_type for q in stats["quantisers"]} >= ({"I"} if codec == "mjpeg" else {"I", "P"})
    score = lambda planes: np.mean([psnr_y(c, d) for c, d in zip(clean[0], planes[0])])  # noqa: E731
    assert score(fine_planes) > score(coarse_planes) + 3


def test_best_qp_picks_least_error_and_breaks_ties_towards_the_step_size():
    cell = Sums()
    cell.rr, cell.rd, cell.dd = 10.0, 4.0, 8.0  # optimum strength 0.5
    settings = [(20.0, None, 0.0), (30.0, None, 0.5), (40.0, None, 1.0), (45.0, None, 1.0)]
    assert codec_calibration.best_qp({None: cell}, settings, prior=44.0)[0] == 30.0
    cell.rd = 9.0  # optimum beyond 1: every full-strength candidate ties
    assert codec_calibration.best_qp({None: cell}, settings, prior=44.0)[0] == 45.0
    assert codec_calibration.best_qp({None: cell}, settings, prior=20.0)[0] == 40.0


def test_calibrate_codec_maps_coarser_quantisers_to_higher_qps(monkeypatch):
    from vsjpegfix.engine.core import Engine

    monkeypatch.setitem(codec_calibration.CODEC_SETTINGS, "mpeg2video", (2, 31))
    engine = Engine("arcnn", device="cpu", precision="fp32")
    table = codec_calibration.calibrate_codec("mpeg2video", [_clip(size=32)], engine, log=lambda m: None)
    (v_fine, qp_fine), (v_coarse, qp_coarse) = table["points"]
    assert (v_fine, v_coarse) == (4.0, 62.0) and qp_fine < qp_coarse
    assert all(d["gain_db"] >= 0 for d in table["detail"])  # the chosen setting never does worse than none here
