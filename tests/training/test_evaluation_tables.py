"""The evaluation tables as functions (vsjpegfix.training.evaluation.image_tables / video_tables): the
encode/decode and restoration hooks, the default codec encoder, one image table on a tiny image."""

import numpy as np
import pytest
from skimage import data

from vsjpegfix.training.errors import TrainingError
from vsjpegfix.training.evaluation import image_tables, video_tables
from vsjpegfix.training.evaluation.video_tables import (
    codec_encoder,
    setting_text,
    video_rows,
)


def _clip(n=3, h=32, w=48, seed=0):
    rng = np.random.default_rng(seed)
    y = np.clip(rng.normal(120, 30, (1, h, w)) + np.arange(n)[:, None, None] * 3, 16, 235).astype(np.uint8)
    uv = np.full((n, h // 2, w // 2), 128, np.uint8)
    return [y, uv, uv.copy()]


class Model:
    """What the video tables read of a model entry (no profile: no '+profile' rows)."""

    def __init__(self, label):
        self.label, self.profile = label, None


def test_video_rows_use_the_encode_and_restore_hooks():
    clean = _clip()
    encoded, restored = [], []

    def encode(planes, setting):  # a fake codec: the error grows with the "qp"
        encoded.append(setting)
        noisy = np.clip(planes[0].astype(int) + setting["qp"] % 7 - 3, 0, 255).astype(np.uint8)
        return [noisy, planes[1], planes[2]], {"bytes": 1000 * setting["qp"], "frame_qp": [30.0] * 3}

    def restore(model, degraded, qps, setting):  # "restores" perfectly: returns the clean clip
        restored.append((model.label, setting["qp"], qps))
        return [p.copy() for p in clean], 42.0

    settings = [{"codec": "fake", "qp": 30}, {"codec": "fake", "qp": 33}]
    rows = video_rows(clean, settings, [Model("m")], encode=encode, restore=restore, log=lambda msg: None)
    assert encoded == settings and restored == [("m", 30, None), ("m", 33, None)]
    assert [(r["setting"]["qp"], r["method"]) for r in rows] == [
        (30, "input"), (30, "classical"), (30, "m"), (33, "input"), (33, "classical"), (33, "m")]
    by = {(r["setting"]["qp"], r["method"]): r for r in rows}
    for qp in (30, 33):
        assert by[(qp, "input")]["kbps"] == pytest.approx(1000 * qp * 8 / 3 * 30000 / 1001 / 1000)
        assert by[(qp, "input")]["delta_psnr_y"] == 0
        m = by[(qp, "m")]
        assert m["ssim_y"] == pytest.approx(1.0) and m["pred_qf"] == 42.0 and m["n"] == 3
        assert m["tmad_ratio"] == pytest.approx(1.0) and m["flicker"] == 0 and m["sec_per_frame"] >= 0
        assert m["delta_psnr_y"] > 10  # restored to the clean clip
    assert by[(30, "input")]["psnr_y"] > by[(33, "input")]["psnr_y"]  # errors of 1 and 2 code values
    assert setting_text({"codec": "x264", "qp": 27}) == "x264 QP 27" and setting_text({"codec": "x265", "crf": 23}) == "x265 CRF 23"


def test_codec_encoder_takes_qp_or_crf():
    clean = _clip(n=3, h=32, w=32)
    encode = codec_encoder("ultrafast")
    low, stats = encode(clean, {"codec": "x264", "qp": 45})
    high, _ = encode(clean, {"codec": "x264", "crf": 10})
    assert [p.shape for p in low] == [p.shape for p in clean]
    assert stats["bytes"] > 0 and len(stats["frame_qp"]) == 3 and min(stats["frame_qp"]) >= 40
    err = [np.abs(d[0].astype(int) - clean[0]).mean() for d in (low, high)]
    assert err[0] > err[1]


def test_colour_table_on_a_tiny_image(tmp_path):
    img = np.ascontiguousarray(data.astronaut()[100:132, 150:182])
    table = image_tables.colour_table([img], [], qfs=(10, 50), log=lambda msg: None)
    assert [(r["setting"]["qf"], r["method"], r["n"]) for r in table.rows] == [
        (10, "input", 1), (10, "classical", 1), (50, "input", 1), (50, "classical", 1)]
    assert table.rows[0]["psnr"] < table.rows[2]["psnr"] and table.notes
    with pytest.raises(TrainingError, match="does not exist"):
        image_tables.first_images(tmp_path / "missing", None)
    with pytest.raises(TrainingError, match="no images"):
        image_tables.first_images(tmp_path, None)
    assert video_tables.tmad(_clip()[0][:1]) is None
