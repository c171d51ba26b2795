"""The transcoder benchmark as a library (vsjpegfix.training.bench_transcode): test clips, stage throughputs
and the peak-memory child process, on a tiny clip."""

import av
import pytest

from vsjpegfix.training.bench_transcode import (
    make_clip,
    make_engine,
    make_long_clip,
    peak_memory,
    throughput,
    video_pts,
)

pytest.importorskip("skvideo")


def test_clips_throughput_and_memory_child(tmp_path):
    clip = make_clip(tmp_path / "clip.mp4", 4, 64, 48)
    result = throughput(clip, make_engine("cpu"), 4, 1, tmp_path)
    fps = result["throughput_fps"]
    assert set(fps) == {"decode_only", "engine_only", "encode_only", "end_to_end"} and min(fps.values()) > 0
    assert result["slowest_stage"] == min(("decode_only", "engine_only", "encode_only"), key=fps.get)
    assert result["end_to_end_vs_slowest"] == pytest.approx(fps["end_to_end"] / fps[result["slowest_stage"]], rel=0.01)
    assert result["throughput_target_met"] == (result["end_to_end_vs_slowest"] >= 0.9)
    assert (tmp_path / "restored.mp4").is_file() and (tmp_path / "encoded.mp4").is_file()
    long = make_long_clip(tmp_path / "long.mp4", 6, 64, 48, gop=3)
    pts = video_pts(long)
    assert len(pts) == 6 and len({b - a for a, b in zip(pts, pts[1:])}) == 1 and not (tmp_path / "plain.mp4").exists()
    with av.open(str(long)) as c:
        keys = [p.is_keyframe for p in c.demux(c.streams.video[0]) if p.size]
    assert keys == [True, False, False, True, False, False]  # a keyframe every --gop frames
    memory = peak_memory(clip, tmp_path / "child.mp4", "cpu", 1)  # a fresh process (python -m ...)
    assert memory["peak_rss_mib"] > 50 and memory["seconds"] > 0 and (tmp_path / "child.mp4").is_file()
