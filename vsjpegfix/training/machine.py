"""The machine a measurement ran on, for report headers: CPU, memory, GPU, software, load, commit.

Shared by the evaluation tables (:func:`machine_info`) and the benchmarks (:func:`describe_machine`,
:class:`LoadMeter`: how many cores other processes kept busy, since a shared machine is noisy;
:func:`known_peak_tflops`: nominal GPU peaks for "% of peak").
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import resource
import subprocess
import time
from pathlib import Path
from typing import Any

import torch

#: the repository holding this package (for the commit in report headers)
REPO = Path(__file__).resolve().parents[2]
# Nominal dense peak TFLOP/s from NVIDIA datasheets: (fp32, tf32, fp16/bf16 tensor cores with
# fp32 accumulation). Matched on the device name, most specific first.
GPU_PEAKS: tuple[tuple[tuple[str, ...], tuple[float, float, float]], ...] = (
    (("H100", "PCIe"), (51.2, 378.0, 756.0)),
    (("H100", "NVL"), (60.0, 417.0, 835.0)),
    (("H100",), (66.9, 494.7, 989.4)),
    (("H200",), (66.9, 494.7, 989.4)),
    (("A100",), (19.5, 156.0, 312.0)),
    (("L40S",), (91.6, 183.0, 362.0)),
    (("L4",), (30.3, 60.0, 121.0)),
    (("A10",), (31.2, 62.5, 125.0)),
    (("RTX 4090",), (82.6, 82.6, 165.2)),
    (("T4",), (8.1, 8.1, 65.0)),
)


def git_commit(repo: Path = REPO) -> str | None:
    """The commit of ``HEAD``: read from ``.git`` directly, else ``git rev-parse HEAD``; None if neither works."""
    try:
        git = repo / ".git"
        if git.is_file():  # worktree / submodule: "gitdir: PATH"
            text = git.read_text().strip()
            if text.startswith("gitdir:"):
                git = (repo / text.split(":", 1)[1].strip()).resolve()
        head = (git / "HEAD").read_text().strip()
        if not head.startswith("ref:"):
            return head
        ref = head.split(":", 1)[1].strip()
        if (git / ref).is_file():
            return (git / ref).read_text().strip()
        common = git
        if (git / "commondir").is_file():
            common = (git / (git / "commondir").read_text().strip()).resolve()
            if (common / ref).is_file():
                return (common / ref).read_text().strip()
        packed = common / "packed-refs"
        if packed.is_file():
            for line in packed.read_text().splitlines():
                parts = line.split()
                if len(parts) == 2 and parts[1] == ref:
                    return parts[0]
    except OSError:
        pass
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, timeout=10)
        if out.returncode == 0:
            return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return None


def cpu_model_name() -> str:
    """CPU model from /proc/cpuinfo (``model name``), or what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.lower().startswith(("model name", "hardware", "cpu model")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def busy_cpu_seconds() -> float | None:
    """Busy CPU time of the whole machine since boot (all cores, /proc/stat), or None."""
    try:
        fields = Path("/proc/stat").read_text(encoding="ascii").splitlines()[0].split()[1:]
    except (OSError, IndexError):
        return None
    values = [int(v) for v in fields[:8]]
    idle = values[3] + values[4]  # idle + iowait
    return (sum(values) - idle) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds(children: bool = False) -> float:
    """CPU time (user + system) of this process, plus its waited-for children when asked."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, *((resource.RUSAGE_CHILDREN,) if children else ())):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    return total


class LoadMeter:
    """CPU time used by *other* processes over an interval, in average busy cores."""

    def __init__(self, children: bool = False) -> None:
        self.children = children
        self.start()

    def start(self) -> None:
        """(Re)start the interval."""
        self.t0, self.busy0, self.own0 = time.perf_counter(), busy_cpu_seconds(), own_cpu_seconds(self.children)

    def other_cores(self) -> float | None:
        """Average number of cores kept busy by other processes since :meth:`start`."""
        busy = busy_cpu_seconds()
        wall = time.perf_counter() - self.t0
        if busy is None or self.busy0 is None or wall <= 0:
            return None
        other = (busy - self.busy0) - (own_cpu_seconds(self.children) - self.own0)
        return max(0.0, other / wall)


def load_average() -> str:
    """The 1, 5 and 15 minute load averages."""
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "unknown"


def known_peak_tflops(device_name: str, precision: str) -> float | None:
    """Nominal dense peak TFLOP/s of a known GPU for ``precision`` (fp32 counts TF32 when cuDNN may use it)."""
    for needles, (fp32, tf32, half) in GPU_PEAKS:
        if all(n.lower() in device_name.lower() for n in needles):
            if precision in ("fp16", "bf16"):
                return half
            return tf32 if torch.backends.cudnn.allow_tf32 else fp32
    return None


def describe_machine(device: torch.device, threads: int) -> dict[str, Any]:
    """Facts for the report header."""
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:
        affinity = os.cpu_count() or 0
    mem_gib = None
    try:
        for line in Path("/proc/meminfo").read_text(encoding="ascii").splitlines():
            if line.startswith("MemTotal:"):
                mem_gib = round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    info: dict[str, Any] = {
        "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "cpu": cpu_model_name(),
        "cpu_count": os.cpu_count(),
        "cpu_affinity": affinity,
        "memory_gib": mem_gib,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": threads,
        "gpu": None,
        "loadavg_start": load_average(),
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info["gpu"] = {
            "name": props.name,
            "capability": f"{props.major}.{props.minor}",
            "memory_gib": round(props.total_memory / 2**30, 1),
            "cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version(),
        }
    elif torch.cuda.is_available():
        info["gpu"] = {"name": torch.cuda.get_device_name(0), "note": "present but not benchmarked"}
    return info


def machine_info(device: torch.device) -> dict[str, Any]:
    """Facts for the evaluation report's header: host, platform, CPU, Python, torch, PyAV/FFmpeg, device."""
    import av

    info = {
        "host": platform.node(),
        "platform": platform.platform(),
        "cpu": cpu_model_name(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "pyav": av.__version__,
        "ffmpeg": getattr(av, "ffmpeg_version_info", None),
        "device": str(device),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info
