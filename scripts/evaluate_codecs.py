#!/usr/bin/env python3
"""Evaluate restoration on the codecs of old archives: MPEG-2, MPEG-4 Part 2, MJPEG and VP9.

The video validation set (nine clean sequences; first ``--frames`` frames, centred ``--crop``) is
re-encoded by each codec at fine, middle and coarse fixed quantisers and restored blind by
``fbcnn-s`` and with the streams' quantisers by each ``--profiled`` model (its quality profile through
the codec's calibrated table); per codec and quantiser the mean and the worst sequence's Y-PSNR gain
(:mod:`vsjpegfix.training.evaluation.archive_tables`). ``--docs`` rewrites the section between the
``archive-codecs`` markers of ``docs/evaluation.md``.

    python scripts/evaluate_codecs.py --json runs/codecs.json --docs docs/evaluation.md
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path
from typing import Sequence

import torch

_REPO = Path(__file__).resolve().parent.parent
if str(_REPO) not in sys.path:
    sys.path.insert(0, str(_REPO))

from vsjpegfix.engine.device import EngineError  # noqa: E402
from vsjpegfix.quantisers.mapping import codec_tables  # noqa: E402
from vsjpegfix.training.errors import TrainingError  # noqa: E402
from vsjpegfix.training.evaluation.archive_tables import (  # noqa: E402
    ARCHIVE_SETTINGS,
    archive_markdown,
    archive_rows,
    load_sequence,
    target_lines,
)
from vsjpegfix.training.evaluation.entries import resolve_models  # noqa: E402
from vsjpegfix.training.strength_fit import held_out_rules  # noqa: E402
from vsjpegfix.training.video_set import VideoSetConfig  # noqa: E402
from vsjpegfix.training.video_set_build import load_set  # noqa: E402
from vsjpegfix.weights.store import WeightsError, default_model_name  # noqa: E402

BEGIN, END = "<!-- archive-codecs:begin -->", "<!-- archive-codecs:end -->"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--videos", type=Path, default=_REPO.parent / "shared" / "data" / "video")
    p.add_argument("--frames", type=int, default=8)
    p.add_argument("--crop", type=int, default=128)
    p.add_argument("--codec", nargs="+", choices=sorted(ARCHIVE_SETTINGS), default=list(ARCHIVE_SETTINGS))
    p.add_argument("--blind", default="fbcnn-s", help="the blind reference model (default fbcnn-s)")
    p.add_argument("--profiled", nargs="+", default=["arcnn", "fbcnn-s"], help="models run with their profiles")
    p.add_argument("--tables", nargs="*", default=[], metavar="MODEL=REPORT",
                   help="map a profiled model's quantisers with its own calibration report (default: the shipped tables)")
    p.add_argument("--cache", type=Path, default=_REPO / "runs" / "codec_cache", help="decoded encodes (npz)")
    p.add_argument("--held-out", type=Path, default=None, metavar="VIDEO_SET_CACHE",
                   help="add the default model with its H.264 strength rule refitted without each sequence (the video "
                        "set's leave-one-sequence-out, from this cache of scripts/fit_strength.py; built if missing)")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--docs", type=Path, default=None, help="rewrite the archive-codecs section of this Markdown file")
    return p.parse_args(argv)


def held_out_h264(videos: Path, cache: Path, model: str) -> dict:
    """Per sequence of the video set, the model's x264 rule fitted without it (nested margins)."""
    cfg = VideoSetConfig(videos, cache)
    return {seq: rules["x264"] for seq, rules in held_out_rules(load_set(cfg, [model]), model).items()}


def section(args: argparse.Namespace, rows: list[dict], methods: list[str], names: list[str], seconds: float) -> str:
    name = default_model_name("video-qp")
    best = [m for m in methods if m.startswith(f"{name} +")][-1]  # the rule held out, the rule, or the profile
    default = {c: best for c in args.codec}
    tables = codec_tables()
    cal = sorted({f"{c}: {tables[c]['model']}" for c in args.codec if c in tables})
    n = len({r["sequence"] for r in rows})
    return "\n".join([
        "### Archive codecs: MPEG-2, MPEG-4 Part 2, MJPEG, VP9", "",
        f"The video validation set ({n} sequences: {', '.join(names)}; first {args.frames} frames, centred "
        f"{args.crop}x{args.crop} crops) re-encoded by FFmpeg's mpeg2video (MPEG-PS, GOP 12 with 2 B pictures), "
        "mpeg4 (Xvid in AVI, same GOP), mjpeg (AVI), libvpx-vp9 (WebM), and the H.263 family: msmpeg4 (DivX 3 in AVI), "
        "flv (Sorenson H.263) and wmv2 (ASF), GOP 12 without B pictures, at a fixed quantiser "
        "(qscale; libvpx's quantizer 0..63 = q index 4q). Gains in dB of Y-PSNR over the decoded input, "
        "mean over the sequences / worst sequence. `blind`: no quantiser; `+profile`: the model's quality "
        "profile at each frame's quantiser read from the stream and mapped to the H.264 scale by the "
        f"codec's calibrated table ({'; '.join(cal) or 'first-order step sizes'}"
        + "".join(f"; {t.split('=')[0]}: its own, {t.split('=', 1)[1]}" for t in args.tables) + "); `+rule`: as the "
        "transcoder runs it, each frame's strength from the model's H.264 strength rule on that scale (fitted on x264 "
        "encodes of these nine sequences: in-sample); `+rule (held out)`: the same with the rule refitted without "
        "the scored sequence (leave-one-sequence-out with nested margins, as on the video set). Bold: the default "
        "for these codecs (`DEFAULT_PREFERENCE['video-qp']`).", "",
        archive_markdown(rows, methods, default), "",
        f"Targets for the default (`{best}`): no sequence loses more than 0.02 dB, "
        f"and more gain than `{methods[0]}` at middle and coarse quantisers:", "",
        *target_lines(rows, best, methods[0]), "",
        f"Made by `{shlex.join(['python', 'scripts/evaluate_codecs.py', *sys.argv[1:]])}` on CPU "
        f"({time.strftime('%Y-%m-%d')}, {seconds / 60:.0f} min).",
    ])


def write_docs(path: Path, text: str) -> None:
    doc = path.read_text() if path.exists() else ""
    block = f"{BEGIN}\n{text}\n{END}"
    if BEGIN in doc and END in doc:
        doc = doc[: doc.index(BEGIN)] + block + doc[doc.index(END) + len(END):]
    else:
        doc = doc.rstrip("\n") + "\n\n" + block + "\n"
    path.write_text(doc)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    started = time.perf_counter()
    try:
        paths = sorted(args.videos.glob("*.mkv"))
        if not paths:
            raise TrainingError(f"no .mkv sequences in {args.videos}")
        sequences = {p.stem: load_sequence(p, args.frames, args.crop) for p in paths}
        models, _ = resolve_models(list(dict.fromkeys([args.blind, *args.profiled])), device="cpu")
        by_label = {m.label: m for m in models}
        tables = {k: json.loads(Path(v).read_text()) for k, v in (t.split("=", 1) for t in args.tables)}
        held = held_out_h264(args.videos, args.held_out, args.profiled[0]) if args.held_out else None
        rows = archive_rows(sequences, by_label[args.blind], [by_label[n] for n in args.profiled],
                            codecs=args.codec, cache=args.cache, tables=tables, held_out=held)
    except (TrainingError, WeightsError, EngineError, OSError, ValueError, KeyError) as exc:
        raise SystemExit(f"evaluate_codecs: {exc}") from None
    methods = [f"{args.blind} blind"] + [f"{n} +profile" for n in args.profiled]
    methods += [m for m in (f"{args.profiled[0]} +rule", f"{args.profiled[0]} +rule (held out)") if any(m in r for r in rows)]
    text = section(args, rows, methods, list(sequences), time.perf_counter() - started)
    print(text)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"rows": rows, "methods": methods}, indent=1) + "\n")
    if args.docs:
        write_docs(args.docs, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
