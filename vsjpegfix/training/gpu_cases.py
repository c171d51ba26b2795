"""The GPU run's benchmark plan (stage 1 of ``scripts/gpu_run.py``): the cases, in the order they are
measured, and how the fastest correct setting per model is chosen from the measurements
(:mod:`vsjpegfix.training.gpu_bench` measures them).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any, Sequence

from vsjpegfix.engine.accel import GRAPHING_COMPILE_MODES, Acceleration
from vsjpegfix.training.errors import TrainingError

#: dense fp16/bf16 tensor-core peak of an H100 or H200 SXM (NVIDIA datasheets; 1979 with sparsity)
PEAK_TFLOPS = 989.5
TARGET_FPS = {"fbcnn": 40.0, "fbcnn-s": 150.0, "arcnn": 300.0, "fastarcnn": 600.0}  # 1080p, H200, in the engine
MODELS = ("fastarcnn", "arcnn", "fbcnn-s", "fbcnn")
MIN_PSNR_DB = 50.0
#: whose fp16/bf16-vs-fp32 check stands for a model's (random weights say little about precision loss)
PRECISION_PROXY = {"fbcnn": "fbcnn-s"}


@dataclass(frozen=True)
class Case:
    """One measurement: model, precision, batch, frame size (tile) and the engine's speed options."""

    model: str
    precision: str = "fp16"
    batch: int = 1
    width: int = 1920
    height: int = 1080
    tile: int | None = None
    compile_mode: str | None = None
    cuda_graphs: bool = False
    pinned: bool = False
    num_streams: int = 1
    cudnn_benchmark: bool = False
    compile_colour: bool = False

    def accel(self) -> Acceleration:
        return Acceleration(self.compile_mode, self.cuda_graphs, self.pinned, self.num_streams, self.cudnn_benchmark,
                            self.compile_colour)

    def engine_options(self) -> dict[str, Any]:
        """Keyword arguments of :class:`Engine` for this case's settings."""
        return {"precision": self.precision, "batch_size": self.batch, "tile": self.tile, **asdict(self.accel())}

    @property
    def label(self) -> str:
        tile = f" tile{self.tile}" if self.tile else ""
        return f"{self.model} {self.width}x{self.height}{tile} {self.precision} b{self.batch} {self.accel().describe()}"


OPTION_SETS: dict[str, dict[str, Any]] = {
    "eager": {},
    "cudnn": {"cudnn_benchmark": True},
    "graphs": {"cudnn_benchmark": True, "cuda_graphs": True},
    "streams": {"cudnn_benchmark": True, "pinned": True, "num_streams": 2},
    "all": {"cudnn_benchmark": True, "cuda_graphs": True, "pinned": True, "num_streams": 2},
    "colour": {"compile_colour": True},
    "all+colour": {"cudnn_benchmark": True, "cuda_graphs": True, "pinned": True, "num_streams": 2, "compile_colour": True},
}


def plan(phase: str, models: Sequence[str], size: tuple[int, int], big: tuple[int, int], tile: int,
         precisions: Sequence[str] = ("fp16", "bf16"), modes: Sequence[str] | None = None, cuda: bool = True) -> list[Case]:
    """The cases of a phase, most informative first (a stage stopped by its time budget keeps those).

    ``main``: per model eager (batch 1 and 4), cuDNN autotuning (4), CUDA graphs (1), pinned transfers
    on 2 streams (4), all of them (1 and 4), in the first precision; eager and everything in the
    second; FBCNN at
    ``big`` with tiles. ``compile`` (models in order for each setting, so every model gets the first
    ones): compiled colour steps alone and with everything else (eager model), the model compiled
    with the first of ``modes`` (default: default, max-autotune-no-cudagraphs, reduce-overhead) with
    cuDNN autotuning, then with everything, then the other modes (batch 4, or 1 for the modes that
    capture graphs themselves), then the second precision with everything. Off CUDA (the dry run) cuDNN autotuning is
    left out, so that compiled and eager cases run there while graphs, pinned memory and streams are
    refused and recorded as such. Duplicates (e.g. one precision only) are dropped.
    """
    first, *others = precisions
    w, h = size
    cases: list[Case] = []
    if phase == "main":
        for m in models:
            for name, batch in (("eager", 1), ("eager", 4), ("cudnn", 4), ("graphs", 1), ("streams", 4), ("all", 1),
                                ("all", 4)):
                cases.append(Case(m, first, batch, w, h, **OPTION_SETS[name]))
            for p in others:
                cases += [Case(m, p, 1, w, h), Case(m, p, 4, w, h, **OPTION_SETS["all"])]
        if "fbcnn" in models:
            cases += [Case("fbcnn", first, 1, *big, tile=tile), Case("fbcnn", first, 1, *big, tile=tile, **OPTION_SETS["all"])]
    elif phase == "compile":
        modes = list(modes or ("default", "max-autotune-no-cudagraphs", "reduce-overhead"))
        specs = [(first, None, "colour"), (first, None, "all+colour"), (first, modes[0], "cudnn"),
                 (first, modes[0], "all+colour")]  # every model gets these first
        specs += [(first, mode, "cudnn") for mode in modes[1:]] + [(p, modes[0], "all+colour") for p in others]
        for precision, mode, options in specs:
            for m in models:
                batch = 1 if mode in GRAPHING_COMPILE_MODES else 4  # graphed by inductor: the latency case
                cases.append(Case(m, precision, batch, w, h, compile_mode=mode, **OPTION_SETS[options]))
    else:
        raise TrainingError(f"unknown phase {phase!r}; use main or compile")
    if not cuda:
        cases = [replace(c, cudnn_benchmark=False) for c in cases]
    unique = {c.label: c for c in cases}
    return list(unique.values())


def is_correct(case: dict[str, Any], checks: dict[str, Any]) -> bool:
    """Output within :data:`MIN_PSNR_DB` of eager, and the precision within it of fp32 (fp32 always is;
    the random-weight official-size FBCNN is judged by the trained compact one, :data:`PRECISION_PROXY`)."""
    if case.get("status") != "ok" or case.get("psnr_vs_eager_db", 0) < MIN_PSNR_DB:
        return False
    model = PRECISION_PROXY.get(case["model"], case["model"])
    return case["precision"] == "fp32" or bool(checks.get(model, {}).get(case["precision"], {}).get("ok"))


def best_settings(results: dict[str, Any]) -> dict[str, Any]:
    """Per model, the fastest correct case at the most common (main) frame size, with its engine options."""
    cases = [c for c in results.get("cases", []) if c.get("status") == "ok" and not c.get("tile")]
    if not cases:
        return {}
    sizes = [(c["width"], c["height"]) for c in cases]
    main = max(set(sizes), key=sizes.count)
    best: dict[str, Any] = {}
    for c in cases:
        if (c["width"], c["height"]) != main or not is_correct(c, results.get("precision_check", {})):
            continue
        if c["model"] not in best or c["fps"] > best[c["model"]]["fps"]:
            settings = Case(**{k: c[k] for k in Case.__dataclass_fields__}).engine_options()
            target = TARGET_FPS.get(c["model"])
            best[c["model"]] = {"label": c["label"], "fps": c["fps"], "engine_options": settings, "target_fps": target,
                                "meets_target": None if target is None else c["fps"] >= target}
    return best
