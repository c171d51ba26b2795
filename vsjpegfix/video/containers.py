"""Which files are video, which are raw elementary streams, and which containers can hold an encoder's video.

Used to plan a batch (:mod:`vsjpegfix.apps.batch`): files with a known video extension are taken
as video without opening them; any other file is probed by FFmpeg (:func:`sniff`, a few
milliseconds: the header and at most :data:`SNIFF_PROBE_BYTES`), so a video with an unusual name
is restored and everything else is listed with the reason it is not.
"""

from __future__ import annotations

import functools
import io
from dataclasses import dataclass
from pathlib import Path

import av

#: Demuxers of raw elementary streams: no container, no timestamps (frames are numbered at a constant rate).
RAW_FORMATS = frozenset({"h264", "hevc", "vvc", "m4v", "mpegvideo", "mpeg1video", "cavsvideo", "avs2", "avs3", "vc1", "dirac", "obu", "evc", "mjpeg"})

#: Extensions of raw elementary video streams (restored into a container: see :data:`RAW_OUTPUT_SUFFIX`).
RAW_SUFFIXES = frozenset({".264", ".h264", ".avc", ".26l", ".jsv", ".265", ".hevc", ".h265", ".266", ".vvc", ".m1v", ".m2v", ".mpv", ".cavs", ".vc1", ".obu", ".mjpeg", ".mjpg"})

#: Extensions taken as video without probing (container formats, and the raw streams above).
VIDEO_SUFFIXES = frozenset({
    ".mp4", ".mkv", ".mov", ".m4v", ".avi", ".webm", ".ts", ".m2ts", ".mts", ".flv", ".f4v", ".wmv", ".asf",
    ".mpg", ".mpeg", ".vob", ".3gp", ".3g2", ".y4m", ".mxf", ".ogv", ".dv", ".rm", ".rmvb", ".divx", ".nut",
    ".ivf", ".mk3d", ".qt", ".m2p", ".ps", ".trp", ".tp", ".evo", ".xvid", ".amv", ".wtv", ".dvr-ms",
}) | RAW_SUFFIXES

#: The container restored raw streams, and outputs whose own container cannot hold the encoder, are written to.
RAW_OUTPUT_SUFFIX = ".mkv"

#: Encoders tried, in this order, when none is named (``--codec``): the first that the output's container holds
#: writes the video (libx264 everywhere it can; libvpx-vp9 in WebM).
DEFAULT_ENCODERS = ("libx264", "libvpx-vp9", "libsvtav1", "mpeg4")

SNIFF_PROBE_BYTES = 2_000_000

_STILL_FORMATS = ("image2", "gif", "tty", "ico", "pcx", "sgi", "sunrast", "xbm", "xwd", "xpm", "pam", "pbm", "pgm", "ppm", "pfm", "bmp")


@dataclass(frozen=True)
class Sniffed:
    """What FFmpeg makes of a file: ``video`` (True: it has a video stream to restore), the demuxer's
    ``format`` name, ``raw`` (an elementary stream without container) and, when not video, ``reason``."""

    video: bool
    format: str = ""
    raw: bool = False
    reason: str = ""


def sniff(path: Path) -> Sniffed:
    """Probe ``path`` with FFmpeg: is it a video (not a still image, an audio file, subtitles or anything else)?"""
    try:
        container = av.open(str(path), options={"probesize": str(SNIFF_PROBE_BYTES), "analyzeduration": "2000000"})
    except Exception:  # noqa: BLE001 - whatever FFmpeg or the file system says: not a readable media file
        return Sniffed(False, reason="not video or image (FFmpeg cannot read it)")
    try:
        with container:
            name = container.format.name
            videos = [s for s in container.streams.video if not (s.disposition & av.stream.Disposition.attached_pic)]
            kinds = sorted({s.type for s in container.streams})
    except Exception:  # noqa: BLE001
        return Sniffed(False, reason="not video or image (FFmpeg cannot read it)")
    if name.endswith("_pipe") or name.split(",")[0] in _STILL_FORMATS:
        return Sniffed(False, name, reason=f"not video: FFmpeg reads it as a still image ({name}); give it an image extension to restore it")
    if not videos:
        what = ", ".join(kinds) if kinds else "no streams"
        return Sniffed(False, name, reason=f"not video or image ({name}: {what})")
    return Sniffed(True, name, name in RAW_FORMATS)


@functools.lru_cache(maxsize=256)
def holds_codec(suffix: str, codec: str) -> bool:
    """Can a file named ``*SUFFIX`` (the container FFmpeg picks for that extension) hold ``codec``'s video?

    Tried in memory: the container is created and the encoder opened on a small frame size. False
    when FFmpeg knows no container for the extension.
    """

    class _Named(io.BytesIO):
        name = f"probe{suffix}"

    try:
        with av.open(_Named(), "w") as trial:
            stream = trial.add_stream(codec, rate=25)
            stream.width, stream.height = 64, 64
            formats = [f.name for f in (stream.codec_context.codec.video_formats or [])]
            stream.pix_fmt = "yuv420p" if not formats or "yuv420p" in formats else formats[0]
            if codec == "libx265":
                stream.options = {"x265-params": "log-level=error"}
            trial.start_encoding()
        return True
    except Exception:  # noqa: BLE001 - any refusal (unknown extension, codec not accepted) means no
        return False


def default_encoder(dst: Path) -> str:
    """The encoder that writes video into ``dst`` when none is named: the first of :data:`DEFAULT_ENCODERS`
    that a file with ``dst``'s extension holds (libx264 when none does: the transcoder then says why)."""
    suffix = Path(dst).suffix.lower()
    return next((c for c in DEFAULT_ENCODERS if holds_codec(suffix, c)), DEFAULT_ENCODERS[0])
