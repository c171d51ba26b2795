"""The output-quality table (``scripts/evaluate_output.py``): how much of the restoration's gain survives
the output encoder, on the video validation set.

Each clean sequence's centred crop (first ``frames`` frames) is encoded by libx264 (preset medium, one
thread) at constant QPs and given to :func:`vsjpegfix.video.transcode.transcode` exactly as a user runs
it, with the default model, three times: lossless (``ffv1``: the restoration's own gain), the product's
default output (libx264 at the CRF chosen by :mod:`vsjpegfix.video.output_quality`) and the earlier fixed
CRF 16. Per QP: the mean and worst sequence's Y-PSNR gain over the decoded input, and each output's size
over the input's.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from vsjpegfix.training.baselines import encode_yuv420
from vsjpegfix.training.evaluation.archive_tables import load_sequence, mean_psnr
from vsjpegfix.training.evaluation.report import Log, log_stderr
from vsjpegfix.video.report import TranscodeOptions
from vsjpegfix.video.transcode import transcode

#: The outputs compared: label -> transcode options (besides ``overwrite``/``progress``).
OUTPUTS: dict[str, dict[str, Any]] = {"lossless (ffv1)": {"codec": "ffv1"}, "default": {}, "fixed CRF 16": {"crf": 16.0}}


def output_rows(paths: Sequence[Path], engine: Any, qps: Sequence[int], *, frames: int = 12, crop: int = 256,
                log: Log = log_stderr) -> list[dict[str, Any]]:
    """One row per (sequence, QP): ``input`` Y-PSNR, and per output of :data:`OUTPUTS` its gain
    (``<label>``), its size over the input's (``<label> size``) and the CRF used (``<label> crf``)."""
    rows = []
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="vsjpegfix-output-") as tmp:
        for path in paths:
            planes = load_sequence(path, frames, crop)
            for qp in qps:
                src = Path(tmp) / f"{path.stem}_qp{qp}.mkv"
                src.write_bytes(encode_yuv420(planes, "x264", qp=qp))
                base = mean_psnr(planes, load_sequence(src, frames, crop))
                row: dict[str, Any] = {"sequence": path.stem, "qp": qp, "input": base}
                for label, kw in OUTPUTS.items():
                    dst = Path(tmp) / f"out_{len(rows)}_{list(OUTPUTS).index(label)}.mkv"
                    report = transcode(src, dst, engine, TranscodeOptions(overwrite=True, progress=False, **kw))
                    row[label] = mean_psnr(planes, load_sequence(dst, frames, crop)) - base
                    row[f"{label} size"] = dst.stat().st_size / src.stat().st_size
                    row[f"{label} crf"] = report.crf
                rows.append(row)
            log(f"  {path.stem}: {time.perf_counter() - t0:.0f} s")
    return rows


def output_markdown(rows: Sequence[dict[str, Any]]) -> str:
    """Per input QP: each output's gain (mean / worst sequence) and size (mean, times the input's)."""
    labels = list(OUTPUTS)
    lines = ["| input | input Y-PSNR | " + " | ".join(f"{m}: gain mean / worst, size" for m in labels) + " | default CRF |",
             "|---|--:|" + "---|" * len(labels) + "---|"]
    for qp in sorted({r["qp"] for r in rows}):
        group = [r for r in rows if r["qp"] == qp]
        cells = [f"{np.mean([r[m] for r in group]):+.3f} / {min(r[m] for r in group):+.3f}, "
                 f"{np.mean([r[f'{m} size'] for r in group]):.1f}x" for m in labels]
        crfs = sorted({r["default crf"] for r in group})
        lines.append(f"| x264 QP {qp} | {np.mean([r['input'] for r in group]):.2f} | " + " | ".join(cells)
                     + f" | {', '.join(f'{c:g}' for c in crfs)} |")
    return "\n".join(lines)
