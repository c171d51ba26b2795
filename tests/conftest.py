"""Shared test settings: deterministic, small, CPU-friendly."""

import os
import signal
from pathlib import Path

import pytest
import torch

os.environ.setdefault("VSJPEGFIX_CACHE", os.path.join(os.path.dirname(__file__), ".cache-unused"))
# One intra-op thread: test frames are tiny, and on a busy 2-core machine OpenMP's second thread
# mostly waits for the first (measured: 64x48 frames 10-50x slower with 2 threads under load).
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    """An identity Fast ARCNN saved as a weights file (what --model takes)."""
    from media import save_identity

    return save_identity(tmp_path_factory.mktemp("weights") / "identity.safetensors")


@pytest.fixture
def cli():
    """The command line's main(), with SIGTERM's handler restored afterwards."""
    from vsjpegfix.apps import cli as cli_module

    before = signal.getsignal(signal.SIGTERM)
    yield cli_module.main
    signal.signal(signal.SIGTERM, before)


@pytest.fixture(scope="module")
def engine():
    """An engine whose model returns its input (restored frames equal the decoded ones)."""
    from media import identity_engine

    return identity_engine()


@pytest.fixture(scope="module")
def fbcnn_engine():
    """A tiny random FBCNN (quality control) on the CPU."""
    from vsjpegfix.engine import Engine
    from vsjpegfix.models import FBCNN

    torch.manual_seed(0)
    return Engine(FBCNN(nc=(8, 16, 24, 32), nb=1), device="cpu")
