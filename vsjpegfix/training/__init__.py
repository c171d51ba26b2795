"""Training and evaluation as a library (what ``scripts/`` run): degradations, clip packs, classical
baselines, metrics, augmentation.

Layer: beside the apps; imports the engine, weights and models, never the apps. The runtime
(transcoder, VapourSynth, CLI) never imports from here.
"""
