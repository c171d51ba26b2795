"""What a bitstream or a file says about its own quality.

* :mod:`~vsjpegfix.quantisers.stream` - each decoded frame's quantiser for a video stream
  (H.264 from the decoder's export, HEVC from the slice headers), matched to frames by timestamp.
* :mod:`~vsjpegfix.quantisers.hevc` - HEVC slice-header parsing.
* :mod:`~vsjpegfix.quantisers.jpeg` - a JPEG's quality factor from its quantisation tables, and
  double-compression detection.
* :mod:`~vsjpegfix.quantisers.mapping` - H.264/HEVC QP <-> JPEG-equivalent quality factor.

Layer: bottom (no imports from the rest of the package besides this folder).
"""
