"""Command line: ``vsjpegfix INPUT OUTPUT``, ``batch``, ``compare``, ``weights list|download``, ``models``.

Every failure the user can cause ends with one line on stderr (``vsjpegfix: error: ...``) and a
non-zero exit status, never a traceback: :func:`main` is the error boundary
(:mod:`vsjpegfix.apps.errors`; ``--debug`` or ``VSJPEGFIX_DEBUG=1`` shows the traceback of an
unexpected error).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from vsjpegfix import __version__
from vsjpegfix.apps.errors import as_failure, debug_requested, error_line, print_details
from vsjpegfix.apps.restore import (
    Engines,
    add_engine_options,
    add_output_options,
    input_kind,
    parse_controls,
    restore_file,
)

EXIT_ERROR = 1


EXIT_USAGE = 2


EXIT_INTERRUPTED = 130


def _fail(message: str, code: int = EXIT_ERROR) -> int:
    print(f"vsjpegfix: error: {message}", file=sys.stderr)
    return code


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Every option's help ends with its default: the help text's own "(default: ...)", else the value."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "default" in text or action.default is argparse.SUPPRESS or not action.option_strings:
            return text
        if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
            return f"{text} (default: {'on' if action.default else 'off'})"
        if isinstance(action, (argparse._HelpAction, argparse._VersionAction)):
            return text
        return f"{text} (default: {'none' if action.default is None else '%(default)s'})"


_VIDEO_NOTES = """
video output keeps: the frame count and every frame's timestamp (variable frame rate and start time
included); audio, subtitle and data streams (copied without re-encoding, text subtitles converted
when the container needs another format, anything else dropped with a warning); colour tags,
sample aspect ratio, rotation, metadata and chapters; the pixel format (10-bit stays 10-bit) when
the encoder can write it. The output is written to a temporary file beside it and renamed only when
complete; Ctrl-C or SIGTERM removes the temporary file and exits with status 130.
"""


def _restore_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="vsjpegfix",
        description="Remove JPEG/H.264/HEVC compression artifacts from a video or image with FBCNN, ARCNN or "
        "Fast ARCNN. Other commands: 'vsjpegfix batch SRC DST', 'vsjpegfix compare INPUT [OUTPUT] -o PICTURE.png', "
        "'vsjpegfix weights list|download NAME', 'vsjpegfix models'.",
        epilog=_VIDEO_NOTES,
        formatter_class=_HelpFormatter,
    )
    p.add_argument("input", type=Path, help="input video or image")
    p.add_argument("output", type=Path, help="output video (container from the extension: .mkv, .mp4, .mov, .ts, ...) or image (.png, .webp, .jpg)")
    add_engine_options(p)
    add_output_options(p)
    p.add_argument("--version", action="version", version=f"vsjpegfix {__version__}")
    return p


def _batch_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="vsjpegfix batch",
        description="Restore every video and image under SRC (searched recursively) into the same relative "
        "layout under DST (same file names, so the same containers). Outputs appear only when complete: "
        "a batch that was interrupted (even killed) resumes when run again, skipping finished files and "
        "redoing unfinished ones. A failing file does not stop the others; the exit status is 1 if any failed.",
        epilog=_VIDEO_NOTES,
        formatter_class=_HelpFormatter,
    )
    p.add_argument("src", type=Path, help="source folder (searched recursively)")
    p.add_argument("dst", type=Path, help="destination folder (created if missing; must not be inside SRC)")
    p.add_argument("--glob", default=None, help="only files whose relative path or name matches this pattern, e.g. '*.mp4' (default: every video and image)")
    p.add_argument("--image-format", default="png", choices=["png", "webp", "jpg", "keep"],
                   help="output format of images: lossless png or webp, jpg (quality 95), or keep the input's extension (default: png)")
    p.add_argument("--ray", nargs="?", const="local", default=None, metavar="ADDRESS",
                   help="spread the files over the workers of a Ray cluster: 'auto' (the cluster running on this machine), "
                   "a cluster address, or no value to start a local cluster on 127.0.0.1; a worker that dies mid-file is "
                   "replaced and its file retried elsewhere (needs the 'cluster' extra) (default: no Ray, one process)")
    p.add_argument("--ray-workers", type=int, default=None, metavar="N",
                   help="Ray workers (each loads the model once) (default: one per GPU, else one per 4 CPU cores)")
    from vsjpegfix.apps.cluster_setup import add_cluster_options

    add_cluster_options(p)
    add_engine_options(p)
    add_output_options(p)
    return p


def _write_json(path: Path | None, payload: dict) -> None:
    if path is None:
        return
    from vsjpegfix.frames.safe_write import atomic_output

    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(payload, indent=2, default=str), encoding="utf-8")


def _cmd_restore(argv: list[str]) -> int:
    args = _restore_parser().parse_args(argv)
    from vsjpegfix.frames.safe_write import check_output

    src: Path = args.input
    if not src.exists():
        return _fail(f"{src}: no such file")
    if src.is_dir():
        return _fail(f"{src} is a directory (use 'vsjpegfix batch SRC DST' for folders)")
    parse_controls(args)
    check_output(src, args.output, overwrite=args.overwrite)
    engines = Engines(args)
    try:
        engines(input_kind(src, args))  # model errors before anything is read
        entry = restore_file(engines, src, args.output, args, restrict_window=True)
    except Exception as exc:  # the error boundary: one line naming the file (main prints it)
        failure = as_failure(exc, src)
        _write_json(args.json_report, {"files": [{"input": str(src), "output": str(args.output), "status": "failed", "reason": str(failure)}]})
        raise failure from exc
    except KeyboardInterrupt:
        _write_json(args.json_report, {"files": [{"input": str(src), "output": str(args.output), "status": "failed", "reason": "interrupted"}]})
        raise
    _write_json(args.json_report, {"files": [{"input": str(src), "output": str(args.output), "status": "ok", **entry}]})
    if not args.quiet:
        if entry["kind"] == "image":
            parts = [f"{label} {entry[key]:g}" for key, label in (("file_qf", "file QF"), ("qf", "used QF"), ("predicted_qf", "predicted QF"))
                     if isinstance(entry.get(key), (int, float))]
            extra = f" ({', '.join(parts)})" if parts else ""
        else:
            extra = f": {entry['frames']} frames, {entry['fps']:.2f} fps"
        print(f"vsjpegfix: wrote {args.output}{extra}", file=sys.stderr)
    return 0


def _overall_bar(args: argparse.Namespace):
    """Progress over the whole batch, in frames (total from the containers' frame counts when known)."""
    if args.quiet:
        return None
    import av
    from tqdm import tqdm

    from vsjpegfix.apps.batch import find_media
    from vsjpegfix.frames.image_files import is_image_path

    total, known = 0, True
    for path in find_media(args.src, args.glob):
        if is_image_path(path):
            total += 1
            continue
        try:
            with av.open(str(path)) as container:
                frames = container.streams.video[0].frames if container.streams.video else 0
        except Exception:  # noqa: BLE001 - a file that cannot be counted: the total is unknown
            frames = 0
        known = known and frames > 0
        total += frames
    return tqdm(total=total if known else None, unit="frame", desc="all files", file=sys.stderr, position=1, leave=True)


def _cmd_batch(argv: list[str]) -> int:
    args = _batch_parser().parse_args(argv)
    from vsjpegfix.apps.batch import run_batch, summarize, summary_line

    if not args.src.is_dir():
        return _fail(f"{args.src} is not a directory")
    if args.ray_workers is not None and args.ray is None:
        return _fail("--ray-workers needs --ray", EXIT_USAGE)
    if args.ray_workers is not None and args.ray_workers < 1:
        return _fail("--ray-workers must be at least 1", EXIT_USAGE)
    if args.segment_seconds and args.ray is None:
        return _fail("--segment-seconds needs --ray", EXIT_USAGE)
    parse_controls(args)
    engines = Engines(args)  # with --ray unused: each worker builds its own
    if args.ray is None and args.model:
        engines("video")  # a bad --model fails before any file
    entries: list = []
    bars: list = []  # the overall bar, made when the first file starts (after the folders were checked)

    def restore_one(src: Path, dst: Path) -> dict:
        if not bars:
            bars.append(_overall_bar(args))
        overall = bars[0]
        try:
            return restore_file(engines, src, dst, args, overall=overall)
        finally:
            if overall is not None:
                overall.set_postfix_str(f"{len(entries) + 1} file(s) done", refresh=True)

    try:
        if args.ray is not None:
            from vsjpegfix.apps.cluster import run_from_args

            bars.append(_overall_bar(args))
            entries[:] = run_from_args(args, entries, bar=bars[0])  # in the local mode's order
        else:
            run_batch(
                args.src, args.dst, restore_one, pattern=args.glob,
                overwrite=args.overwrite, quiet=args.quiet, entries=entries,
                image_suffix=None if args.image_format == "keep" else f".{args.image_format}",
                codec=args.codec, debug=args.debug or debug_requested(),
            )
    except KeyboardInterrupt:
        if bars and bars[0] is not None:
            bars[0].close()
        if args.dst.is_dir():  # what was done before the interruption
            _write_json(args.json_report, {"summary": summarize(entries), "interrupted": True, "files": [e.as_dict() for e in entries]})
        raise
    if bars and bars[0] is not None:
        bars[0].close()
    counts = summarize(entries)
    _write_json(args.json_report, {"summary": counts, "interrupted": False, "files": [e.as_dict() for e in entries]})
    if not args.quiet or counts["failed"]:
        print(f"vsjpegfix: {summary_line(counts)}", file=sys.stderr)
        for e in entries:
            if e.status in ("failed", "ignored"):
                print(f"vsjpegfix:   {e.status}: {e.input}: {e.reason}", file=sys.stderr)
            elif e.notes and not args.quiet:
                print(f"vsjpegfix:   note: {e.input}: {'; '.join(e.notes)}", file=sys.stderr)
    return EXIT_ERROR if counts["failed"] else 0


def _cmd_weights(argv: list[str]) -> int:
    from vsjpegfix.weights import download
    from vsjpegfix.weights.store import read_manifest, shipped_dir

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
    from vsjpegfix.models import ARCHITECTURES

    argparse.ArgumentParser(prog="vsjpegfix models", description="List supported architectures.").parse_args(argv)
    for spec in ARCHITECTURES.values():
        print(f"{spec.name:10s} {spec.description}")
    return 0


def _cmd_compare(argv: list[str]) -> int:
    from vsjpegfix.apps.compare import main as compare_main

    return compare_main(argv)


COMMANDS = {"weights": _cmd_weights, "models": _cmd_models, "batch": _cmd_batch, "compare": _cmd_compare}


def _terminate(signum, frame) -> None:  # noqa: ARG001
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``vsjpegfix`` console script: every exception ends as one line and a non-zero status."""
    argv = sys.argv[1:] if argv is None else argv
    import signal

    if threading_is_main():
        signal.signal(signal.SIGTERM, _terminate)

    command = COMMANDS.get(argv[0]) if argv else None
    try:
        return command(argv[1:]) if command else _cmd_restore(argv)
    except KeyboardInterrupt:
        return _fail("interrupted", EXIT_INTERRUPTED)
    except Exception as exc:  # noqa: BLE001 - the error boundary: never a traceback unless asked for
        if debug_requested(argv):
            print_details(exc)
        return _fail(error_line(exc))


def threading_is_main() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()
