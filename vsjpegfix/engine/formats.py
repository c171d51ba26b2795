"""Plane formats: what a planar frame is (colour family, bit depth, subsampling, matrix, range, chroma
siting), and how its integer codes map to normalised values.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

#: (Kr, Kb) of the supported non-constant-luminance matrices.
MATRIX_COEFFICIENTS: dict[str, tuple[float, float]] = {
    "bt601": (0.299, 0.114),
    "bt709": (0.2126, 0.0722),
    "bt2020": (0.2627, 0.0593),
}


#: VapourSynth ``_Matrix`` / ITU-T H.273 matrix codes -> names used here.
#: 0 is RGB (no matrix), 2 is "unspecified": both are deliberately absent, the
#: caller decides what to do with them (e.g. guess from the frame size).
MATRIX_FROM_VS: dict[int, str] = {
    1: "bt709",
    5: "bt601",  # BT.470BG
    6: "bt601",  # SMPTE 170M
    9: "bt2020",  # BT.2020 non-constant luminance
}


_CHROMA_LOCATIONS = ("left", "center", "topleft")


@dataclass(frozen=True)
class PlaneFormat:
    """Description of a planar frame, enough to convert it to RGB and back.

    ``subsampling`` is (log2 horizontal, log2 vertical): (1, 1) is 4:2:0,
    (1, 0) is 4:2:2, (0, 0) is 4:4:4.  ``matrix`` is required for YUV and
    ignored otherwise.  ``full_range`` only matters for integer YUV/GRAY (RGB
    is always full range, float formats have no range).  ``chroma_location``
    is the position of subsampled chroma samples: "left" (MPEG-2, the
    VapourSynth default), "center" (MPEG-1/JPEG) or "topleft".
    """

    family: Literal["gray", "yuv", "rgb"]
    bits: int  # 8..16 for integer, 16 or 32 for float
    is_float: bool = False
    subsampling: tuple[int, int] = (0, 0)
    matrix: str | None = None
    full_range: bool = False
    chroma_location: str = "left"

    def validate(self) -> None:
        """Raise ``ValueError`` with a clear message if the format is unsupported."""
        if self.family not in ("gray", "yuv", "rgb"):
            raise ValueError(f"unknown colour family {self.family!r}; expected 'gray', 'yuv' or 'rgb'")
        if not isinstance(self.bits, (int, np.integer)) or isinstance(self.bits, bool):
            raise ValueError(f"bits must be an int, got {self.bits!r}")
        if self.is_float:
            if self.bits not in (16, 32):
                raise ValueError(f"float formats must have 16 or 32 bits, got {self.bits}")
        elif not 8 <= self.bits <= 16:
            raise ValueError(f"integer formats must have 8..16 bits, got {self.bits}")
        ss = self.subsampling
        if (
            not isinstance(ss, tuple)
            or len(ss) != 2
            or not all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) for s in ss)
        ):
            raise ValueError(f"subsampling must be a tuple of two ints (log2 w, log2 h), got {ss!r}")
        if any(s not in (0, 1) for s in ss):
            raise ValueError(
                f"unsupported subsampling {ss!r}: only 4:4:4 (0, 0), 4:2:2 (1, 0), 4:4:0 (0, 1) "
                "and 4:2:0 (1, 1) are supported"
            )
        if self.family != "yuv" and ss != (0, 0):
            raise ValueError(f"{self.family} formats cannot be subsampled (subsampling={ss!r})")
        if self.family == "yuv":
            if self.matrix is None:
                raise ValueError(
                    "yuv formats need a matrix ('bt601', 'bt709' or 'bt2020'); "
                    "map VapourSynth's _Matrix with MATRIX_FROM_VS"
                )
            if self.matrix not in MATRIX_COEFFICIENTS:
                raise ValueError(
                    f"unsupported matrix {self.matrix!r}; expected one of {sorted(MATRIX_COEFFICIENTS)}"
                )
        if self.chroma_location not in _CHROMA_LOCATIONS:
            raise ValueError(
                f"unsupported chroma_location {self.chroma_location!r}; expected one of {_CHROMA_LOCATIONS}"
            )

    @property
    def num_planes(self) -> int:
        """1 for gray, 3 for yuv and rgb."""
        return 1 if self.family == "gray" else 3


def storage_dtype(fmt: PlaneFormat) -> torch.dtype:
    """Default tensor dtype of a plane of ``fmt``.

    uint8 for 8 bit, int16 for 9..16 bit (16-bit values above 32767 are stored
    as their uint16 bit pattern, i.e. negative; ``.numpy().view(np.uint16)`` or
    a numpy assignment into a uint16 frame array recovers them), float16/32
    for float formats.
    """
    if fmt.is_float:
        return torch.float16 if fmt.bits == 16 else torch.float32
    return torch.uint8 if fmt.bits == 8 else torch.int16


def luma_scale_offset(fmt: PlaneFormat) -> tuple[float, float]:
    """(scale, offset) with ``code = unit * scale + offset`` for luma/gray/RGB planes."""
    if fmt.is_float:
        return 1.0, 0.0
    b = fmt.bits
    if fmt.family == "rgb" or fmt.full_range:
        return float((1 << b) - 1), 0.0
    return float(219 << (b - 8)), float(16 << (b - 8))


def chroma_scale_offset(fmt: PlaneFormat) -> tuple[float, float]:
    """(scale, offset) with ``code = unit * scale + offset`` for U/V planes (unit in [-0.5, 0.5])."""
    if fmt.is_float:
        return 1.0, 0.0
    b = fmt.bits
    if fmt.full_range:
        return float((1 << b) - 1), float(1 << (b - 1))
    return float(224 << (b - 8)), float(128 << (b - 8))
