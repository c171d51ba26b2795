"""Model architectures: official FBCNN compatibility, parameter counts, shapes, temporal init."""

import pytest
import torch

from vsjpegfix.models import (
    ARCNN,
    FBCNN,
    FastARCNN,
    build_model,
    count_parameters,
    detect_architecture,
    make_temporal,
)

spandrel_fbcnn = pytest.importorskip("spandrel.architectures.FBCNN.__arch.FBCNN")


def _randomise(model: torch.nn.Module) -> torch.nn.Module:
    """Random weights with a spread that keeps activations (and sigmoids) informative."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * (1.0 / max(1, p[0].numel()) ** 0.5))
    return model.eval()


@pytest.mark.parametrize("channels", [3, 1])
def test_fbcnn_matches_reference_implementation(channels):
    ref = _randomise(spandrel_fbcnn.FBCNN(in_nc=channels, out_nc=channels))
    ours = FBCNN(in_nc=channels, out_nc=channels)
    state = ref.state_dict()
    assert len(state) == 184
    ours.load_state_dict(state, strict=True)
    ours.eval()
    x = torch.rand(2, channels, 37, 53)
    with torch.no_grad():
        ref_img, ref_q = ref(x)
        img, q = ours(x)
        assert img.shape == x.shape
        assert torch.allclose(img, ref_img, atol=1e-5), (img - ref_img).abs().max()
        assert torch.allclose(q, ref_q, atol=1e-5)
        # a quality override replaces the prediction, as in the official qf_input
        override = torch.tensor([[0.9], [0.2]])
        ref_img2, _ = ref(x, override)
        img2, q2 = ours(x, override)
        assert torch.allclose(img2, ref_img2, atol=1e-5)
        assert torch.equal(q2, override)
        assert not torch.allclose(img2, img, atol=1e-4)  # the control has an effect
        assert torch.allclose(ours.predict_quality(x), ref_q, atol=1e-5)


def test_fbcnn_official_size_and_count():
    model = FBCNN()
    assert count_parameters(model) == 71_921_796
    assert len(model.state_dict()) == 184
    assert detect_architecture(model.state_dict()) == (
        "fbcnn",
        {"in_nc": 3, "out_nc": 3, "nc": [64, 128, 256, 512], "nb": 4, "frames": 1},
    )


def test_fbcnn_override_skips_predictor():
    model = FBCNN(nc=(8, 16, 24, 32), nb=1).eval()
    calls = []
    model.qf_pred.register_forward_hook(lambda *a: calls.append(1))
    with torch.no_grad():
        model(torch.rand(1, 3, 16, 16), torch.tensor([[0.5]]))
        assert calls == []
        model(torch.rand(1, 3, 16, 16))
        assert calls == [1]


def test_compact_fbcnn_follows_configured_widths():
    model = FBCNN(in_nc=1, out_nc=1, nc=(16, 32, 48, 96), nb=2)
    assert model.qf_pred[-2].in_features == 96  # not a hard-coded 512
    assert model.qf_embed[0].out_features == 96
    assert model.to_gamma_1[0].out_features == 16
    assert detect_architecture(model.state_dict())[1] == {"in_nc": 1, "out_nc": 1, "nc": [16, 32, 48, 96], "nb": 2, "frames": 1}
    with torch.no_grad():
        y, q = model(torch.rand(1, 1, 19, 30))
    assert y.shape == (1, 1, 19, 30) and q.shape == (1, 1) and 0 <= float(q) <= 1


def test_fbcnn_pads_by_replication_like_original():
    model = _randomise(FBCNN(nc=(8, 16, 24, 32), nb=1))
    x = torch.rand(1, 3, 13, 21)
    padded = torch.nn.functional.pad(x, (0, 3, 0, 3), mode="replicate")
    with torch.no_grad():
        y, _ = model(x)
        yp, _ = model(padded)
    assert torch.allclose(y, yp[..., :13, :21], atol=1e-6)


@pytest.mark.parametrize(
    "cls,channels,params", [(ARCNN, 3, 117_734), (FastARCNN, 3, 85_575), (ARCNN, 1, None), (FastARCNN, 1, None)]
)
def test_arcnn_family_counts_and_odd_sizes(cls, channels, params):
    model = _randomise(cls(channels=channels))
    if params is not None:
        assert count_parameters(model) == params
    for h, w in [(37, 53), (1, 1), (2, 9)]:
        x = torch.rand(1, channels, h, w)
        with torch.no_grad():
            assert model(x).shape == x.shape
    with pytest.raises(ValueError, match="expected 3 input channels"):
        cls(channels=3)(torch.rand(1, 1, 8, 8))


@pytest.mark.parametrize("cls", [ARCNN, FastARCNN])
def test_arcnn_detection_roundtrip(cls):
    model = cls(channels=1, frames=3)
    arch, config = detect_architecture(model.state_dict())
    assert arch == cls.__name__.lower()
    rebuilt = build_model(arch, config)
    rebuilt.load_state_dict(model.state_dict(), strict=True)


@pytest.mark.parametrize(
    "model",
    [ARCNN(channels=3), FastARCNN(channels=1), FBCNN(nc=(8, 16, 24, 32), nb=1)],
    ids=["arcnn", "fastarcnn", "fbcnn"],
)
@pytest.mark.parametrize("frames", [3, 5])
def test_temporal_starts_equal_to_single_frame(model, frames):
    model = _randomise(model)
    temporal = make_temporal(model, frames).eval()
    c = model.channels
    assert temporal.frames == frames
    stack = torch.rand(2, c * frames, 20, 28)
    centre = stack[:, c * (frames // 2) : c * (frames // 2 + 1)]
    with torch.no_grad():
        single = model(centre)
        multi = temporal(stack)
    if isinstance(single, tuple):
        single, multi = single[0], multi[0]
    assert multi.shape == centre.shape
    assert torch.allclose(multi, single, atol=1e-5)
    # neighbours are real inputs: changing the weights for them changes the output
    with torch.no_grad():
        getattr(temporal, temporal.input_layer).weight[:, :c] += 0.5
        changed = temporal(stack)
    changed = changed[0] if isinstance(changed, tuple) else changed
    assert not torch.allclose(changed, multi, atol=1e-4)


def test_bad_configs_are_rejected():
    with pytest.raises(ValueError, match="unknown architecture"):
        build_model("nope")
    with pytest.raises(ValueError, match="frames"):
        ARCNN(frames=2)
    with pytest.raises(ValueError, match="in_nc"):
        FBCNN(in_nc=4, out_nc=3)
    with pytest.raises(ValueError, match="single-frame"):
        make_temporal(ARCNN(frames=3), 5)


def test_residual_fbcnn_learns_only_the_correction():
    model = FBCNN(nc=(8, 8, 8, 8), nb=1, residual=True).eval()
    assert model.config["residual"] is True
    assert "residual" not in FBCNN(nc=(8, 8, 8, 8), nb=1).config  # official layout: no key, no skip
    x = torch.rand(2, 3, 21, 30)
    with torch.no_grad():
        model.m_tail.weight.zero_()
        model.m_tail.bias.zero_()
        y, q = model(x)
    torch.testing.assert_close(y, x)  # zero correction: exactly the input, whatever the padding
    assert q.shape == (2, 1)
    # a temporal residual FBCNN adds the centre frame, and starts equal to the single-frame model
    with torch.no_grad():
        model.m_tail.weight.normal_(0, 0.01)
        clip = torch.rand(1, 9, 16, 24)
        t3 = make_temporal(model, 3).eval()
        assert t3.config["residual"] is True and t3.config["in_nc"] == 9
        torch.testing.assert_close(t3(clip)[0], model(clip[:, 3:6])[0], rtol=0, atol=1e-6)
