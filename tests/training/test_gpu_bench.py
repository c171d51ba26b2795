"""The GPU run's benchmark pieces: the case plan, FLOP counting, the choice of the fastest correct setting."""

import pytest

from vsjpegfix.models import FastARCNN
from vsjpegfix.training.gpu_bench import flops_per_frame
from vsjpegfix.training.gpu_cases import MODELS, Case, best_settings, plan


def test_plan_main_and_compile_phases():
    main = plan("main", MODELS, (1920, 1080), (3840, 2160), 1024)
    assert main[0] == Case("fastarcnn", "fp16", 1, 1920, 1080)
    assert len({c.label for c in main}) == len(main) == 4 * 9 + 2
    assert {c.precision for c in main} == {"fp16", "bf16"}
    big = [c for c in main if c.width == 3840]
    assert [c.model for c in big] == ["fbcnn", "fbcnn"] and all(c.tile == 1024 for c in big)
    compiled = plan("compile", MODELS, (1920, 1080), (3840, 2160), 1024)
    assert [c.model for c in compiled[:4]] == list(MODELS)  # every model gets the first setting first
    assert all(c.compile_colour and c.compile_mode is None and c.batch == 4 for c in compiled[:4])
    assert all(c.compile_mode == "default" and c.cudnn_benchmark and not c.pinned for c in compiled[8:12])
    assert {c.compile_mode for c in compiled} == {None, "default", "max-autotune-no-cudagraphs", "reduce-overhead"}
    assert all(c.batch == 1 for c in compiled if c.compile_mode == "reduce-overhead")
    cpu = plan("main", ["arcnn"], (64, 48), (96, 64), 64, ["fp32"], cuda=False)
    assert not any(c.cudnn_benchmark for c in cpu) and len({c.label for c in cpu}) == len(cpu) == 6
    with pytest.raises(ValueError, match="unknown phase"):
        plan("other", MODELS, (64, 48), (64, 48), 64)


def test_flops_are_counted_on_meta_like_the_analytic_count():
    half = 32 * 24  # Fast ARCNN works on the half-resolution grid (see tests/scripts/test_bench.py)
    macs = half * (3 * 64 * 81 + 64 * 32 + 32 * 32 * 49 + 32 * 64 + 64 * 3 * 81)
    assert flops_per_frame(FastARCNN(), 64, 48) == 2 * macs == 131_137_536


def _case(model, fps, precision="fp16", psnr=99.0, **kw):
    c = Case(model, precision, **kw)
    return {"label": c.label, **c.__dict__, "status": "ok", "fps": fps, "psnr_vs_eager_db": psnr}


def test_best_setting_is_the_fastest_correct_one():
    results = {
        "cases": [
            _case("arcnn", 100), _case("arcnn", 400, cuda_graphs=True, psnr=30.0),  # fast but wrong
            _case("arcnn", 250, batch=4, pinned=True, num_streams=2), _case("arcnn", 500, precision="bf16"),
            _case("fbcnn", 20), _case("fbcnn", 90, width=3840, height=2160, tile=1024),  # tiles: another size
            {**_case("fbcnn", 60, compile_mode="default"), "status": "failed"},
        ],
        "precision_check": {"arcnn": {"fp16": {"ok": True}, "bf16": {"ok": False}},
                            "fbcnn": {"fp16": {"ok": False}}, "fbcnn-s": {"fp16": {"ok": True}}},  # random weights: by proxy
    }
    best = best_settings(results)
    assert best["arcnn"]["fps"] == 250 and best["arcnn"]["engine_options"]["num_streams"] == 2
    assert best["arcnn"]["engine_options"]["batch_size"] == 4 and best["arcnn"]["meets_target"] is False
    assert best["fbcnn"]["fps"] == 20 and best["fbcnn"]["target_fps"] == 40.0
    assert best_settings({"cases": []}) == {}
