"""scripts/gpu_run.py: the GPU run's dry run on the CPU (tiny data, a few seconds per stage), as the GPU
machine will run it - without PyAV or VapourSynth - and its unattended stage runner."""

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from vsjpegfix.training.gpu_stages import RunLog, merge_results, run_stage
from vsjpegfix.weights.store import load_file, load_model

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "gpu_run.py"
BLOCKED = ("av", "vapoursynth")  # not installed on the GPU machine


def _tiny_inputs(root: Path) -> tuple[Path, Path, Path]:
    """Training and validation photos and two short lossless clips, made here from scikit-image's photos
    (the dry run needs no data folder beside the repository)."""
    import av
    from PIL import Image
    from skimage import data

    train, val, videos = root / "train", root / "val", root / "videos"
    for folder, names in ((train, ("astronaut", "coffee")), (val, ("chelsea", "rocket"))):
        folder.mkdir(parents=True)
        for name in names:
            Image.fromarray(getattr(data, name)()).save(folder / f"{name}.png")
    videos.mkdir()
    for name, photo, (w, h) in (("clip_a", data.astronaut(), (128, 96)), ("clip_b", data.coffee(), (120, 80))):
        with av.open(str(videos / f"{name}.mkv"), "w") as out:
            s = out.add_stream("ffv1", rate=25)
            s.width, s.height, s.pix_fmt = w, h, "yuv420p"
            for t in range(6):
                crop = np.ascontiguousarray(photo[20 + 2 * t : 20 + 2 * t + h, 30 + 3 * t : 30 + 3 * t + w])
                frame = av.VideoFrame.from_ndarray(crop, format="rgb24").reformat(format="yuv420p")
                frame.pts = t
                out.mux(s.encode(frame))
            out.mux(s.encode())
    return train, val, videos


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("gpu_run")
    train, val, videos = _tiny_inputs(root)
    data, out = root / "data", root / "out"
    build = [sys.executable, str(SCRIPT), "build-data", "--tiny", "--out", str(data), "--images", str(train), "--val-images", str(val),
             "--videos", str(videos), "--test-videos", "clip_a", "--frame-videos", "clip_b"]
    proc = subprocess.run(build, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    stubs = root / "stubs"  # importing PyAV or VapourSynth fails, as on the GPU machine
    for name in BLOCKED:
        (stubs / name).mkdir(parents=True)
        (stubs / name / "__init__.py").write_text(f"raise ImportError('{name} is not installed on the GPU machine')\n")
    env = {"PYTHONPATH": str(stubs), "PATH": "/usr/bin:/bin", "HOME": str(root)}
    proc = subprocess.run([sys.executable, str(SCRIPT), "--dry-run", "--data", str(data), "--out", str(out)],
                          capture_output=True, text=True, timeout=600, env=env)
    return proc, data, out


def test_dry_run_completes_within_the_transfer_limits(dry_run):
    proc, data, out = dry_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    files = sorted(p.name for p in out.iterdir())
    assert files == ["arcnn-continued.safetensors", "checkpoint.pt", "results.json", "run.log"]  # no matplotlib here
    assert all((out / f).stat().st_size < 16 * 2**20 for f in files) and len(files) <= 8
    results = json.loads((out / "results.json").read_text())
    assert [(s["name"], s["status"]) for s in results["run"]["stages"]] == [
        ("bench-main", "ok"), ("bench-compile", "ok"), ("train", "ok")]
    log = (out / "run.log").read_text()
    assert "bench-main| [bench] main:" in log and "train| [train] done:" in log and "headline:" in log
    assert "is not installed on the GPU machine" not in log  # nothing on the run's path imports PyAV/VapourSynth
    assert json.loads((data / "bundle.json").read_text())["sets"]["train.npz"]["samples"] == 12


def test_dry_run_bench_measures_refuses_and_chooses(dry_run):
    results = json.loads((dry_run[2] / "results.json").read_text())
    bench = results["bench"]
    cases = bench["cases"]
    ok = [c for c in cases if c["status"] == "ok"]
    assert {c["model"] for c in ok} == {"fastarcnn", "arcnn", "fbcnn-s", "fbcnn"}
    for c in ok:
        assert c["fps"] > 0 and c["frames_timed"] >= 2 * c["batch"]
        assert c["tflops"] == pytest.approx(c["gflop_per_frame"] * c["fps"] / 1000)
        assert c["psnr_vs_eager_db"] >= 50 and c["peak_fraction"] is None  # no peak on the CPU
    refused = [c for c in cases if c["status"] == "refused"]
    assert refused and all("need a CUDA device" in c["error"] for c in refused)
    assert any(c["compile_mode"] == "default" and c["status"] == "ok" for c in cases)  # torch.compile ran
    assert any(c["tile"] == 64 and c["status"] == "ok" for c in cases)  # FBCNN in tiles
    assert bench["models"]["fbcnn"]["params"] == 71_921_796 and bench["models"]["arcnn"]["params"] == 117_734
    assert set(bench["best"]) == {"fastarcnn", "arcnn", "fbcnn-s", "fbcnn"}
    assert all(b["target_fps"] and b["engine_options"]["precision"] == "fp32" for b in bench["best"].values())
    assert all(math.isinf(v["fp32"]["psnr_db_min"]) for v in bench["precision_check"].values())
    assert results["headline"]["fastest_correct_1080p"]["arcnn"]["fps"] == bench["best"]["arcnn"]["fps"]


def test_dry_run_training_checkpoints_exports_and_validates(dry_run):
    out = dry_run[2]
    train = json.loads((out / "results.json").read_text())["train"]
    assert train["status"] == "ok" and train["model"] == "arcnn" and train["steps"] > 3
    assert len(train["curves"]["train"]) >= 3 and all(math.isfinite(p["loss"]) for p in train["curves"]["train"])
    assert len(train["curves"]["val"]) >= 2
    for which in ("shipped", "trained"):
        assert set(train[which]) == {"val", "test"} and train[which]["test"]["samples"] == 8
    assert train["improvement_db"]["val"] == pytest.approx(train["trained"]["val"]["gain_db"] - train["shipped"]["val"]["gain_db"])
    assert train["utilisation"]["note"] == "not measured: no CUDA device"
    exported, shipped = load_file(out / "arcnn-continued.safetensors"), load_model("arcnn")
    assert exported.config == shipped.config
    assert any(not torch.equal(a, b) for a, b in zip(exported.state_dict().values(), shipped.state_dict().values()))
    ckpt = torch.load(out / "checkpoint.pt", weights_only=True)
    assert ckpt["step"] == train["steps"] and "optimizer" in ckpt  # small model: the optimizer state travels too


def test_stage_runner_stops_overruns_and_reports_failures(tmp_path):
    log = RunLog(tmp_path / "run.log", 0.0)
    slow = run_stage("slow", [sys.executable, "-c", "import time; print('started', flush=True); time.sleep(60)"], 2, log)
    failed = run_stage("bad", [sys.executable, "-c", "raise SystemExit('broken input')"], 30, log)
    skipped = run_stage("late", [sys.executable, "-c", "pass"], 0.5, log)
    assert slow["status"] == "timeout" and slow["seconds"] < 20
    assert failed["status"] == "failed" and failed["returncode"] == 1 and skipped["status"] == "skipped"
    text = (tmp_path / "run.log").read_text()
    assert "slow| started" in text and "bad| broken input" in text and "slow: timeout" in text


def test_build_data_refuses_an_existing_bundle(tmp_path):
    (tmp_path / "bundle.json").write_text("{}")
    proc = subprocess.run([sys.executable, str(SCRIPT), "build-data", "--out", str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and proc.stderr.strip().splitlines() == [f"error: {tmp_path} already holds a bundle; remove it first"]


def test_training_an_fbcnn_controlled_by_the_clip_qp(dry_run, tmp_path):
    from vsjpegfix.training.gpu_train import train_stage

    torch.set_num_threads(1)
    res = train_stage(dry_run[1], tmp_path, model_name="fbcnn-s-video", seconds=1.5, device="cpu", batch=2, control="qp",
                      checkpoint_every=1, val_every=1, log_every=0.5, log=lambda s: None)
    assert res["status"] == "ok" and res["arch"] == "fbcnn" and res["steps"] >= 1
    assert json.loads((tmp_path / "train.json").read_text())["status"] == "ok"
    exported = load_file(tmp_path / "fbcnn-s-video-continued.safetensors")
    assert exported.config == load_model("fbcnn-s-video").config
    ckpt = torch.load(tmp_path / "checkpoint.pt", weights_only=True)  # too large for 16 MiB in fp32 with Adam
    assert "optimizer" not in ckpt and ckpt["model"]["m_head.weight"].dtype == torch.float16
    assert (tmp_path / "checkpoint.pt").stat().st_size < 16 * 2**20
    with pytest.raises(ValueError, match="needs an FBCNN model"):
        train_stage(dry_run[1], tmp_path, model_name="arcnn", seconds=1, device="cpu", control="qp", log=lambda s: None)


def test_merge_gathers_the_parts_and_clears_leftovers(tmp_path):
    (tmp_path / "bench.json").write_text(json.dumps({"cases": [{"status": "ok"}, {"status": "refused"}], "best": {}}))
    (tmp_path / ".checkpoint.pt.part").write_bytes(b"half written")
    (tmp_path / ".arcnn-continued.safetensors.123.part").write_bytes(b"")
    merged = json.loads(merge_results(tmp_path, {"stages": []}).read_text())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.json"]
    assert merged["bench"]["cases"][1]["status"] == "refused" and merged["train"] is None
    assert merged["headline"]["bench_cases"] == {"ok": 1, "refused": 1}
