"""Restoration engine: formats, tiling, batching, quality control, temporal stacks, errors."""

import numpy as np
import pytest
import torch
from skimage import data

from vsjpegfix.engine.colour import PlaneFormat, rgb_to_planes
from vsjpegfix.engine.core import Engine
from vsjpegfix.engine.device import EngineError
from vsjpegfix.engine.tiling import spans
from vsjpegfix.models import ARCNN, FBCNN, FastARCNN, make_temporal


def _random(model, scale=1.0, seed=3):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * scale / max(1, p[0].numel()) ** 0.5)
    return model.eval()


def _identity(model):
    """A residual ARCNN-family model whose correction is zero: output == input."""
    with torch.no_grad():
        model.reconstruct.weight.zero_()
        model.reconstruct.bias.zero_()
    return model.eval()


def _photo(h=96, w=128):
    return data.astronaut()[100 : 100 + h, 150 : 150 + w]


def _yuv_planes(rgb, fmt):
    x = torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255
    return [p.numpy() for p in rgb_to_planes(x, fmt)]


FORMATS = [
    PlaneFormat("yuv", 8, subsampling=(1, 1), matrix="bt709"),
    PlaneFormat("yuv", 8, subsampling=(1, 0), matrix="bt601", full_range=True),
    PlaneFormat("yuv", 10, subsampling=(1, 1), matrix="bt2020"),
    PlaneFormat("yuv", 8, subsampling=(0, 0), matrix="bt709"),
    PlaneFormat("rgb", 8),
    PlaneFormat("rgb", 16),
    PlaneFormat("rgb", 32, is_float=True),
    PlaneFormat("gray", 8),
    PlaneFormat("gray", 16, full_range=True),
    PlaneFormat("yuv", 16, is_float=True, matrix="bt709"),
]


def _planes_for(fmt, n=2):
    rgb = _photo()
    x = torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255
    if fmt.family == "gray":
        x = x.mean(dim=1, keepdim=True)
    planes = rgb_to_planes(x.expand(n, -1, -1, -1), fmt)
    out = []
    for p in planes:
        a = p.numpy()
        if not fmt.is_float and fmt.bits > 8:
            a = a.astype(np.uint16)
        out.append(a)
    return out


@pytest.mark.parametrize("fmt", FORMATS, ids=lambda f: f"{f.family}{f.bits}{'f' if f.is_float else ''}-{f.subsampling}")
def test_identity_model_returns_every_format_exactly(fmt):
    planes = _planes_for(fmt)
    engine = Engine(_identity(FastARCNN(channels=3)), device="cpu")
    result = engine.restore(planes, fmt)
    assert [p.shape for p in result.planes] == [p.shape for p in planes]
    assert [p.dtype for p in result.planes] == [p.dtype for p in planes]
    for before, after in zip(planes, result.planes):
        # the model's correction is zero, so every sample comes back exactly (no resampling loss)
        assert np.array_equal(before, after), (fmt, np.abs(before.astype(float) - after.astype(float)).max())
    assert result.predicted_qf is None and result.used_qf is None


def test_restoration_really_changes_frames_and_is_deterministic():
    fmt = FORMATS[0]
    planes = _planes_for(fmt)
    engine = Engine(_random(FastARCNN(channels=3), scale=0.5), device="cpu")
    a = engine.restore(planes, fmt).planes
    b = engine.restore(planes, fmt).planes
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not np.array_equal(a[0], planes[0])


@pytest.mark.parametrize("channels", [3, 1])
def test_strength_scales_the_correction_per_frame(channels):
    fmt = FORMATS[0]
    planes = _planes_for(fmt)  # two identical frames
    engine = Engine(_random(FastARCNN(channels=channels), scale=0.5), device="cpu")
    full = engine.restore(planes, fmt).planes
    assert engine.restore(planes, fmt, strength=1.0).planes[0].tolist() == full[0].tolist()
    out = engine.restore(planes, fmt, strength=[0.0, 0.5]).planes
    for p, (o, f, x) in enumerate(zip(out, full, planes)):
        assert np.array_equal(o[0], x[0]), p  # strength 0: the input samples, exactly
        half = x[1].astype(float) + (f[1].astype(float) - x[1]) / 2
        assert np.abs(o[1] - half).max() <= 1.0, p  # half the correction (rounding apart)
    assert not np.array_equal(out[0][1], planes[0][1]) and not np.array_equal(out[0][1], full[0][1])
    with pytest.raises(EngineError, match="strength must be in 0..1"):
        engine.restore(planes, fmt, strength=1.5)
    with pytest.raises(EngineError, match="3 strength values for 2 frames"):
        engine.restore(planes, fmt, strength=[1, 1, 1])


def test_luma_only_passes_chroma_untouched():
    fmt = FORMATS[0]
    planes = _planes_for(fmt)
    out = Engine(_random(FastARCNN(channels=3), 0.5), device="cpu", luma_only=True).restore(planes, fmt).planes
    assert np.array_equal(out[1], planes[1]) and np.array_equal(out[2], planes[2])
    assert not np.array_equal(out[0], planes[0])
    gray_engine = Engine(_random(FastARCNN(channels=1), 0.5), device="cpu", luma_only=True)
    out = gray_engine.restore(planes, fmt).planes
    assert np.array_equal(out[1], planes[1]) and not np.array_equal(out[0], planes[0])
    # without luma_only a gray model restores every plane on its own
    out = Engine(gray_engine.model, device="cpu").restore(planes, fmt).planes
    assert not np.array_equal(out[1], planes[1])


def test_out_of_range_samples_survive_where_the_model_changes_nothing():
    fmt = FORMATS[0]
    planes = [p.copy() for p in _planes_for(fmt, n=1)]
    planes[0][0, :4, :4] = 2  # superblack, below limited-range 16
    planes[0][0, -4:, -4:] = 254  # superwhite
    out = Engine(_identity(FastARCNN(channels=3)), device="cpu").restore(planes, fmt).planes
    assert out[0][0, 0, 0] == 2 and out[0][0, -1, -1] == 254


def test_gray_model_on_gray_matches_direct_model_call():
    model = _random(FastARCNN(channels=1), 0.5)
    fmt = PlaneFormat("gray", 8, full_range=True)
    img = data.camera()[:64, :80]
    out = Engine(model, device="cpu").restore([img[None]], fmt).planes[0][0]
    with torch.no_grad():
        ref = model(torch.from_numpy(img)[None, None].float() / 255).clamp(0, 1)
    ref = (ref[0, 0] * 255).round().byte().numpy()
    assert np.abs(out.astype(int) - ref.astype(int)).max() <= 1


def test_batching_gives_the_same_frames():
    fmt = FORMATS[0]
    planes = _planes_for(fmt, n=3)
    planes = [p.copy() for p in planes]
    planes[0][1] = 255 - planes[0][1]  # frames differ
    model = _random(FBCNN(nc=(8, 16, 24, 32), nb=1))
    one = Engine(model, device="cpu", batch_size=1).restore(planes, fmt)
    three = Engine(model, device="cpu", batch_size=3).restore(planes, fmt)
    for a, b in zip(one.planes, three.planes):
        assert np.abs(a.astype(int) - b.astype(int)).max() <= 1
    assert np.allclose(one.predicted_qf, three.predicted_qf, atol=1e-3)


def test_tiled_equals_untiled_for_fast_arcnn():
    x = torch.from_numpy(_photo(150, 200)).permute(2, 0, 1)[None].float() / 255
    model = _random(FastARCNN(channels=3), 0.7)
    whole, _, _ = Engine(model, device="cpu").restore_tensor(x)
    tiled, _, _ = Engine(model, device="cpu", tile=64, overlap=24).restore_tensor(x)
    assert len(spans(200, 64, 24, 16)) > 2
    assert not torch.equal(whole, x)
    assert (whole * 255 - tiled * 255).abs().max() <= 1.0


def _seam_strength(img, positions, axis):
    """Mean absolute step across the given column (axis=-1) or row (axis=-2) boundaries."""
    steps = img.diff(dim=axis).abs()
    return torch.stack([steps.select(axis, p - 1).mean() for p in positions]).mean()


def test_fbcnn_tiles_share_one_quality_and_show_no_seam():
    x = torch.from_numpy(_photo(128, 192)).permute(2, 0, 1)[None].float() / 255
    model = _random(FBCNN(nc=(8, 16, 24, 32), nb=1))
    whole_engine = Engine(model, device="cpu")
    tiled_engine = Engine(model, device="cpu", tile=96, overlap=24)
    whole, pred_whole, _ = whole_engine.restore_tensor(x)
    tiled, pred_tiled, used_tiled = tiled_engine.restore_tensor(x)
    assert pred_tiled.shape == (1,) and torch.equal(pred_tiled, used_tiled)
    # every tile used the one frame-level value: identical to a tiled run fixed at that QF
    fixed, _, _ = Engine(model, device="cpu", tile=96, overlap=24, qf=float(pred_tiled)).restore_tensor(x)
    assert (fixed - tiled).abs().max() < 1e-4
    cols = sorted({cb for _, _, _, cb in spans(192, 96, 24, 16)} - {192})
    assert cols, "the frame must actually be tiled"
    seam_tiled = _seam_strength(tiled, cols, -1)
    seam_whole = _seam_strength(whole, cols, -1)
    assert seam_tiled <= seam_whole * 1.25 + 1e-3, (seam_tiled, seam_whole)
    assert (tiled - whole).abs().mean() < 0.02


def test_quality_control_modes():
    fmt = FORMATS[0]
    planes = _planes_for(fmt, n=2)
    model = _random(FBCNN(nc=(8, 16, 24, 32), nb=1))
    blind = Engine(model, device="cpu").restore(planes, fmt)
    assert len(blind.predicted_qf) == 2 and blind.used_qf == blind.predicted_qf
    assert all(0 <= v <= 100 for v in blind.predicted_qf)
    fixed = Engine(model, device="cpu", qf=30).restore(planes, fmt)
    assert fixed.predicted_qf is None and fixed.used_qf == pytest.approx([30, 30])
    assert not np.array_equal(fixed.planes[0], blind.planes[0])
    offset = Engine(model, device="cpu", qf_offset=-20).restore(planes, fmt)
    assert offset.used_qf == pytest.approx([max(0, v - 20) for v in offset.predicted_qf], abs=1e-3)
    per_frame = Engine(model, device="cpu").restore(planes, fmt, qf=[10, 90])
    assert per_frame.used_qf == pytest.approx([10, 90])
    # the control matters: frame 0 restored at QF 10 equals a fixed-QF-10 run
    at10 = Engine(model, device="cpu", qf=10).restore([p[:1] for p in planes], fmt)
    assert np.array_equal(at10.planes[0][0], per_frame.planes[0][0])
    with pytest.raises(EngineError, match="2 frames"):
        Engine(model, device="cpu").restore(planes, fmt, qf=[10, 20, 30])


def test_temporal_model_uses_the_stack_and_restores_the_centre():
    fmt = PlaneFormat("yuv", 8, subsampling=(1, 1), matrix="bt709")
    single = _random(FastARCNN(channels=3), 0.5)
    temporal = make_temporal(single, 3)
    frames = _planes_for(fmt, n=3)
    frames = [p.copy() for p in frames]
    frames[0][0] = frames[0][0] // 2  # neighbours differ from the centre
    stacked = [p[None] for p in frames]  # (N=1, T=3, h, w)
    engine = Engine(temporal, device="cpu")
    out = engine.restore(stacked, fmt).planes
    ref = Engine(single, device="cpu").restore([p[1:2] for p in frames], fmt).planes
    assert out[0].shape == ref[0].shape == frames[0][1:2].shape
    assert all(np.abs(a.astype(int) - b.astype(int)).max() <= 1 for a, b in zip(out, ref))
    with pytest.raises(EngineError, match="3-frame model"):
        engine.restore([p[:1] for p in frames], fmt)


class _MemoryLimited(torch.nn.Module):
    """Stands in for a device with little memory: refuses inputs above a pixel budget."""

    def __init__(self, inner, max_pixels):
        super().__init__()
        self.inner, self.max_pixels = inner, max_pixels
        self.channels, self.frames, self.has_quality = inner.channels, inner.frames, False

    def forward(self, x):
        if x.shape[-1] * x.shape[-2] > self.max_pixels:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return self.inner(x)


def test_out_of_memory_retries_with_tiles(capsys):
    inner = _random(FastARCNN(channels=3), 0.7)
    x = torch.from_numpy(_photo(128, 256)).permute(2, 0, 1)[None].float() / 255
    expected, _, _ = Engine(inner, device="cpu").restore_tensor(x)
    engine = Engine(_MemoryLimited(inner, 128 * 128), device="cpu")
    got, _, _ = engine.restore_tensor(x)
    assert engine.tile is not None and engine.tile[0] * engine.tile[1] <= 128 * 128
    assert (got * 255 - expected * 255).abs().max() <= 1.0
    assert "retrying with" in capsys.readouterr().err


def test_configuration_errors():
    m = FastARCNN()
    with pytest.raises(EngineError, match="CUDA is not available"):
        if torch.cuda.is_available():
            pytest.skip("machine has CUDA")
        Engine(m, device="cuda")
    with pytest.raises(EngineError, match="needs a CUDA device"):
        Engine(m, device="cpu", precision="fp16")
    with pytest.raises(EngineError, match="unknown precision"):
        Engine(m, device="cpu", precision="fp8")
    with pytest.raises(EngineError, match="no quality control"):
        Engine(ARCNN(), device="cpu", qf=50)
    with pytest.raises(EngineError, match="qf must be in 0..100"):
        Engine(FBCNN(nc=(8, 16, 24, 32), nb=1), device="cpu", qf=150)
    with pytest.raises(EngineError, match="tile size"):
        Engine(m, device="cpu", tile=8)
    with pytest.raises(EngineError, match="batch_size"):
        Engine(m, device="cpu", batch_size=0)
    with pytest.raises(EngineError, match="unknown device"):
        Engine(m, device="tpu")
    engine = Engine(m, device="cpu")
    fmt = PlaneFormat("yuv", 8, subsampling=(1, 1), matrix="bt709")
    with pytest.raises(EngineError, match="needs 3 planes"):
        engine.restore([np.zeros((1, 8, 8), np.uint8)], fmt)
    with pytest.raises(EngineError, match="unsupported plane dtype"):
        engine.restore([np.zeros((1, 8, 8), np.int64)], PlaneFormat("gray", 8))
    with pytest.raises(EngineError, match="matrix"):
        engine.restore([np.zeros((1, 8, 8), np.uint8)] * 3, PlaneFormat("yuv", 8))
    with pytest.raises(EngineError, match="expected input"):
        engine.restore_tensor(torch.zeros(1, 1, 8, 8))


def test_the_engine_names_its_model():
    assert Engine(FastARCNN(channels=1), device="cpu").model_name == "FastARCNN"
    assert Engine("fastarcnn", device="cpu").model_name == "fastarcnn"  # a shipped model, by name
