"""Command line: ``vsjpegfix INPUT OUTPUT``, ``vsjpegfix weights list|download``, ``vsjpegfix models``.

Every failure the user can cause ends with one line on stderr (``vsjpegfix: error: ...``) and a
non-zero exit status, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import __version__

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def _fail(message: str, code: int = EXIT_ERROR) -> int:
    print(f"vsjpegfix: error: {message}", file=sys.stderr)
    return code


def _restore_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="vsjpegfix",
        description="Remove JPEG/H.264/HEVC compression artifacts with FBCNN, ARCNN or Fast ARCNN. "
        "Other commands: 'vsjpegfix weights list|download NAME', 'vsjpegfix models'.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("input", type=Path, help="input image")
    p.add_argument("output", type=Path, help="output image (.png, .webp lossless, .jpg quality 95)")
    add_engine_options(p)
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    p.add_argument("--quiet", action="store_true", help="print nothing but errors")
    p.add_argument("--version", action="version", version=f"vsjpegfix {__version__}")
    return p


def add_engine_options(p: argparse.ArgumentParser) -> None:
    """Options shared by every command that restores frames."""
    p.add_argument("--model", default=None, help="shipped model name, official checkpoint name, or weights path (default: best shipped)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "fp16", "bf16"], help="compute precision")
    p.add_argument("--qf", default="auto", help="FBCNN quality control: 'auto' (blind prediction) or a JPEG quality 0..100")
    p.add_argument("--qf-offset", type=float, default=0.0, help="added to the predicted or given QF (FBCNN)")
    p.add_argument("--tile", type=int, default=0, help="tile size in pixels (0 = whole frames)")
    p.add_argument("--overlap", type=int, default=32, help="tile overlap in pixels")
    p.add_argument("--batch-size", type=int, default=1, help="frames per model call")
    p.add_argument("--luma-only", action="store_true", help="restore only luma (Y) of YUV input")


def build_engine(args: argparse.Namespace):
    """Engine from parsed options (raises ValueError subclasses with user-facing messages)."""
    from .engine import Engine
    from .weights import default_model_name, load_model

    qf = None
    if str(args.qf).lower() != "auto":
        try:
            qf = float(args.qf)
        except ValueError:
            raise ValueError(f"--qf must be 'auto' or a number 0..100, got {args.qf!r}") from None
    model = load_model(args.model or default_model_name())
    return Engine(
        model,
        device=args.device,
        precision=args.precision,
        tile=args.tile or None,
        overlap=args.overlap,
        batch_size=args.batch_size,
        qf=qf,
        qf_offset=args.qf_offset,
        luma_only=args.luma_only,
    )


def _cmd_restore(argv: list[str]) -> int:
    args = _restore_parser().parse_args(argv)
    from .image_io import is_image_path, restore_image_file

    src: Path = args.input
    if not src.exists():
        return _fail(f"{src}: no such file")
    if src.is_dir():
        return _fail(f"{src} is a directory")
    if not is_image_path(src):
        return _fail(f"{src}: only still images are supported by this version (video transcoding is not built yet)")
    engine = build_engine(args)
    result = restore_image_file(engine, src, args.output, overwrite=args.overwrite)
    if not args.quiet:
        extra = ""
        if result.predicted_qf:
            extra = f" (predicted QF {result.predicted_qf[0]:.1f}, used {result.used_qf[0]:.1f})"
        elif result.used_qf:
            extra = f" (QF {result.used_qf[0]:.1f})"
        print(f"vsjpegfix: wrote {args.output}{extra}", file=sys.stderr)
    return 0


def _cmd_weights(argv: list[str]) -> int:
    from . import download
    from .weights import read_manifest, shipped_dir

    p = argparse.ArgumentParser(prog="vsjpegfix weights", description="Shipped and official model weights.")
    sub = p.add_subparsers(dest="action", required=True)
    sub.add_parser("list", help="list shipped weights and official FBCNN checkpoints")
    d = sub.add_parser("download", help="download an official FBCNN checkpoint into the cache, verified")
    d.add_argument("name", help=", ".join(download.OFFICIAL_CHECKPOINTS))
    d.add_argument("--sha256", help="expected sha256 (overrides the pinned one)")
    d.add_argument("--allow-unverified", action="store_true", help="accept a file without a known checksum")
    d.add_argument("--force", action="store_true", help="download again even if cached")
    args = p.parse_args(argv)
    if args.action == "list":
        for entry in read_manifest().values():
            print(f"{entry.name:20s} shipped   {entry.arch:10s} {shipped_dir() / entry.file}")
        for entry in download.list_official():
            where = entry["path"] or "not downloaded"
            print(f"{entry['name']:20s} official  {'fbcnn':10s} {where}")
        print(f"cache: {download.cache_dir()}")
        return 0
    path = download.fetch_official(args.name, sha256=args.sha256, allow_unverified=args.allow_unverified, force=args.force)
    print(str(path))
    return 0


def _cmd_models(argv: list[str]) -> int:
    from .models import ARCHITECTURES

    argparse.ArgumentParser(prog="vsjpegfix models", description="List supported architectures.").parse_args(argv)
    for spec in ARCHITECTURES.values():
        print(f"{spec.name:10s} {spec.description}")
    return 0


COMMANDS = {"weights": _cmd_weights, "models": _cmd_models}


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``vsjpegfix`` console script."""
    argv = sys.argv[1:] if argv is None else argv
    from .download import DownloadError
    from .engine import EngineError

    command = COMMANDS.get(argv[0]) if argv else None
    try:
        return command(argv[1:]) if command else _cmd_restore(argv)
    except KeyboardInterrupt:
        return _fail("interrupted", EXIT_INTERRUPTED)
    except (ValueError, DownloadError, EngineError, OSError) as exc:
        return _fail(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)


if __name__ == "__main__":
    sys.exit(main())
