"""The engine: planes in, planes out.

* :mod:`~vsjpegfix.engine.core` - :class:`Engine`: device, precision, batching, tiling, quality
  control and strength, the model's correction applied to the original samples.
* :mod:`~vsjpegfix.engine.device` - device and precision; :mod:`~vsjpegfix.engine.tiling` - tiles with overlap.
* :mod:`~vsjpegfix.engine.planes` - planes <-> model range, per-frame arguments, the correction in code values.
* :mod:`~vsjpegfix.engine.formats`, :mod:`~vsjpegfix.engine.colour`, :mod:`~vsjpegfix.engine.resample` -
  plane formats, YUV <-> RGB conversion and chroma resampling on the device (zimg-compatible).
* :mod:`~vsjpegfix.engine.temporal` - temporal windows for frame-stack models.

Layer: above :mod:`vsjpegfix.weights` and :mod:`vsjpegfix.models`; knows nothing of files or frames.
"""

from vsjpegfix.engine.core import Engine, RestoreResult
from vsjpegfix.engine.device import (
    PRECISIONS,
    EngineError,
    resolve_device,
    resolve_precision,
)

__all__ = ["PRECISIONS", "Engine", "EngineError", "RestoreResult", "resolve_device", "resolve_precision"]
