"""vsjpegfix.training.video_set(_build): crops, cached round trips with each frame's quantiser, model
corrections and run-time features - and the harness agrees with the transcoder: same per-frame strengths
(the report's per_frame) and the same pixels, on small real clips of the validation set."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vsjpegfix.engine.core import Engine
from vsjpegfix.training import baselines
from vsjpegfix.training import video_set as vs
from vsjpegfix.training import video_set_build as vb
from vsjpegfix.training.errors import TrainingError
from vsjpegfix.video.report import TranscodeOptions
from vsjpegfix.video.transcode import transcode

VIDEO = Path(__file__).resolve().parents[3] / "shared" / "data" / "video"
SEQUENCE = "gopro_snowboard_960x540_30f"
needs_video = pytest.mark.skipif(not (VIDEO / f"{SEQUENCE}.mkv").is_file(), reason="no shared/data/video")


def test_centre_crop_frames_and_points():
    y = np.arange(10 * 30 * 41, dtype=np.uint16).reshape(10, 30, 41)
    u = np.zeros((10, 15, 21), np.uint16)
    cy, cu, cv = vs.centre_crop([y, u, u], 16)
    assert cy.shape == (10, 16, 16) and cu.shape == (10, 8, 8) and cv.shape == cu.shape
    assert cy[0, 0, 0] == y[0, 6, 12]  # even offsets: (30 - 16) // 4 * 2, (41 - 16) // 4 * 2
    small = vs.centre_crop([y, u, u], 64)
    assert small[0].shape == (10, 30, 40)  # whole frame, even size
    assert vs.eval_frame_indices(20, 8).tolist() == [0, 3, 5, 8, 11, 14, 16, 19]
    assert vs.eval_frame_indices(4, 8).tolist() == [0, 1, 2, 3]
    assert vs.parse_points(["qp37", "CRF23"]) == (("qp", 37), ("crf", 23))
    for bad in ("q37", "qp", "crf99", "x"):
        with pytest.raises(TrainingError):
            vs.parse_points([bad])


def test_config_refuses_what_cannot_work(tmp_path):
    with pytest.raises(TrainingError, match="64x64"):
        vs.VideoSetConfig(tmp_path, tmp_path, crop=48)
    with pytest.raises(TrainingError, match="eval_frames"):
        vs.VideoSetConfig(tmp_path, tmp_path, enc_frames=4, eval_frames=5)
    with pytest.raises(TrainingError, match="no video files"):
        vs.VideoSetConfig(tmp_path, tmp_path).sequence_paths()
    with pytest.raises(TrainingError, match="no video folder"):
        vs.VideoSetConfig(tmp_path / "none", tmp_path).sequence_paths()


def test_cache_files_are_written_whole_and_recomputed_when_damaged(tmp_path):
    calls = []

    def compute():
        calls.append(1)
        return {"a": np.arange(3)}

    path = tmp_path / "x" / "a.npz"
    assert vs.cached(path, compute)["a"].tolist() == [0, 1, 2]
    assert vs.cached(path, compute)["a"].tolist() == [0, 1, 2] and len(calls) == 1
    path.write_bytes(b"broken")
    assert vs.cached(path, compute)["a"].tolist() == [0, 1, 2] and len(calls) == 2
    assert not list(tmp_path.rglob("*.part"))


@pytest.fixture(scope="module")
def small_set(tmp_path_factory):
    """One real sequence, 96x96, 8 frames, all scored: x264 QP 37, x265 CRF 28, x264 CRF 23."""
    cfg = vs.VideoSetConfig(VIDEO, tmp_path_factory.mktemp("video_set"), crop=96, enc_frames=8, eval_frames=8,
                            points=(("qp", 37), ("crf", 28), ("crf", 23)), sequences=(SEQUENCE,))
    return cfg


@needs_video
def test_round_trip_keeps_the_transcoders_quantisers(small_set):
    path = small_set.sequence_paths()[0]
    enc = vs.load_encode(small_set, path, "x264", ("qp", 37))
    clean = vs.load_clean(small_set, path)
    assert clean["y"].shape == (8, 96, 96) and enc["y"].shape == (8, 96, 96) and enc["u"].shape == (8, 48, 48)
    assert str(enc["codec_name"]) == "h264" and enc["pict"][0] == vs.PICTURE_CODES["I"] and set(enc["all_pict"]) >= {1, 2}
    assert np.all(np.abs(enc["qp"] - 37) <= 4) and not enc["adaptive"].any()  # constant QP: no adaptive quantisation
    stats: dict = {}
    decoded = baselines.decode_yuv420(enc["stream"].tobytes(), stats=stats)
    assert np.array_equal(decoded[0], enc["y"]) and [q.qp for q in stats["quantisers"]] == enc["qp"].tolist()
    crf = vs.load_encode(small_set, path, "x264", ("crf", 23))
    assert crf["adaptive"].all()  # x264 AQ: macroblock QPs differ within frames
    hevc = vs.load_encode(small_set, path, "x265", ("crf", 28))
    assert str(hevc["codec_name"]) == "hevc" and hevc["adaptive"].all()  # PPS cu_qp_delta


@needs_video
@pytest.mark.parametrize("codec, point", [("x264", ("qp", 37)), ("x265", ("crf", 28)), ("x264", ("crf", 23))])
def test_harness_and_transcoder_agree(small_set, tmp_path, codec, point):
    """The transcoder (shipped arcnn with its rule, FFV1 output) and the harness on the same stream: the
    same strength per frame and the same pixels in every plane."""
    path = small_set.sequence_paths()[0]
    enc = vs.load_encode(small_set, path, codec, point)
    corr = vb.load_correction(small_set, path, codec, point, "arcnn")
    engine = Engine("arcnn")  # as the CLI makes it
    rule = engine.quality_profile.predictor.for_codec(str(enc["codec_name"]))
    features = {k: corr[k] for k in vs.FEATURE_KEYS}
    strengths = rule.strengths(features)
    harness = vs.restored([enc["y"], enc["u"], enc["v"]], [corr["dy"], corr["du"], corr["dv"]], strengths)
    src = tmp_path / "in.mkv"
    src.write_bytes(enc["stream"].tobytes())
    report = transcode(src, tmp_path / "out.mkv", engine, TranscodeOptions(codec="ffv1", progress=False))
    assert report.qf_mode == "profile" and len(report.per_frame) == 8
    assert [f["strength"] for f in report.per_frame] == pytest.approx(strengths, abs=5e-4)
    assert [f["qp"] for f in report.per_frame] == pytest.approx(features["qp"], abs=5e-4)
    assert 0.0 < float(np.max(strengths)) < 1.0  # the rule, not a constant
    restored = baselines.read_yuv420(tmp_path / "out.mkv")
    for mine, theirs in zip(harness, restored):
        assert np.array_equal(mine, theirs)
    assert not np.array_equal(harness[0], enc["y"])


@needs_video
def test_load_set_holds_runtime_features(small_set):
    encodes = vb.load_set(small_set, ["arcnn"])
    assert [(e.codec, e.point) for e in encodes] == [(c, vs.point_name(p)) for c in vs.CODECS for p in small_set.points]
    e = encodes[0]
    assert e.codec_name == "h264" and e.corrections["arcnn"].dtype == np.float32 and set(e.features["arcnn"]) == set(vs.FEATURE_KEYS)
    again = vb.runtime_features(e.decoded, e.corrections["arcnn"], vs.FORMAT, e.quantisers)
    for k, v in again.items():
        assert np.array_equal(v, e.features["arcnn"][k])
    rd = np.sqrt((e.corrections["arcnn"].astype(np.float64) ** 2).mean(axis=(1, 2)))
    assert np.allclose(e.features["arcnn"]["rd"], rd, rtol=1e-5)
