"""Per-picture quantiser readers for the codecs of older video, read from packet bytes without decoding.

Every reader has the interface of :class:`vsjpegfix.quantisers.hevc.HevcQpReader`: ``Reader(extradata)``
(the stream's codec extradata, or None) and ``packet_qp(data) -> float | None``, the mean quantiser
of the picture(s) in one packet in the codec's own scale (named by the reader's ``scale``), or None
when the packet holds none or cannot be read; it never raises. Each module also has
``equivalent_h264_qp(value)``, a first-order H.264-QP equivalent from the step sizes (to be refined
by calibration).

Readers by FFmpeg codec name (value; how packets map to frames):

* ``mpeg1video``, ``mpeg2video``: :class:`.mpeg2.Mpeg2QpReader`, the mean slice ``quantiser_scale``
  (MPEG-2 units; MPEG-1's code c as 2c). One packet per picture, or per field pair (FFmpeg's
  ``mpegvideo`` parser, in MPEG-PS/TS, raw streams and MP4/MKV alike).
* ``mpeg4``: :class:`.mpeg4.Mpeg4QpReader`, ``vop_quant`` (1..31). One VOP per packet; a DivX
  "packed bitstream" P+B packet reports the P-VOP's and the placeholder packet after it the
  B-VOP's, the frames FFmpeg's decoder gives those packets' pts (or unpack first with FFmpeg's
  ``mpeg4_unpack_bframes`` bitstream filter).
* ``mjpeg``: :class:`.mjpeg.MjpegQpReader`, the IJG quality factor 1..100, *not* a quantiser
  (higher is finer). One JPEG, or a field pair, per packet.
* ``vp9``: :class:`.vp9.Vp9QpReader`, ``base_q_idx`` (0..255) of the frame the packet shows (a
  superframe's hidden alt-ref frame is skipped; ``show_existing_frame`` gives the shown frame's).
* ``hevc``: :class:`vsjpegfix.quantisers.hevc.HevcQpReader`, the mean SliceQpY of the access unit.

In every case a packet carries its frame's presentation timestamp, whatever the decode order
(B-frames), so a caller keeps ``packet_qp`` by ``packet.pts`` and looks it up by ``frame.pts``, as
:class:`vsjpegfix.quantisers.stream.StreamQp` does for HEVC (checked per codec in the tests, on streams with
B-frames in MPEG-PS/TS, AVI, MP4 and MKV).
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["QuantiserReader", "READER_CODECS", "stream_quantiser_reader"]


class QuantiserReader(Protocol):
    """What every reader offers."""

    def packet_qp(self, data: bytes) -> float | None: ...


#: FFmpeg codec names with a reader.
READER_CODECS = frozenset({"mpeg1video", "mpeg2video", "mpeg4", "mjpeg", "vp9", "hevc"})


def stream_quantiser_reader(codec_name: str, extradata: bytes | None = None) -> QuantiserReader | None:
    """A fresh reader for a stream of FFmpeg codec ``codec_name`` (``stream.codec_context.name``), or
    None for codecs without one (H.264's quantisers come from its decoder, see :mod:`vsjpegfix.quantisers.stream`).

    ``extradata``: ``stream.codec_context.extradata`` (may be None).
    """
    data = bytes(extradata) if extradata else None
    if codec_name in ("mpeg1video", "mpeg2video"):
        from vsjpegfix.quantisers.mpeg2 import Mpeg2QpReader

        return Mpeg2QpReader(data)
    if codec_name == "mpeg4":
        from vsjpegfix.quantisers.mpeg4 import Mpeg4QpReader

        return Mpeg4QpReader(data)
    if codec_name == "mjpeg":
        from vsjpegfix.quantisers.mjpeg import MjpegQpReader

        return MjpegQpReader(data)
    if codec_name == "vp9":
        from vsjpegfix.quantisers.vp9 import Vp9QpReader

        return Vp9QpReader(data)
    if codec_name == "hevc":
        from vsjpegfix.quantisers.hevc import HevcQpReader

        return HevcQpReader(data)
    return None
