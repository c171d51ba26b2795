"""Restore one file - a video or an image - with the engine suited to it; the options that choose it.

Shared by the command line (:mod:`vsjpegfix.apps.cli`), the local batch and the Ray workers
(:mod:`vsjpegfix.apps.cluster`): :func:`restore_file` is the one way a file is restored.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
from pathlib import Path
from typing import Any

from vsjpegfix.apps.errors import DEBUG_ENV


def add_output_options(p: argparse.ArgumentParser) -> None:
    """Encoder, safety and reporting options."""
    p.add_argument("--codec", default=None, help="video encoder: libx264, libx265, ffv1 (lossless), libvpx-vp9, libsvtav1 or any other FFmpeg video encoder (default: libx264, or libvpx-vp9 where the output's container cannot hold H.264: .webm)")
    p.add_argument("--crf", type=float, default=None, help="constant rate factor (default: libx264 follows the input's quantiser where it is read, QP - 26 from 16 down to 0 = lossless, so the re-encode keeps the restoration's gain; else 16 for libx264, 18 for libx265, 20 for libvpx-vp9, 24 for libsvtav1; none for other encoders)")
    p.add_argument("--preset", default=None, help="encoder preset for libx264/libx265/libsvtav1, e.g. slow (default: the encoder's own, medium for libx264)")
    p.add_argument("--pix-fmt", default=None, help="output pixel format, e.g. yuv420p (default: the input's, 10-bit included, or the nearest the encoder can write; odd-sized 4:2:0 becomes 4:4:4 except with ffv1)")
    p.add_argument("--matrix", default=None, choices=["709", "601", "2020"], help="colour matrix of YUV video without a matrix tag (default: 709 for HD, 601 for SD, with a warning)")
    p.add_argument("--start", default="0", metavar="T",
                   help="video: restore from T seconds after the file's start (ffmpeg's -ss: seconds, or [HH:]MM:SS[.s]); "
                   "decoding seeks to the keyframe before T and drops the frames before it; audio and subtitles are cut to "
                   "match (whole packets) and every timestamp is shifted so the output starts at 0 (default: 0, the start)")
    p.add_argument("--duration", default=None, metavar="T",
                   help="video: restore T seconds from --start on (ffmpeg's -t) (default: to the end)")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    p.add_argument("--quiet", action="store_true", help="no progress bar or warnings; errors only")
    p.add_argument("--json", dest="json_report", type=Path, default=None, metavar="REPORT", help="write a JSON report here: per file status, reason, streams copied/converted/dropped, warnings, per-frame QP/QF, the --strength and --start/--duration used (default: no report)")
    p.add_argument("--debug", action="store_true", help=f"show the Python traceback of an unexpected error (also {DEBUG_ENV}=1)")


def add_engine_options(p: argparse.ArgumentParser) -> None:
    """Options shared by every command that restores frames."""
    p.add_argument("--model", default=None, help="shipped model name, official checkpoint name, or weights path (default: the best shipped model for the kind of input: arcnn for H.264/HEVC video, which follows each frame's quantiser with its calibrated profile; fbcnn-s for other video, for --qf blind or a fixed QF, and for JPEG images: see weights/README.md)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "fp16", "bf16"], help="compute precision (default: auto = fp16 on CUDA, fp32 on the CPU)")
    p.add_argument("--qf", default="auto", help="quality control: 'auto' (where the source's quality is known - a JPEG file's QF, the quantiser of an H.264, HEVC, MPEG-1/2, MPEG-4 Part 2, DivX 3/H.263/FLV/WMV 7-8, MJPEG or VP9 frame - a shipped model follows its calibrated quality profile: how strongly to restore, and for FBCNN the control QF; elsewhere FBCNN predicts the quality blind), 'blind' (always the model alone, full strength), a JPEG quality 0..100 (FBCNN), or 'qp' (video of those codecs: follow each frame's quantiser - the profile, or vsjpegfix.quantisers.mapping.qp_to_qf for FBCNN checkpoints without one; other codecs fall back to blind with a warning)")
    p.add_argument("--qf-offset", type=float, default=0.0, help="added to the predicted or given QF (FBCNN)")
    p.add_argument("--strength", default="auto", metavar="S",
                   help="fraction of the model's correction applied: 'auto' (where a calibrated quality profile applies - "
                   "see --qf auto - its strength for each frame or JPEG, else 1, all of it), or a number 0..2 that scales the "
                   "profile's strength (without a profile: the strength itself); the applied fraction is capped at 1, so "
                   "values above 1 only raise a profile's partial strengths; 0 leaves the input as decoded (default: auto)")
    p.add_argument("--tile", type=int, default=0, help="tile size in pixels (0 = whole frames)")
    p.add_argument("--overlap", type=int, default=32, help="tile overlap in pixels")
    p.add_argument("--batch-size", type=int, default=1, help="frames per model call")
    p.add_argument("--luma-only", action="store_true", help="restore only luma (Y) of YUV input")


def parse_seconds(value: object, option: str) -> float:
    """Seconds from a number or ``[HH:]MM:SS[.s]`` (ffmpeg's time syntax); ValueError with a one-line message."""
    if isinstance(value, (int, float)):
        return float(value)
    text = str(value).strip()
    sign = -1.0 if text.startswith("-") else 1.0
    parts = text.lstrip("+-").split(":")
    try:
        if len(parts) > 3 or not all(parts) or any(float(p) < 0 for p in parts):
            raise ValueError
        total = 0.0
        for part in parts:
            total = total * 60 + float(part)
    except ValueError:
        raise ValueError(f"{option} takes seconds (e.g. 90 or 1:30 or 0:01:30.5), got {value!r}") from None
    if not math.isfinite(total):
        raise ValueError(f"{option} takes a finite number of seconds, got {value!r}")
    return sign * total


def strength_value(value: object) -> float | None:
    """``--strength`` as a number 0..2, or None for ``auto`` (ValueError with a one-line message otherwise)."""
    from vsjpegfix.weights.profile import MAX_STRENGTH_SCALE

    if value is None or str(value).strip().lower() == "auto":
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not 0 <= number <= MAX_STRENGTH_SCALE:
        raise ValueError(f"--strength must be 'auto' or a number 0..{MAX_STRENGTH_SCALE:g}, got {value!r}")
    return number


def window_values(args: argparse.Namespace) -> tuple[float, float | None]:
    """``(start, duration)`` seconds of ``--start``/``--duration`` (ValueError with a one-line message
    for a negative start, a duration not above 0, or text that is not a time)."""
    start = parse_seconds(getattr(args, "start", 0) or 0, "--start")
    if start < 0:
        raise ValueError(f"--start must be 0 or more seconds, got {start:g}")
    duration = getattr(args, "duration", None)
    duration = None if duration is None else parse_seconds(duration, "--duration")
    if duration is not None and duration <= 0:
        raise ValueError(f"--duration must be more than 0 seconds, got {duration:g}")
    return start, duration


def parse_controls(args: argparse.Namespace) -> None:
    """Check and convert ``--strength``, ``--start`` and ``--duration`` in place, before any file is read
    (:func:`strength_value`, :func:`window_values`); converting again changes nothing."""
    args.strength = strength_value(getattr(args, "strength", None))
    args.start, args.duration = window_values(args)


def build_engine(args: argparse.Namespace, kind: str = "video"):
    """Engine from parsed options (raises ValueError subclasses with user-facing messages).

    Without ``--model`` the model is the default for ``kind`` (:func:`input_kind`). The engine's
    ``model_name`` says which (the name or path given, or the default's name) for the reports.
    """
    from vsjpegfix.engine.core import Engine
    from vsjpegfix.weights.store import default_model_name

    qf = None
    if str(args.qf).lower() not in ("auto", "qp", "blind"):
        try:
            qf = float(args.qf)
        except ValueError:
            raise ValueError(f"--qf must be 'auto', 'blind', 'qp' or a number 0..100, got {args.qf!r}") from None
    return Engine(
        str(args.model or default_model_name(kind)),  # loaded by the engine, which keeps the name (model_name)
        device=args.device,
        precision=args.precision,
        tile=args.tile or None,
        overlap=args.overlap,
        batch_size=args.batch_size,
        qf=qf,
        qf_offset=args.qf_offset,
        luma_only=args.luma_only,
    )


def transcode_options(args: argparse.Namespace):
    """The :class:`vsjpegfix.video.report.TranscodeOptions` that the parsed command-line options ask for."""
    from vsjpegfix.video.report import TranscodeOptions

    return TranscodeOptions(
        codec=args.codec,
        crf=args.crf,
        preset=args.preset,
        pix_fmt=args.pix_fmt,
        qf=str(args.qf).lower() if str(args.qf).lower() in ("qp", "blind") else "auto",
        matrix={"709": "bt709", "601": "bt601", "2020": "bt2020"}.get(args.matrix) if args.matrix else None,
        overwrite=args.overwrite,
        progress=not args.quiet,
        strength=strength_value(getattr(args, "strength", None)),
        start=window_values(args)[0],
        duration=window_values(args)[1],
    )


class Engines:
    """The engine for each kind of file (:func:`input_kind`), each built once, when first needed.

    With ``--model`` all kinds share one engine; without it each kind gets its default model
    (:func:`vsjpegfix.weights.store.default_model_name`).
    """

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self._built: dict[str, Any] = {}

    def __call__(self, kind: str):
        key = "any" if self.args.model else kind
        if key not in self._built:
            self._built[key] = build_engine(self.args, kind)
        return self._built[key]


def input_kind(src: Path, args: argparse.Namespace) -> str:
    """``"image"``, ``"video-qp"`` (:data:`~vsjpegfix.quantisers.stream.QP_CODECS`: H.264, HEVC, MPEG-1/2, MPEG-4
    Part 2, the H.263 family, MJPEG, VP9: codecs whose frames' quantisers the transcoder follows unless ``--qf`` is ``blind`` or a number) or ``"video"``: which
    default model suits ``src``."""
    import av

    from vsjpegfix.frames.image_files import is_image_path
    from vsjpegfix.quantisers.stream import QP_CODECS

    if is_image_path(src):
        return "image"
    if str(args.qf).lower() not in ("auto", "qp"):
        return "video"
    try:
        with av.open(str(src)) as container:
            ctx = container.streams.video[0].codec_context if container.streams.video else None
            codec = ctx.name if ctx is not None else None
    except (av.FFmpegError, OSError, UnicodeDecodeError):
        codec = None  # the transcoder reports what is wrong with the file
    return "video-qp" if codec in QP_CODECS else "video"


def restore_file(engines: Engines, src: Path, dst: Path, args: argparse.Namespace, overall=None, *, restrict_window: bool = False) -> dict:
    """Restore one image or video with the engine for its kind; returns its report entry.

    ``args`` as :func:`parse_controls` leaves them. ``--start``/``--duration`` cut videos; an image
    is restored whole (an error instead with ``restrict_window``: the single-file command).
    """
    from vsjpegfix.frames.image_files import is_image_path, restore_image_file
    from vsjpegfix.video.transcode import transcode

    engine = engines(input_kind(src, args))
    strength = strength_value(getattr(args, "strength", None))
    if is_image_path(src):
        if not is_image_path(dst):
            raise ValueError(f"{dst}: unsupported output extension {dst.suffix!r} for an image (use .png, .webp or .jpg)")
        if str(args.qf).lower() == "qp":
            raise ValueError("--qf qp needs H.264 or HEVC video; use auto or a number for images")
        if restrict_window and window_values(args) != (0.0, None):
            raise ValueError(f"{src}: --start and --duration apply to video, not to an image")
        result = restore_image_file(engine, src, dst, overwrite=args.overwrite, use_file_qf=str(args.qf).lower() != "blind",
                                    strength_scale=strength)
        if overall is not None:
            overall.update(1)
        return {"kind": "image", "model": engine.model_name, "strength_option": "auto" if strength is None else strength,
                **dataclasses.asdict(result)}
    options = transcode_options(args)
    report = transcode(src, dst, engine, options, overall=overall)
    return {"kind": "video", "model": engine.model_name, **report.as_dict()}
