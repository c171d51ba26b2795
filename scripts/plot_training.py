#!/usr/bin/env python3
"""Plot validation gain against training steps for one or more ``scripts/train.py`` runs.

Each run folder holds ``log.jsonl`` (train.py's log). Runs validated on JPEG (``val_qf``) and
on H.264 clips (``val_qp``) go to separate panels. Needs matplotlib (``pip install
'vsjpegfix[plot]'``)::

    python scripts/plot_training.py runs/fbcnn-s runs/arcnn ... -o weights/training_curves.png \\
        --title "GPU session 2026-11-23 (1x H100, 14 min per model)"
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

_REPO = Path(__file__).resolve().parent.parent
if str(_REPO) not in sys.path:
    sys.path.insert(0, str(_REPO))

from vsjpegfix.training.checkpoints import validation_curve  # noqa: E402
from vsjpegfix.training.errors import TrainingError  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", type=Path, help="train.py output folders (with log.jsonl)")
    ap.add_argument("-o", "--output", type=Path, required=True, help="image file to write (.png, .svg)")
    ap.add_argument("--title", default="")
    args = ap.parse_args(argv)
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("error: plotting needs matplotlib (pip install 'vsjpegfix[plot]')", file=sys.stderr)
        return 2
    curves: dict[str, list[tuple[str, list[int], list[float]]]] = {}
    for run in args.runs:
        try:
            panel, steps, gains = validation_curve(run)
        except TrainingError as exc:
            raise SystemExit(f"error: {exc}") from None
        curves.setdefault(panel, []).append((run.name, steps, gains))
    fig, axes = plt.subplots(1, len(curves), figsize=(6.5 * len(curves), 4.5), squeeze=False)
    for ax, (panel, runs) in zip(axes[0], sorted(curves.items())):
        for name, steps, gains in runs:
            ax.plot(steps, gains, marker=".", label=name)
        ax.set_title(f"validation: {panel}")
        ax.set_xlabel("training step")
        ax.set_ylabel("PSNR gain over the input (dB)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    if args.title:
        fig.suptitle(args.title)
    fig.tight_layout()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.output, dpi=90)
    print(f"wrote {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
