"""vsjpegfix.video.streams: audio, subtitles, data and attachments copied or converted; colour, SAR, rotation,
metadata and chapters carried (files made with PyAV here, restored with an identity model).
"""

from __future__ import annotations

from fractions import Fraction

import av
import pytest
from media import (
    decoded_frames,
    make_video,
    opts,
    rescale,
    stream_packets,
    subtitle_cues,
    test_images,
)

from vsjpegfix.video.transcode import transcode


def test_audio_copied_bit_exact_and_subtitles(tmp_path, engine):
    src = make_video(tmp_path / "in.mp4", frames=12, audio=["aac", "libmp3lame", "libopus"],
                     subtitles=[(0.08, 0.2, "hello"), (0.28, 0.4, "world")])
    want_audio = [stream_packets(src, "audio", i) for i in range(3)]
    assert all(len(a) > 3 for a in want_audio)
    for ext in ("mp4", "mkv"):
        dst = tmp_path / f"out.{ext}"
        report = transcode(src, dst, engine, opts())
        codecs = {e["codec"] for e in report.copied_streams}
        assert {"aac", "mp3", "opus"} <= codecs, report.copied_streams
        for i, want in enumerate(want_audio):
            got = stream_packets(dst, "audio", i)
            assert [p[2] for p in got] == [p[2] for p in want], (ext, i)  # payloads bit-exact
            tick = got[0][1]  # and timing, to the output's time base (MKV: milliseconds)
            assert [p[0] for p in got] == [rescale(p[0] * p[1], tick) for p in want], (ext, i)
        cues = subtitle_cues(dst)
        assert [c[1] for c in cues] == ["hello", "world"], cues
        assert [c[0] for c in cues] == [Fraction(8, 100), Fraction(28, 100)]
        if ext == "mp4":  # mov_text fits MP4: copied packet for packet
            assert stream_packets(dst, "subtitle") == stream_packets(src, "subtitle")
            assert not report.converted_streams
        else:  # MKV cannot hold mov_text: converted to a text format it can
            assert report.converted_streams and report.converted_streams[0]["codec"] == "mov_text"
            assert any("converted" in w for w in report.warnings)
        assert not report.dropped_streams


def test_srt_into_mp4_becomes_mov_text_and_attachment_drop_is_reported(tmp_path, engine):
    src = make_video(tmp_path / "in.mkv", frames=10, subtitles=[(0.04, 0.2, "bonjour")], sub_codec="subrip",
                     attachment=b"\0fontdata")
    report = transcode(src, tmp_path / "out.mp4", engine, opts())
    assert report.converted_streams[0]["to"] == "mov_text"
    assert [c[1] for c in subtitle_cues(tmp_path / "out.mp4")] == ["bonjour"]
    assert [d["type"] for d in report.dropped_streams] == ["attachment"]
    # into MKV both are copied as they are
    report = transcode(src, tmp_path / "out.mkv", engine, opts())
    assert {e["type"] for e in report.copied_streams} == {"subtitle", "attachment"}
    with av.open(str(tmp_path / "out.mkv")) as c:
        att = [s for s in c.streams if s.type == "attachment"]
        assert att and att[0].data == b"\0fontdata"


def test_data_stream_copied_where_the_container_takes_it(tmp_path, engine):
    src = tmp_path / "data.mp4"
    with av.open(str(src), "w") as c:
        v = c.add_stream("libx264", rate=25)
        v.width, v.height, v.pix_fmt = 64, 48, "yuv420p"
        data = c.add_data_stream("bin_data")
        for i, img in enumerate(test_images(6, 64, 48)):
            f = av.VideoFrame.from_ndarray(img, format="rgb24")
            f.pts = i
            c.mux(v.encode(f))
            p = av.Packet(b"meta" + bytes([i]) * 8)
            p.stream, p.time_base, p.pts, p.dts = data, Fraction(1, 25), i, i
            c.mux(p)
        c.mux(v.encode())
    report = transcode(src, tmp_path / "out.mp4", engine, opts())
    assert [e["type"] for e in report.copied_streams] == ["data"]
    assert stream_packets(tmp_path / "out.mp4", "data") == stream_packets(src, "data")  # payloads and timing
    report = transcode(src, tmp_path / "out.mkv", engine, opts())  # Matroska takes no such stream
    assert [e["type"] for e in report.dropped_streams] == ["data"] and "cannot hold" in report.dropped_streams[0]["reason"]
    assert any("stream 1 (data" in w and "dropped" in w for w in report.warnings)


def test_mpegts_output_copies_audio(tmp_path, engine):
    # MPEG-TS answers "unknown" to codec queries: copying must be tried rather than refused
    src = make_video(tmp_path / "in.mp4", frames=10, audio=["aac"])
    report = transcode(src, tmp_path / "out.ts", engine, opts())
    assert [e["codec"] for e in report.copied_streams] == ["aac"]
    # the same AAC frames; the TS muxer puts each in an ADTS header (7 bytes) as that format requires
    got = [p[2] for p in stream_packets(tmp_path / "out.ts", "audio")]
    assert [g[7:] for g in got] == [p[2] for p in stream_packets(src, "audio")]
    assert all(g[:2] == b"\xff\xf1" for g in got)
    assert len(decoded_frames(tmp_path / "out.ts")) == 10


@pytest.mark.parametrize("ext", ["mp4", "mkv"])
def test_colour_sar_rotation_metadata_chapters_are_carried(tmp_path, engine, ext):
    chapters = [
        {"id": 1, "start": 0, "end": 200, "time_base": Fraction(1, 1000), "metadata": {"title": "Intro"}},
        {"id": 2, "start": 200, "end": 400, "time_base": Fraction(1, 1000), "metadata": {"title": "Main"}},
    ]
    colour = {"color_range": 2, "colorspace": 1, "color_primaries": 1, "color_trc": 1}
    src = make_video(tmp_path / f"in.{ext}", frames=10, colour=colour, sar=Fraction(4, 3), rotation=90,
                     metadata={"title": "A title", "comment": "kept"}, chapters=chapters)
    dst = tmp_path / f"out.{ext}"
    report = transcode(src, dst, engine, opts())
    assert not report.dropped_streams, report.dropped_streams  # the MP4 chapter track is not a stream to drop
    with av.open(str(dst)) as c:
        v = c.streams.video[0]
        assert (v.codec_context.color_range, v.codec_context.colorspace, v.codec_context.color_primaries, v.codec_context.color_trc) == (2, 1, 1, 1)
        assert v.sample_aspect_ratio == Fraction(4, 3)
        meta = {k.lower(): v for k, v in c.metadata.items()}  # Matroska tags are upper case
        assert meta.get("title") == "A title" and meta.get("comment") == "kept"
        got = [(Fraction(ch["start"]) * ch["time_base"], Fraction(ch["end"]) * ch["time_base"], ch["metadata"].get("title")) for ch in c.chapters()]
        assert got == [(0, Fraction(1, 5), "Intro"), (Fraction(1, 5), Fraction(2, 5), "Main")]
        frame = next(c.decode(v))
        assert frame.rotation == 90
        assert frame.color_range == 2 and frame.colorspace == 1


def test_a_stream_whose_parameters_are_unknown_is_dropped_not_fatal(tmp_path, engine):
    """A truncated MPEG-TS declares its AAC stream but holds none of its packets (rate and channels unknown):
    the video is restored, the audio dropped with the reason (it used to fail the file when writing the header)."""
    full = make_video(tmp_path / "full.ts", frames=8, audio=["aac"])
    src = tmp_path / "cut.ts"
    src.write_bytes(full.read_bytes()[: 12 * 188])
    with av.open(str(src)) as c:
        assert c.streams.audio[0].codec_context.sample_rate == 0  # what the test is about
    report = transcode(src, tmp_path / "out.mkv", engine, opts())
    assert report.frames >= 1 and report.copied_streams == []
    assert [d["type"] for d in report.dropped_streams] == ["audio"] and "parameters are unknown" in report.dropped_streams[0]["reason"]
    with av.open(str(tmp_path / "out.mkv")) as c:
        assert [s.type for s in c.streams] == ["video"]


def timecode_mov(path, timecode: str = "01:00:00:00"):
    """A camera-style MOV: H.264, PCM audio and a QuickTime timecode (tmcd) track, which FFmpeg's muxer
    writes from the video stream's ``timecode`` tag."""
    with av.open(str(path), "w") as c:
        v = c.add_stream("libx264", rate=25)
        v.width, v.height, v.pix_fmt = 64, 48, "yuv420p"
        v.options = {"preset": "ultrafast"}
        v.metadata["timecode"] = timecode
        for i, img in enumerate(test_images(4, 64, 48)):
            f = av.VideoFrame.from_ndarray(img, format="rgb24")
            f.pts = i
            c.mux(v.encode(f))
        c.mux(v.encode())
    return path


@pytest.mark.parametrize("ext", [".mov", ".mp4", ".mkv"])
def test_a_timecode_track_is_kept_as_the_videos_timecode(tmp_path, engine, ext):
    """Copying a MOV's tmcd track packet for packet made the MOV/MP4 muxer fail on closing ("Invalid
    argument"); the muxer writes the track anew from the video's timecode tag (Matroska keeps the tag)."""
    src = timecode_mov(tmp_path / "cam.mov")
    with av.open(str(src)) as c:
        assert [s.type for s in c.streams] == ["video", "data"] and c.streams[1].metadata["timecode"] == "01:00:00:00"
    report = transcode(src, tmp_path / f"out{ext}", engine, opts())
    assert report.frames == 4 and not report.dropped_streams
    assert report.converted_streams == [{"index": 1, "type": "data", "codec": "tmcd", "to": "timecode tag of the video stream"}]
    with av.open(str(tmp_path / f"out{ext}")) as c:
        tags = {k.lower(): v for k, v in c.streams.video[0].metadata.items()}
        assert tags["timecode"] == "01:00:00:00"
        if ext != ".mkv":
            assert [(s.type, s.metadata.get("timecode")) for s in c.streams][1:] == [("data", "01:00:00:00")]
