"""``vsjpegfix compare``: a before/after picture of a video's frames or an image, labelled.

Each chosen frame becomes a row of two crops, the input on the left and its restoration on the
right, enlarged with nearest-neighbour sampling so single pixels stay visible. Without OUTPUT the
frames are restored here by the same code paths the transcoder and the image command use: video
frames go through the transcoder's restoration stage (:class:`vsjpegfix.video.pipeline.Pipeline`,
with the quality mode :func:`vsjpegfix.video.transcode.open_video` resolves, so a shipped model
follows its calibrated profile at each frame's QP) and images through
:func:`vsjpegfix.frames.image_files.restore_loaded`. With OUTPUT the same frames are read from it.

The default crop is the window of the crop size (the whole frame up to 256x256) where the
restoration changed the chosen frames most (sum of absolute RGB differences); ``--crop`` fixes it.
"""

from __future__ import annotations

import argparse
import bisect
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vsjpegfix.apps.compare_picture import (
    DEFAULT_CROP,
    PICTURE_WIDTH,
    Shot,
    choose_crop,
    default_zoom,
    parse_crop,
    render,
)
from vsjpegfix.apps.restore import (
    Engines,
    add_engine_options,
    input_kind,
    strength_value,
)

if TYPE_CHECKING:
    from vsjpegfix.engine.core import Engine
    from vsjpegfix.video.probe import OutputFormat
    from vsjpegfix.video.report import TranscodeOptions

SUFFIXES = {".png": ("PNG", {"optimize": True}), ".webp": ("WEBP", {"lossless": True})}
CODEC_NAMES = {"h264": "H.264", "hevc": "HEVC slice"}  # whose QP the labels show


def parser() -> argparse.ArgumentParser:
    """The ``vsjpegfix compare`` options."""
    p = argparse.ArgumentParser(
        prog="vsjpegfix compare",
        description="Side-by-side crops of a video's frames (or an image) and their restoration, labelled with the "
        "model, each frame's quantiser (H.264/HEVC QP, JPEG QF) and the strength used. Without OUTPUT the frames are "
        "restored with the same engine and quality control as 'vsjpegfix INPUT OUTPUT'; with OUTPUT they are read from it.",
    )
    p.add_argument("input", type=Path, help="the compressed video or image")
    p.add_argument("output", type=Path, nargs="?", default=None, help="its restoration, made earlier (default: restore the chosen frames now)")
    p.add_argument("-o", dest="picture", type=Path, required=True, metavar="PICTURE", help="the comparison picture to write (.png or lossless .webp)")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--frames", type=int, default=None, metavar="N", help="N frames spread evenly over the video (default: 1, the middle frame)")
    which.add_argument("--at", type=float, nargs="+", default=None, metavar="T", help="the frames shown at these times, in seconds from the start")
    p.add_argument("--crop", default=None, metavar="WxH[+X+Y]", help="crop of each frame (default: where the restoration changed the frames most, "
                   f"of the whole frame's size up to {DEFAULT_CROP}x{DEFAULT_CROP}); WxH alone places a crop of that size there")
    p.add_argument("--zoom", type=int, default=None, metavar="K", help=f"enlarge crops K times (default: up to about {PICTURE_WIDTH} pixels wide, at most 8)")
    p.add_argument("--matrix", default=None, choices=["709", "601", "2020"], help="colour matrix of YUV video without a matrix tag (default: 709 for HD, 601 for SD)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing picture")
    p.add_argument("--quiet", action="store_true", help="no warnings; errors only")
    add_engine_options(p)
    return p


def main(argv: list[str]) -> int:
    """Run ``vsjpegfix compare`` (errors are raised as one-line ``ValueError``/``TranscodeError``/``OSError``)."""
    import sys

    from vsjpegfix.frames.image_files import is_image_path
    from vsjpegfix.frames.safe_write import atomic_output, check_output

    args = parser().parse_args(argv)
    src, out, picture = args.input, args.output, args.picture
    if picture.suffix.lower() not in SUFFIXES:
        raise ValueError(f"{picture}: the picture must be .png or .webp (lossless)")
    for path in (src, out):
        if path is not None and not path.is_file():
            raise ValueError(f"{path}: no such file")
    check_output(src, picture, overwrite=args.overwrite)
    if out is not None and picture.exists() and picture.resolve() == out.resolve():
        raise ValueError(f"-o {picture} is OUTPUT; choose another name")
    if args.frames is not None and args.frames < 1:
        raise ValueError("--frames must be at least 1")
    if args.zoom is not None and not 1 <= args.zoom <= 16:
        raise ValueError("--zoom must be in 1..16")
    crop = parse_crop(args.crop)
    if is_image_path(src):
        if args.frames is not None or args.at is not None:
            raise ValueError("--frames and --at choose video frames; the input is an image")
        shots = [image_shot(src, out, args)]
    else:
        shots = video_shots(src, out, args)
    box = choose_crop(shots, crop)
    canvas = render(shots, box, args.zoom or default_zoom(box[2], box[3]))
    kind, options = SUFFIXES[picture.suffix.lower()]
    with atomic_output(picture, overwrite=args.overwrite) as tmp:
        canvas.save(tmp, format=kind, **options)
    if not args.quiet:
        x, y, w, h = box
        print(f"vsjpegfix: wrote {picture}: {len(shots)} frame(s), crop {w}x{h}+{x}+{y}", file=sys.stderr)
    return 0


# ---------------------------------------------------------------------------------------------- images


def image_shot(src: Path, out: Path | None, args: argparse.Namespace) -> Shot:
    """The image and its restoration (made now with the image command's quality control, or read from ``out``)."""
    from vsjpegfix.frames.image_files import load_image, read_image, restore_loaded

    if str(args.qf).lower() == "qp":
        raise ValueError("--qf qp needs H.264 or HEVC video; use auto or a number for images")
    engine = Engines(args)("image") if out is None else None
    loaded = load_image(src, analyse_jpeg=engine is not None and engine.has_quality)
    qf = loaded.file_quality.qf if loaded.file_quality is not None else None
    quantiser = f"JPEG QF {qf:g}" if qf is not None else "no JPEG QF"
    if engine is None:
        after, model, strength = read_image(out), given_output(out, args), ""
    else:
        after, report = restore_loaded(engine, loaded, use_file_qf=str(args.qf).lower() != "blind", strength_scale=strength_value(args.strength))
        model, strength = engine.model_name, strength_label(report.extra.get("strength"), report.qf)
        if report.extra.get("skipped"):
            strength += " (near-clean: left as decoded)"
    before = loaded.pixels
    if after.shape[:2] != before.shape[:2]:
        raise ValueError(f"{out}: {after.shape[1]}x{after.shape[0]}, but the input is {before.shape[1]}x{before.shape[0]}")
    return Shot(rgb(before), rgb(after), src.name, quantiser, model, strength)


def given_output(out: Path, args: argparse.Namespace) -> str:
    """The right-hand label's model when the restoration was read from OUTPUT."""
    return f"{out.name}" + (f" ({args.model})" if args.model else "")


def strength_label(strength: float | None, control: float | None) -> str:
    """``"strength 0.62, control QF 31"``: the fraction of the correction applied (None: all of it)
    and, for FBCNN, the quality that controlled it."""
    text = f"strength {1.0 if strength is None else strength:.2f}"
    return text + (f", control QF {control:g}" if control is not None else "")


def rgb(pixels: np.ndarray) -> np.ndarray:
    """HxW gray or HxWx3 RGB -> HxWx3 RGB."""
    return np.repeat(pixels[..., None], 3, axis=2) if pixels.ndim == 2 else pixels


# ---------------------------------------------------------------------------------------------- video


def frame_times(src: Path) -> tuple[list[float], float]:
    """Start time (seconds from the first frame) of every frame in presentation order, and the
    video's end; from the packets' timestamps (nothing is decoded), else a constant rate."""
    from vsjpegfix.video.probe import open_input, video_stream

    with open_input(src) as container:
        video = video_stream(container, src)
        rate, tick = Fraction(video.average_rate or video.guessed_rate or 25), video.time_base
        stamps = [p.pts for p in container.demux(video) if p.size]
    if not stamps:
        raise ValueError(f"{src}: the video stream has no frames")
    if any(t is None for t in stamps) or tick is None:
        times = [float(i / rate) for i in range(len(stamps))]
    else:
        first = min(stamps)
        times = sorted(float((t - first) * tick) for t in stamps)
    return times, times[-1] + float(1 / rate)


def chosen_frames(times: list[float], end: float, frames: int | None, at: list[float] | None) -> list[int]:
    """Frame indices: ``frames`` spread evenly (the middles of equal parts), or those shown at the times ``at``."""
    if at is None:
        n = frames or 1
        if n > len(times):
            raise ValueError(f"--frames {n}: the video has {len(times)} frames")
        return [(2 * k + 1) * len(times) // (2 * n) for k in range(n)]
    for t in at:
        if not 0 <= t < end:
            raise ValueError(f"--at {t:g}: the video lasts {end:.3f} s")
    return [max(0, bisect.bisect_right(times, t) - 1) for t in at]


def video_shots(src: Path, out: Path | None, args: argparse.Namespace) -> list[Shot]:
    """The chosen frames of ``src`` and their restorations (restored now, or read from ``out``)."""
    times, end = frame_times(src)
    wanted = chosen_frames(times, end, args.frames, args.at)
    engine = None if out is not None else Engines(args)(input_kind(src, args))
    radius = engine.frames // 2 if engine is not None else 0
    needed = sorted({j for i in wanted for j in range(max(0, i - radius), min(len(times), i + radius + 1))})
    decoded, codec, options, out_fmt, rate = decode_input(src, needed, engine, args)
    if out is not None:
        after = {i: (picture, given_output(out, args), "") for i, picture in read_frames(out, wanted).items()}
    else:
        after = {i: restore_frame(src, decoded, i, radius, len(times), engine, options, out_fmt, rate) for i in set(wanted)}
    shots = []
    for i in wanted:
        item = decoded[i]
        before = item.frame.to_ndarray(format="rgb24")
        picture, model, strength = after[i]
        if picture.shape != before.shape:
            raise ValueError(f"{out}: frames of {picture.shape[1]}x{picture.shape[0]}, but the input's are {before.shape[1]}x{before.shape[0]}")
        quantiser = f"{CODEC_NAMES.get(codec, codec)} QP {item.quantiser.value:.1f}" if item.quantiser is not None else f"{codec}: no QP"
        shots.append(Shot(before, picture, f"frame {i}, {times[i]:.2f} s", quantiser, model, strength))
    return shots


def decode_input(
    src: Path, needed: list[int], engine: Engine | None, args: argparse.Namespace
) -> tuple[dict[int, Any], str, TranscodeOptions, OutputFormat | None, Fraction | None]:
    """Decode ``src`` up to the last needed frame, keeping the needed ones (with their quantisers)
    as the transcoder's decode stage prepares them; ``(frames by index, codec, quality options, output format, rate)``."""
    import av

    from vsjpegfix.quantisers.stream import QP_CODECS, StreamQp
    from vsjpegfix.video.pipeline import Pipeline
    from vsjpegfix.video.probe import open_input, plan
    from vsjpegfix.video.report import (
        TranscodeError,
        TranscodeOptions,
        TranscodeReport,
        av_message,
    )
    from vsjpegfix.video.transcode import open_video

    quiet = args.quiet
    qf = str(args.qf).lower()
    options = TranscodeOptions(codec="ffv1", qf=qf if qf in ("qp", "blind") else "auto", progress=not quiet,
                               matrix={"709": "bt709", "601": "bt601", "2020": "bt2020"}.get(args.matrix or ""),
                               strength=strength_value(args.strength))
    report = TranscodeReport(str(src), "", qf_mode=options.qf)
    out_fmt = rate = None
    keep, decoded, index = set(needed), {}, 0
    with open_input(src) as container:
        if engine is not None:
            _, _, out_fmt, options.matrix = plan(src, engine, options, report, quiet)
            video, options, rate, qps = open_video(container, src, options, report, quiet, engine)
            pipe = Pipeline(src, engine, options, report, out_fmt, rate)
        else:
            from vsjpegfix.video.probe import video_stream

            video, qps, pipe = video_stream(container, src), None, None
        if qps is None and video.codec_context.name in QP_CODECS:
            qps = StreamQp(video)  # for the labels (a blind restoration does not use them)
        try:
            for packet in container.demux(video):
                if qps is not None:
                    qps.packet(packet)
                for frame in packet.decode():
                    quantiser = qps.frame(frame) if qps is not None else None
                    if index in keep:
                        item = pipe.prepare(frame, index, engine.frames > 1, quantiser) if pipe else None
                        decoded[index] = item or _Plain(frame, quantiser)
                    index += 1
                if index > needed[-1]:
                    break
        except av.FFmpegError as exc:
            raise TranscodeError(f"{src}: decoding error at video frame {index}: {av_message(exc)}") from None
    if len(decoded) < len(keep):
        raise TranscodeError(f"{src}: {index} frames decoded, frame {needed[-1]} needed")
    return decoded, video.codec_context.name, options, out_fmt, rate


@dataclass
class _Plain:
    """A decoded input frame kept for the picture only (OUTPUT given: nothing is restored)."""

    frame: Any  # av.VideoFrame
    quantiser: Any  # FrameQuantiser | None


def restore_frame(src: Path, decoded: dict[int, Any], i: int, radius: int, count: int, engine: Engine,
                  options: TranscodeOptions, out_fmt: OutputFormat, rate: Fraction) -> tuple[np.ndarray, str, str]:
    """Frame ``i`` restored by the transcoder's restoration stage, fed frame ``i`` and its temporal
    neighbours (as many as a whole-file run gives it); ``(RGB pixels, model, strength label)``."""
    from vsjpegfix.video.pipeline import END, Pipeline
    from vsjpegfix.video.report import TranscodeReport

    first, last = max(0, i - radius), min(count - 1, i + radius)
    items = [replace(decoded[j], index=j - first) for j in range(first, last + 1)]
    report = TranscodeReport(str(src), "", qf_mode=options.qf)
    pipe = Pipeline(src, engine, options, report, out_fmt, rate)
    restored: list = []

    def feed() -> None:  # the decode stage's part: the frames, already decoded
        for item in items:
            if not pipe.put(pipe.frames_q, item):
                return
        pipe.put(pipe.frames_q, END)

    def collect() -> None:
        while (item := pipe.get(pipe.out_q)) is not END:
            restored.append(item[1])

    pipe.run(feed, collect)
    info = next((e for e in report.per_frame if e["frame"] == i - first), {})
    return restored[i - first].to_ndarray(format="rgb24"), engine.model_name, strength_label(info.get("strength"), info.get("qf"))


def read_frames(path: Path, wanted: list[int]) -> dict[int, np.ndarray]:
    """RGB pixels of frames ``wanted`` (indices in presentation order) of the video ``path``."""
    import av

    from vsjpegfix.video.probe import open_input, video_stream
    from vsjpegfix.video.report import TranscodeError, av_message

    keep, found, index = set(wanted), {}, 0
    with open_input(path) as container:
        try:
            for frame in container.decode(video_stream(container, path)):
                if index in keep:
                    found[index] = frame.to_ndarray(format="rgb24")
                index += 1
                if index > max(wanted):
                    break
        except av.FFmpegError as exc:
            raise TranscodeError(f"{path}: decoding error at video frame {index}: {av_message(exc)}") from None
    if len(found) < len(keep):
        raise ValueError(f"{path}: {index} frames, but frame {max(wanted)} of the input was chosen")
    return found
