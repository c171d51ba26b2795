"""Training options (vsjpegfix.training.options): normalised like the command line, contradictions refused."""

import os
from pathlib import Path

import pytest

from vsjpegfix.training.errors import TrainingError
from vsjpegfix.training.options import TrainOptions, plain


def test_normalisation(tmp_path):
    config = tmp_path / "c.json"
    config.write_text('{"nc": [8, 8, 8, 8], "nb": 1}')
    o = TrainOptions(train="a", val="b", config=str(config), codecs=" h264, ", frames=3, export="w/m.safetensors")
    assert o.train == Path("a") and o.config == {"nc": [8, 8, 8, 8], "nb": 1} and o.codecs == ("h264",)
    assert o.val_video and o.name == "m" and o.hardware == f"{os.cpu_count()}-core CPU"
    assert TrainOptions(train="a", val="b", device="cuda:1").hardware == "CUDA GPU"
    assert TrainOptions(train="a", val="b", config='{"nb": 2}').config == {"nb": 2}


def test_round_trip_through_a_checkpoint():
    o = TrainOptions(train="a", val="b", clips="pack", config={"nb": 1}, steps=7)
    stored = o.as_dict()
    assert stored["codecs"] == ["h264", "hevc"] and stored["clips"] == "pack" and stored["train"] == "a"
    assert TrainOptions.from_dict({**stored, "unknown_later_option": 1}) == o
    assert plain({"p": Path("x"), "t": (1, (2,))}) == {"p": "x", "t": [1, [2]]}


@pytest.mark.parametrize("kw, message", [
    ({"crop": 12}, "--crop must be a positive multiple of 8"),
    ({"batch": 0}, "--batch must be >= 1"),
    ({"frames": 2}, "--frames must be a positive odd number"),
    ({"codecs": "h264,vp9"}, "--codecs: choose from h264, hevc"),
    ({"intra_fraction": 1.5}, "--intra-fraction must be in 0..1"),
    ({"clips_fraction": -0.1}, "--clips-fraction must be in 0..1"),
    ({"clips": "p", "channels": 1}, "--clips needs --channels 3"),
    ({"val_qp": 52}, "--val-qp must be in 0..51"),
    ({"val_video": True, "channels": 1}, "--val-video need --channels 3"),
    ({"config": "{not json"}, "--config: "),
    ({"config": "[1, 2]"}, "--config must be a JSON object"),
    ({"config": "missing.json"}, "--config: "),
])
def test_contradictions_are_refused(kw, message):
    with pytest.raises(TrainingError, match=message.replace("(", r"\(")):
        TrainOptions(train="a", val="b", **kw)
