"""Opening the input and planning the output before anything is written.

The first decoded frame gives size, pixel format, colour and rotation (:func:`probe`); the
encoder's pixel format is chosen to keep the input's where it can (:func:`choose_output_format`);
:func:`plan` checks the options against the engine and returns everything the transcoder needs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import av

from vsjpegfix.engine.core import Engine
from vsjpegfix.frames.av_frames import (
    FrameFormatError,
    FrameLayout,
    colour_tags,
    default_matrix,
    display_matrix,
    format_name,
    layout_of,
    plain_format,
    planar_format,
)
from vsjpegfix.frames.fields import field_order
from vsjpegfix.video.containers import default_encoder
from vsjpegfix.video.report import (
    TranscodeError,
    TranscodeOptions,
    TranscodeReport,
    av_message,
    warn,
)

ODD_SIZE_ENCODERS = {"ffv1", "rawvideo"}  # encoders known to take subsampled frames of any size


@dataclass
class Probe:
    width: int
    height: int
    pix_fmt: str
    rotation: float
    frames: int
    colour: dict[str, int] = field(default_factory=dict)
    matrix: list[int] | None = None
    first_frame: av.VideoFrame | None = None
    field_order: str | None = None  # interlaced: "tff" or "bff" (vsjpegfix.frames.fields.field_order); None: progressive


def open_input(src: Path) -> av.container.InputContainer:
    """Open a media file, turning every failure into a one-line :class:`TranscodeError`."""
    if not src.exists():
        raise TranscodeError(f"{src}: no such file")
    if src.is_dir():
        raise TranscodeError(f"{src} is a directory")
    if src.stat().st_size == 0:
        raise TranscodeError(f"{src}: empty file")
    try:
        return av.open(str(src))
    except (av.FFmpegError, OSError, ValueError, UnicodeDecodeError) as exc:
        raise TranscodeError(f"{src}: not a readable media file ({av_message(exc)})") from None


def read_packets(packets: Iterator[av.Packet], where: Callable[[], str]) -> Iterator[av.Packet]:
    """The packets of a demuxer (``container.demux(...)``); a read error ends them with
    :class:`TranscodeError` ``"<where()>: <FFmpeg's message>"`` (``where`` is asked when it happens)."""
    while True:
        try:
            packet = next(packets)
        except StopIteration:
            return
        except av.FFmpegError as exc:
            raise TranscodeError(f"{where()}: {av_message(exc)}") from None
        yield packet


def video_stream(container: av.container.InputContainer, src: Path) -> av.video.stream.VideoStream:
    """The first video stream that is not a cover picture; a one-line error when there is none, or when
    FFmpeg has no decoder for it (an unknown codec tag, as a damaged file can have)."""
    found = [s for s in container.streams.video if not (s.disposition & av.stream.Disposition.attached_pic)]
    for s in found:
        if s.codec_context is not None:
            return s
    if found:
        raise TranscodeError(f"{src}: the video stream's codec is unknown (FFmpeg has no decoder for it)")
    raise TranscodeError(f"{src}: no video stream")


def probe(src: Path) -> Probe:
    """Decode the first video frame: size, pixel format, colour and rotation, before any output is made."""
    with open_input(src) as container:
        stream = video_stream(container, src)
        try:
            for frame in container.decode(stream):
                return Probe(
                    frame.width,
                    frame.height,
                    frame.format.name,
                    float(frame.rotation or 0),
                    int(stream.frames or 0),
                    colour_tags(frame),
                    display_matrix(frame),
                    field_order=field_order(stream.codec_context.field_order, bool(frame.interlaced_frame)),
                )
        except av.FFmpegError as exc:
            raise TranscodeError(f"{src}: cannot decode the video ({av_message(exc)})") from None
    raise TranscodeError(f"{src}: the video stream has no decodable frame")


def _layout_or_none(pix_fmt: str) -> FrameLayout | None:
    try:
        return layout_of(pix_fmt)
    except (FrameFormatError, ValueError):
        return None


def _fits(layout: FrameLayout, codec: str, width: int, height: int) -> bool:
    """Can ``codec`` write a ``width`` x ``height`` frame in ``layout``?"""
    if codec in ODD_SIZE_ENCODERS or layout.family != "yuv":
        return True
    sw, sh = layout.subsampling
    return not (width % (1 << sw) or height % (1 << sh))


def choose_output_format(codec: av.codec.Codec, wanted: str, width: int, height: int) -> tuple[str, str | None]:
    """Pixel format to encode ``wanted`` (a planar, non-``yuvj`` format) with, and why it differs.

    The wanted format when the encoder can write it at this size; otherwise the nearest it can:
    same colour family, then the same bit depth (else the nearest higher, else the nearest lower),
    then the same chroma subsampling (else finer, else coarser).
    """
    want = layout_of(wanted)
    supported = [f.name for f in (codec.video_formats or [])]
    if (not supported or wanted in supported) and _fits(want, codec.name, width, height):
        return wanted, None
    best, best_score = None, None
    for name in supported or [wanted, format_name(want.family, want.bits, (0, 0))]:
        if name.startswith("yuvj"):
            continue
        try:  # packed and semi-planar formats (bgr0, nv12, ...) count as their planar equivalent
            lay = _layout_or_none(planar_format(name))
        except FrameFormatError:
            continue
        if lay is None or not _fits(lay, codec.name, width, height) or name.startswith(("yuva", "gbra")) or name in ("bgra", "rgba", "argb", "abgr"):
            continue
        family = 0 if lay.family == want.family else (1 if lay.family == "yuv" else 2)
        if lay.bits == want.bits:
            bits = 0
        elif lay.bits > want.bits:
            bits = lay.bits - want.bits
        else:
            bits = 100 + want.bits - lay.bits
        if lay.subsampling == want.subsampling:
            sub = 0
        elif all(a <= b for a, b in zip(lay.subsampling, want.subsampling)):
            sub = 1 + sum(lay.subsampling)
        else:
            sub = 10 + sum(lay.subsampling)
        score = (family, bits, sub, name != lay.pix_fmt)  # the planar format itself first
        if best_score is None or score < best_score:
            best, best_score = name, score
    if best is None:
        raise TranscodeError(f"encoder {codec.name} cannot write {width}x{height} {wanted} video in any format")
    if planar_format(best) == wanted:
        why = None  # the same samples, packed differently (gbrp -> bgr0): nothing to warn about
    elif not _fits(want, codec.name, width, height):
        why = (
            f"{codec.name} cannot encode {wanted} at the odd size {width}x{height}; writing {best} "
            "(same size, chroma upsampled)"
        )
    else:
        why = f"encoder {codec.name} cannot write {wanted}; writing {best}"
    return best, why


@dataclass
class OutputFormat:
    """How restored frames become encoder frames."""

    layout: FrameLayout  # layout of the restored planes (the input's, yuvj mapped to yuv)
    pix_fmt: str  # the encoder's pixel format
    colour: dict[str, int]  # tags of the encoded frames
    convert: bool  # True: swscale from ``layout`` to ``pix_fmt`` (other depth/subsampling/family)
    width: int
    height: int


def qp_profile_usable(engine: Engine) -> bool:
    """Whether the engine's model has a calibrated QP profile that the transcoder may follow."""
    return engine.quality_profile is not None and engine.quality_profile.has_qp and engine.qf is None


def plan(src: Path, engine: Engine, options: TranscodeOptions, report: TranscodeReport, quiet: bool):
    """Check the options against the engine and plan the output: ``(encoder, input info, output format, matrix)``.

    Without ``options.codec`` the encoder is the first that the output's container (``report.output``'s
    extension) holds (:func:`vsjpegfix.video.containers.default_encoder`); ``report.codec`` names it."""
    if options.qf not in ("auto", "blind", "qp"):
        raise TranscodeError(f"unknown quality mode {options.qf!r}; use 'auto', 'blind' or 'qp'")
    if options.qf == "qp" and not engine.has_quality and not qp_profile_usable(engine):
        raise TranscodeError("--qf qp needs a model with quality control (FBCNN) or a calibrated QP profile")
    name = options.codec or default_encoder(Path(report.output))
    try:
        codec = av.codec.Codec(name, "w")
    except (av.FFmpegError, ValueError):
        raise TranscodeError(f"unknown encoder {name!r}") from None
    if codec.type != "video":
        raise TranscodeError(f"{name} is not a video encoder")
    report.codec = codec.name
    info = probe(src)
    report.input_pix_fmt, report.width, report.height = info.pix_fmt, info.width, info.height
    report.field_order = info.field_order
    try:
        in_layout = layout_of(planar_format(info.pix_fmt))
    except FrameFormatError as exc:
        raise TranscodeError(f"{src}: {exc}") from None
    out_fmt = plan_output(codec, in_layout, info, options, report, quiet)
    matrix = plan_matrix(in_layout, info, options, report, quiet)
    return codec, info, out_fmt, matrix


def plan_output(codec, in_layout: FrameLayout, info: Probe, options: TranscodeOptions, report: TranscodeReport, quiet: bool) -> OutputFormat:
    plain = plain_format(in_layout.pix_fmt)
    wanted = plain
    if options.pix_fmt:
        try:
            wanted = plain_format(planar_format(options.pix_fmt))
            layout_of(wanted)
        except FrameFormatError as exc:
            raise TranscodeError(f"--pix-fmt: {exc}") from None
        if wanted != options.pix_fmt:
            warn(report, f"--pix-fmt {options.pix_fmt}: writing the planar equivalent {wanted}", quiet)
    pix, why = choose_output_format(codec, wanted, info.width, info.height)
    if why:
        warn(report, why, quiet)
    out_layout = layout_of(planar_format(pix))
    colour = dict(info.colour)
    if in_layout.jpeg_range:
        colour["color_range"] = 2
    if out_layout.family != in_layout.family:
        if out_layout.family == "yuv" and in_layout.family == "rgb":
            colour.update(colorspace=1, color_range=1)  # RGB written as BT.709 limited-range YUV
        elif out_layout.family == "rgb":
            colour.update(colorspace=0, color_range=2)
        elif out_layout.family == "gray":
            colour.pop("colorspace", None)
    convert = pix != plain  # another depth, subsampling, colour family or packing: converted with swscale
    report.pix_fmt = pix
    return OutputFormat(in_layout, pix, colour, convert, info.width, info.height)


def plan_matrix(in_layout: FrameLayout, info: Probe, options: TranscodeOptions, report: TranscodeReport, quiet: bool) -> str | None:
    """The matrix the engine uses for YUV frames without a supported matrix tag (None: the tag's)."""
    if in_layout.family != "yuv":
        return options.matrix
    code = int(info.colour.get("colorspace", 2) or 2)
    if code in (1, 5, 6, 9):
        return options.matrix
    if code not in (0, 2) and options.matrix is None:
        raise TranscodeError(f"{report.input}: colour matrix {code} of the video is not supported; pass --matrix 709, 601 or 2020")
    matrix = options.matrix or default_matrix(info.width, info.height)
    if options.matrix is None:
        warn(report, f"video has no colour matrix tag; assuming {matrix} (set --matrix to override)", quiet)
    return matrix
