"""A JPEG's own quality factor (IJG tables, custom tables) and traces of an earlier, shifted compression.

Real photographs from scikit-image; everything in memory, a few seconds in all.
"""

import io

import numpy as np
import pytest
from PIL import Image
from skimage import data

from vsjpegfix.quantisers.jpeg import (
    STD_CHROMA,
    STD_LUMA,
    DoubleJpegEstimate,
    detect_double_jpeg,
    dominant_qf,
    estimate_qf,
    ijg_table,
    read_jpeg_quality,
)
from vsjpegfix.training.degrade import double_jpeg, jpeg


def _tables(img: np.ndarray, **save) -> dict:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", **save)
    with Image.open(io.BytesIO(buf.getvalue())) as im:
        return im.quantization


@pytest.fixture(scope="module")
def small():
    return data.astronaut()[100:132, 180:228]  # 32x48: tables do not depend on the content


# ---------------------------------------------------------------- file QF: IJG tables


def test_every_ijg_quality_reads_back_exactly(small):
    wrong = []
    for q in range(1, 101):
        for img, save in ((small, {"subsampling": 2}), (small, {"subsampling": 0}), (small[..., 1], {})):
            est = estimate_qf(_tables(img, quality=q, **save))
            if est.qf != q or not est.exact or est.mismatch != 0:
                wrong.append((q, img.ndim, save, est))
    assert not wrong


def test_which_ijg_qualities_share_tables():
    """No two QFs 1..100 share a luminance table (8-bit or 16-bit), so no file is ambiguous; the
    chrominance tables coincide only for QF 1..3 (all entries clamped to 255)."""
    luma = [tuple(ijg_table(STD_LUMA, q)) for q in range(1, 101)]
    luma16 = [tuple(ijg_table(STD_LUMA, q, baseline=False)) for q in range(1, 101)]
    assert len(set(luma)) == 100 and len(set(luma16)) == 100
    chroma = [tuple(ijg_table(STD_CHROMA, q)) for q in range(1, 101)]
    shared = sorted(q for q in range(1, 101) if chroma.count(chroma[q - 1]) > 1)
    assert shared == [1, 2, 3]
    assert set(chroma[0]) == {255}
    for q in (1, 2, 3):  # the luminance table tells them apart
        est = estimate_qf({0: ijg_table(STD_LUMA, q).tolist(), 1: ijg_table(STD_CHROMA, q).tolist()})
        assert est.qf == q and est.exact


def test_sixteen_bit_ijg_tables_are_exact_too():
    """libjpeg without force_baseline (cjpeg's default) writes entries above 255 at low QFs."""
    for q in range(1, 101):
        tables = {0: ijg_table(STD_LUMA, q, baseline=False).tolist(), 1: ijg_table(STD_CHROMA, q, baseline=False).tolist()}
        est = estimate_qf(tables)
        assert (est.qf, est.exact) == (q, True), (q, est)
    assert max(ijg_table(STD_LUMA, 10, baseline=False)) > 255


def test_quality_zero_is_libjpeg_quality_one(small):
    assert estimate_qf(_tables(small, quality=0)).qf == 1


def test_table_ids_not_file_order():
    luma, chroma = ijg_table(STD_LUMA, 42).tolist(), ijg_table(STD_CHROMA, 42).tolist()
    assert estimate_qf({1: chroma, 0: luma}).qf == 42


def test_read_jpeg_quality_from_files(tmp_path, small):
    Image.fromarray(small).save(tmp_path / "a.jpg", quality=37)
    Image.fromarray(small).save(tmp_path / "a.png")
    assert read_jpeg_quality(tmp_path / "a.jpg").qf == 37
    assert read_jpeg_quality(tmp_path / "a.png") is None


def test_bad_tables_are_refused():
    with pytest.raises(ValueError):
        estimate_qf({0: [1] * 63})
    with pytest.raises(ValueError):
        estimate_qf({})


# ---------------------------------------------------------------- file QF: other tables


def test_scaled_tables_give_the_nearest_equivalent(small):
    # IJG's QF 50 tables are the standard ones (scale 100%); 137% of them matches QF 5000/137 = 36.5
    tables = [np.round(STD_LUMA * 1.37).astype(int).tolist(), np.round(STD_CHROMA * 1.37).astype(int).tolist()]
    est = estimate_qf(_tables(small, qtables=tables))
    assert not est.exact and est.mismatch > 0
    assert abs(est.qf - 36.5) <= 2


def test_mixed_tables_fall_between(small):
    tables = [ijg_table(STD_LUMA, 60).tolist(), ijg_table(STD_CHROMA, 40).tolist()]
    est = estimate_qf(_tables(small, qtables=tables))
    assert not est.exact and est.mismatch > 0
    assert 50 <= est.qf <= 60  # luminance weighs twice: the estimate leans to its QF


def test_pillow_preset_tables(small):
    est = estimate_qf(_tables(small, quality="web_high"))
    assert not est.exact and 75 <= est.qf <= 92
    low = estimate_qf(_tables(small, quality="web_low"))
    assert not low.exact and low.qf < est.qf


def test_subsampling_does_not_change_the_tables(small):
    for sub in (0, 1, 2):
        est = estimate_qf(_tables(small, quality=63, subsampling=sub))
        assert (est.qf, est.exact) == (63, True)


# ---------------------------------------------------------------- double JPEG


def _earlier_grid(shift):
    """degrade.double_jpeg crops ``shift`` pixels, so the earlier grid starts at (8 - s) % 8."""
    return ((8 - shift[0]) % 8, (8 - shift[1]) % 8)


@pytest.mark.parametrize(
    "name,qf1,qf2,shift",
    [
        ("astronaut", 10, 75, (4, 4)),
        ("coffee", 30, 90, (0, 4)),
        ("chelsea", 10, 90, (0, 4)),
        ("camera", 30, 75, (4, 4)),  # gray
        ("astronaut", 30, 75, (2, 3)),  # an asymmetric shift pins down the direction
    ],
)
def test_double_jpeg_finds_the_shift_and_the_earlier_qf(name, qf1, qf2, shift):
    img = double_jpeg(getattr(data, name)(), qf1, qf2, shift)
    for qf2_known in (qf2, None):  # the file's QF, or read from the image's own grid
        est = detect_double_jpeg(img, qf2=qf2_known)
        assert est.detected, est
        assert est.shift == _earlier_grid(shift)
        assert abs(est.qf1 - qf1) <= 2, est  # documented tolerance: neighbouring IJG tables differ little
        assert est.strength > 1.35 and est.sharpness < 0.975
        assert dominant_qf(qf2, est) == est.qf1


@pytest.mark.parametrize("name,qualities", [("astronaut", (10, 30, 50, 75, 95)), ("coffee", (15, 40, 65, 90)), ("camera", (20, 55, 85))])
def test_no_double_jpeg_on_single_jpegs(name, qualities):
    for q in qualities:
        est = detect_double_jpeg(jpeg(getattr(data, name)(), q))
        assert not est.detected, (q, est)
        assert est.qf1 is None and dominant_qf(q, est) == q


@pytest.mark.parametrize("name", ["astronaut", "coffee", "camera"])
def test_no_double_jpeg_on_clean_images(name):
    est = detect_double_jpeg(getattr(data, name)())
    assert not est.detected and est.strength < 1.35


def test_an_earlier_weaker_compression_does_not_change_the_dominant_qf():
    est = detect_double_jpeg(double_jpeg(data.astronaut(), 50, 30, (4, 4)), qf2=30)
    assert dominant_qf(30, est) == 30


def test_tiny_images_are_not_analysed():
    est = detect_double_jpeg(np.zeros((16, 300), np.uint8))
    assert not est.detected and est.qf1 is None


def test_dominant_qf():
    assert dominant_qf(75, None) == 75
    assert dominant_qf(75, DoubleJpegEstimate(False, (0, 0), None, 1.0)) == 75
    assert dominant_qf(75, DoubleJpegEstimate(True, (4, 4), 12.0, 5.0)) == 12
    assert dominant_qf(75, DoubleJpegEstimate(True, (4, 4), None, 5.0)) == 75
