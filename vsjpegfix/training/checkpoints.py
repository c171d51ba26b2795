"""A run's files: resumable checkpoints (``last.pt``, ``best.pt``), the JSON-lines log and the export
of the trained model (fp16 safetensors plus its manifest entry).

Outputs in the run folder: ``last.pt`` (model, optimizer, step, RNG state, elapsed time, the
options under ``args``; resume with :func:`resume`), ``best.pt`` (best validation gain),
``log.jsonl`` (train and val records) and, after :func:`export`, ``export.json`` (the manifest
entry, ``config.frames`` = T; task ``video`` for T > 1).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vsjpegfix.training.degrade_video import CODECS, QP_RANGE
from vsjpegfix.training.errors import TrainingError
from vsjpegfix.training.options import TrainOptions
from vsjpegfix.training.validation import val_label

CHECKPOINT = "last.pt"
BEST = "best.pt"
LOG = "log.jsonl"
#: what each ``--degrade`` did, for the manifest's ``training.degradations``
DEGRADATION_NOTES = {
    "jpeg": "single JPEG (Pillow/libjpeg, 4:2:0 for colour), QF from FBCNN's distribution "
    "(75% uniform 10..60, 25% uniform 8..96)",
    "double_jpeg": "double JPEG, both QFs from FBCNN's distribution, shift uniform 0..7 px per axis",
    "mix": "75% single JPEG with QF from FBCNN's distribution (75% uniform 10..60, 25% uniform 8..96), "
    "25% double JPEG (two such QFs, shift uniform 0..7 px per axis); Pillow/libjpeg, 4:2:0 for colour",
    "mix_hq": "10% near-clean single JPEG (QF uniform 85..100); otherwise 75% single JPEG with QF from FBCNN's "
    "distribution (75% uniform 10..60, 25% uniform 8..96), 25% double JPEG (two such QFs, shift uniform 0..7 px "
    "per axis); Pillow/libjpeg, 4:2:0 for colour",
    "jpeg_video_mix": "50% the JPEG mix (see mix), 50% the centre frame of 5-frame clips made by a moving camera "
    "over the patch, coded by libx264/libx265 (veryfast) at constant QP uniform 22..51 (80% with P/B frames)",
    "jpeg_video_mix_hq": "50% the JPEG mix with 10% near-clean JPEG (see mix_hq), 50% the centre frame of 5-frame "
    "clips made by a moving camera over the patch, coded by libx264/libx265 (veryfast) at constant QP uniform "
    "22..51 (80% with P/B frames)",
}


def save_checkpoint(path: Path, model: nn.Module, optimizer: torch.optim.Optimizer, step: int, state: dict[str, Any]) -> None:
    """Write a resumable checkpoint atomically (only tensors and plain data: loads with weights_only)."""
    obj = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "step": step,
        "torch_rng": torch.get_rng_state(),
        **state,
    }
    tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def log_record(out: Path, record: dict[str, Any]) -> None:
    """Append one JSON record to ``out/log.jsonl``."""
    with open(out / LOG, "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")


def describe_data(train_dir: Path, paths: list[Path], n_used: int) -> str:
    """e.g. ``"332 images: bsds500 (232), urban100 (100)"`` (top-level subfolders of the training folder)."""
    groups: dict[str, int] = {}
    for p in paths:
        rel = p.relative_to(train_dir).parts
        key = rel[0] if len(rel) > 1 else "."
        groups[key] = groups.get(key, 0) + 1
    parts = ", ".join(f"{k} ({v})" for k, v in sorted(groups.items()))
    skipped = f"; {len(paths) - n_used} smaller than the crop skipped" if n_used < len(paths) else ""
    return f"{n_used} images: {parts}{skipped}"


def read_log(out: Path) -> list[dict[str, Any]]:
    """The records of ``out/log.jsonl``, in order."""
    try:
        text = (out / LOG).read_text(encoding="utf-8")
    except OSError as exc:
        raise TrainingError(f"cannot read {out / LOG}: {exc.strerror or exc}") from None
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def validation_curve(out: Path) -> tuple[str, list[int], list[float]]:
    """``(panel, steps, gains)`` of the validation records of a run: the panel names what was validated
    (``JPEG QF 10`` or ``H.264 QP 37 clips, centre frame``), the gains are in dB."""
    steps, gains, panel = [], [], ""
    for rec in read_log(out):
        if "val_gain_db" not in rec:
            continue
        panel = f"H.264 QP {rec['val_qp']} clips, centre frame" if "val_qp" in rec else f"JPEG QF {rec['val_qf']}"
        steps.append(int(rec["step"]))
        gains.append(float(rec["val_gain_db"]))
    if not steps:
        raise TrainingError(f"no validation records in {out / LOG}")
    return panel, steps, gains


def resume(path: Path, model: nn.Module, optimizer: torch.optim.Optimizer, arch: str, state: dict[str, Any]) -> int:
    """Load a checkpoint of :func:`save_checkpoint` into ``model`` and ``optimizer``, restore torch's
    RNG and update ``state`` (``elapsed_s``, ``best_gain``, ``last_val``); returns its step."""
    if not path.is_file():
        raise TrainingError(f"--resume but {path} does not exist")
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    if ckpt.get("arch") != arch or ckpt.get("config") != model.config:
        raise TrainingError(f"{path} holds {ckpt.get('arch')} {ckpt.get('config')}, not {arch} {model.config}")
    model.load_state_dict(ckpt["model"])
    optimizer.load_state_dict(ckpt["optimizer"])
    torch.set_rng_state(ckpt["torch_rng"])
    state.update({k: ckpt[k] for k in ("elapsed_s", "best_gain", "last_val") if k in ckpt})
    return int(ckpt["step"])


def export(model: nn.Module, options: TrainOptions, state: dict[str, Any]) -> dict[str, Any]:
    """Write ``options.export`` (fp16 safetensors, mode 0644) and return its manifest entry (also in
    ``OUT/export.json``); ``state`` holds ``step`` and, when known, ``data``, ``elapsed_s`` and ``last_val``."""
    from vsjpegfix.weights.store import save_weights

    path = Path(options.export)
    path.parent.mkdir(parents=True, exist_ok=True)
    degradations = DEGRADATION_NOTES.get(options.degrade, options.degrade)
    if options.frames > 1:
        degradations = (
            f"clips of {options.frames} frames made by a moving camera (pan up to 3 px/frame, zoom up to 1 %/frame, "
            f"jitter) over flipped/rotated patches of still images, coded with {'/'.join(CODECS[c][0] for c in options.codecs)} "
            f"(veryfast) at constant QP uniform {QP_RANGE[0]}..{QP_RANGE[1]}, {1 - options.intra_fraction:.0%} with P/B frames, "
            f"{options.intra_fraction:.0%} intra-only; BT.709 limited-range 4:2:0; target the clean centre frame"
        )
    training = {
        "data": state.get("data", ""),
        "degradations": degradations,
        "steps": int(state["step"]),
        "batch": options.batch,
        "crop": options.crop,
        "hardware": options.hardware,
        "time_min": round(state.get("elapsed_s", 0.0) / 60.0, 1),
    }
    best = state.get("last_val")
    if best is not None:
        training[f"val_psnr_gain_{val_label(best)}_db"] = round(best["val_gain_db"], 3)
    metadata = {"name": options.name, "training": training}
    sha = save_weights(model.cpu(), path, arch=options.arch, half=True, metadata=metadata)
    path.chmod(0o644)  # a shipped file: readable by everyone
    colour = "colour" if options.channels == 3 else "gray"
    if options.frames > 1:
        default_description = f"{options.arch} ({colour}, {options.frames}-frame stack) for H.264/HEVC artifact removal"
    else:
        default_description = f"{options.arch} ({colour}) for JPEG artifact removal"
    entry = {
        "name": options.name,
        "file": path.name,
        "arch": options.arch,
        "config": model.config,
        "sha256": sha,
        "description": options.description or default_description,
        "task": options.task or ("video" if options.frames > 1 else "jpeg"),
        "training": training,
    }
    (options.out / "export.json").write_text(json.dumps(entry, indent=2) + "\n", encoding="utf-8")
    return entry


def export_checkpoint(checkpoint: Path, weights: Path, name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Export the model of a stored checkpoint (``last.pt`` of a run that may still be going) with the
    options it was trained with: ``weights`` (fp16) and ``export.json`` beside the checkpoint.
    Returns the manifest entry and the checkpoint's data."""
    from vsjpegfix.models import build_model

    ckpt = torch.load(checkpoint, map_location="cpu", weights_only=True)
    model = build_model(ckpt["arch"], ckpt["config"])
    model.load_state_dict(ckpt["model"])
    options = TrainOptions.from_dict({**ckpt["args"], "export": weights, "name": name, "out": checkpoint.parent})
    return export(model, options, {**ckpt, "step": int(ckpt["step"])}), ckpt
