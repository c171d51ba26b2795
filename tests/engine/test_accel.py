"""Engine speed options: torch.compile equals eager (CPU), CUDA-only options refused on the CPU,
submit/restore_iter equal restore; graphs, pinned transfers and streams equal eager on CUDA (skipped without)."""

import copy

import numpy as np
import pytest
import torch
from skimage import data

from vsjpegfix.engine.accel import Acceleration
from vsjpegfix.engine.colour import PlaneFormat, rgb_to_planes
from vsjpegfix.engine.core import Engine
from vsjpegfix.engine.device import EngineError
from vsjpegfix.models import ARCNN, FBCNN

FMT = PlaneFormat("yuv", 8, subsampling=(1, 1), matrix="bt709")
CUDA = torch.cuda.is_available()


def _planes(n=2, h=32, w=48, y0=100):
    rgb = data.astronaut()[y0 : y0 + h, 150 : 150 + w]
    x = torch.from_numpy(rgb).permute(2, 0, 1)[None].float().div(255).expand(n, -1, -1, -1).contiguous()
    x[1:] = x[1:].flip(-1)  # frames differ
    return [p.numpy() for p in rgb_to_planes(x, FMT)]


def _fbcnn():
    torch.manual_seed(1)
    return FBCNN(nc=(8, 16, 24, 32), nb=1, residual=True).eval()


def _max_diff(a, b):
    return max(int(np.abs(p.astype(int) - q.astype(int)).max()) for p, q in zip(a, b))


def test_compiled_model_matches_eager_without_recompiling():
    torch._dynamo.reset()
    model = _fbcnn()
    eager = Engine(model, device="cpu", qf_offset=7)
    compiled = Engine(copy.deepcopy(model), device="cpu", qf_offset=7, compile_mode="default")
    assert compiled.runner.forward is not compiled.model and eager.runner.forward is eager.model
    planes = _planes()
    want, got = eager.restore(planes, FMT), compiled.restore(planes, FMT)
    assert _max_diff(want.planes, planes) > 3  # the model changes the frames
    assert _max_diff(want.planes, got.planes) <= 1  # compiled kernels round differently, within a code value
    assert np.allclose(want.predicted_qf, got.predicted_qf, atol=1e-3) and np.allclose(want.used_qf, got.used_qf, atol=1e-3)
    assert got.used_qf[0] == pytest.approx(got.predicted_qf[0] + 7, abs=1e-3)  # the offset transform ran compiled
    with torch._dynamo.config.patch(error_on_recompile=True):  # same shapes and the same transform object
        again = compiled.restore(planes, FMT)
    fixed = compiled.restore(planes, FMT, qf=40)  # an override is another graph: compiled once more
    assert _max_diff(again.planes, got.planes) == 0
    assert fixed.used_qf == pytest.approx([47.0, 47.0])


def test_compiled_colour_steps_match_eager():
    torch.manual_seed(4)
    model = ARCNN(residual=True)
    eager = Engine(model, device="cpu")
    fast = Engine(copy.deepcopy(model), device="cpu", compile_colour=True)
    planes = _planes()
    graphs = torch._dynamo.utils.counters["stats"]["unique_graphs"]
    for strength in (None, [0.5, 1.0], None, [0.5, 1.0]):  # first of each: eager (fills the tap caches), then compiled
        want, got = eager.restore(planes, FMT, strength=strength), fast.restore(planes, FMT, strength=strength)
        assert _max_diff(want.planes, got.planes) <= 1 and [p.dtype for p in got.planes] == [np.uint8] * 3
    assert fast.colour.compiled and torch._dynamo.utils.counters["stats"]["unique_graphs"] >= graphs + 3
    assert _max_diff(want.planes, planes) > 3


@pytest.mark.parametrize("option, name", [
    ({"cuda_graphs": True}, "cuda_graphs"), ({"pinned": True}, "pinned"), ({"num_streams": 2}, "num_streams > 1"),
    ({"cudnn_benchmark": True}, "cudnn_benchmark"),
])  # fmt: skip
def test_cuda_only_options_are_refused_on_the_cpu(option, name):
    with pytest.raises(EngineError, match=f"{name}.* need a CUDA device; this engine runs on cpu"):
        Engine(ARCNN(), device="cpu", **option)


def test_bad_and_clashing_options_are_refused():
    with pytest.raises(EngineError, match="unknown compile mode 'fast'"):
        Engine(ARCNN(), device="cpu", compile_mode="fast")
    with pytest.raises(EngineError, match="num_streams must be >= 1"):
        Engine(ARCNN(), device="cpu", num_streams=0)
    cuda = torch.device("cuda")  # check() reads only the device type: no GPU needed
    for clash in (Acceleration("reduce-overhead", cuda_graphs=True), Acceleration("max-autotune", num_streams=2)):
        with pytest.raises(EngineError, match="captures CUDA graphs itself"):
            clash.check(cuda)
    Acceleration("default", cuda_graphs=True, pinned=True, num_streams=2, cudnn_benchmark=True).check(cuda)
    assert Acceleration().describe() == "eager"
    assert Acceleration("default", True, True, 2, True, True).describe() == "compile=default+graphs+pinned+streams2+cudnn+colour"


def test_submit_and_restore_iter_give_what_restore_gives():
    torch.manual_seed(2)
    engine = Engine(ARCNN(residual=True), device="cpu")
    calls = [_planes(y0=100 + 16 * k) for k in range(3)]
    want = [engine.restore(c, FMT) for c in calls]
    pending = [engine.submit(c, FMT) for c in calls]
    got = [p.result() for p in pending]
    assert pending[0].result() is got[0]  # waits once
    streamed = list(engine.restore_iter(iter(calls), FMT))
    for w, g, s in zip(want, got, streamed):
        assert _max_diff(w.planes, g.planes) == 0 and _max_diff(w.planes, s.planes) == 0
        assert [p.dtype for p in g.planes] == [np.uint8] * 3
    assert _max_diff(want[0].planes, want[1].planes) > 0


@pytest.mark.skipif(not CUDA, reason="needs CUDA")
@pytest.mark.parametrize("options", [
    {"cuda_graphs": True}, {"pinned": True, "num_streams": 2},
    {"compile_mode": "default", "cuda_graphs": True, "pinned": True, "num_streams": 3, "cudnn_benchmark": True,
     "compile_colour": True},
])  # fmt: skip
def test_cuda_options_match_eager(options):
    model = _fbcnn()
    eager = Engine(model, device="cuda", precision="fp16")
    fast = Engine(copy.deepcopy(model), device="cuda", precision="fp16", **options)
    calls = [_planes(y0=100 + 16 * k) for k in range(5)]
    want = [eager.restore(c, FMT) for c in calls]
    for w, g in zip(want, fast.restore_iter(calls, FMT)):
        assert _max_diff(w.planes, g.planes) <= 1
        assert np.allclose(w.predicted_qf, g.predicted_qf, atol=0.1)
