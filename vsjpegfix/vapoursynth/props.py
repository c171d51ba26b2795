"""Frame properties that carry a file's quantisers into a VapourSynth clip, and back out to the filters.

VapourSynth source filters export no quantiser. :func:`attach_quantisers` reads them from the file
itself - the transcoder's readers (:func:`vsjpegfix.video.quantiser_scan.scan_quantisers`: decode-free
for MPEG-1/2, MPEG-4 Part 2, MJPEG, VP9 and HEVC; one fast decode pass for H.264 and the H.263 family) - and sets, on
each frame of a clip from any frame-accurate source filter of the same file (BestSource, ffms2, LSMASH),
in presentation order:

* ``vsjpegfix_qp``: the H.264-scale QP (float) the quality profiles use;
* ``vsjpegfix_qp_value``: the codec's own quantiser (MPEG-2 ``quantiser_scale``, MPEG-4 ``vop_quant``,
  MJPEG's quality factor, VP9's ``base_q_idx``, the H.264/HEVC QP);
* ``vsjpegfix_codec``: FFmpeg's codec name; ``vsjpegfix_picture_type``: ``"I"``, ``"P"`` or ``"B"``
  where known; ``vsjpegfix_qp_adaptive``: 1 when the stream quantises adaptively within frames.

A still JPEG (an image source) gets its file's quality factor as ``vsjpegfix_qf``. Properties the
frames already have are kept (the user's win over the file's).
"""

from __future__ import annotations

import os
from pathlib import Path

import vapoursynth as vs

from vsjpegfix.quantisers.stream import FrameQuantiser

PROP_QP = "vsjpegfix_qp"
PROP_QP_VALUE = "vsjpegfix_qp_value"
PROP_CODEC = "vsjpegfix_codec"
PROP_PICTURE_TYPE = "vsjpegfix_picture_type"
PROP_ADAPTIVE = "vsjpegfix_qp_adaptive"  # 1: the stream quantises adaptively within frames (the QP is a base)
#: A JPEG's quality factor (input, from :func:`attach_quantisers` or the user); the filters also write
#: the QF that controlled an FBCNN restoration under this name.
PROP_QF = "vsjpegfix_qf"
PROP_PREDICTED_QF = "vsjpegfix_qf_predicted"


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def frame_quantiser(props) -> FrameQuantiser | None:
    """The :class:`FrameQuantiser` a frame's properties describe (``vsjpegfix_qp`` present), or None."""
    if PROP_QP not in props:
        return None
    qp = float(props[PROP_QP])
    value = float(props[PROP_QP_VALUE]) if PROP_QP_VALUE in props else qp
    codec = _text(props[PROP_CODEC]) if PROP_CODEC in props else "unknown"
    kind = _text(props[PROP_PICTURE_TYPE]) if PROP_PICTURE_TYPE in props else None
    adaptive = bool(int(props[PROP_ADAPTIVE])) if PROP_ADAPTIVE in props else False
    return FrameQuantiser(codec, value, qp, kind if kind in ("I", "P", "B") else None, adaptive=adaptive)


def file_qf(props) -> float | None:
    """A frame's JPEG quality factor (``vsjpegfix_qf``), or None."""
    return float(props[PROP_QF]) if PROP_QF in props else None


def _set_missing(frame: vs.VideoFrame, values: dict) -> vs.VideoFrame:
    out = frame.copy()
    for key, value in values.items():
        if value is not None and key not in frame.props:
            out.props[key] = value
    return out


def _is_image(path: Path) -> bool:
    from vsjpegfix.frames.image_files import is_image_path

    return is_image_path(path)


def attach_quantisers(clip: vs.VideoNode, source: str | os.PathLike, _func: str = "attach_quantisers") -> vs.VideoNode:
    """``clip`` with each frame's quantiser read from the file ``source`` as frame properties.

    ``clip`` must come from a frame-accurate source filter of that file (same frames, same order:
    the frame counts are checked). A codec without quantisers (VP8, ProRes, lossless, ...) or an
    image other than a JPEG returns ``clip`` unchanged; the filters then run blind. Raises
    ``vs.Error`` for an unreadable file or a frame count that does not match.
    """
    from vsjpegfix.video.quantiser_scan import ScanError, scan_quantisers

    path = Path(os.fspath(source))
    if not path.is_file():
        raise vs.Error(f"{_func}: source {path}: no such file")
    if _is_image(path):
        from vsjpegfix.quantisers.jpeg import read_jpeg_quality

        try:
            quality = read_jpeg_quality(path)
        except OSError as exc:
            raise vs.Error(f"{_func}: source {path}: {exc}") from None
        if quality is None:
            return clip
        return clip.std.ModifyFrame(clip, lambda n, f: _set_missing(f, {PROP_QF: float(quality.qf)}))
    try:
        scan = scan_quantisers(path)
    except ScanError as exc:
        raise vs.Error(f"{_func}: source {exc}") from None
    if not scan.quantisers:
        return clip
    if len(scan.quantisers) != clip.num_frames:
        raise vs.Error(f"{_func}: source {path} has {len(scan.quantisers)} frames but the clip has {clip.num_frames}; "
                       "use a frame-accurate source filter (core.bs.VideoSource) on the same file, before any edit")
    quantisers = scan.quantisers

    def attach(n: int, f: vs.VideoFrame) -> vs.VideoFrame:
        q = quantisers[n]
        if q is None:
            return f
        return _set_missing(f, {PROP_QP: q.qp, PROP_QP_VALUE: q.value, PROP_CODEC: q.codec, PROP_PICTURE_TYPE: q.picture_type,
                                PROP_ADAPTIVE: int(q.adaptive)})

    return clip.std.ModifyFrame(clip, attach)
