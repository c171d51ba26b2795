"""The picture of ``vsjpegfix compare`` (:mod:`vsjpegfix.apps.compare`): crops side by side, labelled.

Each compared frame (a :class:`Shot`) is a row: the input's crop on the left, the restoration's on
the right, each under a two-line label, enlarged with nearest-neighbour sampling. Labels use
Pillow's default font. The layout is fixed: every label is :data:`HEADER` pixels high, the crops
start right below it, panels are the zoomed crop's width (wider only when a label needs it) and
:data:`GAP` pixels of white separate the panels and the rows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np

DEFAULT_CROP = 256  # largest default crop side, in pixels
PICTURE_WIDTH = 512  # the default zoom enlarges a crop's longer side to about this
PAD = 4  # text inset in a label
LINE = 18  # height of a label line (13-pixel font)
HEADER = 2 * LINE + 2 * PAD  # height of a label: two lines
GAP = 6  # white space between the two panels and between rows
_CROP = re.compile(r"^(\d+)x(\d+)(?:\+(\d+)\+(\d+))?$")


@dataclass
class Shot:
    """One compared frame: RGB pixels before and after, and what the labels say."""

    before: np.ndarray  # HxWx3 uint8
    after: np.ndarray
    where: str  # "frame 60, 2.00 s" or the image's name
    quantiser: str  # "QP 47.3", "JPEG QF 10", "no QP"
    model: str  # "arcnn", or OUTPUT's name
    strength: str  # "strength 1.00", "strength 0.62, control QF 31", "" when not known


def parse_crop(text: str | None) -> tuple[int, int, int | None, int | None] | None:
    """``"WxH+X+Y"`` -> ``(w, h, x, y)``; ``"WxH"`` -> ``(w, h, None, None)``; None stays None."""
    if text is None:
        return None
    m = _CROP.match(text.strip())
    if not m or int(m.group(1)) < 1 or int(m.group(2)) < 1:
        raise ValueError(f"--crop must be WxH or WxH+X+Y with W, H >= 1, got {text!r}")
    w, h = int(m.group(1)), int(m.group(2))
    return (w, h, None, None) if m.group(3) is None else (w, h, int(m.group(3)), int(m.group(4)))


def default_zoom(width: int, height: int) -> int:
    """Enlargement that brings a crop's longer side to about :data:`PICTURE_WIDTH` pixels (1..8)."""
    return max(1, min(8, PICTURE_WIDTH // max(width, height)))


def choose_crop(shots: list[Shot], crop: tuple[int, int, int | None, int | None] | None) -> tuple[int, int, int, int]:
    """``(x, y, w, h)``: the given crop (checked against the frame), or the window where the
    restoration changed the frames most (all rows share it)."""
    height, width = shots[0].before.shape[:2]
    if crop is None:
        w, h, x, y = min(width, DEFAULT_CROP), min(height, DEFAULT_CROP), None, None
    else:
        w, h, x, y = crop
        if w > width or h > height:
            raise ValueError(f"--crop {w}x{h} is larger than the {width}x{height} frame")
    if x is not None and y is not None:
        if x + w > width or y + h > height:
            raise ValueError(f"--crop {w}x{h}+{x}+{y} reaches outside the {width}x{height} frame")
        return x, y, w, h
    change = sum(np.abs(s.after.astype(np.int64) - s.before.astype(np.int64)).sum(axis=2) for s in shots)
    table = np.pad(np.cumsum(np.cumsum(change, axis=0), axis=1), ((1, 0), (1, 0)))  # summed-area table
    windows = table[h:, w:] - table[:-h, w:] - table[h:, :-w] + table[:-h, :-w]
    y, x = np.unravel_index(int(np.argmax(windows)), windows.shape)  # the first of equal windows
    return int(x), int(y), w, h


def _font() -> Any:
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=13)
    except (TypeError, ImportError, OSError):  # Pillow < 10.1 or without FreeType: the bitmap font
        return ImageFont.load_default()


def labels(shot: Shot) -> tuple[list[str], list[str]]:
    """The two lines over the input's crop and over the restoration's."""
    return [f"input: {shot.where}", shot.quantiser], [f"restored: {shot.model}", shot.strength or "strength not known"]


def render(shots: list[Shot], box: tuple[int, int, int, int], zoom: int) -> Any:
    """The picture (a Pillow RGB image): a row per shot, each half a label over the zoomed crop ``box`` (x, y, w, h)."""
    from PIL import Image, ImageDraw

    font = _font()
    x, y, w, h = box
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    width = max([w * zoom] + [int(np.ceil(measure.textlength(t, font=font))) + 2 * PAD for s in shots for side in labels(s) for t in side])
    row_height = HEADER + h * zoom
    canvas = Image.new("RGB", (2 * width + GAP, len(shots) * (row_height + GAP) - GAP), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    for r, shot in enumerate(shots):
        top = r * (row_height + GAP)
        for c, (pixels, lines) in enumerate(zip((shot.before, shot.after), labels(shot))):
            left = c * (width + GAP)
            draw.rectangle((left, top, left + width - 1, top + row_height - 1), fill=(24, 24, 24))
            for k, text in enumerate(lines):
                draw.text((left + PAD, top + PAD + k * LINE), text, fill=(235, 235, 235), font=font)
            crop = Image.fromarray(np.ascontiguousarray(pixels[y : y + h, x : x + w]))
            canvas.paste(crop.resize((w * zoom, h * zoom), Image.Resampling.NEAREST), (left, top + HEADER))
    return canvas
