"""Small real clips for the quantiser reader tests: panning crops of a photo, encoded by FFmpeg via PyAV."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np

W, H = 176, 144  # QCIF: macroblock-aligned for every codec here


def photo_frames(count: int, width: int = W, height: int = H) -> list[np.ndarray]:
    """``count`` RGB crops of skimage's astronaut photo, panning a few pixels per frame."""
    from skimage import data

    img = data.astronaut()
    return [np.ascontiguousarray(img[30 + 3 * t : 30 + 3 * t + height, 50 + 5 * t : 50 + 5 * t + width])
            for t in range(count)]


def encode(path: Path, codec: str, fmt: str | None, *, frames: int = 10, pix_fmt: str = "yuv420p",
           q: int | None = None, q_range: tuple[int, int] | None = None, bit_rate: int | None = None,
           b_frames: int = 0, gop: int | None = None, options: dict | None = None, rate: int = 25,
           width: int = W, height: int = H, tag: str | None = None) -> Path:
    """Encode ``frames`` photo crops with FFmpeg's ``codec`` into ``path`` (container ``fmt``).

    ``q``: a fixed quantiser, set as ``qmin = qmax = q`` (PyAV sets no per-frame ``quality``, so the
    ``qscale`` flag with ``global_quality`` falls back to ``qmin`` for FFmpeg's native encoders).
    ``q_range`` with ``bit_rate``: rate control free to vary the quantiser between the two.
    """
    with av.open(str(path), "w", format=fmt) as out:
        s = out.add_stream(codec, rate=rate)
        s.width, s.height, s.pix_fmt = width, height, pix_fmt
        ctx = s.codec_context
        if q is not None:
            ctx.qmin = ctx.qmax = q
        if q_range is not None:
            ctx.qmin, ctx.qmax = q_range
        if bit_rate is not None:
            ctx.bit_rate = bit_rate
        if b_frames:
            ctx.max_b_frames = b_frames
        if gop is not None:
            ctx.gop_size = gop
        if tag is not None:
            ctx.codec_tag = tag
        ctx.options = dict(options or {})
        for t, rgb in enumerate(photo_frames(frames, width, height)):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format=pix_fmt)
            frame.pts = t
            for p in s.encode(frame):
                out.mux(p)
        for p in s.encode():
            out.mux(p)
    return path


def packet_values(path: Path, make_reader) -> list[tuple[int | None, float | None]]:
    """``(pts, reader value)`` of every non-empty packet of the first video stream, in file order."""
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        reader = make_reader(s.codec_context.extradata)
        return [(p.pts, reader.packet_qp(bytes(p))) for p in c.demux(s) if p.size]


def decoder_truth(path: Path, base: bool = False) -> list[tuple[int | None, str, float | None]]:
    """``(pts, picture type, quantiser)`` of every decoded frame in display order, from the decoder's
    ``venc_params`` side data (FFmpeg's MPEG-1/2/4 decoders export each macroblock's quantiser in
    MPEG-2 ``quantiser_scale`` units, its VP9 decoder the frame's ``base_q_idx`` plus per-segment
    deltas). The quantiser is the mean over the blocks, or with ``base`` the frame-level value alone;
    None when the frame carries no side data."""
    out = []
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        s.codec_context.options = {"export_side_data": "venc_params"}
        for frame in c.decode(s):
            params = frame.side_data.get("VIDEO_ENC_PARAMS")
            value = None
            if params is not None:
                value = float(params.qp)
                if params.nb_blocks and not base:
                    value += float(np.mean([params.block_params(i).delta_qp for i in range(params.nb_blocks)]))
            kind = int(frame.pict_type)
            out.append((frame.pts, "?IPBS"[kind] if kind < 5 else str(kind), value))
    return out


class BitWriter:
    """MSB-first bit writer for hand-built headers (the syntax the encoders at hand never write)."""

    def __init__(self) -> None:
        self.value, self.size = 0, 0

    def u(self, value: int, n: int) -> "BitWriter":
        assert 0 <= value < (1 << n) or n == 0
        self.value, self.size = (self.value << n) | value, self.size + n
        return self

    def ue(self, value: int) -> "BitWriter":
        code = value + 1
        return self.u(0, code.bit_length() - 1).u(code, code.bit_length())

    def se(self, value: int) -> "BitWriter":
        return self.ue(2 * value - 1 if value > 0 else -2 * value)

    def stuff(self) -> "BitWriter":
        """MPEG-4 ``next_start_code()`` stuffing: a 0, then 1s to the byte boundary."""
        pad = 8 - self.size % 8
        return self.u((1 << (pad - 1)) - 1, pad)

    def zero_pad(self) -> "BitWriter":
        return self.u(0, (-self.size) % 8)

    def bytes(self) -> bytes:
        assert self.size % 8 == 0, "not byte aligned"
        return self.value.to_bytes(self.size // 8, "big")
