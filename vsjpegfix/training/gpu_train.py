"""Stage 2 of the GPU run (``scripts/gpu_run.py``): continue training one shipped model on pre-coded
H.264/HEVC clips for a fixed time, keeping the GPU busy, and validate it against the shipped weights.

Data (``train.npz``, ``val.npz``, ``test.npz`` of :mod:`vsjpegfix.training.gpu_data`) live on the
device: the degraded planes are converted to RGB once by the engine's own conversion
(:func:`vsjpegfix.engine.colour.planes_to_rgb`: exactly the model input the engine makes from
decoded video), the clean frames stay uint8. Each step draws its batch there (random samples,
each flipped/rotated one of 8 ways), so the loop has no host work, no transfer, and no wait for
the GPU except at the log points (every ``log_every`` seconds). GPU utilisation is sampled in a
thread (NVML through :func:`torch.cuda.utilization`, else ``nvidia-smi``).

Loss: L1 on the image, plus 0.1 x L1 between FBCNN's predicted quality and the clip's label
(``control="qp"`` feeds the label as FBCNN's control instead: a model controlled by the frame's
QP). Adam; the learning rate warms up for 3 % of the time budget, then follows a cosine to 2 %
of it at the end of the budget. Mixed precision (bf16 autocast) on CUDA. The loss is
:func:`vsjpegfix.training.objective.loss_fn`'s without its mask for missing labels (clips always
have one; the mask's check would wait for the GPU every step), the schedule a time-based variant
of :func:`vsjpegfix.training.objective.learning_rate` (a small overlap with :mod:`.trainer`, to be
unified).

Every ``checkpoint_every`` seconds: ``checkpoint.pt`` (weights, the optimizer state when it fits the
16 MiB a returned file may have, step), the fp16 safetensors export and ``train.json`` (curves) are
rewritten (each atomically), so a stopped stage leaves its latest state. Validation: RGB PSNR of the model output (clamped) against the
clean frame, mean over samples, minus that of the decoded frame ("gain"), on ``val`` every
``val_every`` seconds, and at the end on ``val`` and the real-footage ``test`` set (per codec and
QP) for the shipped and the trained weights.
"""

from __future__ import annotations

import copy
import json
import math
import os
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vsjpegfix.engine.colour import PlaneFormat, planes_to_rgb
from vsjpegfix.training.errors import TrainingError
from vsjpegfix.training.gpu_data import SampleSet, read_samples

FORMAT = PlaneFormat("yuv", 8, subsampling=(1, 1), matrix="bt709")
QUALITY_LOSS_WEIGHT = 0.1
DEFAULT_BATCH = {"arcnn": 256, "fastarcnn": 512, "fbcnn": 64}  # 64-pixel crops; measured by the run's utilisation
DEFAULT_LR = {"arcnn": 2e-4, "fastarcnn": 2e-4, "fbcnn": 1e-4}  # continuing from trained weights
MAX_CHECKPOINT_BYTES = 15 * 2**20  # what comes back from the GPU machine is at most 16 MiB per file


@dataclass
class DeviceSet:
    """A sample set on the device: model input ``x`` (N, 3, S, S) float, clean ``y`` (N, 3, S, S) uint8, labels (N, 1)."""

    x: torch.Tensor
    y: torch.Tensor
    label: torch.Tensor
    info: list[dict[str, Any]]

    @classmethod
    def load(cls, samples: SampleSet, device: torch.device, chunk: int = 256) -> DeviceSet:
        planes = [torch.from_numpy(samples.stacked(k)) for k in ("y", "u", "v")]
        xs = [planes_to_rgb([p[i : i + chunk].to(device) for p in planes], FORMAT) for i in range(0, len(samples), chunk)]
        y = torch.from_numpy(samples.stacked("clean")).permute(0, 3, 1, 2).contiguous().to(device)
        return cls(torch.cat(xs), y, torch.from_numpy(samples.label).float().reshape(-1, 1).to(device), samples.info)

    def __len__(self) -> int:
        return self.x.shape[0]


def dihedral_batch(t: torch.Tensor, mode: torch.Tensor) -> torch.Tensor:
    """One of the 8 flips/rotations per sample of a square batch (N, C, S, S); ``mode`` (N,) in 0..7."""
    pick = lambda bit: (mode & bit).bool()[:, None, None, None]  # noqa: E731
    t = torch.where(pick(1), t.flip(-1), t)
    t = torch.where(pick(2), t.flip(-2), t)
    return torch.where(pick(4), t.transpose(-1, -2), t)


def draw(ds: DeviceSet, gen: torch.Generator, batch: int, crop: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A training batch drawn on the device: random samples, ``crop``-pixel windows on the 16-pixel grid, flips/rotations."""
    dev, size = ds.x.device, ds.x.shape[-1]
    idx = torch.randint(len(ds), (batch,), generator=gen, device=dev)
    room = (size - crop) // 16 + 1
    oy, ox = (16 * torch.randint(room, (batch,), generator=gen, device=dev) for _ in range(2))
    ar, ch = torch.arange(crop, device=dev), torch.arange(3, device=dev)
    at = (idx[:, None, None, None], ch[None, :, None, None], (oy[:, None] + ar)[:, None, :, None], (ox[:, None] + ar)[:, None, None, :])
    mode = torch.randint(8, (batch,), generator=gen, device=dev)
    x = dihedral_batch(ds.x[at], mode).contiguous(memory_format=torch.channels_last)
    y = dihedral_batch(ds.y[at], mode).float().div_(255.0)
    return x, y, ds.label[idx]


def forward(model: nn.Module, x: torch.Tensor, label: torch.Tensor | None, control: str) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The model's image and predicted quality (None for models without quality control)."""
    if not getattr(model, "has_quality", False):
        return model(x), None
    img, q = model(x, label if control == "qp" else None)
    return img, (None if control == "qp" else q)


def loss_fn(img: torch.Tensor, q: torch.Tensor | None, target: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
    """L1 on the image, plus FBCNN's quality L1 (weight 0.1) when it predicted one (no host sync: see the module docstring)."""
    loss = F.l1_loss(img.float(), target)
    return loss if q is None else loss + QUALITY_LOSS_WEIGHT * F.l1_loss(q.float(), label)


@torch.no_grad()
def evaluate(model: nn.Module, ds: DeviceSet, control: str = "blind", chunk: int = 32) -> dict[str, Any]:
    """Mean RGB PSNR (8-bit peak) of the decoded frames and of the model's output, the gain, and the gain per codec/QP."""
    was = model.training
    model.eval()
    before, after = [], []
    for i in range(0, len(ds), chunk):
        x, y, label = ds.x[i : i + chunk], ds.y[i : i + chunk].float() / 255.0, ds.label[i : i + chunk]
        img, _ = forward(model, x.contiguous(memory_format=torch.channels_last), label, control)
        for a, b in ((x, before), (img.float().clamp(0, 1), after)):
            b.append(10 * torch.log10(1.0 / ((a - y) ** 2).mean(dim=(1, 2, 3)).clamp_min(1e-12)))
    model.train(was)
    b, a = torch.cat(before).cpu().numpy(), torch.cat(after).cpu().numpy()
    groups: dict[str, list[float]] = {}
    for info, gain in zip(ds.info, a - b):
        groups.setdefault(f"{info.get('codec', '?')}_qp{info.get('qp', '?')}", []).append(float(gain))
    return {"psnr_degraded": float(b.mean()), "psnr_model": float(a.mean()), "gain_db": float((a - b).mean()),
            "gain_db_by_codec_qp": {k: float(np.mean(v)) for k, v in sorted(groups.items())}, "samples": len(ds)}


class UtilisationSampler:
    """Samples GPU utilisation (percent of time a kernel ran) every ``interval`` seconds in a thread.

    :attr:`phase` labels the samples (``train``, ``validate``, ...); :meth:`summary` reports one phase.
    Off CUDA nothing is sampled and the summary says so.
    """

    def __init__(self, device: torch.device, interval: float = 0.5) -> None:
        self.device, self.interval, self.phase = device, interval, "setup"
        self.samples: list[tuple[float, str, float]] = []
        self.source: str | None = None
        self.read: Callable[[], float] | None = None
        self.error: str | None = None
        if device.type == "cuda":
            try:
                torch.cuda.utilization(device)
                self.read, self.source = (lambda: float(torch.cuda.utilization(device))), "torch.cuda.utilization (NVML)"
            except Exception as exc:  # noqa: BLE001  (pynvml missing: nvidia-smi instead)
                self.error = f"torch.cuda.utilization: {exc}"
                if shutil.which("nvidia-smi"):
                    self.read, self.source = self._smi, "nvidia-smi utilization.gpu"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="gpu-utilisation")
        self._t0 = time.time()

    def _smi(self) -> float:
        index = self.device.index if self.device.index is not None else torch.cuda.current_device()
        out = subprocess.run(["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits", "-i", str(index)],
                             capture_output=True, text=True, timeout=10)
        return float(out.stdout.split()[0])

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.samples.append((round(time.time() - self._t0, 2), self.phase, self.read()))
            except Exception as exc:  # noqa: BLE001
                self.error = str(exc)

    def __enter__(self) -> UtilisationSampler:
        if self.read is not None:
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=15)

    def summary(self, phase: str = "train") -> dict[str, Any]:
        values = np.array([v for _, p, v in self.samples if p == phase], dtype=float)
        out: dict[str, Any] = {"source": self.source, "phase": phase, "samples": int(values.size), "error": self.error}
        if values.size:
            out.update(mean_percent=float(values.mean()), min_percent=float(values.min()),
                       p10_percent=float(np.percentile(values, 10)), fraction_at_least_90=float((values >= 90).mean()))
        elif self.read is None:
            out["note"] = "not measured: no CUDA device" if self.device.type != "cuda" else "not measured: no NVML, no nvidia-smi"
        return out


def learning_rate(base: float, progress: float, warmup: float = 0.03, floor: float = 0.02) -> float:
    """Warm-up over the first ``warmup`` of the budget, then a cosine to ``floor`` x ``base`` at its end."""
    if progress < warmup:
        return base * max(progress / warmup, 0.01)
    t = min(1.0, (progress - warmup) / (1 - warmup))
    return base * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * t)))


def _write_json(path: Path, obj: Any) -> None:
    tmp = path.with_name(f".{path.name}.part")
    tmp.write_text(json.dumps(obj, indent=1, default=str) + "\n")
    os.replace(tmp, path)


def train_stage(data: Path, out: Path, *, model_name: str = "arcnn", seconds: float = 330.0, device: str = "cuda",
                batch: int | None = None, crop: int = 64, lr: float | None = None, control: str = "blind",
                checkpoint_every: float = 60.0, val_every: float = 30.0, log_every: float = 5.0, seed: int = 0,
                log: Callable[[str], None] = print) -> dict[str, Any]:
    """Continue training shipped model ``model_name`` for ``seconds`` of training time; see the module docstring.

    Writes ``train.json``, ``checkpoint.pt`` and ``<model>-continued.safetensors`` into ``out``; returns the summary.
    """
    from vsjpegfix.training.gpu_bench import arch_of
    from vsjpegfix.weights.store import load_model, save_weights

    dev = torch.device(device)
    out = Path(out)
    t_start = time.time()
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed shapes: let cuDNN pick its fastest kernels
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    model = load_model(model_name).float()
    arch = arch_of(model)
    if control == "qp" and not getattr(model, "has_quality", False):
        raise TrainingError(f"--control qp needs an FBCNN model; {model_name} is {arch}")
    batch, lr = batch or DEFAULT_BATCH[arch], lr or DEFAULT_LR[arch]
    sets = {name: DeviceSet.load(read_samples(Path(data) / f"{name}.npz"), dev) for name in ("train", "val", "test")}
    shipped = copy.deepcopy(model).to(dev).to(memory_format=torch.channels_last)
    model = model.to(dev).to(memory_format=torch.channels_last).train()
    params = sum(p.numel() for p in model.parameters())
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, **({"fused": True} if dev.type == "cuda" else {}))
    amp = dict(device_type=dev.type, dtype=torch.bfloat16, enabled=dev.type == "cuda")
    export = out / f"{model_name}-continued.safetensors"
    result: dict[str, Any] = {
        "stage": "train", "model": model_name, "arch": arch, "config": model.config, "params": params, "device": str(dev),
        "batch": batch, "crop": crop, "lr": lr, "control": control, "seconds_budget": seconds, "amp": "bf16" if amp["enabled"] else "fp32",
        "data": {k: {"samples": len(v), "size": int(v.x.shape[-1])} for k, v in sets.items()},
        "curves": {"train": [], "val": []}, "status": "running",
    }
    log(f"[train] {model_name} ({arch}, {params:,} parameters) on {dev}: batch {batch} x {crop} px, lr {lr:g}, "
        f"{seconds:.0f} s; data {json.dumps(result['data'])}")
    result["shipped"] = {k: evaluate(shipped, sets[k], control) for k in ("val", "test")}
    log(f"[train] shipped weights: val gain {result['shipped']['val']['gain_db']:+.3f} dB, test {result['shipped']['test']['gain_db']:+.3f} dB")
    del shipped
    gen = torch.Generator(device=dev).manual_seed(seed)
    step, train_s, samples = 0, 0.0, 0
    loss_sum = torch.zeros((), device=dev)
    marks = {"log": 0.0, "log_step": 0, "val": 0.0, "ckpt": 0.0}

    def save(final: bool = False) -> None:
        small = 4 * params <= MAX_CHECKPOINT_BYTES  # else fp16 weights, so that the file still comes back
        weights = {k: v if small or not v.is_floating_point() else v.half() for k, v in model.state_dict().items()}
        state = {"model": weights, "step": step, "train_s": train_s, "arch": arch, "config": model.config}
        if 3 * 4 * params <= MAX_CHECKPOINT_BYTES:  # weights and both Adam moments in fp32
            state["optimizer"] = optimizer.state_dict()
        tmp = out / ".checkpoint.pt.part"
        torch.save(state, tmp)
        os.replace(tmp, out / "checkpoint.pt")
        meta = {"name": f"{model_name}-continued", "training": {
            "from": f"shipped {model_name}", "steps": step, "batch": batch, "crop": crop, "lr": lr, "time_min": round(train_s / 60, 2),
            "data": "gpu_data train.npz: H.264/HEVC clip centre frames (QP 22..51) over training stills", "final": final}}
        save_weights(model, export, arch=arch, half=True, metadata=meta)
        _write_json(out / "train.json", result)

    with UtilisationSampler(dev) as util:
        util.phase = "train"
        last = time.perf_counter()
        while train_s < seconds:
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(lr, train_s / seconds)
            x, y, label = draw(sets["train"], gen, batch, crop)
            with torch.autocast(**amp):
                img, q = forward(model, x, label, control)
            loss = loss_fn(img, q, y, label)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum += loss.detach()
            step, samples = step + 1, samples + batch
            now = time.perf_counter()
            train_s, last = train_s + now - last, now
            done = train_s >= seconds
            if train_s - marks["log"] >= log_every or done:
                mean = loss_sum.item() / max(1, step - marks["log_step"])
                loss_sum.zero_()
                rate = (samples / (train_s - marks["log"])) if train_s > marks["log"] else 0.0
                result["curves"]["train"].append({"step": step, "time_s": round(train_s, 2), "loss": mean,
                                                  "lr": optimizer.param_groups[0]["lr"], "samples_per_s": rate})
                if not math.isfinite(mean):
                    raise FloatingPointError(f"non-finite loss at step {step}")
                marks["log"], marks["log_step"], samples = train_s, step, 0
                log(f"[train] step {step} {train_s:.0f}s loss {mean:.5f} lr {optimizer.param_groups[0]['lr']:.2e} {rate:.0f} samples/s")
            if train_s - marks["val"] >= val_every or done:
                util.phase = "validate"
                v = evaluate(model, sets["val"], control)
                result["curves"]["val"].append({"step": step, "time_s": round(train_s, 2), "psnr": v["psnr_model"], "gain_db": v["gain_db"]})
                log(f"[train] step {step}: val gain {v['gain_db']:+.3f} dB")
                marks["val"], util.phase = train_s, "train"
            if train_s - marks["ckpt"] >= checkpoint_every or done:
                util.phase = "checkpoint"
                result.update(steps=step, train_s=train_s, utilisation=util.summary("train"))
                save()
                marks["ckpt"], util.phase = train_s, "train"
            last = time.perf_counter()  # validation and checkpoints are not training time
        util.phase = "final"
    result["trained"] = {k: evaluate(model, sets[k], control) for k in ("val", "test")}
    result["improvement_db"] = {k: result["trained"][k]["gain_db"] - result["shipped"][k]["gain_db"] for k in ("val", "test")}
    result.update(status="ok", steps=step, train_s=train_s, stage_s=time.time() - t_start, utilisation=util.summary("train"),
                  utilisation_samples=util.samples, export=export.name)
    save(final=True)
    log(f"[train] done: {step} steps in {train_s:.0f} s; val gain {result['trained']['val']['gain_db']:+.3f} dB "
        f"(shipped {result['shipped']['val']['gain_db']:+.3f}), test {result['trained']['test']['gain_db']:+.3f} dB "
        f"(shipped {result['shipped']['test']['gain_db']:+.3f}); GPU busy {json.dumps(result['utilisation'])}")
    return result
