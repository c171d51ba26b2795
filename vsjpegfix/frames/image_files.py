"""Still images through the engine: JPEG (and PNG, WebP, ...) in; PNG, lossless WebP or JPEG out.

* A JPEG file's quantisation tables give its quality factor; with ``--qf auto`` an FBCNN model is
  controlled by it (by the smaller, dominant QF when an earlier compression on a shifted grid is
  detected), and the blind prediction is reported beside it.
* EXIF orientation is applied before restoration; the EXIF block (orientation reset) and the ICC
  profile are kept in the output, so colours are restored in the image's own colour space and
  shown as before.
* Grayscale images go through a gray model when the model is gray, else through the colour
  model as gray; RGBA keeps its alpha untouched; CMYK, 16-bit and other modes are refused.
* Animated GIF/WebP/PNG are refused with a clear message; multi-picture JPEGs (MPO, as cameras
  and phones write them) are read as their primary picture.
* Large images (over :data:`LARGE_IMAGE_PIXELS`) are tiled by the engine.
* Near-clean JPEGs: blind models over-correct them. A shipped model's calibrated quality profile
  (:mod:`vsjpegfix.weights.profile`) gives the strength of the correction at the file's QF; where
  it is 0 the file is passed through unchanged (reported as skipped). A model without a profile
  passes JPEGs through from QF :data:`NEAR_CLEAN_QF` (no quality control) or
  :data:`NEAR_CLEAN_QF_CONTROLLED` (FBCNN controlled by the file's QF). ``--qf blind`` or a fixed
  QF restores every file at full strength.
* Every failure is an :class:`ImageError` with a one-line message naming the file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vsjpegfix.engine.colour import PlaneFormat
from vsjpegfix.engine.core import Engine, RestoreResult
from vsjpegfix.frames.safe_write import atomic_output, check_output
from vsjpegfix.quantisers.jpeg import (
    DoubleJpegEstimate,
    QualityEstimate,
    detect_double_jpeg,
    dominant_qf,
    estimate_qf,
)
from vsjpegfix.weights.profile import scale_strength

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif"}
OUTPUT_KINDS = {
    ".png": ("PNG", {}),
    ".webp": ("WEBP", {"lossless": True, "quality": 100}),
    ".jpg": ("JPEG", {"quality": 95, "subsampling": 0}),
    ".jpeg": ("JPEG", {"quality": 95, "subsampling": 0}),
    ".tif": ("TIFF", {"compression": "tiff_deflate"}),
    ".tiff": ("TIFF", {"compression": "tiff_deflate"}),
    ".bmp": ("BMP", {}),
}
RGB8 = PlaneFormat("rgb", 8)
GRAY8 = PlaneFormat("gray", 8, full_range=True)
LARGE_IMAGE_PIXELS = 4_000_000  # larger images are tiled to bound memory
NEAR_CLEAN_QF = 90  # JPEGs at or above this quality are passed through by models without quality control
#: ... and from this quality by models with quality control: the shipped fbcnn-s gains 0.8 dB at QF 90
#: but loses about 3 dB at QF 95 and 100 on CBSD68 even when controlled with the file's QF.
NEAR_CLEAN_QF_CONTROLLED = 95


class ImageError(ValueError):
    """An image cannot be read, restored or written."""


@dataclass
class LoadedImage:
    """Decoded pixels plus what must survive into the output."""

    pixels: np.ndarray  # HxW (gray) or HxWx3 uint8, orientation applied
    alpha: np.ndarray | None = None
    icc_profile: bytes | None = None
    exif: bytes | None = None
    file_quality: QualityEstimate | None = None
    double: DoubleJpegEstimate | None = None
    format: str = ""


@dataclass
class ImageReport:
    """Per-image facts for the JSON report."""

    file_qf: float | None = None
    file_qf_exact: bool | None = None
    double_jpeg: dict[str, Any] | None = None
    qf: float | None = None
    predicted_qf: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def is_image_path(path: Path) -> bool:
    """Whether ``path`` has a still-image extension."""
    return path.suffix.lower() in IMAGE_SUFFIXES


def load_image(path: Path, *, analyse_jpeg: bool = True) -> LoadedImage:
    """Decode an image for restoration (see the module docstring for what is supported).

    A JPEG's quantisation tables give :attr:`LoadedImage.file_quality`; with ``analyse_jpeg`` an
    earlier compression on a shifted grid is looked for in the pixels as stored (before the EXIF
    orientation is applied: a rotation moves the 8x8 grid when a side is not a multiple of 8).
    Multi-picture JPEGs (MPO: camera and phone photos with a depth map, gain map or second view)
    are read as their primary picture.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        im = Image.open(path)
    except FileNotFoundError:
        raise ImageError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ImageError(f"{path} is a directory") from None
    except Image.DecompressionBombError as exc:
        raise ImageError(f"{path}: image too large ({exc})") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageError(f"{path}: not a readable image ({exc})") from None
    with im:
        fmt = im.format or ""
        frames = getattr(im, "n_frames", 1)
        if fmt != "MPO" and frames > 1:
            raise ImageError(
                f"{path}: animated or multi-frame images ({frames} frames) are not supported; convert them to a video first"
            )
        quality = None
        if fmt in ("JPEG", "MPO") and getattr(im, "quantization", None):
            try:
                quality = estimate_qf(im.quantization)
            except ValueError:
                quality = None
        icc = im.info.get("icc_profile") or None
        try:
            exif = im.getexif()
        except Exception:  # noqa: BLE001 - a corrupt EXIF block is dropped, not fatal
            exif = Image.Exif()
        try:
            im.load()
            stored = np.asarray(im) if analyse_jpeg and quality is not None and im.mode in ("L", "RGB") else None
            oriented = ImageOps.exif_transpose(im)
            oriented.load()
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            raise ImageError(f"{path}: truncated or corrupt image ({exc})") from None
        mode = oriented.mode
        alpha = None
        if mode in ("P", "PA"):
            oriented = oriented.convert("RGBA" if "transparency" in oriented.info or mode == "PA" else "RGB")
            mode = oriented.mode
        if mode == "LA":
            alpha = np.asarray(oriented.getchannel("A"))
            oriented = oriented.convert("L")
        elif mode == "RGBA":
            alpha = np.asarray(oriented.getchannel("A"))
            oriented = oriented.convert("RGB")
        elif mode == "1":
            oriented = oriented.convert("L")
        elif mode not in ("L", "RGB"):
            raise ImageError(
                f"{path}: image mode {mode} is not supported (8-bit gray, RGB or RGBA only; convert CMYK/16-bit images first)"
            )
        pixels = np.array(oriented)  # a writable copy (torch warns about read-only arrays)
    if exif and 0x0112 in exif:
        exif[0x0112] = 1  # orientation applied to the pixels
    double = detect_double_jpeg(stored, qf2=quality.qf) if stored is not None else None
    return LoadedImage(pixels, alpha, icc, exif.tobytes() if exif else None, quality, double, fmt)


def read_image(path: Path) -> np.ndarray:
    """Decoded 8-bit gray (HxW) or RGB (HxWx3) pixels of an image file."""
    return load_image(path, analyse_jpeg=False).pixels


def _planes(img: np.ndarray) -> tuple[list[np.ndarray], PlaneFormat]:
    if img.ndim == 2:
        return [img[None]], GRAY8
    return [np.ascontiguousarray(img[None, :, :, c]) for c in range(3)], RGB8


def restore_array(
    engine: Engine, img: np.ndarray, *, qf: float | None = None, strength: float | None = None
) -> tuple[np.ndarray, RestoreResult]:
    """Restore one HxW or HxWx3 uint8 image with ``engine`` (``qf`` overrides its quality control,
    ``strength`` scales the correction; see :meth:`vsjpegfix.engine.core.Engine.restore`)."""
    planes, fmt = _planes(img)
    result = engine.restore(planes, fmt, qf=qf, strength=strength)
    if img.ndim == 2:
        return result.planes[0][0], result
    return np.stack([p[0] for p in result.planes], axis=-1), result


def _near_clean(engine: Engine, loaded: LoadedImage, control: float | None, use_file_qf: bool) -> tuple[float | None, str]:
    """``(strength or None for full, reason to skip or "")`` for a JPEG of known quality.

    With a calibrated JPEG profile (shipped models) the strength is the profile's at the file's QF
    (the dominant QF of a detected double compression), and a strength of 0 passes the file
    through. Without one, JPEGs from :data:`NEAR_CLEAN_QF` (models without quality control) or
    :data:`NEAR_CLEAN_QF_CONTROLLED` (FBCNN controlled by the file's QF) are passed through. A fixed
    ``qf`` or ``use_file_qf=False`` (``--qf blind``) restores every file at full strength.
    """
    if loaded.file_quality is None or not use_file_qf or engine.qf is not None:
        return None, ""
    qf = control if control is not None else loaded.file_quality.qf
    profile = engine.quality_profile
    if profile is not None and profile.has_qf:
        strength = profile.for_jpeg_qf(qf)
        if strength <= 0.0:
            return 0.0, f"file QF {qf:g}: near-clean, left as decoded (the model's calibrated strength there is 0)"
        return (None if strength >= 1.0 else strength), ""
    threshold = NEAR_CLEAN_QF_CONTROLLED if control is not None else None if engine.has_quality else NEAR_CLEAN_QF
    if threshold is None or loaded.file_quality.qf < threshold or (loaded.double is not None and loaded.double.detected):
        return None, ""
    # Blind models over-correct near-clean JPEGs (measured on CBSD68: Fast ARCNN loses 1.3 dB at QF 90 and
    # 13 dB at QF 95; fbcnn-s controlled with the file QF loses 3 dB at QF 95): such files are passed through.
    why = "even with the file's QF" if engine.has_quality else "having no quality control"
    return 0.0, (f"file QF {loaded.file_quality.qf:g} >= {threshold}: near-clean, left as decoded "
                 f"(the model over-corrects such files {why})")


def write_image(img: np.ndarray, path: Path, *, alpha: np.ndarray | None = None, icc_profile: bytes | None = None,
                exif: bytes | None = None, jpeg_quality: int = 95) -> None:
    """Encode by extension (PNG, lossless WebP, JPEG, TIFF, BMP), keeping ICC, EXIF and alpha
    (JPEG and BMP have no alpha: it is dropped, and ``restore_image_file`` reports it)."""
    from PIL import Image

    suffix = path.suffix.lower()
    if suffix not in OUTPUT_KINDS:
        raise ImageError(f"{path}: unsupported output extension {suffix!r} (use .png, .webp or .jpg)")
    kind, opts = OUTPUT_KINDS[suffix]
    opts = dict(opts)
    if kind == "JPEG":
        opts["quality"] = int(jpeg_quality)
    im = Image.fromarray(img)
    if alpha is not None and kind in ("PNG", "WEBP", "TIFF"):
        im.putalpha(Image.fromarray(alpha))
    if icc_profile and kind in ("PNG", "WEBP", "JPEG", "TIFF"):
        opts["icc_profile"] = icc_profile
    if exif and kind in ("PNG", "WEBP", "JPEG", "TIFF"):
        opts["exif"] = exif
    im.save(path, format=kind, **opts)


def restore_loaded(engine: Engine, loaded: LoadedImage, *, use_file_qf: bool = True,
                   strength_scale: float | None = None) -> tuple[np.ndarray, ImageReport]:
    """Restore a loaded image with the quality control the command line uses; ``(pixels, report)``.

    With an FBCNN model in blind mode and a JPEG input, the file's own QF (or the dominant QF of a
    double compression) controls the restoration when ``use_file_qf``; the blind prediction is
    reported beside it. A calibrated profile sets the strength from the file's QF, and a
    near-clean file comes back unchanged (``report.extra["skipped"]`` says why). Large images
    are tiled. ``strength_scale`` (``--strength``): None keeps that strength (full strength where no
    profile applies); a number scales it, capped at 1 (:func:`vsjpegfix.weights.profile.scale_strength`);
    a near-clean file left as decoded stays so.
    """
    report = ImageReport()
    control = None
    if loaded.file_quality is not None:
        report.file_qf, report.file_qf_exact = loaded.file_quality.qf, loaded.file_quality.exact
        if loaded.double is not None:
            report.double_jpeg = {
                "detected": loaded.double.detected, "shift": list(loaded.double.shift),
                "qf1": loaded.double.qf1, "strength": round(loaded.double.strength, 3),
            }
        if engine.has_quality and engine.qf is None and use_file_qf:
            control = dominant_qf(loaded.file_quality.qf, loaded.double)
    saved = (engine.max_frame_pixels, engine.tile)
    large = engine.max_frame_pixels is None and loaded.pixels.shape[0] * loaded.pixels.shape[1] > LARGE_IMAGE_PIXELS
    if large:  # tiled by the engine (1024-pixel tiles) to bound memory
        engine.max_frame_pixels = LARGE_IMAGE_PIXELS
    strength, skipped = _near_clean(engine, loaded, control, use_file_qf)
    if not skipped:
        strength = scale_strength(strength, strength_scale)
    if strength is not None:
        report.extra["strength"] = round(strength, 3)
    try:
        result = None
        if skipped:
            out = loaded.pixels
            report.extra["skipped"] = skipped
        else:
            out, result = restore_array(engine, loaded.pixels, qf=control, strength=strength)
        if engine.has_quality:
            predicted = result.predicted_qf[0] if result and result.predicted_qf else engine.predict_qf(*_planes(loaded.pixels))[0]
            report.predicted_qf = round(float(predicted), 3)
            report.qf = round(float(result.used_qf[0]), 3) if result and result.used_qf else None
    finally:
        if large:  # the next file of a batch (a video, a small image) is not tiled because of this one
            engine.max_frame_pixels, engine.tile = saved
    return out, report


def restore_image_file(
    engine: Engine, src: Path, dst: Path, *, overwrite: bool = False, use_file_qf: bool = True, jpeg_quality: int = 95,
    strength_scale: float | None = None,
) -> ImageReport:
    """Restore image ``src`` into ``dst`` (written to a temporary name, renamed when complete),
    with the quality control of :func:`restore_loaded`."""
    check_output(src, dst, overwrite=overwrite)
    if dst.suffix.lower() not in OUTPUT_KINDS:
        raise ImageError(f"{dst}: unsupported output extension {dst.suffix!r} (use .png, .webp or .jpg)")
    loaded = load_image(src, analyse_jpeg=engine.has_quality)
    out, report = restore_loaded(engine, loaded, use_file_qf=use_file_qf, strength_scale=strength_scale)
    if loaded.alpha is not None and OUTPUT_KINDS[dst.suffix.lower()][0] not in ("PNG", "WEBP", "TIFF"):
        report.extra["alpha_dropped"] = True
    try:
        with atomic_output(dst) as tmp:
            write_image(out, tmp, alpha=loaded.alpha, icc_profile=loaded.icc_profile, exif=loaded.exif, jpeg_quality=jpeg_quality)
    except OSError as exc:  # the temporary file is gone; name the real destination, not it
        raise ImageError(f"{dst}: cannot write the output ({exc.strerror or exc})") from None
    return report
