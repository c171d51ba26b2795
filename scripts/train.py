#!/usr/bin/env python3
"""Train an artifact-removal network (Fast ARCNN, ARCNN, FBCNN) on folders of clean images.

Image folders in, weights out::

    python scripts/train.py --arch fastarcnn --channels 3 --degrade mix \\
        --steps 8000 --max-minutes 35 --batch 16 --crop 48 --out out/fastarcnn \\
        --export weights/fastarcnn.safetensors --name fastarcnn

Temporal models (``--frames T``, T odd > 1) train on H.264/HEVC clips made on the fly (or taken
from a pack of ``scripts/pack_video_clips.py`` with ``--clips DIR``); ``--init`` with single-frame
weights starts exactly at the single-frame model::

    python scripts/train.py --arch fastarcnn --frames 3 --init weights/fastarcnn.safetensors \\
        --batch 8 --crop 64 --steps 4000 --out out/fastarcnn-t3 --export weights/fastarcnn-t3.safetensors

A thin entry point: the run is :func:`vsjpegfix.training.trainer.train` (data:
:mod:`vsjpegfix.training.data`, loss and schedule: :mod:`vsjpegfix.training.objective`,
validation: :mod:`vsjpegfix.training.validation`, checkpoints, log and export:
:mod:`vsjpegfix.training.checkpoints`). Outputs in ``--out``: ``last.pt`` (resume with
``--resume``), ``best.pt``, ``log.jsonl``; with ``--export PATH --name NAME`` an fp16 safetensors
file plus its manifest entry, printed as JSON on stdout and written to ``OUT/export.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

_REPO = Path(__file__).resolve().parent.parent
if str(_REPO) not in sys.path:
    sys.path.insert(0, str(_REPO))

from vsjpegfix.training.checkpoints import CHECKPOINT  # noqa: E402
from vsjpegfix.training.degrade import DEGRADATIONS  # noqa: E402
from vsjpegfix.training.errors import TrainingError  # noqa: E402
from vsjpegfix.training.options import TrainOptions  # noqa: E402
from vsjpegfix.training.trainer import train  # noqa: E402  (also registers the video degradations)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    shared = _REPO.parent / "shared" / "data" / "images"
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--arch", choices=["fastarcnn", "arcnn", "fbcnn"], default="fastarcnn")
    ap.add_argument("--config", default="{}", help="model config: JSON text or a JSON file (e.g. '{\"nc\": [32,64,128,256], \"nb\": 2}')")
    ap.add_argument("--channels", type=int, choices=[1, 3], default=3)
    ap.add_argument("--train", type=Path, default=shared / "train", help="clean training images (recursive)")
    ap.add_argument("--val", type=Path, default=shared / "val" / "cbsd68", help="clean validation images")
    ap.add_argument("--steps", type=int, default=1000, help="total optimisation steps (also the end of the LR schedule)")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--crop", type=int, default=64, help="training patch size (multiple of 8)")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--schedule", choices=["cosine", "step", "constant"], default="cosine")
    ap.add_argument("--min-lr", type=float, default=0.02, help="cosine floor, as a fraction of --lr")
    ap.add_argument("--decay-every", type=int, default=2000, help="step schedule: halve the LR every N steps")
    ap.add_argument("--warmup", type=int, default=100, help="linear warm-up steps")
    ap.add_argument("--degrade", choices=sorted(DEGRADATIONS), default="mix", help="image degradation (single-frame models)")
    ap.add_argument("--frames", type=int, default=1,
                    help="input frames T (odd); T > 1 trains a temporal model on H.264/HEVC clips (T degraded frames "
                    "stacked on the channel axis -> clean centre frame); --degrade is then unused")
    ap.add_argument("--codecs", default="h264,hevc", help="clip codecs for --frames > 1 (comma-separated: h264, hevc)")
    ap.add_argument("--intra-fraction", type=float, default=0.2,
                    help="--frames > 1: fraction of clips coded intra-only (the rest with P/B frames)")
    ap.add_argument("--clips", type=Path, default=None,
                    help="pre-encoded clip pack (scripts/pack_video_clips.py) instead of encoding clips on the fly")
    ap.add_argument("--clips-fraction", type=float, default=1.0,
                    help="single-frame models with --clips: share of each batch from the pack (the rest: --degrade on images)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cpu", help="cpu or cuda[:N] (mixed precision with autocast on CUDA)")
    ap.add_argument("--no-amp", action="store_true", help="disable mixed precision on CUDA")
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    ap.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=True,
                    help="channels-last memory format (about 15%% faster on CPU)")
    ap.add_argument("--workers", type=int, default=1, help="DataLoader worker processes (0 = make batches in the main process)")
    ap.add_argument("--out", type=Path, default=Path("out/train"), help="output folder (checkpoints, log)")
    ap.add_argument("--resume", action="store_true", help=f"continue from OUT/{CHECKPOINT}")
    ap.add_argument("--save-every", type=int, default=500)
    ap.add_argument("--log-every", type=int, default=50)
    ap.add_argument("--val-every", type=int, default=1000, help="validate every N steps (0: only at the end)")
    ap.add_argument("--val-qf", type=int, default=10, help="JPEG quality of the single-frame validation")
    ap.add_argument("--val-video", action="store_true",
                    help="validate a single-frame model on the temporal models' H.264 clips (centre frame) instead of JPEG")
    ap.add_argument("--val-qp", type=int, default=37, help="x264 QP of the validation clips (--frames > 1 or --val-video)")
    ap.add_argument("--val-n", type=int, default=10, help="validate on the first N images of --val")
    ap.add_argument("--val-crop", type=int, default=256, help="centre crop of validation images")
    ap.add_argument("--max-minutes", type=float, default=0,
                    help="stop (and save) after this much training time, the cosine schedule ending then (0: no limit)")
    ap.add_argument("--stop-at", type=int, default=0,
                    help="stop (and save) at this step without changing the schedule; continue later with --resume")
    ap.add_argument("--init", type=Path, default=None,
                    help="start from these weights (a .safetensors/.pth of the same architecture and config), e.g. to train "
                    "longer; with --frames T > 1 a single-frame file is made temporal (neighbour weights zero: starts "
                    "exactly at the single-frame model) and a T-frame file loads as it is")
    ap.add_argument("--tail-init-scale", type=float, default=0.1,
                    help="scale the initial last layer of residual models (ARCNN, Fast ARCNN, FBCNN with residual=true): near-identity start; 0 = exact identity")
    ap.add_argument("--export", type=Path, help="write the final model as fp16 safetensors here")
    ap.add_argument("--name", help="model name for the manifest entry (default: file stem)")
    ap.add_argument("--description", default="")
    ap.add_argument("--task", default=None, help="manifest task (default: video when --frames > 1, else jpeg)")
    ap.add_argument("--hardware", default=None, help="hardware note for the manifest (default: from --device)")
    ap.add_argument("--no-progress", action="store_true", help="no tqdm progress bar")
    args = ap.parse_args(argv)
    try:
        args.options = TrainOptions.from_dict(vars(args))
    except TrainingError as exc:
        ap.error(str(exc))
    return args


def main(argv: list[str] | None = None) -> int:
    options = parse_args(argv).options
    try:
        result = train(options)
    except TrainingError as exc:
        raise SystemExit(f"error: {exc}") from None
    if result.entry is not None:
        print(json.dumps(result.entry, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
