"""Mapping an H.264/HEVC quantiser (QP) to FBCNN's quality control (a JPEG quality factor).

Both codecs quantise (near-)orthonormal DCT coefficients. H.264's step size is
``Qstep(QP) = 0.625 * 2 ** (QP / 6)``; a JPEG encoder at quality QF scales its base table by
``S = 5000 / QF`` (QF < 50) or ``S = 200 - 2 * QF`` (QF >= 50), percent. Matching the H.264 step
with the JPEG luminance step in the low-frequency region that dominates blocking (about 20 at
QF 50) gives ``S / 100 = 2 ** ((QP - QP_AT_QF50) / 6)`` with ``QP_AT_QF50 = 30``: QP 30 ~ QF 50,
each +6 QP halves the QF below 50 (QP 36 ~ QF 25, QP 42 ~ QF 12.5), and QP 24 ~ QF 75,
QP 18 ~ QF 87.5. H.264's in-loop deblocking makes its artifacts milder than JPEG's at the same
step, so the mapping errs on the side of gentle restoration; ``qf_offset`` shifts it.
"""

from __future__ import annotations

import math

QP_AT_QF50 = 30.0


def qp_to_qf(qp: float) -> float:
    """JPEG-equivalent quality factor (1..100) of an H.264/HEVC quantiser ``qp`` (0..51)."""
    scale = 100.0 * 2.0 ** ((float(qp) - QP_AT_QF50) / 6.0)
    qf = 5000.0 / scale if scale > 100.0 else (200.0 - scale) / 2.0
    return float(min(100.0, max(1.0, qf)))


def qf_to_qp(qf: float) -> float:
    """Inverse of :func:`qp_to_qf` (for QF in 1..100)."""
    qf = min(100.0, max(1.0, float(qf)))
    scale = 5000.0 / qf if qf < 50 else 200.0 - 2.0 * qf
    return QP_AT_QF50 + 6.0 * math.log2(max(scale, 1e-6) / 100.0)


#: Codecs whose frames' quantisers can be read: H.264 from the decoder's per-macroblock export
#: (FFmpeg's ``venc_params`` side data), HEVC from the slice headers (:mod:`vsjpegfix.hevc_qp`).
QP_CODECS = frozenset({"h264", "hevc"})


def frame_qp(frame, bits: int = 8) -> float | None:
    """Mean quantiser of a decoded frame (PyAV ``VideoFrame``) from its ``venc_params`` side data.

    The decoder must be opened with ``export_side_data=venc_params`` (H.264 only). The mean is over
    the per-macroblock QPs (frame QP plus block deltas); for high bit depth FFmpeg exports
    ``QP'Y = QPY + 6 * (bits - 8)``, and ``QPY``, what an 8-bit stream's QP means relative to the
    signal's range, is returned. None if the frame carries no quantisers.
    """
    params = frame.side_data.get("VIDEO_ENC_PARAMS")
    if params is None:
        return None
    import numpy as np

    qp = float(np.mean(params.qp_map())) if params.nb_blocks else float(params.qp)
    return qp - 6 * (bits - 8)


class StreamQp:
    """Each decoded frame's quantiser for one video stream (a codec of :data:`QP_CODECS`).

    H.264: the mean macroblock QP the decoder exports (set up here: ``export_side_data=venc_params``
    on the stream's decoder, before it opens). HEVC: the mean slice QP read from each packet before
    it is decoded (:meth:`packet`), matched to its frame by timestamp. Call :meth:`packet` for every
    packet of the stream before decoding it and :meth:`frame` for every frame before changing its pts.
    """

    def __init__(self, stream) -> None:
        ctx = stream.codec_context
        self.codec = ctx.name
        if self.codec not in QP_CODECS:
            raise ValueError(f"{self.codec} exports no quantisers")
        self._hevc = None
        self._by_pts: dict[int, float | None] = {}
        self.missing = 0  # frames whose quantiser could not be read
        if self.codec == "h264":
            ctx.options = {**ctx.options, "export_side_data": "venc_params"}
        else:
            from .hevc_qp import HevcQpReader

            self._hevc = HevcQpReader(ctx.extradata)

    def packet(self, packet) -> None:
        """Read an HEVC packet's slice QP (kept by its timestamp until its frame is decoded)."""
        if self._hevc is not None and packet.size and packet.pts is not None:
            self._by_pts[packet.pts] = self._hevc.packet_qp(bytes(packet))

    def frame(self, frame) -> float | None:
        """The frame's quantiser (QPY of 8-bit meaning for H.264 at any bit depth), or None."""
        if self._hevc is None:
            qp = frame_qp(frame, frame.format.components[0].bits)
        else:
            qp = self._by_pts.pop(frame.pts, None) if frame.pts is not None else None
        self.missing += qp is None
        return qp
