"""The output encoder's quality when the user names none: fine enough to keep what the restoration gained.

Re-encoding adds its own error. The restoration removes only a few per cent of the input's error
(+0.2 dB is 5 % of its MSE), so an output encoded at a fixed libx264 CRF 16 kept that gain only on
very coarse input and made finer input worse than it was: measured on the video set's crops
(``scripts/evaluate_output.py``, ``docs/evaluation.md``), x264 QP 22 input lost 1.5 dB on average (2.5
at worst) and QP 27 0.5 dB, where a lossless output gains +0.04 and +0.14. The re-encode's error must stay far below the input's: with the
input's quantiser known (the codecs of :data:`~vsjpegfix.quantisers.stream.QP_CODECS`), libx264's CRF
becomes ``input QP - AUTO_CRF_MARGIN`` (H.264 scale, median of the first frames), at least
:data:`AUTO_CRF_MIN` and at most the fixed default (16): CRF 11 for QP 37, 6 for QP 32, lossless at
QP 26 and below. Files grow accordingly (4-6x the input's size on the video set); ``--crf``
chooses another trade-off. Other encoders, and input whose quantiser is not known, keep their fixed
defaults (:data:`~vsjpegfix.video.report.DEFAULT_CRF`).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import av
import numpy as np

from vsjpegfix.video.quantiser_scan import decoded_quantisers
from vsjpegfix.video.report import DEFAULT_CRF, TranscodeOptions, TranscodeReport

#: H.264 QPs between the input's quantiser and the output's CRF (libx264): enough to keep at least half of the gain.
AUTO_CRF_MARGIN = 26.0
#: The finest CRF chosen: 0, which libx264 codes losslessly (for input at QP 26 and finer even CRF 1-2
#: lost up to 0.17 dB). Every segment of a file reads the same first frames, so all get the same CRF
#: (lossless coding has another profile, which segments could not be joined across).
AUTO_CRF_MIN = 0.0
#: Frames whose quantisers are read before encoding starts.
AUTO_CRF_FRAMES = 24
#: Encoders whose CRF follows the input (the CRF scale of libx264 is the H.264 QP scale).
AUTO_CRF_ENCODERS = frozenset({"libx264"})


def input_quantiser(src: Path | str, stream_index: int, frames: int = AUTO_CRF_FRAMES) -> float | None:
    """The median H.264-scale quantiser of the first ``frames`` frames of video stream ``stream_index``
    of ``src`` (a short decode pass, as the transcoder reads them), or None when none can be read."""
    try:
        with av.open(str(src)) as container:
            read = decoded_quantisers(container, container.streams[stream_index], limit=frames)
    except (av.FFmpegError, ValueError, OSError):
        return None  # the transcode itself reports what is wrong with the file (ValueError: no quantisers)
    values = [q.qp for q in read if q is not None]
    return float(np.median(values)) if values else None


def auto_crf(encoder: str, input_qp: float | None) -> float | None:
    """The CRF for ``encoder`` when none is given: see the module's description (None: the encoder has no CRF)."""
    default = DEFAULT_CRF.get(encoder)
    if default is None or encoder not in AUTO_CRF_ENCODERS or input_qp is None:
        return default
    return float(min(default, max(AUTO_CRF_MIN, round(input_qp - AUTO_CRF_MARGIN))))


def output_options(src: Path | str, video, encoder: str, options: TranscodeOptions, quantisers_read: bool,
                   report: TranscodeReport) -> TranscodeOptions:
    """``options`` with the CRF the encoder will use (the user's, :func:`auto_crf` of the first frames'
    quantiser where ``quantisers_read``, or the fixed default), recorded in ``report`` (``crf``,
    ``input_qp``). Every segment of a file reads the same first frames, so all get the same CRF."""
    crf = options.crf
    if crf is None:
        qp = input_quantiser(src, video.index) if quantisers_read and encoder in AUTO_CRF_ENCODERS else None
        report.input_qp = None if qp is None else round(qp, 2)
        crf = auto_crf(encoder, qp)
    report.crf = crf
    return dataclasses.replace(options, crf=crf)
