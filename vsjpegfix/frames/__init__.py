"""Frame adapters: media frames and files <-> engine planes.

* :mod:`~vsjpegfix.frames.av_frames` - PyAV video frames (pixel formats, colour tags, padding).
* :mod:`~vsjpegfix.frames.vs_frames` - VapourSynth frames and their properties.
* :mod:`~vsjpegfix.frames.image_files` - still images: load, restore, write (EXIF, ICC, alpha kept).
* :mod:`~vsjpegfix.frames.safe_write` - outputs written to a temporary name, renamed when complete.

Layer: above the engine; used by the transcoder, the VapourSynth plugin and the apps.
"""
