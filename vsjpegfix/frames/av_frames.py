"""PyAV frames <-> engine planes.

Planar YUV/GRAY/GBR pixel formats are read and written directly (8..16 bit); semi-planar and
packed formats (nv12, p010, rgb24, ...) are converted to their planar equivalent first. Planes are
read with their line padding removed (``frame.planes[i]`` has ``line_size >= width``).

Frames whose size is not a multiple of their chroma subsampling (e.g. 4:2:0 with an odd width,
whose chroma planes hold ``ceil(w / 2)`` samples) are padded by repeating the last luma
column/row before restoration (:func:`pad_to_subsampling`) and cropped back afterwards
(:func:`crop_planes`), so their size is kept.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import av
import numpy as np

from vsjpegfix.engine.colour import PlaneFormat

# AVColorSpace codes -> engine matrix names (1 BT.709, 5 BT.470BG, 6 SMPTE 170M, 9 BT.2020 NCL)
AV_MATRIX = {1: "bt709", 5: "bt601", 6: "bt601", 9: "bt2020"}
AV_CHROMA_LOCATION = {1: "left", 2: "center", 3: "topleft"}  # AVChromaLocation; 0 = unspecified -> left
PLANAR_EQUIVALENT = {
    "nv12": "yuv420p", "nv21": "yuv420p", "nv16": "yuv422p", "nv24": "yuv444p", "p010le": "yuv420p10le",
    "p016le": "yuv420p16le", "p210le": "yuv422p10le", "p410le": "yuv444p10le", "rgb24": "gbrp", "bgr24": "gbrp",
    "rgba": "gbrp", "bgra": "gbrp", "argb": "gbrp", "abgr": "gbrp", "rgb48le": "gbrp16le", "yuva420p": "yuv420p",
    "yuva422p": "yuv422p", "yuva444p": "yuv444p", "yuva420p10le": "yuv420p10le", "pal8": "gbrp", "ya8": "gray",
    "yuyv422": "yuv422p", "uyvy422": "yuv422p", "monob": "gray", "monow": "gray",
    "bgr0": "gbrp", "rgb0": "gbrp", "0rgb": "gbrp", "0bgr": "gbrp", "gbrap": "gbrp", "gbrap10le": "gbrp10le",
    "gbrap12le": "gbrp12le", "gbrap16le": "gbrp16le", "bgr48le": "gbrp16le", "rgba64le": "gbrp16le", "bgra64le": "gbrp16le",
    "yuva422p10le": "yuv422p10le", "yuva444p10le": "yuv444p10le", "yuva420p16le": "yuv420p16le", "yuva444p16le": "yuv444p16le",
    "ya16le": "gray16le", "nv20le": "yuv422p10le", "p012le": "yuv420p12le", "p212le": "yuv422p12le", "p412le": "yuv444p12le",
    "p216le": "yuv422p16le", "p416le": "yuv444p16le", "y210le": "yuv422p10le", "xv30le": "yuv444p10le", "vuya": "yuv444p",
    "uyyvyy411": "yuv411p",
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


def plain_format(pix_fmt: str) -> str:
    """``yuvj*`` -> ``yuv*``: the same samples; full range is carried by the colour-range tag instead."""
    return "yuv" + pix_fmt[4:] if pix_fmt.startswith("yuvj") else pix_fmt


def format_name(family: str, bits: int, subsampling: tuple[int, int]) -> str:
    """Planar pixel format name of a layout, e.g. ``("yuv", 10, (1, 1))`` -> ``yuv420p10le``."""
    suffix = "" if bits == 8 else f"{bits}le"
    if family == "gray":
        return f"gray{suffix}"
    if family == "rgb":
        return f"gbrp{suffix}"
    chroma = {(1, 1): "420", (1, 0): "422", (0, 0): "444", (0, 1): "440"}[tuple(subsampling)]
    return f"yuv{chroma}p{suffix}"


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


COLOUR_ATTRS = ("color_range", "colorspace", "color_primaries", "color_trc", "chroma_location")


def colour_tags(frame: av.VideoFrame) -> dict[str, int]:
    """The colour description of a frame (AVColorRange, AVColorSpace, ... codes; 0/2 = unspecified)."""
    tags = {}
    for attr in COLOUR_ATTRS:
        try:
            tags[attr] = int(getattr(frame, attr) or 0)
        except (AttributeError, TypeError, ValueError):
            continue
    if frame.format.name.startswith("yuvj"):
        tags["color_range"] = 2  # AVCOL_RANGE_JPEG
    return tags


def display_matrix(frame: av.VideoFrame) -> list[int] | None:
    """The frame's display matrix (rotation and flips) as FFmpeg's 9 int32 values, or None."""
    try:
        data = frame.side_data.get("DISPLAYMATRIX")
    except (KeyError, ValueError, AttributeError):
        return None
    if data is None:
        return None
    values = np.frombuffer(bytes(data), dtype=np.int32)
    return [int(v) for v in values] if values.size == 9 else None


def pad_to_subsampling(planes: list[np.ndarray], layout: FrameLayout) -> list[np.ndarray]:
    """Pad the luma plane of subsampled YUV to a multiple of the subsampling (edge repeated).

    Chroma planes of such frames already hold ``ceil(size / 2)`` samples, so afterwards the planes
    have consistent sizes; :func:`crop_planes` undoes it.
    """
    if layout.family != "yuv" or layout.subsampling == (0, 0):
        return planes
    sw, sh = layout.subsampling
    h, w = planes[0].shape[-2:]
    ph, pw = -h % (1 << sh), -w % (1 << sw)
    if not ph and not pw:
        return planes
    pad = [(0, 0)] * (planes[0].ndim - 2) + [(0, ph), (0, pw)]
    return [np.pad(planes[0], pad, mode="edge"), *planes[1:]]


def crop_planes(planes: list[np.ndarray], layout: FrameLayout, width: int, height: int) -> list[np.ndarray]:
    """Crop planes (padded by :func:`pad_to_subsampling`) back to a ``width`` x ``height`` frame."""
    sw, sh = layout.subsampling if layout.family == "yuv" else (0, 0)
    out = [planes[0][..., :height, :width]]
    cw, ch = -(-width >> sw), -(-height >> sh)
    out += [p[..., :ch, :cw] for p in planes[1:]]
    return out


def make_frame(
    planes: list[np.ndarray], layout: FrameLayout, template: av.VideoFrame, *, colour: dict[str, int] | None = None
) -> av.VideoFrame:
    """A new frame in ``layout`` holding ``planes``, with the template's timing and colour tags.

    ``colour`` (see :func:`colour_tags`) replaces the template's colour tags.
    """
    height, width = planes[0].shape
    frame = av.VideoFrame(width, height, layout.pix_fmt)
    for data, index in zip(planes, layout.plane_order):
        plane = frame.planes[index]
        row = plane.line_size // layout.dtype.itemsize
        view = np.frombuffer(plane, dtype=layout.dtype).reshape(-1, row)
        view[: plane.height, : plane.width] = data
    frame.pts = template.pts
    frame.time_base = template.time_base
    tags = colour_tags(template) if colour is None else colour
    for attr, value in tags.items():
        try:
            setattr(frame, attr, value)
        except (AttributeError, ValueError, TypeError):
            pass
    return frame
