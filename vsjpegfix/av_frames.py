"""PyAV frames <-> engine planes.

Planar YUV/GRAY/GBR pixel formats are read and written directly (8..16 bit); semi-planar and
packed formats (nv12, p010, rgb24, ...) are converted to their planar equivalent first. Planes are
read with their line padding removed (``frame.planes[i]`` has ``line_size >= width``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import av
import numpy as np

from .colour import PlaneFormat

# AVColorSpace codes -> engine matrix names (1 BT.709, 5 BT.470BG, 6 SMPTE 170M, 9 BT.2020 NCL)
AV_MATRIX = {1: "bt709", 5: "bt601", 6: "bt601", 9: "bt2020"}
AV_CHROMA_LOCATION = {1: "left", 2: "center", 3: "topleft"}  # AVChromaLocation; 0 = unspecified -> left
PLANAR_EQUIVALENT = {
    "nv12": "yuv420p", "nv21": "yuv420p", "nv16": "yuv422p", "nv24": "yuv444p", "p010le": "yuv420p10le",
    "p016le": "yuv420p16le", "p210le": "yuv422p10le", "p410le": "yuv444p10le", "rgb24": "gbrp", "bgr24": "gbrp",
    "rgba": "gbrp", "bgra": "gbrp", "argb": "gbrp", "abgr": "gbrp", "rgb48le": "gbrp16le", "yuva420p": "yuv420p",
    "yuva422p": "yuv422p", "yuva444p": "yuv444p", "yuva420p10le": "yuv420p10le", "pal8": "gbrp", "ya8": "gray",
    "yuyv422": "yuv422p", "uyvy422": "yuv422p", "monob": "gray", "monow": "gray",
}
_NAME = re.compile(r"^(yuvj?|gray|gbr)(420|422|444|440|411|410)?p?(\d+)?(le|be)?$")


class FrameFormatError(ValueError):
    """A pixel format the engine cannot take."""


@dataclass(frozen=True)
class FrameLayout:
    """How an AV pixel format maps onto engine planes."""

    pix_fmt: str
    family: str
    bits: int
    subsampling: tuple[int, int]
    jpeg_range: bool  # yuvj*: full range by definition
    plane_order: tuple[int, ...]  # engine plane i is AV plane plane_order[i]

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(np.uint8 if self.bits == 8 else np.uint16)


def layout_of(pix_fmt: str) -> FrameLayout:
    """Planar layout of ``pix_fmt`` (call :func:`planar_format` first for packed formats)."""
    m = _NAME.match(pix_fmt)
    if not m or (m.group(4) == "be"):
        raise FrameFormatError(f"pixel format {pix_fmt} is not supported")
    kind, chroma, bits = m.group(1), m.group(2), int(m.group(3) or 8)
    if not 8 <= bits <= 16:
        raise FrameFormatError(f"pixel format {pix_fmt}: {bits}-bit samples are not supported")
    fmt = av.VideoFormat(pix_fmt)
    if kind == "gray":
        return FrameLayout(pix_fmt, "gray", bits, (0, 0), False, (0,))
    if kind == "gbr":
        order = tuple(c.plane for c in fmt.components[:3])
        return FrameLayout(pix_fmt, "rgb", bits, (0, 0), False, order)
    sub = {"420": (1, 1), "422": (1, 0), "444": (0, 0), "440": (0, 1)}.get(chroma or "")
    if sub is None:
        raise FrameFormatError(f"pixel format {pix_fmt}: chroma subsampling {chroma} is not supported")
    return FrameLayout(pix_fmt, "yuv", bits, sub, kind == "yuvj", (0, 1, 2))


def planar_format(pix_fmt: str) -> str:
    """The planar pixel format frames of ``pix_fmt`` are converted to before restoration."""
    if _NAME.match(pix_fmt) and not pix_fmt.endswith("be"):
        return pix_fmt
    if pix_fmt in PLANAR_EQUIVALENT:
        return PLANAR_EQUIVALENT[pix_fmt]
    raise FrameFormatError(f"pixel format {pix_fmt} is not supported")


def colour_description(frame: av.VideoFrame, layout: FrameLayout, *, matrix: str | None) -> PlaneFormat:
    """Engine format for a frame: matrix from the frame (else ``matrix``), range, chroma siting."""
    name = None
    if layout.family == "yuv":
        name = AV_MATRIX.get(int(frame.colorspace or 2), None) or matrix
        if name is None:
            raise FrameFormatError(f"colour matrix {int(frame.colorspace or 2)} of the video is not supported; pass --matrix")
    full = layout.jpeg_range or int(frame.color_range or 0) == 2  # AVCOL_RANGE_JPEG
    loc = AV_CHROMA_LOCATION.get(int(getattr(frame, "chroma_location", 0) or 0), "left")
    return PlaneFormat(
        layout.family,
        layout.bits,
        subsampling=layout.subsampling,
        matrix=name,
        full_range=True if layout.family == "rgb" else full,
        chroma_location=loc if layout.family == "yuv" else "left",
    )


def default_matrix(width: int, height: int) -> str:
    """What players assume for untagged video: BT.709 for HD, BT.601 for SD."""
    return "bt709" if width >= 1280 or height > 576 else "bt601"


def read_planes(frame: av.VideoFrame, layout: FrameLayout) -> list[np.ndarray]:
    """Engine-ordered planes of ``frame`` as (h, w) arrays without line padding."""
    out = []
    for index in layout.plane_order:
        plane = frame.planes[index]
        row = plane.line_size // layout.dtype.itemsize
        data = np.frombuffer(plane, dtype=layout.dtype).reshape(-1, row)[: plane.height, : plane.width]
        out.append(data.copy())
    return out


def make_frame(planes: list[np.ndarray], layout: FrameLayout, template: av.VideoFrame) -> av.VideoFrame:
    """A new frame in ``layout`` holding ``planes``, with the template's timing and colour tags."""
    height, width = planes[0].shape
    frame = av.VideoFrame(width, height, layout.pix_fmt)
    for data, index in zip(planes, layout.plane_order):
        plane = frame.planes[index]
        row = plane.line_size // layout.dtype.itemsize
        view = np.frombuffer(plane, dtype=layout.dtype).reshape(-1, row)
        view[: plane.height, : plane.width] = data
    frame.pts = template.pts
    frame.time_base = template.time_base
    for attr in ("color_range", "colorspace", "color_primaries", "color_trc"):
        try:
            setattr(frame, attr, getattr(template, attr))
        except (AttributeError, ValueError, TypeError):
            pass
    return frame
