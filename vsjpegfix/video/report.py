"""What a transcode is asked to do and what it reports: options, report, the one-line error.

Shared by every stage of the transcoder (:mod:`vsjpegfix.video`) and by the apps above it.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any

DEFAULT_CRF = {"libx264": 16.0, "libx265": 18.0, "libsvtav1": 24.0, "libaom-av1": 24.0, "libvpx-vp9": 20.0}


SCENE_CUT_THRESHOLD = 0.12  # mean absolute luma difference (0..1) between frames that marks a cut


class TranscodeError(RuntimeError):
    """A file cannot be transcoded; the message is one line for the user."""


@dataclass
class TranscodeOptions:
    """Encoder and quality-control choices of a transcode (defaults: libx264, keep pixel format)."""

    codec: str | None = None  # None: the first encoder the output's container holds (containers.default_encoder)
    crf: float | None = None
    preset: str | None = None
    pix_fmt: str | None = None
    # "auto": the model's calibrated QP profile on H.264 and HEVC streams (quality_profile), else the engine's
    # own control; "blind": always the engine's own control; "qp": follow the stream's quantiser (the
    # profile, or vsjpegfix.quantisers.mapping.qp_to_qf for FBCNN models without one). Resolved per input by open_video
    # into "profile", "qp" or "auto" (the engine's own control).
    qf: str = "auto"
    matrix: str | None = None  # for untagged YUV; None = BT.709 for HD, BT.601 for SD (reported)
    scene_threshold: float = SCENE_CUT_THRESHOLD
    overwrite: bool = False
    progress: bool = True
    codec_options: dict[str, str] = field(default_factory=dict)
    # the fraction of the model's correction applied: None ("auto") = the profile where one applies, else all
    # of it; a number scales the profile's strength (or is the strength without one), capped at 1
    strength: float | None = None
    start: float = 0.0  # --start: seconds from the file's start (vsjpegfix.video.window)
    duration: float | None = None  # --duration: seconds restored from there (None: to the end)

    @property
    def windowed(self) -> bool:
        """Is only a part of the video restored (``start`` or ``duration`` set)?"""
        return bool(self.start) or self.duration is not None


@dataclass
class TranscodeReport:
    """What happened to one file (the JSON report's entry)."""

    input: str
    output: str
    frames: int = 0
    seconds: float = 0.0
    codec: str = ""
    crf: float | None = None  # the encoder's CRF (the user's, or chosen: vsjpegfix.video.output_quality)
    input_qp: float | None = None  # the input's quantiser (H.264 scale, first frames) that chose it
    pix_fmt: str = ""
    input_pix_fmt: str = ""
    width: int = 0
    height: int = 0
    copied_streams: list[dict[str, Any]] = field(default_factory=list)
    converted_streams: list[dict[str, Any]] = field(default_factory=list)
    dropped_streams: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    corrupt_frames: list[int] = field(default_factory=list)
    retimed_frames: int = 0
    qf_mode: str = "auto"
    field_order: str | None = None  # interlaced input ("tff"/"bff"): restored field by field, written interlaced
    strength_option: float | str = "auto"  # the --strength option (per_frame holds the strength applied)
    window: dict[str, Any] | None = None  # --start/--duration: vsjpegfix.video.window.WindowReport
    per_frame: list[dict[str, Any]] = field(default_factory=list)

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["fps"] = round(self.fps, 3)
        return d


def warn(report: TranscodeReport, message: str, quiet: bool) -> None:
    report.warnings.append(message)
    if not quiet:
        print(f"vsjpegfix: warning: {report.input}: {message}", file=sys.stderr)


def av_message(exc: BaseException) -> str:
    text = getattr(exc, "strerror", None) or str(exc)
    return str(text).splitlines()[0] if str(text) else type(exc).__name__
