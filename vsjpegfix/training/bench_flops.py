"""The models of the engine benchmark and their cost: parameters and FLOPs per frame.

FLOPs are counted with :class:`torch.utils.flop_counter.FlopCounterMode` on the ``meta`` device (no
compute is spent) and cross-checked against an analytic count of the convolutions and linear
layers (1 multiply-accumulate = 2 FLOP; activations, biases, element-wise additions, padding and
colour conversion are not counted).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import torch
from torch import nn

from vsjpegfix.models import build_model, count_parameters
from vsjpegfix.training.errors import TrainingError

DEFAULT_MODELS = ("fbcnn", "fbcnn-s", "arcnn", "fastarcnn")
FBCNN_S_DEFAULT = {"nc": [32, 64, 128, 256], "nb": 2}
SUBSAMPLING = (1, 1)  # the benchmark's input: YUV 4:2:0, 8 bit, BT.709, limited range


@dataclass(frozen=True)
class ModelSpec:
    """A model to benchmark: architecture and constructor configuration (random weights)."""

    name: str
    arch: str
    config: dict[str, Any]
    source: str

    def build(self) -> nn.Module:
        """Instantiate the architecture (random weights) on the current default device."""
        return build_model(self.arch, self.config)


def resolve_model_spec(name: str) -> ModelSpec:
    """Map a benchmark model name to an architecture and configuration.

    ``fbcnn``, ``arcnn`` and ``fastarcnn`` are the paper-sized architectures; ``fbcnn-s`` is the
    compact FBCNN, with the configuration of the shipped ``fbcnn-s`` weights when the manifest has
    them, otherwise ``nc=(32, 64, 128, 256), nb=2``. Any other name of the weights manifest is
    accepted too (its architecture and configuration; the weights themselves are not loaded).
    """
    from vsjpegfix.weights.store import WeightsError, read_manifest

    try:
        manifest = read_manifest()
    except WeightsError as exc:
        print(f"bench: ignoring the weights manifest: {exc}", file=sys.stderr)
        manifest = {}
    if name in ("fbcnn", "arcnn", "fastarcnn"):
        return ModelSpec(name, name, {}, "paper/official size")
    if name == "fbcnn-s":
        if "fbcnn-s" in manifest:
            entry = manifest["fbcnn-s"]
            return ModelSpec(name, entry.arch, dict(entry.config), "config of the shipped fbcnn-s (weights manifest)")
        return ModelSpec(name, "fbcnn", dict(FBCNN_S_DEFAULT), "default compact config (no fbcnn-s in the weights manifest)")
    if name in manifest:
        entry = manifest[name]
        return ModelSpec(name, entry.arch, dict(entry.config), "config from the weights manifest")
    known = sorted({*DEFAULT_MODELS, *manifest})
    raise TrainingError(f"unknown model {name!r}; known: {', '.join(known)}")


def build_meta(spec: ModelSpec) -> nn.Module:
    """Build ``spec`` on the ``meta`` device: shapes only, no memory, no initialisation compute."""
    with torch.device("meta"):
        return spec.build().eval()


def model_input_channels(model: nn.Module) -> int:
    """Channels of one model call's input (channels per frame x frames in the stack)."""
    return int(getattr(model, "channels", 3)) * int(getattr(model, "frames", 1))


def counted_call_flops(model: nn.Module, width: int, height: int) -> int:
    """FLOPs of one blind forward call on a 1 x C x height x width input, by FlopCounterMode.

    ``model`` must live on the ``meta`` device: the forward then only propagates shapes.
    """
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.empty(1, model_input_channels(model), height, width, device="meta")
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(x)
    return int(counter.get_total_flops())


def analytic_call_flops(arch: str, config: Mapping[str, Any], width: int, height: int) -> int | None:
    """FLOPs (2 x multiply-accumulates of convolutions and linear layers) of one blind forward call.

    Follows the layer structure of :mod:`vsjpegfix.models` including each model's input padding.
    Returns None for architectures it does not know.
    """
    if arch in ("arcnn", "fastarcnn"):
        c = int(config.get("channels", 3))
        cin = c * int(config.get("frames", 1))
        if arch == "arcnn":
            macs = width * height * (cin * 64 * 81 + 64 * 32 * 49 + 32 * 16 + 16 * c * 25)
        else:  # padded to even sizes, every layer but the last at half resolution
            hw = ((width + 1) // 2) * ((height + 1) // 2)
            macs = hw * (cin * 64 * 81 + 64 * 32 + 32 * 32 * 49 + 32 * 64 + 64 * c * 81)
        return 2 * macs
    if arch == "fbcnn":
        nc = [int(v) for v in config.get("nc", (64, 128, 256, 512))]
        nb = int(config.get("nb", 4))
        out_nc = int(config.get("out_nc", 3))
        in_nc = int(config.get("in_nc", out_nc * int(config.get("frames", 1))))
        emb = nc[3]
        hp, wp = -(-height // 8) * 8, -(-width // 8) * 8  # padded to multiples of 8
        pixels = [(hp >> level) * (wp >> level) for level in range(4)]

        def block(c: int) -> int:  # one residual block: two 3x3 convolutions c -> c
            return 2 * c * c * 9

        macs = pixels[0] * (in_nc * nc[0] * 9 + nc[0] * out_nc * 9)  # head and tail
        for level in range(3):
            macs += pixels[level] * 2 * nb * block(nc[level])  # encoder and decoder (QF attention) blocks
            macs += pixels[level + 1] * 2 * nc[level] * nc[level + 1] * 4  # 2x2 down conv and 2x2 transposed up conv
        macs += pixels[3] * 3 * nb * block(nc[3])  # body encoder, body decoder, quality predictor
        macs += (2 * emb * emb + emb) + (emb + 2 * emb * emb)  # quality predictor MLP, quality embedding
        macs += 2 * emb * (nc[0] + nc[1] + nc[2])  # gamma and beta projections
        return 2 * macs
    return None


def engine_frame_flops(model: nn.Module, width: int, height: int, call_flops: Callable[[int, int], int]) -> int:
    """FLOPs the engine spends on one YUV 4:2:0 frame: one RGB call, or Y, U and V calls for a gray model."""
    if int(getattr(model, "channels", 3)) == 1:
        ssw, ssh = SUBSAMPLING
        cw, ch = -(-width >> ssw), -(-height >> ssh)
        return call_flops(width, height) + 2 * call_flops(cw, ch)
    return call_flops(width, height)


@dataclass
class ModelInfo:
    """Static facts about a benchmarked model."""

    name: str
    arch: str
    config: dict[str, Any]
    source: str
    params: int
    flops_method: str
    flops_check: str


def describe_model(spec: ModelSpec, resolutions: Sequence[tuple[int, int]]) -> tuple[ModelInfo, dict[tuple[int, int], int]]:
    """Parameters and FLOPs per frame at each resolution (meta device, cross-checked analytically)."""
    model = build_meta(spec)
    config = dict(getattr(model, "config", spec.config))
    flops: dict[tuple[int, int], int] = {}
    method = "FlopCounterMode on meta"
    mismatches = []
    for w, h in resolutions:
        analytic = engine_frame_flops(model, w, h, lambda a, b: analytic_call_flops(spec.arch, config, a, b) or 0)
        try:
            counted = engine_frame_flops(model, w, h, lambda a, b: counted_call_flops(model, a, b))
        except Exception as exc:  # meta kernels missing for some op: fall back to the analytic count
            if not analytic:
                raise TrainingError(f"cannot count FLOPs of {spec.name}: {exc}") from None
            method = f"analytic (FlopCounterMode on meta failed: {type(exc).__name__})"
            flops[(w, h)] = analytic
            continue
        flops[(w, h)] = counted
        if analytic and analytic != counted:
            mismatches.append(f"{w}x{h}: counter {counted} vs analytic {analytic}")
    if method.startswith("analytic"):
        check = "-"
    elif not analytic_call_flops(spec.arch, config, 64, 64):
        check = "no analytic formula for this architecture"
    else:
        check = "matches the analytic count" if not mismatches else "MISMATCH " + "; ".join(mismatches)
    info = ModelInfo(spec.name, spec.arch, config, spec.source, count_parameters(model), method, check)
    return info, flops
