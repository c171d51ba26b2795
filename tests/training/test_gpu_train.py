"""The GPU run's training stage pieces on the CPU: batches drawn on the device, schedule, validation, utilisation."""

import numpy as np
import pytest
import torch

from vsjpegfix.models import ARCNN
from vsjpegfix.training.gpu_train import (
    DeviceSet,
    UtilisationSampler,
    dihedral_batch,
    draw,
    evaluate,
    learning_rate,
)


def _set(n=5, size=48):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(n, 3, size, size, generator=g)
    y = (torch.rand(n, 3, size, size, generator=g) * 255).to(torch.uint8)
    info = [{"codec": "h264", "qp": 22 + i % 2} for i in range(n)]
    return DeviceSet(x, y, torch.arange(n, dtype=torch.float32)[:, None], info)


def test_draw_gives_flipped_grid_crops_of_the_samples():
    ds = _set()
    x, y, label = draw(ds, torch.Generator().manual_seed(3), 24, 32)
    assert x.shape == (24, 3, 32, 32) and y.shape == x.shape and y.dtype == torch.float32 and y.max() <= 1
    assert x.is_contiguous(memory_format=torch.channels_last)
    seen_modes, seen_offsets = set(), set()
    for b in range(24):
        i = int(label[b])  # labels are the sample indices here
        found = [(oy, ox, m) for oy in (0, 16) for ox in (0, 16) for m in range(8)
                 if torch.equal(dihedral_batch(ds.x[i : i + 1, :, oy : oy + 32, ox : ox + 32], torch.tensor([m]))[0], x[b])]
        assert found, b
        oy, ox, m = found[0]
        crop = dihedral_batch(ds.y[i : i + 1, :, oy : oy + 32, ox : ox + 32], torch.tensor([m]))[0]
        assert torch.equal(crop.float() / 255, y[b])  # the clean crop is cut and turned the same way
        seen_modes.add(m), seen_offsets.add((oy, ox))
    assert len(seen_modes) > 3 and len(seen_offsets) > 2


def test_dihedral_batch_makes_eight_different_views():
    t = torch.arange(16.0).reshape(1, 1, 4, 4).expand(8, 1, 4, 4)
    views = dihedral_batch(t, torch.arange(8))
    assert len({tuple(v.flatten().tolist()) for v in views}) == 8
    assert torch.equal(views[0], t[0]) and torch.equal(views[4], t[0].transpose(-1, -2))


def test_learning_rate_warms_up_then_anneals_to_the_floor():
    lrs = [learning_rate(1e-3, p / 100) for p in range(101)]
    assert lrs[0] < lrs[1] < lrs[3] == pytest.approx(1e-3)
    assert all(a >= b for a, b in zip(lrs[3:], lrs[4:]))
    assert lrs[-1] == pytest.approx(2e-5) and learning_rate(1e-3, 1.5) == pytest.approx(2e-5)


def test_evaluate_scores_the_decoded_frames_and_the_model():
    ds = _set()
    identity = ARCNN(residual=True)
    with torch.no_grad():
        identity.reconstruct.weight.zero_()
        identity.reconstruct.bias.zero_()
    res = evaluate(identity, ds, chunk=2)
    assert res["gain_db"] == 0 and res["psnr_model"] == res["psnr_degraded"] and res["samples"] == 5
    clean = ds.y.float() / 255
    want = np.mean([10 * np.log10(1 / float(((ds.x[i] - clean[i]) ** 2).mean())) for i in range(5)])
    assert res["psnr_degraded"] == pytest.approx(want, abs=1e-4)
    perfect = DeviceSet(clean.clone(), ds.y, ds.label, ds.info)
    assert sorted(evaluate(identity, perfect)["gain_db_by_codec_qp"]) == ["h264_qp22", "h264_qp23"]


def test_utilisation_is_not_sampled_off_cuda():
    with UtilisationSampler(torch.device("cpu"), interval=0.01) as util:
        util.phase = "train"
    summary = util.summary("train")
    assert summary["samples"] == 0 and summary["source"] is None and "no CUDA device" in summary["note"]
