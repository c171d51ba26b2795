"""Shared test settings: deterministic, small, CPU-friendly."""

import os

import pytest
import torch

os.environ.setdefault("VSJPEGFIX_CACHE", os.path.join(os.path.dirname(__file__), ".cache-unused"))
# One intra-op thread: test frames are tiny, and on a busy 2-core machine OpenMP's second thread
# mostly waits for the first (measured: 64x48 frames 10-50x slower with 2 threads under load).
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
