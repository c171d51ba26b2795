"""vsjpegfix.video.segment_join in one process: the plan at the input's keyframes, segment restoration, the join.

Clips are made here with PyAV (libx264, a keyframe every 8 frames: 40 frames of 64x48 at 25 fps
give 5 segments of 0.32 s with ``seconds=0.3``); the models are small random Fast ARCNNs (a
single-frame one and a 3-frame temporal one whose neighbours count), on the CPU. The outputs are
compared with :func:`vsjpegfix.video.transcode.transcode` of the whole file: with FFV1 (lossless) the
pictures must be identical. The Ray batch that spreads the segments over workers is tested in
tests/test_cluster.py.
"""

from __future__ import annotations

import dataclasses
import json
from fractions import Fraction

import av
import numpy as np
import pytest
from media import (
    SECONDS,
    assert_same_pictures,
    decoded_frames,
    frame_planes,
    frame_times,
    gop_clip,
    make_video,
    no_temporaries,
    opts,
    random_model,
    stream_packets,
    subtitle_cues,
)

from vsjpegfix.engine.core import Engine
from vsjpegfix.frames.safe_write import is_temporary, temporary_name
from vsjpegfix.video import segment_join
from vsjpegfix.video.report import TranscodeError
from vsjpegfix.video.segment_join import join_segments, transcode_segmented
from vsjpegfix.video.segment_plan import (
    SegmentMismatch,
    plan_file,
    plan_segments,
    remove_segment_temporaries,
    scan_video,
    segment_temporary,
)
from vsjpegfix.video.segment_restore import restore_segment
from vsjpegfix.video.transcode import transcode

GOP = 8




# ---------------------------------------------------------------------------- planning


def test_plan_cuts_at_keyframes_with_context_for_temporal_models(tmp_path):
    src = gop_clip(tmp_path / "a.mp4")
    index = scan_video(src)
    assert index.frames == 40 and index.keyframes == [0, 8, 16, 24, 32]
    assert index.pts == [f.pts for f in decoded_frames(src)]
    plan = plan_segments(index, SECONDS, radius=1)
    assert plan.frames == 40 and plan.time_base == index.time_base
    assert [(s.start, s.stop) for s in plan.segments] == [(0, 8), (8, 16), (16, 24), (24, 32), (32, 40)]
    assert [(s.context_start, s.context_stop) for s in plan.segments] == [(0, 9), (7, 17), (15, 25), (23, 33), (31, 40)]
    # decoding starts at the last keyframe at or before the first context frame (none: the file's start)
    assert [s.seek_pts for s in plan.segments] == [None, None, index.pts[8], index.pts[16], index.pts[24]]
    assert all(s.pts == index.pts[s.context_start : s.context_stop] for s in plan.segments)
    assert [s.owned_pts() for s in plan.segments] == [index.pts[i : i + 8] for i in range(0, 40, 8)]
    # at least `seconds` per segment; a tail shorter than half of that stays with the segment before it
    assert [s.start for s in plan_segments(index, 0.5).segments] == [0, 16, 32]
    assert [s.start for s in plan_segments(index, 0.6).segments] == [0, 16]
    assert plan_segments(index, 1.0) is None and plan_segments(index, 0) is None
    assert plan_file(src, 2.0) is None  # the container says 1.6 s: not even scanned


def test_open_gops_are_planned_in_presentation_order(tmp_path):
    src = gop_clip(tmp_path / "open.mp4", open_gop=True)
    with av.open(str(src)) as c:
        decode_order = [p.pts for p in c.demux(c.streams.video[0]) if p.size]
    assert decode_order != sorted(decode_order)  # B-frames: presentation order differs
    index = scan_video(src)
    assert index.pts == sorted(decode_order) and index.keyframes[:2] == [0, 8]


def test_frames_without_timestamps_are_not_split(tmp_path):
    raw = make_video(tmp_path / "raw.h264", frames=10, fmt="h264")  # a raw stream: no timestamps at all
    with pytest.raises(SegmentMismatch, match="without timestamps"):
        scan_video(raw)
    engine = Engine(random_model(), device="cpu")
    details = transcode_segmented(raw, tmp_path / "out.mkv", engine, opts(codec="ffv1"), seconds=0.1)
    assert "segments" not in details and details["frames"] == 10  # restored whole, as transcode does


def test_segment_temporaries_are_hidden_and_removed_per_output(tmp_path):
    out = tmp_path / "clip.mp4"
    a, b = segment_temporary(out, 0), segment_temporary(out, 12)
    assert a.parent == tmp_path and a.suffix == ".mp4" and is_temporary(a.name) and is_temporary(b.name)
    assert a.name.startswith(".clip.~seg0000.") and a != segment_temporary(out, 0)
    keep = [out, temporary_name(out), segment_temporary(tmp_path / "clip2.mp4", 0), segment_temporary(tmp_path / "clip.mkv", 0)]
    for p in (a, b, *keep):
        p.write_bytes(b"x")
    assert sorted(remove_segment_temporaries(out)) == sorted([a, b])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in keep)


# ---------------------------------------------------------------------------- the same output as a whole-file transcode


def test_segments_give_the_whole_file_result_with_streams_and_metadata(tmp_path):
    src = gop_clip(tmp_path / "in.mp4", audio=["aac"], subtitles=[(0.1, 0.5, "hello"), (1.0, 1.3, "world")],
                   metadata={"title": "T"}, colour={"color_range": 1, "colorspace": 1, "color_primaries": 1, "color_trc": 1})
    engine = Engine(random_model(), device="cpu")
    whole = transcode(src, tmp_path / "whole.mkv", engine, opts(codec="ffv1"))
    details = transcode_segmented(src, tmp_path / "split.mkv", engine, opts(codec="ffv1"), seconds=SECONDS)
    assert [s["frames"] for s in details["segments"]] == [8] * 5 and details["frames"] == whole.frames == 40
    a, b = tmp_path / "whole.mkv", tmp_path / "split.mkv"
    assert frame_times(a) == frame_times(b)
    assert_same_pictures(a, b)
    assert not all(np.array_equal(x, y) for f, g in zip(decoded_frames(src), decoded_frames(b)) for x, y in zip(frame_planes(f), frame_planes(g)))
    assert stream_packets(a, "audio") == stream_packets(b, "audio")
    assert subtitle_cues(a) == subtitle_cues(b) != []
    for key in ("copied_streams", "converted_streams", "dropped_streams", "codec", "pix_fmt", "width", "height"):
        assert details[key] == whole.as_dict()[key], key
    with av.open(str(a)) as ca, av.open(str(b)) as cb:
        assert ca.metadata.get("title") == cb.metadata.get("title") == "T"
        fa, fb = next(ca.decode(video=0)), next(cb.decode(video=0))
        assert (fa.colorspace, fa.color_range, fa.format.name) == (fb.colorspace, fb.color_range, fb.format.name)
    json.dumps(details)  # the report entry is plain data
    assert no_temporaries(tmp_path)


def test_temporal_model_gets_its_neighbours_across_segment_borders(tmp_path):
    src = gop_clip(tmp_path / "open.mp4", open_gop=True)
    engine = Engine(random_model(frames=3), device="cpu")
    assert engine.frames == 3
    transcode(src, tmp_path / "whole.mkv", engine, opts(codec="ffv1"))
    details = transcode_segmented(src, tmp_path / "split.mkv", engine, opts(codec="ffv1"), seconds=SECONDS)
    assert len(details["segments"]) == 5 and not [w for w in details["warnings"] if "segment" in w]
    assert frame_times(tmp_path / "whole.mkv") == frame_times(tmp_path / "split.mkv")
    assert_same_pictures(tmp_path / "whole.mkv", tmp_path / "split.mkv")
    # the check has teeth: cut without context (radius 0), the frames at each border differ
    plan = plan_segments(scan_video(src), SECONDS, radius=0)
    parts = [tmp_path / f"part{s.index}.mkv" for s in plan.segments]
    for path, segment in zip(parts, plan.segments):
        restore_segment(engine, src, path, segment, opts(codec="ffv1"))
    join_segments(src, tmp_path / "blind.mkv", parts, plan)
    whole, blind = decoded_frames(tmp_path / "whole.mkv"), decoded_frames(tmp_path / "blind.mkv")
    differ = [i for i, (f, g) in enumerate(zip(whole, blind)) if not all(np.array_equal(x, y) for x, y in zip(frame_planes(f), frame_planes(g)))]
    assert differ and set(differ) <= {7, 8, 15, 16, 23, 24, 31, 32}, differ


def test_h264_output_with_b_frames_joins_into_one_valid_stream(tmp_path):
    src = gop_clip(tmp_path / "in.mp4", audio=["aac"])
    engine = Engine(random_model(), device="cpu")
    transcode(src, tmp_path / "whole.mp4", engine, opts())  # the product's default encoder: libx264, B-frames
    details = transcode_segmented(src, tmp_path / "split.mp4", engine, opts(), seconds=SECONDS)
    assert len(details["segments"]) == 5
    assert frame_times(tmp_path / "whole.mp4") == frame_times(tmp_path / "split.mp4") == frame_times(src)
    assert stream_packets(tmp_path / "whole.mp4", "audio") == stream_packets(tmp_path / "split.mp4", "audio")
    with av.open(str(tmp_path / "split.mp4")) as c:
        packets = [(p.pts, p.dts, p.is_keyframe) for p in c.demux(c.streams.video[0]) if p.size]
        tb = c.streams.video[0].time_base
    dts = [d for _, d, _ in packets]
    assert dts == sorted(set(dts)) and all(d <= p for p, d, _ in packets)  # decode times increase, none after its frame
    assert any(p != d for p, d, _ in packets)  # B-frames were used, so the joins had decode times to continue
    pts = frame_times(src)
    keys = sorted(p * tb for p, _, k in packets if k)
    assert {pts[8 * k] for k in range(5)} <= set(keys)  # every segment starts with a keyframe


@pytest.mark.parametrize("ext, codec", [("ts", "libx264"), ("mkv", "libx265"), ("mp4", "libx265"), ("webm", "libvpx-vp9")])
def test_variable_frame_rate_timestamps_survive_each_container_and_encoder(tmp_path, ext, codec):
    pts = [i * 40 + (i % 3) * 7 for i in range(40)]  # milliseconds, irregular
    src = gop_clip(tmp_path / "vfr.mkv", pts=pts, time_base=Fraction(1, 1000), audio=["libopus"])
    engine = Engine(random_model(), device="cpu")
    transcode(src, tmp_path / f"whole.{ext}", engine, opts(codec=codec))
    details = transcode_segmented(src, tmp_path / f"split.{ext}", engine, opts(codec=codec), seconds=SECONDS)
    assert len(details["segments"]) == 5
    assert frame_times(tmp_path / f"whole.{ext}") == frame_times(tmp_path / f"split.{ext}")
    assert len(frame_times(tmp_path / f"split.{ext}")) == 40
    assert stream_packets(tmp_path / f"whole.{ext}", "audio") == stream_packets(tmp_path / f"split.{ext}", "audio")


def test_a_seek_that_misses_frames_decodes_from_the_start(tmp_path):
    src = gop_clip(tmp_path / "in.mp4")
    engine = Engine(random_model(), device="cpu")
    segment = plan_file(src, SECONDS).segments[1]  # frames 8..15
    wrong = dataclasses.replace(segment, seek_pts=scan_video(src).pts[24])  # a keyframe after the segment
    details = restore_segment(engine, src, tmp_path / "seg.mkv", wrong, opts(codec="ffv1"))
    assert details["frames"] == 8 and any("decoded it from the file's start" in w for w in details["warnings"])
    assert [f.pts for f in decoded_frames(tmp_path / "seg.mkv")] == [round(t * 1000) for t in frame_times(src)[8:16]]


# ---------------------------------------------------------------------------- failures


def test_a_failing_segment_leaves_no_output_and_no_temporaries(tmp_path, monkeypatch):
    src = gop_clip(tmp_path / "src" / "in.mp4")
    dst = tmp_path / "dst"
    dst.mkdir()
    real = segment_join.restore_segment

    def flaky(engine, src, path, segment, options, overall=None):
        details = real(engine, src, path, segment, options, overall=overall)
        if segment.index == 3:
            raise TranscodeError("disk on fire")
        return details

    monkeypatch.setattr(segment_join, "restore_segment", flaky)
    engine = Engine(random_model(), device="cpu")
    with pytest.raises(TranscodeError, match="disk on fire"):
        transcode_segmented(src, dst / "out.mkv", engine, opts(codec="ffv1"), seconds=SECONDS)
    assert list(dst.iterdir()) == []


def test_segments_that_cannot_be_joined_are_refused_without_output(tmp_path):
    src = gop_clip(tmp_path / "in.mp4")
    engine = Engine(random_model(), device="cpu")
    plan = plan_file(src, SECONDS)
    parts = [tmp_path / f".part{s.index}.mkv" for s in plan.segments]
    for path, segment in zip(parts, plan.segments):  # one segment encoded differently from the others
        restore_segment(engine, src, path, segment, opts(codec="ffv1" if segment.index else "libx264"))
    with pytest.raises(SegmentMismatch, match="different codec headers"):
        join_segments(src, tmp_path / "out.mkv", parts, plan)
    restore_segment(engine, src, parts[0], plan.segments[0], opts(codec="ffv1"))
    other = plan_file(src, 0.5).segments[0]  # frames 0..15, where the plan has 0..7
    restore_segment(engine, src, tmp_path / ".other.mkv", other, opts(codec="ffv1"))
    with pytest.raises(SegmentMismatch, match="16 video packets for 8 frames"):
        join_segments(src, tmp_path / "out.mkv", [tmp_path / ".other.mkv", *parts[1:]], plan)
    vfr = gop_clip(tmp_path / "vfr.mkv", pts=[i * 40 + (i % 3) * 7 for i in range(40)], time_base=Fraction(1, 1000))
    vfr_plan = plan_file(vfr, SECONDS)
    for path, segment in zip(parts, vfr_plan.segments):
        restore_segment(engine, vfr, path, segment, opts(codec="ffv1"))
    with pytest.raises(SegmentMismatch, match="do not match the plan"):  # segment 0's file given as segment 1's
        join_segments(vfr, tmp_path / "out.mkv", [parts[0], parts[0], *parts[2:]], vfr_plan)
    assert not (tmp_path / "out.mkv").exists() and no_temporaries(tmp_path)
    join_segments(vfr, tmp_path / "out.mkv", parts, vfr_plan)  # in the right order they join
    assert frame_times(tmp_path / "out.mkv") == frame_times(vfr)


def test_hevc_segments_follow_the_slice_qp_profile_like_the_whole_file(tmp_path):
    from vsjpegfix.weights.profile import QualityProfile

    src = make_video(tmp_path / "in.mkv", frames=24, codec="libx265",
                     options={"x265-params": f"log-level=error:crf=30:keyint={GOP}:min-keyint={GOP}:scenecut=0"})
    engine = Engine(random_model(), device="cpu")
    engine.quality_profile = QualityProfile(h264_qp=((24.0, None, 0.0), (40.0, None, 1.0)))
    whole = transcode(src, tmp_path / "whole.mkv", engine, opts(codec="ffv1"))
    details = transcode_segmented(src, tmp_path / "split.mkv", engine, opts(codec="ffv1"), seconds=SECONDS)
    assert whole.qf_mode == "profile" and len(details["segments"]) == 3
    assert_same_pictures(tmp_path / "whole.mkv", tmp_path / "split.mkv")
    strengths = [e["strength"] for e in whole.per_frame]
    assert len(strengths) == 24 and len(set(strengths)) > 1 and 0 < min(strengths) < max(strengths) < 1
    split = sorted((e["frame"], e["qp"]) for e in details["per_frame"])
    assert split == sorted((e["frame"], e["qp"]) for e in whole.per_frame)


def test_interlaced_segments_are_restored_by_fields_and_stay_interlaced(tmp_path):
    src = make_video(tmp_path / "in.mkv", frames=40, size=(64, 48), field="bff",
                     options={"x264-params": f"keyint={GOP}:min-keyint={GOP}:scenecut=0:bff=1"})
    engine = Engine(random_model(), device="cpu")
    whole = transcode(src, tmp_path / "whole.mkv", engine, opts(codec="ffv1"))
    details = transcode_segmented(src, tmp_path / "split.mkv", engine, opts(codec="ffv1"), seconds=SECONDS)
    assert whole.field_order == "bff" and len(details["segments"]) == 5
    assert_same_pictures(tmp_path / "whole.mkv", tmp_path / "split.mkv")
    with av.open(str(tmp_path / "split.mkv")) as c:
        s = c.streams.video[0]
        assert s.codec_context.field_order == 3 and all(f.interlaced_frame for f in c.decode(s))
