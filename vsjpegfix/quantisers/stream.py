"""Each decoded frame's quantiser, for the video streams that state one (H.264 and HEVC).

H.264: the mean macroblock QP that FFmpeg's decoder exports as ``venc_params`` side data. HEVC:
the slice QP read from each packet's slice headers (:mod:`vsjpegfix.quantisers.hevc`), matched to
its frame by timestamp.
"""

from __future__ import annotations

#: Codecs whose frames' quantisers can be read: H.264 from the decoder's per-macroblock export
#: (FFmpeg's ``venc_params`` side data), HEVC from the slice headers (:mod:`vsjpegfix.quantisers.hevc`).
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
            from vsjpegfix.quantisers.hevc import HevcQpReader

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
