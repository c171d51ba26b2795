"""VapourSynth frames <-> engine planes: formats, colour description from frame properties."""

from __future__ import annotations

from typing import Mapping

import numpy as np
import vapoursynth as vs

from vsjpegfix.engine.colour import MATRIX_FROM_VS, PlaneFormat

MATRIX_NAMES = {
    "709": "bt709", "bt709": "bt709",
    "601": "bt601", "bt601": "bt601", "470bg": "bt601", "170m": "bt601", "smpte170m": "bt601",
    "2020": "bt2020", "2020ncl": "bt2020", "bt2020": "bt2020", "bt2020nc": "bt2020",
}
CHROMA_LOCATIONS = {0: "left", 1: "center", 2: "topleft"}
UNSPECIFIED_MATRIX = 2


def parse_matrix(value: str | int | None) -> str | None:
    """A user's ``matrix=`` argument (``"709"``, ``"601"``, ``"2020"``, or an H.273 code) -> engine name."""
    if value is None:
        return None
    if isinstance(value, int):
        if value not in MATRIX_FROM_VS:
            raise ValueError(f"matrix code {value} is not supported (use 1 = BT.709, 5/6 = BT.601, 9 = BT.2020)")
        return MATRIX_FROM_VS[value]
    key = str(value).lower().replace("-", "").replace(".", "")
    if key not in MATRIX_NAMES:
        raise ValueError(f"unknown matrix {value!r}; use '709', '601' or '2020'")
    return MATRIX_NAMES[key]


def check_format(fmt: vs.VideoFormat | None) -> None:
    """Raise ValueError for formats the engine cannot take."""
    # R4 APIs report a variable format as an UNDEFINED format (id 0) rather than None
    if fmt is None or fmt.id == 0 or fmt.color_family == vs.UNDEFINED:
        raise ValueError("clips with a variable format are not supported")
    if fmt.color_family not in (vs.GRAY, vs.YUV, vs.RGB):
        raise ValueError(f"unsupported colour family of {fmt.name}")
    if fmt.sample_type == vs.INTEGER and not 8 <= fmt.bits_per_sample <= 16:
        raise ValueError(f"{fmt.name}: integer formats must be 8..16 bit")
    if fmt.sample_type == vs.FLOAT and fmt.bits_per_sample not in (16, 32):
        raise ValueError(f"{fmt.name}: float formats must be half or single precision")
    if fmt.subsampling_w > 1 or fmt.subsampling_h > 1:
        raise ValueError(f"{fmt.name}: only 4:4:4, 4:2:2, 4:2:0 and 4:4:0 subsampling are supported")


def plane_format(fmt: vs.VideoFormat, props: Mapping, *, matrix: str | None = None, full_range: bool | None = None) -> PlaneFormat:
    """Engine format of a frame, its colour description read from its properties.

    ``_Matrix`` wins over ``matrix`` (used only when the property is missing or unspecified);
    ``_Range`` wins over ``full_range``; with neither, integer YUV/GRAY is limited range (the
    H.264/HEVC default when no full-range flag is signalled). Missing matrix on YUV is an error.
    """
    family = {vs.GRAY: "gray", vs.YUV: "yuv", vs.RGB: "rgb"}[fmt.color_family]
    is_float = fmt.sample_type == vs.FLOAT
    name = None
    if family == "yuv":
        code = props.get("_Matrix")
        if code is not None and int(code) != UNSPECIFIED_MATRIX:
            if int(code) not in MATRIX_FROM_VS:
                raise ValueError(f"frame property _Matrix={int(code)} is not supported (BT.601, BT.709 and BT.2020 are)")
            name = MATRIX_FROM_VS[int(code)]
        elif matrix is not None:
            name = matrix
        else:
            raise ValueError(
                "the clip's colour matrix is unknown (_Matrix missing or unspecified); pass matrix='709' (or '601', "
                "'2020'), or tag the clip with core.std.SetFrameProps(clip, _Matrix=1)"
            )
    if "_Range" in props:  # R81: 0 limited, 1 full
        full = int(props["_Range"]) == 1
    elif "_ColorRange" in props:  # older cores: 0 full, 1 limited
        full = int(props["_ColorRange"]) == 0
    else:
        full = bool(full_range) if full_range is not None else False
    loc = int(props.get("_ChromaLocation", 0))
    if loc not in CHROMA_LOCATIONS:
        raise ValueError(f"chroma location {loc} is not supported (left, center and top-left are)")
    return PlaneFormat(
        family,
        fmt.bits_per_sample,
        is_float=is_float,
        subsampling=(fmt.subsampling_w, fmt.subsampling_h) if family == "yuv" else (0, 0),
        matrix=name,
        full_range=True if family == "rgb" else full,
        chroma_location=CHROMA_LOCATIONS[loc],
    )


def read_plane(frame: vs.VideoFrame, plane: int) -> np.ndarray:
    """One plane as a contiguous numpy array (VapourSynth arrays are strided and read-only)."""
    return np.ascontiguousarray(np.asarray(frame[plane]))


def write_planes(frame: vs.VideoFrame, planes: list[np.ndarray]) -> None:
    """Copy planes into a writable frame (from ``frame.copy()``)."""
    for p, data in enumerate(planes):
        np.copyto(np.asarray(frame[p]), data, casting="unsafe")
