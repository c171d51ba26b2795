"""vsjpegfix.training.evaluation.archive_tables: the archive-codec table on a small real crop - cached
round trips keep each frame's quantiser, and the held-out column applies a rule exactly as the engine does."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vsjpegfix.training.evaluation import archive_tables as at
from vsjpegfix.training.evaluation.entries import resolve_models
from vsjpegfix.weights.predictor import FramePredictor

VIDEO = Path(__file__).resolve().parents[3] / "shared" / "data" / "video"
SEQUENCE = "spmcs_amvtg004_lr_240x134_31f"
pytestmark = pytest.mark.skipif(not (VIDEO / f"{SEQUENCE}.mkv").is_file(), reason="no shared/data/video")


@pytest.fixture(scope="module")
def clip():
    return at.load_sequence(VIDEO / f"{SEQUENCE}.mkv", 4, 64)


def test_cached_encodes_keep_each_frames_quantiser(tmp_path, clip):
    planes, values, quantisers = at.cached_encode(clip, "mpeg4", 6, tmp_path)
    again = at.cached_encode(clip, "mpeg4", 6, tmp_path)  # from the cache file
    assert len(list(tmp_path.iterdir())) == 1
    assert all(np.array_equal(a, b) for a, b in zip(planes, again[0])) and values == again[1] == [6.0] * 4
    assert [q.picture_type for q in quantisers] == [q.picture_type for q in again[2]]
    assert quantisers[0].picture_type == "I" and {q.picture_type for q in quantisers[1:]} <= {"P", "B"}
    assert all(q.codec == "mpeg4" and q.qp == pytest.approx(at.codec_qp("mpeg4", 6.0)) for q in again[2])


def test_rule_columns_agree_with_the_engine(tmp_path, clip):
    (arcnn,), _ = resolve_models(["arcnn"], device="cpu", batch_size=2)
    shipped = arcnn.engine.quality_profile.predictor.for_codec("h264")
    never = FramePredictor(("1",), (-1.0,))
    settings = dict(codecs=["mpeg4"], cache=tmp_path, log=lambda s: None)
    rows = at.archive_rows({SEQUENCE: clip}, arcnn, [arcnn], held_out={SEQUENCE: shipped}, **settings)
    assert len(rows) == 3 and [r["level"] for r in rows] == list(at.LEVELS)
    for r in rows:
        assert {"arcnn blind", "arcnn +profile", "arcnn +rule", "arcnn +rule (held out)"} <= set(r)
        # the same rule through the engine (as the transcoder runs it) and through the harness: the same pixels
        assert r["arcnn +rule (held out)"] == pytest.approx(r["arcnn +rule"], abs=1e-9)
    zero = at.archive_rows({SEQUENCE: clip}, arcnn, [arcnn], held_out={SEQUENCE: never}, **settings)
    assert all(r["arcnn +rule (held out)"] == 0.0 for r in zero)  # strength 0 returns the decoded frames
    assert any(r["arcnn +rule"] != 0.0 for r in zero)
    text = at.archive_markdown(rows, ["arcnn blind", "arcnn +rule (held out)"], {"mpeg4": "arcnn +rule (held out)"})
    assert text.count("**") == 6 and "| mpeg4 | fine (4) |" in text
    assert at.target_lines(rows, "arcnn +rule (held out)", "arcnn blind")[0].startswith("- **mpeg4**: no loss beyond 0.02 dB")
