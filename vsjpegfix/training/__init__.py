"""Training and evaluation as a library (what the thin ``scripts/`` run): degradations, clip packs,
classical baselines, metrics, augmentation; the training loop (:mod:`.trainer` over :mod:`.options`,
:mod:`.data`, :mod:`.objective`, :mod:`.validation`, :mod:`.checkpoints`), the evaluation tables
(:mod:`.evaluation`), the benchmarks of the engine (:mod:`.bench_report`, :mod:`.bench_engine`,
:mod:`.bench_flops`) and of the transcoder (:mod:`.bench_transcode`), the quality-profile
calibration (:mod:`.calibration`, :mod:`.calibration_data`), the data packs (:mod:`.packs`) and the
one GPU run of ``scripts/gpu_run.py`` (:mod:`.gpu_stages`, :mod:`.gpu_cases`, :mod:`.gpu_bench`,
:mod:`.gpu_train`, :mod:`.gpu_data`).
Bad input raises :class:`.errors.TrainingError` (one line; the scripts print it).

Layer: beside the apps; imports the engine, weights and models, never the apps. The runtime
(transcoder, VapourSynth, CLI) never imports from here. Benchmarks that need the Ray cluster stay
in ``scripts/bench_cluster.py``; the plugin benchmark is :mod:`vsjpegfix.vapoursynth.bench`.
"""
