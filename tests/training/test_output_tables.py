"""vsjpegfix.training.evaluation.output_tables: the output-quality table on one small real crop."""

from __future__ import annotations

from pathlib import Path

import pytest

from vsjpegfix.engine.core import Engine
from vsjpegfix.training.evaluation import output_tables as ot

VIDEO = Path(__file__).resolve().parents[3] / "shared" / "data" / "video"
SEQUENCE = VIDEO / "talkinghead_384x384_60f.mkv"


@pytest.mark.skipif(not SEQUENCE.is_file(), reason="no shared/data/video")
def test_outputs_are_scored_against_the_clean_crop():
    rows = ot.output_rows([SEQUENCE], Engine("fastarcnn", device="cpu"), [24, 38], frames=3, crop=64, log=lambda s: None)
    assert [r["qp"] for r in rows] == [24, 38] and all(r["sequence"] == SEQUENCE.stem for r in rows)
    fine, coarse = rows
    assert fine["input"] > coarse["input"] > 20
    assert fine["lossless (ffv1) crf"] is None and fine["fixed CRF 16 crf"] == 16.0
    # the default CRF follows the input: lossless for fine input (the same pixels as FFV1), finer than 16 for coarse
    assert fine["default crf"] == 0.0 and fine["default"] == pytest.approx(fine["lossless (ffv1)"], abs=1e-9)
    assert 0 < coarse["default crf"] < 16
    assert all(r[f"{m} size"] > 0 for r in rows for m in ot.OUTPUTS)
    text = ot.output_markdown(rows)
    assert "| x264 QP 24 |" in text and "| x264 QP 38 |" in text and text.count("\n") == 3
