"""Weights: the shipped-weights store and manifest, official FBCNN downloads, spandrel, quality profiles.

* :mod:`~vsjpegfix.weights.store` - load a model by shipped name, official name or file path
  (sha256-verified safetensors, ``.pth`` through ``weights_only``), save weights with their manifest
  entry, the default model per kind of input.
* :mod:`~vsjpegfix.weights.profile` - a model's calibrated quality profile (strength and quality
  control for a known source quality).
* :mod:`~vsjpegfix.weights.download` - sha256-verified downloads of the official checkpoints.
* :mod:`~vsjpegfix.weights.spandrel_model` - any other 1x restoration checkpoint through spandrel.

Layer: above :mod:`vsjpegfix.models`; imported by the engine and everything above it.
"""
