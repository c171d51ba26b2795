"""Degradations shared by training and evaluation.

Deterministic building blocks (same input, same output):

* :func:`jpeg` - one JPEG round trip through Pillow (libjpeg), in memory. Colour images use
  4:2:0 chroma subsampling, libjpeg's default, which is how the JPEG baselines of the FBCNN
  paper were produced (OpenCV/Pillow defaults); grayscale images are coded as one plane.
* :func:`double_jpeg` - ``JPEG(shift(JPEG(x, qf1)), qf2)`` with a pixel shift between the two
  compressions (non-aligned double JPEG as in the FBCNN paper); :func:`shift_crop` crops the
  clean target the same way.

Random training samples:

* :func:`sample_qf` - FBCNN's training distribution of quality factors.
* :func:`quality_label` - FBCNN's quality target ``(100 - QF) / 100``.
* :data:`DEGRADATIONS` - registry ``name -> function(clean, rng) -> Degraded`` of random
  degradations used by ``scripts/train.py`` (``"jpeg"``, ``"double_jpeg"``, ``"mix"``). Other
  codecs (H.264, HEVC, ...) plug in with :func:`register_degradation`; a degradation receives a
  clean uint8 patch whose top-left corner lies on the codec's block grid (a multiple of 16
  pixels from the image origin) and returns the degraded patch plus the clean target cropped to
  the same pixels.

Images are numpy ``uint8`` arrays, ``HxW`` (gray) or ``HxWx3`` (RGB).
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
from PIL import Image

__all__ = [
    "DEGRADATIONS",
    "Degraded",
    "DegradationFn",
    "double_jpeg",
    "jpeg",
    "quality_label",
    "register_degradation",
    "sample_qf",
    "shift_crop",
]

#: Pillow's ``subsampling`` code for 4:2:0 (libjpeg's default for colour images).
SUBSAMPLING_420 = 2
#: Largest shift that keeps the two block grids of a double JPEG distinct (one block, minus one).
MAX_SHIFT = 7


def _check_image(img: np.ndarray) -> np.ndarray:
    img = np.asarray(img)
    if img.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got dtype {img.dtype}")
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[..., 0]
    if not (img.ndim == 2 or (img.ndim == 3 and img.shape[2] == 3)):
        raise ValueError(f"expected an HxW or HxWx3 image, got shape {img.shape}")
    if img.shape[0] < 1 or img.shape[1] < 1:
        raise ValueError(f"empty image of shape {img.shape}")
    return img


def _check_qf(qf: int) -> int:
    if isinstance(qf, bool) or int(qf) != qf or not 1 <= int(qf) <= 100:
        raise ValueError(f"JPEG quality factor must be an integer in 1..100, got {qf!r}")
    return int(qf)


def jpeg(img: np.ndarray, qf: int, *, subsampling: int = SUBSAMPLING_420) -> np.ndarray:
    """Compress ``img`` to JPEG at quality ``qf`` in memory and decode it again.

    Args:
        img: ``HxW`` or ``HxWx3`` (``HxWx1`` is treated as ``HxW``) uint8 image.
        qf: JPEG quality factor, 1..100 (libjpeg's IJG scaling of the standard tables).
        subsampling: Pillow's chroma subsampling code for colour images (0 = 4:4:4,
            1 = 4:2:2, 2 = 4:2:0, the default like libjpeg's); ignored for gray images.

    Returns:
        The decoded image, same shape and dtype as ``img`` (``HxWx1`` comes back as ``HxW``).
    """
    img = _check_image(img)
    qf = _check_qf(qf)
    pil = Image.fromarray(img, mode="L" if img.ndim == 2 else "RGB")
    buf = io.BytesIO()
    if img.ndim == 2:
        pil.save(buf, format="JPEG", quality=qf)
    else:
        pil.save(buf, format="JPEG", quality=qf, subsampling=subsampling)
    buf.seek(0)
    with Image.open(buf) as decoded:
        return np.array(decoded.convert(pil.mode))  # a writable copy


def shift_crop(img: np.ndarray, shift: tuple[int, int]) -> np.ndarray:
    """Drop ``dy`` rows from the top and ``dx`` columns from the left of ``img``.

    This is the shift of :func:`double_jpeg`; apply it to the clean image to get the target
    that matches a double-compressed result pixel for pixel.
    """
    dy, dx = (int(s) for s in shift)
    if dy < 0 or dx < 0:
        raise ValueError(f"shift must be non-negative, got {shift}")
    if dy >= img.shape[0] or dx >= img.shape[1]:
        raise ValueError(f"shift {shift} leaves nothing of an image of shape {img.shape}")
    return img[dy:, dx:]


def double_jpeg(img: np.ndarray, qf1: int, qf2: int, shift: tuple[int, int] = (0, 0)) -> np.ndarray:
    """Double JPEG: ``JPEG(shift_crop(JPEG(img, qf1), shift), qf2)``.

    The second compression's 8x8 grid is offset by ``shift = (dy, dx)`` pixels from the first
    (non-aligned double JPEG when the shift is not a multiple of 8; ``(0, 0)`` is aligned).

    Returns:
        The result, of shape ``(H - dy, W - dx[, 3])``. Its clean counterpart is
        ``shift_crop(img, shift)``.
    """
    first = jpeg(img, qf1)
    return jpeg(shift_crop(first, shift), qf2)


def _randint(rng: Any, low: int, high: int) -> int:
    """Uniform integer in ``low..high`` inclusive from a numpy Generator or a ``random.Random``."""
    if hasattr(rng, "integers"):
        return int(rng.integers(low, high + 1))
    return int(rng.randint(low, high))


def sample_qf(rng: np.random.Generator) -> int:
    """A JPEG quality factor from FBCNN's training distribution.

    With probability 0.75 uniform in 10..60, otherwise uniform in 8..96 (both inclusive).
    ``rng`` is a ``numpy.random.Generator`` (a ``random.Random`` works too).
    """
    if rng.random() < 0.75:
        return _randint(rng, 10, 60)
    return _randint(rng, 8, 96)


def quality_label(qf: float) -> float:
    """FBCNN's quality target for quality factor ``qf``: ``(100 - qf) / 100`` (0 pristine, 1 worst)."""
    return (100.0 - float(qf)) / 100.0


@dataclass(frozen=True)
class Degraded:
    """A training pair made by a random degradation.

    Attributes:
        clean: target, cropped to the same pixels as ``degraded`` (uint8).
        degraded: network input (uint8, same shape as ``clean``).
        label: FBCNN quality label in ``[0, 1]``, or NaN where no single quality applies
            (double JPEG); the quality loss skips NaN labels.
        info: short description for logs, e.g. ``"jpeg q=23"``.
    """

    clean: np.ndarray
    degraded: np.ndarray
    label: float
    info: str = ""


#: A random degradation: ``(clean patch, rng) -> Degraded``.
DegradationFn = Callable[[np.ndarray, np.random.Generator], Degraded]

#: Registry of random degradations by name (``scripts/train.py --degrade NAME``).
DEGRADATIONS: dict[str, DegradationFn] = {}


def register_degradation(name: str) -> Callable[[DegradationFn], DegradationFn]:
    """Decorator adding a random degradation to :data:`DEGRADATIONS` under ``name``.

    The function receives a clean uint8 patch whose origin lies on a 16-pixel grid of the source
    image and a ``numpy.random.Generator``; it must be deterministic given the generator, and may
    return a smaller (cropped) pair, e.g. after a shift, as long as ``clean`` and ``degraded``
    match pixel for pixel. Future video codecs (H.264/HEVC, through PyAV) register here.
    """

    def wrap(fn: DegradationFn) -> DegradationFn:
        if name in DEGRADATIONS:
            raise ValueError(f"degradation {name!r} is already registered")
        DEGRADATIONS[name] = fn
        return fn

    return wrap


@register_degradation("jpeg")
def random_jpeg(clean: np.ndarray, rng: np.random.Generator) -> Degraded:
    """Single JPEG at a quality from :func:`sample_qf`, labelled with :func:`quality_label`."""
    qf = sample_qf(rng)
    return Degraded(clean, jpeg(clean, qf), quality_label(qf), f"jpeg q={qf}")


@register_degradation("double_jpeg")
def random_double_jpeg(clean: np.ndarray, rng: np.random.Generator) -> Degraded:
    """Double JPEG, both qualities from :func:`sample_qf`, shift uniform in 0..7 per axis.

    The pair is cropped by the shift, i.e. up to :data:`MAX_SHIFT` pixels smaller than ``clean``
    on each axis. The label is NaN: like FBCNN's double-JPEG training data, no quality target is
    given for a mixture of two qualities.
    """
    qf1, qf2 = sample_qf(rng), sample_qf(rng)
    shift = (_randint(rng, 0, MAX_SHIFT), _randint(rng, 0, MAX_SHIFT))
    out = double_jpeg(clean, qf1, qf2, shift)
    return Degraded(shift_crop(clean, shift), out, math.nan, f"double_jpeg q={qf1},{qf2} shift={shift}")


#: Fraction of double-JPEG samples in the ``"mix"`` degradation.
MIX_DOUBLE_FRACTION = 0.25


@register_degradation("mix")
def random_jpeg_mix(clean: np.ndarray, rng: np.random.Generator) -> Degraded:
    """Single JPEG (75 %) or double JPEG (25 %, :data:`MIX_DOUBLE_FRACTION`)."""
    if rng.random() < MIX_DOUBLE_FRACTION:
        return random_double_jpeg(clean, rng)
    return random_jpeg(clean, rng)


#: Fraction of near-clean samples in the ``"mix_hq"`` degradation, and their QF range.
MIX_HQ_FRACTION = 0.1
NEAR_CLEAN_QF_RANGE = (85, 100)


@register_degradation("mix_hq")
def random_jpeg_mix_hq(clean: np.ndarray, rng: np.random.Generator) -> Degraded:
    """The ``"mix"`` degradation plus 10 % near-clean single JPEG (QF uniform 85..100).

    FBCNN's own QF distribution rarely goes above 90, and a model that never saw near-clean
    input over-corrects it (FBCNN loses about 0.8 dB at QF 100); these samples teach the
    network that restoring near-clean input means leaving it nearly alone.
    """
    if rng.random() < MIX_HQ_FRACTION:
        qf = _randint(rng, *NEAR_CLEAN_QF_RANGE)
        return Degraded(clean, jpeg(clean, qf), quality_label(qf), f"jpeg q={qf}")
    return random_jpeg_mix(clean, rng)
