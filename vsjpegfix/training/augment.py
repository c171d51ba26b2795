"""Training-data augmentation shared by the image sampler (``scripts/train.py``) and the clip packs."""

from __future__ import annotations

import numpy as np


def dihedral(array: np.ndarray, mode: int, axes: tuple[int, int] = (0, 1)) -> np.ndarray:
    """One of the 8 flips/rotations of the dihedral group (``mode`` 0..7) over the (height, width) ``axes``.

    ``mode & 4`` flips along the height axis, then ``mode & 3`` quarter turns rotate; the result is
    C-contiguous. Mode 0 is the identity.
    """
    if not 0 <= mode < 8:
        raise ValueError(f"dihedral mode must be 0..7, got {mode}")
    if mode & 4:
        array = np.flip(array, axis=axes[0])
    return np.ascontiguousarray(np.rot90(array, mode & 3, axes=axes))
