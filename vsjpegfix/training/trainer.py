"""The training loop: :func:`train` runs (or resumes) a training run described by
:class:`~vsjpegfix.training.options.TrainOptions`, validates, checkpoints and exports.

A run can be bounded in time (``max_minutes``: it stops and saves when its training time - not
counting validation and checkpoints - reaches the limit, the cosine schedule ending then) or in
steps (``stop_at``: stop and save without changing the schedule; continue later with ``resume``).
``on_checkpoint`` is called after every save of ``last.pt`` with a :class:`Checkpoint`; when it
returns true the run stops right there (saved, resumable, no further validation), so a session
script can impose its own deadline or collect checkpoints while the run goes on.

Data (:mod:`vsjpegfix.training.data`): images of the training folder cached in RAM, or a clip
pack (``clips``), or both for single-frame models with ``clips_fraction`` < 1. Validation:
:mod:`vsjpegfix.training.validation`. Files: :mod:`vsjpegfix.training.checkpoints`.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from vsjpegfix.models import count_parameters
from vsjpegfix.training import clip_pack
from vsjpegfix.training.checkpoints import (
    BEST,
    CHECKPOINT,
    describe_data,
    export,
    log_record,
    resume,
    save_checkpoint,
)
from vsjpegfix.training.clip_pack import ClipPack, PackError
from vsjpegfix.training.data import BatchStream, clip_min_side, list_images, load_images
from vsjpegfix.training.errors import TrainingError
from vsjpegfix.training.objective import (
    check_folders,
    forward,
    initial_model,
    learning_rate,
    loss_fn,
)
from vsjpegfix.training.options import TrainOptions, plain
from vsjpegfix.training.validation import VAL_CODEC, Validator, VideoValidator

Log = Callable[[str], None]


def log_stderr(msg: str) -> None:
    """The default progress log: one line on stderr."""
    print(msg, file=sys.stderr)


@dataclass
class Checkpoint:
    """What :func:`train` passes to ``on_checkpoint`` after saving ``path`` (``last.pt``) at ``step``.

    ``state``: ``elapsed_s`` (training time so far), ``best_gain`` and ``last_val`` (the latest
    validation record), ``data`` (what the run trains on)."""

    step: int
    path: Path
    state: dict[str, Any]


@dataclass
class TrainResult:
    """The trained model (on the training device, or the CPU after an export), its last step, the
    run's state (as in :class:`Checkpoint`) and the manifest entry of the export (None without)."""

    model: torch.nn.Module
    step: int
    state: dict[str, Any]
    entry: dict[str, Any] | None = None


def load_data(options: TrainOptions, train_dir: Path, log: Log = log_stderr) -> tuple[list[np.ndarray], ClipPack | None, str, str]:
    """``(images, pack, data description, cache note)``: the clip pack of ``options.clips`` and the
    training images, read only when some samples need them."""
    pack = None
    if options.clips is not None:
        try:
            pack = clip_pack.load_pack(options.clips)
            clip_pack.sample(pack, np.random.default_rng(0), options.crop, options.frames)  # fits the model and crop?
        except PackError as exc:
            raise TrainingError(f"--clips: {exc}") from None
        log(f"clip pack {options.clips}: {pack.count} clips of {pack.frames} frames, {pack.size} px")
    # with a pack, every sample of a temporal batch (and all of them at clips_fraction 1) comes from it
    needs_images = pack is None or (options.frames == 1 and round(options.batch * options.clips_fraction) < options.batch)
    paths = list_images(train_dir) if needs_images else []
    t0 = time.perf_counter()
    min_side = clip_min_side(options.crop) if options.frames > 1 else options.crop
    images = load_images(paths, options.channels, min_side) if paths else []
    data = describe_data(train_dir, paths, len(images)) if needs_images else ""
    if pack is not None:
        data += ("; " if needs_images else "") + (
            f"clip pack {options.clips.name}: {pack.count} clips of {pack.frames} frames at {pack.size} px "
            f"({', '.join(pack.meta.get('codecs', []))}, seed {pack.meta.get('seed')})")
    cached = (f"{len(images)} training images cached ({sum(i.nbytes for i in images) / 2**20:.0f} MiB, "
              f"{time.perf_counter() - t0:.1f} s)") if needs_images else "every sample from the clip pack (no images read)"
    return images, pack, data, cached


def make_validator(options: TrainOptions, val_dir: Path) -> Validator | VideoValidator | None:
    """The run's validator: none for ``val_n`` <= 0, fixed clips for ``val_video``, else fixed JPEG crops."""
    if options.val_n <= 0:
        return None
    if options.val_video:
        return VideoValidator(val_dir, options.val_n, options.val_qp, options.val_crop, options.frames)
    return Validator(val_dir, options.val_n, options.val_qf, options.val_crop, options.channels)


def _device(options: TrainOptions) -> torch.device:
    device = torch.device(options.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise TrainingError("--device cuda but CUDA is not available")
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed batch shapes: let cuDNN pick the fastest kernels
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    return device


def train(options: TrainOptions, *, on_checkpoint: Callable[[Checkpoint], bool | None] | None = None,
          log: Log = log_stderr) -> TrainResult:
    """Run (or, with ``options.resume``, continue) the training run of ``options``; export it when
    ``options.export`` is set. Sets torch's thread count (``options.threads``) for the process.
    Progress goes to ``log`` (and a tqdm bar on stderr unless ``no_progress``)."""
    torch.set_num_threads(max(1, options.threads))
    device = _device(options)
    train_dir, val_dir = check_folders(options.train, options.val)
    options.out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(options.seed)
    model = initial_model(options, log)
    model.to(device)
    if options.channels_last:
        model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=options.lr)
    step, state = 0, {"elapsed_s": 0.0, "best_gain": -math.inf, "last_val": None}
    ckpt_path = options.out / CHECKPOINT
    if options.resume:
        step = resume(ckpt_path, model, optimizer, options.arch, state)
        log(f"resumed from {ckpt_path} at step {step}")
    images, pack, state["data"], cached = load_data(options, train_dir, log)
    log(f"{options.arch} {model.config}: {count_parameters(model):,} parameters; {cached}")
    validator = make_validator(options, val_dir)
    use_amp = device.type == "cuda" and not options.no_amp
    amp_dtype = torch.bfloat16 if use_amp and torch.cuda.is_bf16_supported() else torch.float16
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp and amp_dtype == torch.float16)
    header = {"arch": options.arch, "config": model.config, "args": options.as_dict()}

    def checkpoint(path: Path = ckpt_path) -> bool:
        save_checkpoint(path, model, optimizer, step, {**header, **plain(state)})
        return path == ckpt_path and on_checkpoint is not None and bool(on_checkpoint(Checkpoint(step, path, dict(state))))

    def validate() -> None:
        if validator is None:
            return
        res = validator(model, device)
        state["last_val"] = res
        log_record(options.out, {"step": step, **res})
        if "val_qp" in res:
            before = f"val {VAL_CODEC} QP{res['val_qp']} centre frame {res['val_psnr_degraded']:.3f} dB"
        else:
            before = f"val QF{res['val_qf']} JPEG {res['val_psnr_jpeg']:.3f} dB"
        log(f"step {step}: {before} -> model {res['val_psnr_model']:.3f} dB (gain {res['val_gain_db']:+.3f} dB)")
        if res["val_gain_db"] > state["best_gain"]:
            state["best_gain"] = res["val_gain_db"]
            checkpoint(options.out / BEST)

    if step < options.steps:
        if step == 0 and validator is not None and options.val_every:
            validate()
        model.train()
        stream = BatchStream(
            images, options.seed, step, options.steps, options.batch, options.crop, options.degrade, options.frames,
            options.codecs, options.intra_fraction, pack, options.clips_fraction,
        )
        loader = torch.utils.data.DataLoader(
            stream, batch_size=None, num_workers=options.workers, pin_memory=device.type == "cuda",
            persistent_workers=False, prefetch_factor=4 if options.workers else None,
        )
        from tqdm import tqdm

        bar = tqdm(total=options.steps, initial=step, file=sys.stderr, disable=options.no_progress, dynamic_ncols=True,
                   unit="step")
        running, n_running = 0.0, 0
        last_t = time.perf_counter()
        for x, y, label in loader:
            lr = learning_rate(step, options, state["elapsed_s"])
            for group in optimizer.param_groups:
                group["lr"] = lr
            x, y, label = (t.to(device, non_blocking=True) for t in (x, y, label))
            if options.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device_type=device.type, dtype=amp_dtype, enabled=use_amp):
                img, q = forward(model, x)
            loss = loss_fn(img, q, y, label)
            if not torch.isfinite(loss):
                raise TrainingError(f"non-finite loss {loss.item()} at step {step}")
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            step += 1
            now = time.perf_counter()
            state["elapsed_s"] += now - last_t
            last_t = now
            running += loss.item()
            n_running += 1
            bar.update(1)
            if step % options.log_every == 0 or step == options.steps:
                log_record(options.out, {"step": step, "loss": running / n_running, "lr": lr,
                                         "elapsed_s": round(state["elapsed_s"], 2)})
                bar.set_postfix(loss=f"{running / n_running:.5f}", lr=f"{lr:.2e}")
                running, n_running = 0.0, 0
            stop = ((bool(options.max_minutes) and state["elapsed_s"] >= 60 * options.max_minutes)
                    or step == options.stop_at)
            if (options.val_every and step % options.val_every == 0) or step == options.steps or stop:
                validate()
                last_t = time.perf_counter()  # validation time is not training time
            if step % options.save_every == 0 or step == options.steps or stop:
                stop = checkpoint() or stop
                last_t = time.perf_counter()
            if stop:
                log(f"stopping at step {step} after {state['elapsed_s'] / 60:.1f} min")
                break
        bar.close()
        del loader
    elif state["last_val"] is None:
        validate()

    entry = export(model, options, {**state, "step": step}) if options.export is not None else None
    return TrainResult(model, step, state, entry)
