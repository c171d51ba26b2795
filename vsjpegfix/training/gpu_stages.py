"""Running the GPU run's stages unattended (``scripts/gpu_run.py``).

Each stage runs in a child process (its own session) with a hard time limit: its output is
timestamped into one log, a stage that fails or overruns is stopped (SIGTERM, then SIGKILL),
recorded, and the next stage still runs. The stages save their own results as they go; at the
end :func:`merge_results` gathers them into ``results.json`` with the run's headline numbers,
and :func:`plot_curves` draws the training curves when matplotlib is installed.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Sequence

import torch

PARTS = ("bench.json", "train.json")  # what the stages write as they go; merged into results.json


class RunLog:
    """Lines prefixed with the seconds since the run started, appended to a file and echoed to stderr."""

    def __init__(self, path: Path, t0: float) -> None:
        self.path, self.t0 = Path(path), t0
        self._lock = threading.Lock()

    def __call__(self, line: str) -> None:
        text = f"[{time.time() - self.t0:7.1f}s] {line.rstrip()}\n"
        with self._lock, open(self.path, "a", encoding="utf-8") as f:
            f.write(text)
        sys.stderr.write(text)
        sys.stderr.flush()


def run_stage(name: str, argv: Sequence[str], limit_s: float, log: RunLog) -> dict[str, Any]:
    """Run ``argv`` for at most ``limit_s`` seconds, its output into ``log``; returns the stage's record."""
    t0 = time.time()
    if limit_s < 1:
        log(f"{name}: skipped, no time left")
        return {"name": name, "status": "skipped", "seconds": 0.0, "limit_s": limit_s}
    log(f"{name}: start (limit {limit_s:.0f} s): {' '.join(argv)}")
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(list(argv), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            text=True, bufsize=1, start_new_session=True, env=env)

    def pump() -> None:
        for line in proc.stdout:
            log(f"{name}| {line}")

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    status = "ok"
    try:
        rc = proc.wait(timeout=limit_s)
        status = "ok" if rc == 0 else "failed"
    except subprocess.TimeoutExpired:
        status = "timeout"
        for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 10)):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                proc.wait(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                continue
        rc = proc.returncode
    reader.join(timeout=5)
    seconds = time.time() - t0
    log(f"{name}: {status} (exit {rc}) after {seconds:.1f} s")
    return {"name": name, "status": status, "returncode": rc, "seconds": round(seconds, 1), "limit_s": round(limit_s, 1)}


def gpu_snapshot() -> str | None:
    """``nvidia-smi``'s one-line view of the GPUs (name, memory, driver, clocks), or None without it."""
    if not shutil.which("nvidia-smi"):
        return None
    query = "name,memory.total,memory.used,driver_version,clocks.max.sm,power.limit,utilization.gpu"
    try:
        out = subprocess.run(["nvidia-smi", f"--query-gpu={query}", "--format=csv,noheader"], capture_output=True,
                             text=True, timeout=20)
        return out.stdout.strip() or out.stderr.strip()
    except (OSError, subprocess.SubprocessError) as exc:
        return f"nvidia-smi failed: {exc}"


def _load(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def headline(bench: dict | None, train: dict | None) -> dict[str, Any]:
    """The numbers a reader looks for first: fastest correct setting per model vs its target; training gain."""
    out: dict[str, Any] = {}
    if bench:
        out["fastest_correct_1080p"] = {m: {k: b.get(k) for k in ("fps", "target_fps", "meets_target", "label")}
                                        for m, b in (bench.get("best") or {}).items()}
        out["precision_psnr_min_db"] = {m: {p: v.get("psnr_db_min") for p, v in c.items() if isinstance(v, dict)}
                                        for m, c in (bench.get("precision_check") or {}).items()}
        statuses = [c.get("status") for c in bench.get("cases", [])]
        out["bench_cases"] = {s: statuses.count(s) for s in sorted(set(statuses), key=str)}
    if train:
        out["training"] = {k: train.get(k) for k in ("model", "status", "steps", "train_s", "improvement_db", "export")}
        out["training"]["gpu_busy"] = {k: (train.get("utilisation") or {}).get(k) for k in ("source", "mean_percent", "fraction_at_least_90")}
    return out


def merge_results(out: Path, run: dict[str, Any]) -> Path:
    """Gather the stages' JSON files into ``results.json`` (the parts, and temporary files a stopped stage
    left, are removed once it is written: at most 8 files come back from the GPU machine)."""
    out = Path(out)
    parts = {name.removesuffix(".json"): _load(out / name) for name in PARTS}
    results = {"run": run, "headline": headline(parts["bench"], parts["train"]), **parts}
    tmp = out / ".results.json.part"
    tmp.write_text(json.dumps(results, indent=1, default=str) + "\n")
    os.replace(tmp, out / "results.json")
    for name in PARTS:
        (out / name).unlink(missing_ok=True)
    for leftover in out.glob(".*.part*"):  # temporary files of a stage that was stopped while writing
        leftover.unlink(missing_ok=True)
    return out / "results.json"


def plot_curves(train: dict[str, Any] | None, png: Path) -> bool:
    """Loss and validation gain against training time as a PNG; False when matplotlib (or a curve) is missing."""
    if not train or not train.get("curves", {}).get("train"):
        return False
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    tr, va = train["curves"]["train"], train["curves"].get("val", [])
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.6))
    a.plot([p["time_s"] for p in tr], [p["loss"] for p in tr])
    a.set(xlabel="training time (s)", ylabel="L1 loss", title=f"{train.get('model')}: training loss")
    b.plot([p["time_s"] for p in va], [p["gain_db"] for p in va], marker="o")
    shipped = (train.get("shipped") or {}).get("val", {}).get("gain_db")
    if shipped is not None:
        b.axhline(shipped, color="grey", linestyle="--", label="shipped weights")
        b.legend()
    b.set(xlabel="training time (s)", ylabel="PSNR gain (dB)", title="validation (held-out clips)")
    fig.tight_layout()
    fig.savefig(png, dpi=90)
    plt.close(fig)
    return True


def device_info(device: torch.device) -> dict[str, Any]:
    """What the stage ran on."""
    info: dict[str, Any] = {"torch": torch.__version__, "python": platform.python_version(), "cpus": os.cpu_count(),
                            "device": str(device)}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(name=props.name, memory_gib=props.total_memory / 2**30, capability=f"{props.major}.{props.minor}",
                    cuda=torch.version.cuda, cudnn=torch.backends.cudnn.version())
    else:
        info["name"] = platform.processor() or platform.machine()
    return info
