"""The one error type of the training layer's library (training, evaluation, benchmarks, calibration, packs)."""

from __future__ import annotations


class TrainingError(ValueError):
    """Bad input or state for a training-layer function (missing folder, contradicting options, ...).

    The message is one line, meant for the user; the scripts print it (``error: MESSAGE``) and exit
    non-zero instead of showing a traceback.
    """
