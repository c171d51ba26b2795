"""Weights: shipped safetensors with a manifest, checkpoints by path, official FBCNN checkpoints.

Resolution order for :func:`load_model`'s ``spec``:

1. an existing file path: ``.safetensors`` (architecture read from its metadata, or detected from
   the tensor names), ``.pth``/``.pt``/``.ckpt`` (loaded with ``torch.load(weights_only=True)``;
   a registered architecture is detected from the state dict, anything else is handed to
   spandrel when it is installed);
2. the name of a shipped model in ``weights/manifest.json`` (checksum verified on load);
3. the name of an official FBCNN checkpoint already in the download cache
   (``vsjpegfix weights download NAME``).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from vsjpegfix.models import ARCHITECTURES, build_model, detect_architecture
from vsjpegfix.weights.profile import QualityProfile

MANIFEST_NAME = "manifest.json"
CHECKPOINT_SUFFIXES = (".pth", ".pt", ".ckpt", ".bin")


class WeightsError(ValueError):
    """A weights file is missing, corrupt, or does not fit its architecture."""


@dataclass(frozen=True)
class ShippedWeights:
    """One entry of the weights manifest."""

    name: str
    file: str
    arch: str
    config: dict[str, Any]
    sha256: str
    description: str = ""
    task: str = "jpeg"
    training: dict[str, Any] = field(default_factory=dict)
    quality_profile: dict[str, Any] | None = None  # see vsjpegfix.weights.profile (scripts/calibrate.py)

    def profile(self) -> QualityProfile | None:
        """The calibrated quality profile, if the manifest has one."""
        return QualityProfile.from_dict(self.quality_profile) if self.quality_profile else None

    @property
    def channels(self) -> int:
        return int(self.config.get("channels", self.config.get("out_nc", 3)))

    @property
    def frames(self) -> int:
        return int(self.config.get("frames", 1))


def shipped_dir() -> Path:
    """Folder holding the shipped weights (``VSJPEGFIX_WEIGHTS_DIR`` overrides it)."""
    env = os.environ.get("VSJPEGFIX_WEIGHTS_DIR")
    if env:
        return Path(env)
    package = Path(__file__).resolve().parents[1]  # vsjpegfix/
    installed = package / "_shipped"  # a regular install: the repository's weights/ as vsjpegfix._shipped
    if (installed / MANIFEST_NAME).is_file():
        return installed
    return package.parent / "weights"  # a source checkout (editable install)


def read_manifest(folder: Path | None = None) -> dict[str, ShippedWeights]:
    """Read ``manifest.json`` of ``folder`` (default :func:`shipped_dir`); missing manifest -> empty."""
    folder = folder or shipped_dir()
    path = folder / MANIFEST_NAME
    if not path.is_file():
        return {}
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))
        out = {}
        for e in entries["models"]:
            item = ShippedWeights(**e)
            item.profile()  # checked here, so a bad profile is reported as a corrupt manifest
            out[item.name] = item
        return out
    except (ValueError, KeyError, TypeError) as exc:
        raise WeightsError(f"corrupt weights manifest {path}: {exc}") from None


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def save_weights(
    model: nn.Module, path: Path | str, *, arch: str, half: bool = True, metadata: Mapping[str, Any] | None = None
) -> str:
    """Save ``model`` as safetensors (fp16 by default) with its architecture and config; returns sha256.

    Written to a temporary name and renamed when complete.
    """
    from safetensors.torch import save_file

    if arch not in ARCHITECTURES:
        raise WeightsError(f"unknown architecture {arch!r}")
    path = Path(path)
    tensors = {}
    for k, v in model.state_dict().items():
        v = v.detach().to("cpu")
        if half and v.is_floating_point():
            v = v.half()
        tensors[k] = v.contiguous()
    meta = {"arch": arch, "config": json.dumps(model.config)}
    for k, v in (metadata or {}).items():
        meta[str(k)] = v if isinstance(v, str) else json.dumps(v)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
    try:
        save_file(tensors, str(tmp), metadata=meta)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o644 & ~umask)  # readable like any other shipped file
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return sha256_file(path)


def read_state_dict(path: Path | str) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Read tensors and metadata from a safetensors file or a ``.pth`` checkpoint (never unpickling objects)."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="pt") as f:
                meta = dict(f.metadata() or {})
                return {k: f.get_tensor(k) for k in f.keys()}, meta
        except Exception as exc:  # safetensors raises several types for corrupt/truncated files
            raise WeightsError(f"cannot read {path}: not a valid safetensors file ({exc})") from None
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise WeightsError(f"cannot read {path}: not a valid weights-only PyTorch checkpoint ({exc})") from None
    if isinstance(obj, dict):
        for key in ("params_ema", "params", "state_dict", "model"):
            if key in obj and isinstance(obj[key], dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise WeightsError(f"cannot read {path}: it holds no state dict of tensors")
    state = {k.removeprefix("module."): v for k, v in obj.items()}
    return state, {}


def build_from_state_dict(
    state: Mapping[str, torch.Tensor], arch: str | None = None, config: Mapping[str, Any] | None = None, *, source: str = "weights"
) -> nn.Module:
    """Build the architecture (given or detected) and load ``state`` strictly, with clear errors."""
    if arch is None:
        found = detect_architecture(state)
        if found is None:
            raise WeightsError(f"{source}: not a known architecture ({', '.join(sorted(ARCHITECTURES))})")
        arch, detected = found
        config = detected if config is None else config
    try:
        model = build_model(arch, config)
    except ValueError as exc:
        raise WeightsError(f"{source}: {exc}") from None
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if missing or unexpected:
        raise WeightsError(
            f"{source}: tensors do not match {arch}: {len(missing)} missing (e.g. {missing[:2]}), "
            f"{len(unexpected)} unexpected (e.g. {unexpected[:2]})"
        )
    for k, v in state.items():
        if tuple(own[k].shape) != tuple(v.shape):
            raise WeightsError(f"{source}: tensor {k} has shape {tuple(v.shape)}, {arch} needs {tuple(own[k].shape)}")
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()}, strict=True)
    model.eval()
    return model


def load_file(path: Path | str, *, sha256: str | None = None) -> nn.Module:
    """Load a model from a weights file (safetensors or ``.pth``), verifying ``sha256`` when given."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file not found: {path}")
    if sha256 is not None:
        actual = sha256_file(path)
        if actual != sha256:
            raise WeightsError(f"{path.name}: checksum mismatch (expected {sha256[:12]}..., got {actual[:12]}...): corrupt or truncated file")
    if path.suffix not in (".safetensors", *CHECKPOINT_SUFFIXES):
        raise WeightsError(f"{path}: unsupported weights format (use .safetensors or .pth)")
    state, meta = read_state_dict(path)
    arch = meta.get("arch")
    config = json.loads(meta["config"]) if "config" in meta else None
    if arch is None and detect_architecture(state) is None and path.suffix != ".safetensors":
        return _load_with_spandrel(path)
    return build_from_state_dict(state, arch, config, source=path.name)


def _load_with_spandrel(path: Path) -> nn.Module:
    try:
        import spandrel
    except ImportError:
        raise WeightsError(f"{path.name}: unknown architecture; install spandrel to load other restoration models") from None
    from vsjpegfix.weights.spandrel_model import SpandrelModel

    try:
        descriptor = spandrel.ModelLoader().load_from_file(str(path))
    except Exception as exc:
        raise WeightsError(f"{path.name}: spandrel cannot load it ({exc})") from None
    return SpandrelModel(descriptor)


def load_model(spec: str | os.PathLike) -> nn.Module:
    """Load a model by path, shipped name or official checkpoint name (see module docstring)."""
    path = Path(spec)
    if path.is_file():
        return load_file(path)
    name = str(spec)
    shipped = read_manifest()
    if name in shipped:
        entry = shipped[name]
        model = load_file(shipped_dir() / entry.file, sha256=entry.sha256)
        model.quality_profile = entry.profile()  # how hard to restore input of known quality
        return model
    from vsjpegfix.weights import download

    if name in download.OFFICIAL_CHECKPOINTS:
        cached = download.cache_dir() / download.OFFICIAL_CHECKPOINTS[name].filename
        if not cached.is_file():
            raise WeightsError(f"official checkpoint {name} is not downloaded; run: vsjpegfix weights download {name}")
        return load_file(cached, sha256=download.OFFICIAL_CHECKPOINTS[name].sha256)
    if any(sep in name for sep in ("/", os.sep)) or Path(name).suffix:
        raise WeightsError(f"weights file not found: {name}")
    known = sorted(shipped) + sorted(download.OFFICIAL_CHECKPOINTS)
    raise WeightsError(f"unknown model {name!r}; known: {', '.join(known) or '(none)'}, or a path to a weights file")


#: Default model for each kind of input, best first (weights/README.md motivates the order from the
#: evaluation tables). H.264/HEVC video with its quantisers read: ARCNN with its calibrated QP profile
#: (no loss at QP 22, the largest gains at QP 32-42 on x264 and x265, 3x cheaper than the compact
#: FBCNN). Video without quantisers runs blind, where ARCNN loses 2 dB on clean input: the compact
#: FBCNN, which stays near identity there. JPEG images: the compact FBCNN controlled by their own QF.
DEFAULT_PREFERENCE: dict[str, tuple[str, ...]] = {
    # video whose frames' quantisers are read (H.264, HEVC, and through their calibrated tables MPEG-1/2,
    # MPEG-4 Part 2 and the H.263 family, MJPEG, VP9): the model follows its calibrated QP profile and its
    # strength rule. Held out on the video set, ARCNN so never loses and beats fbcnn-s (docs/evaluation.md)
    "video-qp": ("arcnn", "fbcnn-s", "fastarcnn", "fbcnn-s-video"),
    # other video (and --qf blind): the model runs blind, so one that stays near identity on clean input
    "video": ("fbcnn-s", "fbcnn-s-video", "fastarcnn", "arcnn"),
    "image": ("fbcnn-s", "fastarcnn", "arcnn", "fbcnn-s-video"),
}


def default_model_name(kind: str = "video") -> str:
    """The best shipped model for ``kind`` (``"video-qp"``, ``"video"`` or ``"image"``; see :data:`DEFAULT_PREFERENCE`)."""
    if kind not in DEFAULT_PREFERENCE:
        raise ValueError(f"kind must be one of {', '.join(DEFAULT_PREFERENCE)}, got {kind!r}")
    shipped = read_manifest()
    for name in DEFAULT_PREFERENCE[kind]:
        if name in shipped:
            return name
    if shipped:
        return sorted(shipped)[0]
    raise WeightsError("no shipped weights found; pass --model with a weights file or an official checkpoint name")
