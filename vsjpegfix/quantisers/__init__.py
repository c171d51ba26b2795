"""What a bitstream or a file says about its own quality.

* :mod:`~vsjpegfix.quantisers.stream` - each decoded frame's quantiser for a video stream
  (H.264 from the decoder's export, HEVC from the slice headers), matched to frames by timestamp.
* :mod:`~vsjpegfix.quantisers.readers` - a per-picture quantiser reader for a stream's codec, read from
  packet bytes without decoding: :mod:`~vsjpegfix.quantisers.hevc` (slice QP),
  :mod:`~vsjpegfix.quantisers.mpeg2` (MPEG-1/2 ``quantiser_scale``), :mod:`~vsjpegfix.quantisers.mpeg4`
  (``vop_quant``), :mod:`~vsjpegfix.quantisers.mjpeg` (each frame's JPEG QF), :mod:`~vsjpegfix.quantisers.vp9`
  (``base_q_idx``); :mod:`~vsjpegfix.quantisers.bits` - the bit reader they share.
* :mod:`~vsjpegfix.quantisers.jpeg` - a JPEG's quality factor from its quantisation tables, and
  double-compression detection.
* :mod:`~vsjpegfix.quantisers.mapping` - H.264/HEVC QP <-> JPEG-equivalent quality factor.

Layer: bottom (no imports from the rest of the package besides this folder).
"""
