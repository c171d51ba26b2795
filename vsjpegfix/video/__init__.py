"""The transcoder: restore one video file, keeping everything else in it.

* :mod:`~vsjpegfix.video.transcode` - :func:`transcode`, the whole-file entry point.
* :mod:`~vsjpegfix.video.report` - options, report, the one-line error.
* :mod:`~vsjpegfix.video.probe` - open the input, plan the output (pixel format, matrix).
* :mod:`~vsjpegfix.video.pipeline` - the decode / restore / encode stages and their queues.
* :mod:`~vsjpegfix.video.streams` - audio, subtitles, data, attachments, metadata, chapters.
* :mod:`~vsjpegfix.video.segment_plan`, :mod:`~vsjpegfix.video.segment_restore`,
  :mod:`~vsjpegfix.video.segment_join` - long videos split at keyframes, restored in pieces, joined.

Layer: above frames, engine and quantisers; used by the apps.
"""
