"""vsjpegfix.video.window: ``--start``/``--duration`` on real clips: frames, timestamps, audio and subtitles cut to match."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from media import (
    decoded_frames,
    frame_planes,
    frame_times,
    make_video,
    opts,
    stream_packets,
    subtitle_cues,
)

from vsjpegfix.video.report import TranscodeError
from vsjpegfix.video.transcode import transcode

KEYS = {"x264-params": "keyint=10:min-keyint=10:scenecut=0"}  # keyframes at 0, 0.4, 0.8, ... s (25 fps)
AAC_PACKET = Fraction(1024, 48000)


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    """2 s at 25 fps with AAC audio and three text cues (at 0.1, 0.6 and 1.5 s)."""
    path = tmp_path_factory.mktemp("window") / "in.mkv"
    cues = [(0.1, 0.3, "before"), (0.6, 0.8, "inside"), (1.5, 1.7, "after")]
    return make_video(path, frames=50, audio=["aac"], subtitles=cues, sub_codec="ass", options=KEYS)


def same_pixels(a: av.VideoFrame, b: av.VideoFrame) -> bool:
    return all(np.array_equal(x, y) for x, y in zip(frame_planes(a), frame_planes(b)))


def test_a_window_restores_exactly_its_frames_from_time_zero(tmp_path, clip, engine):
    out = tmp_path / "part.mkv"
    report = transcode(clip, out, engine, opts(codec="ffv1", start=0.5, duration=0.6))
    source, times = decoded_frames(clip), frame_times(clip)
    first = next(i for i, t in enumerate(times) if t >= Fraction(1, 2))  # 0.52 s: the first frame at or after 0.5
    kept = [i for i, t in enumerate(times) if Fraction(1, 2) <= t < Fraction(11, 10)]
    assert kept[0] == first == 13 and len(kept) == 15
    got = decoded_frames(out)
    assert report.frames == len(got) == 15
    assert frame_times(out) == [times[i] - times[first] for i in kept]  # shifted by the cut: starts at 0
    assert all(same_pixels(a, source[i]) for a, i in zip(got, kept))  # the identity model: the very frames
    assert report.window["cut_seconds"] == pytest.approx(0.52) and report.window["end_seconds"] == pytest.approx(1.1)
    assert report.window["seeked"] and report.window["frames_before"] == 13 - 10  # from the keyframe at 0.4 s
    # audio: whole packets that start in [cut, end), shifted by the same cut
    audio_in = [p[0] * p[1] for p in stream_packets(clip, "audio")]
    audio_out = [p[0] * p[1] for p in stream_packets(out, "audio")]
    cut = Fraction(13, 25)
    expected = [t - cut for t in audio_in if cut <= t < Fraction(11, 10)]
    assert audio_out == [round(t * 1000) / Fraction(1000) for t in expected]  # Matroska: milliseconds
    assert 0 <= audio_out[0] < AAC_PACKET  # starts within a packet of the video
    video_end = frame_times(out)[-1] + Fraction(1, 25)
    assert abs(audio_out[-1] + AAC_PACKET - video_end) <= AAC_PACKET  # ends within a packet of it
    assert [(t, text) for t, text in subtitle_cues(out)] == [(Fraction(8, 100), "inside")]


def test_start_alone_restores_to_the_end_and_mp4_keeps_the_cut(tmp_path, clip, engine):
    out = tmp_path / "tail.mp4"
    report = transcode(clip, out, engine, opts(start=1.5))
    times = frame_times(clip)
    assert report.frames == sum(t >= Fraction(3, 2) for t in times) == 12  # 1.52 .. 1.96 s
    got = frame_times(out)
    assert got[0] == 0 and got[-1] == times[-1] - Fraction(152, 100)
    assert report.window == {"start": 1.5, "duration": None, "cut_seconds": pytest.approx(1.52), "end_seconds": None,
                             "frames_before": 8, "seeked": True}  # from the keyframe at 1.2 s
    assert report.strength_option == "auto"


def test_a_raw_stream_is_decoded_from_its_start_without_seeking(tmp_path, engine):
    src = make_video(tmp_path / "in.264", frames=20, fmt="h264", options=KEYS)
    report = transcode(src, tmp_path / "out.mkv", engine, opts(start=0.4, duration=0.2))
    assert report.frames == 5 and not report.window["seeked"] and report.window["frames_before"] == 10
    assert frame_times(tmp_path / "out.mkv") == [Fraction(i, 25) for i in range(5)]


@pytest.mark.parametrize("start,duration,message", [
    (2.5, None, "at or beyond the end of the file"),
    (-1, None, "--start must be 0 or more"),
    (0.2, 0, "--duration must be more than 0"),
    (0.2, -3, "--duration must be more than 0"),
])
def test_a_window_outside_the_video_is_a_one_line_error_and_writes_nothing(tmp_path, clip, engine, start, duration, message):
    out = tmp_path / "o.mkv"
    with pytest.raises(TranscodeError, match=message) as info:
        transcode(clip, out, engine, opts(start=start, duration=duration))
    assert "\n" not in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_a_start_past_the_last_frame_without_a_stated_duration(tmp_path, engine):
    """A raw stream states no duration: the error comes when no frame reached the window, and nothing is left."""
    src = make_video(tmp_path / "in.264", frames=5, fmt="h264")
    with pytest.raises(TranscodeError, match="no video frame from --start 3 s on"):
        transcode(src, tmp_path / "o.mkv", engine, opts(start=3))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.264"]
