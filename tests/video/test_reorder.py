"""vsjpegfix.video.reorder: AVI video is timed by its chunks, read and written without frames out of time.

An AVI stores no presentation times; FFmpeg's demuxer guesses them (H.264: a frame late; with B-frames,
other pictures' times), which the transcoder used to "retime" into a broken sequence.
"""

from __future__ import annotations

from fractions import Fraction

import av
import pytest
from media import GOP, SECONDS, assert_same_pictures, decoded_frames, frame_times, make_video, opts, random_model

from vsjpegfix.engine.core import Engine
from vsjpegfix.video.segment_join import transcode_segmented
from vsjpegfix.video.transcode import transcode


def bframe_avi(path, frames: int = 8):
    """H.264 with B-frames in AVI, as ``ffmpeg -i x -c:v libx264 out.avi`` writes it, with PCM audio."""
    return make_video(path, frames=frames, options={"x264-params": "bframes=2:b-adapt=0"}, audio=["pcm_s16le"])


def test_an_avi_with_b_frames_keeps_its_frame_times_and_order(tmp_path, engine):
    src = bframe_avi(tmp_path / "in.avi")
    with av.open(str(src)) as c:  # what FFmpeg gives: display order, times of the decode order shuffled
        pts = [f.pts for f in c.decode(video=0)]
    assert sorted(pts) != pts
    report = transcode(src, tmp_path / "out.mkv", engine, opts(codec="ffv1"))
    assert report.frames == 8 and report.retimed_frames == 0 and not any("tick" in w for w in report.warnings)
    assert frame_times(tmp_path / "out.mkv") == [Fraction(i, 25) for i in range(8)]  # chunk k at k/25, as the audio
    assert_same_pictures(src, tmp_path / "out.mkv")  # and the pictures in display order


def test_avi_output_has_no_b_frames_so_its_frames_read_back_in_time(tmp_path, engine):
    # Matroska's millisecond time base: AVI's must be the frame rate (one chunk per frame), not 1/1000 (a
    # "1000 fps" file of empty chunks)
    src = make_video(tmp_path / "in.mkv", frames=8, audio=["pcm_s16le"])
    report = transcode(src, tmp_path / "out.avi", engine, opts())  # libx264 with its default B-frames elsewhere
    assert report.frames == 8
    with av.open(str(tmp_path / "out.avi")) as c:
        assert c.streams.video[0].time_base == Fraction(1, 25) and c.streams.video[0].average_rate == 25
    with av.open(str(tmp_path / "out.avi")) as c:
        packets = [p for p in c.demux(c.streams.video[0]) if p.size]
    assert [p.dts for p in packets] == list(range(8))  # a chunk per frame
    assert [p.pts - p.dts for p in packets] == [packets[0].pts - packets[0].dts] * 8  # no reordering
    pts = [f.pts for f in decoded_frames(tmp_path / "out.avi")]
    assert pts == sorted(pts)
    again = transcode(tmp_path / "out.avi", tmp_path / "again.mkv", engine, opts(codec="ffv1"))
    assert again.retimed_frames == 0 and frame_times(tmp_path / "again.mkv") == [Fraction(i, 25) for i in range(8)]


@pytest.mark.parametrize("codec, options, split", [
    ("libx264", {"x264-params": f"keyint={GOP}:min-keyint={GOP}:scenecut=0:bframes=2:b-adapt=0"}, True),
    ("mpeg4", {"g": str(GOP), "bf": "2", "flags": "+cgop", "sc_threshold": "1000000000"}, True),  # Xvid-style, closed GOPs
    ("mpeg4", {"g": str(GOP), "bf": "2"}, False),  # open GOPs: B-frames after each keyframe are shown before it
    ("libx264", {"x264-params": f"keyint={GOP}:min-keyint={GOP}:scenecut=0:bframes=3:open-gop=1"}, False),
])
def test_an_avi_with_b_frames_is_split_at_closed_keyframes_like_the_whole_file(tmp_path, codec, options, split):
    # the plan and each segment time frames by their chunks, as the whole-file transcoder does (before, every
    # segment's first B-frame mismatched the plan and the file fell back to one whole-file transcode); an AVI
    # is cut only where a keyframe starts a closed group, which only decoding tells
    src = make_video(tmp_path / "in.avi", frames=40, codec=codec, options=options, audio=["pcm_s16le"])
    engine = Engine(random_model(), device="cpu")
    transcode(src, tmp_path / "whole.mkv", engine, opts(codec="ffv1"))
    details = transcode_segmented(src, tmp_path / "split.mkv", engine, opts(codec="ffv1"), seconds=SECONDS)
    segments = len(details.get("segments", []))
    assert segments >= 3 if split else segments == 0  # at keyframes (MPEG-4 puts them every 7 frames here)
    assert not any("not split" in w for w in details["warnings"])
    assert frame_times(tmp_path / "split.mkv") == frame_times(tmp_path / "whole.mkv") == [Fraction(i, 25) for i in range(40)]
    assert_same_pictures(tmp_path / "whole.mkv", tmp_path / "split.mkv")
