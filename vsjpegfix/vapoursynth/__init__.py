"""The VapourSynth plugin: ``vsjpegfix.deblock`` / ``fbcnn`` / ``arcnn`` / ``fastarcnn`` (see :mod:`~vsjpegfix.vapoursynth.plugin`).

Layer: top (an app, like the CLI); imported lazily by ``vsjpegfix`` so the command line needs no VapourSynth core.
"""
