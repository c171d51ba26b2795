"""Still images through the engine (Pillow in, Pillow out)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .colour import PlaneFormat
from .engine import Engine, RestoreResult
from .safe_write import atomic_output, check_output

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"}
RGB8 = PlaneFormat("rgb", 8)
GRAY8 = PlaneFormat("gray", 8, full_range=True)


class ImageError(ValueError):
    """An image cannot be read, restored or written."""


def is_image_path(path: Path) -> bool:
    """Whether ``path`` has a still-image extension."""
    return path.suffix.lower() in IMAGE_SUFFIXES


def read_image(path: Path) -> np.ndarray:
    """Decode an 8-bit gray (HxW) or RGB (HxWx3) image; other modes are refused with a clear error."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im = ImageOps.exif_transpose(im)
            im.load()
    except FileNotFoundError:
        raise ImageError(f"{path}: no such file") from None
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise ImageError(f"{path}: not a readable image ({exc})") from None
    if im.mode not in ("L", "RGB"):
        raise ImageError(f"{path}: image mode {im.mode} is not supported (8-bit gray or RGB only)")
    return np.asarray(im)


def restore_array(engine: Engine, img: np.ndarray) -> tuple[np.ndarray, RestoreResult]:
    """Restore one HxW or HxWx3 uint8 image with ``engine``."""
    if img.ndim == 2:
        result = engine.restore([img[None]], GRAY8)
        return result.planes[0][0], result
    planes = [np.ascontiguousarray(img[None, :, :, c]) for c in range(3)]
    result = engine.restore(planes, RGB8)
    return np.stack([p[0] for p in result.planes], axis=-1), result


def write_image(img: np.ndarray, path: Path) -> None:
    """Encode by extension: PNG, lossless WebP, or JPEG at quality 95 (4:4:4)."""
    from PIL import Image

    suffix = path.suffix.lower()
    if suffix in (".part",):
        suffix = Path(path.stem).suffix.lower()
    im = Image.fromarray(img)
    kinds = {".png": ("PNG", {}), ".webp": ("WEBP", {"lossless": True}), ".jpg": ("JPEG", {"quality": 95, "subsampling": 0}),
             ".jpeg": ("JPEG", {"quality": 95, "subsampling": 0}), ".bmp": ("BMP", {}), ".tif": ("TIFF", {}), ".tiff": ("TIFF", {})}
    if suffix not in kinds:
        raise ImageError(f"{path}: unsupported output extension {suffix!r} (use .png, .webp or .jpg)")
    fmt, opts = kinds[suffix]
    im.save(path, format=fmt, **opts)


def restore_image_file(engine: Engine, src: Path, dst: Path, *, overwrite: bool = False) -> RestoreResult:
    """Restore image ``src`` into ``dst`` (written to a temporary name, renamed when complete)."""
    check_output(src, dst, overwrite=overwrite)
    if dst.suffix.lower() not in (".png", ".webp", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"):
        raise ImageError(f"{dst}: unsupported output extension {dst.suffix!r} (use .png, .webp or .jpg)")
    out, result = restore_array(engine, read_image(src))
    with atomic_output(dst) as tmp:
        write_image(out, tmp)
    return result
