"""Which neighbouring frames a temporal model sees: clamped at the ends, never across a scene cut.

Shared by the VapourSynth plugin and the transcoder so that both feed a temporal model the same
frames.
"""

from __future__ import annotations

from typing import Callable


def window_indices(centre: int, radius: int, num_frames: int, cut_after: Callable[[int], bool] | None = None) -> list[int]:
    """Indices of the ``2 * radius + 1`` frames around ``centre``.

    Neighbours outside ``[0, num_frames)`` are replaced by the nearest frame inside; a neighbour
    beyond a scene cut (``cut_after(i)`` is true when a cut lies between frames ``i`` and ``i + 1``)
    is replaced by the last frame on the centre's side of the cut.
    """
    if not 0 <= centre < num_frames:
        raise IndexError(f"frame {centre} outside a clip of {num_frames} frames")
    cut = cut_after or (lambda i: False)
    left = [centre]
    for _ in range(radius):
        prev = left[-1]
        left.append(prev - 1 if prev > 0 and not cut(prev - 1) else prev)
    right = [centre]
    for _ in range(radius):
        prev = right[-1]
        right.append(prev + 1 if prev < num_frames - 1 and not cut(prev) else prev)
    return left[:0:-1] + right
