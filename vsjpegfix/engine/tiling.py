"""Tiles with overlap: how a large frame is cut so that each tile's core partitions the frame.
"""

from __future__ import annotations

from vsjpegfix.engine.device import EngineError

TILE_ALIGN = 16  # tile origins keep the 8x8 JPEG grid (16x16 in luma for 4:2:0 chroma) and stride phases


def spans(length: int, tile: int, overlap: int, align: int) -> list[tuple[int, int, int, int]]:
    """Split ``[0, length)`` into cores that partition it, each inside a tile of at most ``tile``.

    Returns ``(tile_start, tile_end, core_start, core_end)``; tile starts are multiples of
    ``align`` and a core lies at least ``overlap`` from its tile's inner edges. The overlap is
    limited to a quarter of the tile so that cores stay at least half the tile.
    """
    if length <= tile:
        return [(0, length, 0, length)]
    overlap = min(overlap, tile // 4)
    core = max(align, (tile - 2 * overlap) // align * align)
    bounds = list(range(0, length, core)) + [length]
    spans = []
    for a, b in zip(bounds[:-1], bounds[1:]):
        start = max(0, (a - overlap) // align * align)
        end = min(length, b + overlap)
        spans.append((start, end, a, b))
    return spans


def check_tile(tile: int | tuple[int, int] | None) -> tuple[int, int] | None:
    """A tile size as ``(width, height)``, or None for whole frames (``None``/0); at least 32 pixels."""
    if tile is None or tile == 0 or tile == (0, 0):
        return None
    tw, th = (tile, tile) if isinstance(tile, int) else tile
    if min(tw, th) < 32:
        raise EngineError(f"tile size must be at least 32 pixels, got {tile}")
    return int(tw), int(th)
