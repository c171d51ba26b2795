"""vsjpegfix: CNN deblocking and compression-artifact removal for video (FBCNN, ARCNN, Fast ARCNN).

VapourSynth use::

    import vsjpegfix
    clip = vsjpegfix.fbcnn(clip)            # or fastarcnn / arcnn / deblock(clip, model=...)
    clip = vsjpegfix.deblock(core.bs.VideoSource(path), source=path)  # the file's quantisers, as the CLI

The filters are imported lazily, so the command line does not need a VapourSynth core.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["fbcnn", "fastarcnn", "arcnn", "deblock", "attach_quantisers", "__version__"]


def __getattr__(name: str) -> Any:
    if name in ("fbcnn", "fastarcnn", "arcnn", "deblock", "attach_quantisers"):
        from vsjpegfix.vapoursynth import plugin

        return getattr(plugin, name)
    raise AttributeError(f"module 'vsjpegfix' has no attribute {name!r}")
