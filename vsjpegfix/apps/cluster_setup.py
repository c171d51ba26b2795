"""Connecting to a Ray cluster (or starting a local one on 127.0.0.1) and the batch options its workers need.
"""

from __future__ import annotations

import argparse
import contextlib
import os
from pathlib import Path
from typing import Any

MAX_ATTEMPTS = 3  # tries of a file (or segment) whose worker dies
CPUS_PER_WORKER = 4  # without GPUs: one actor per this many CPU cores, unless told otherwise


ROOT = Path(__file__).resolve().parents[2]  # the folder holding the vsjpegfix package


WORKER_OPTIONS = (
    "model", "device", "precision", "qf", "qf_offset", "tile", "overlap", "batch_size", "luma_only",
    "codec", "crf", "preset", "pix_fmt", "matrix", "overwrite", "strength", "start", "duration", "debug",
)


def worker_options(args: argparse.Namespace) -> dict[str, Any]:
    """The plain, picklable options a worker rebuilds its engine from."""
    return {**{k: getattr(args, k, None) for k in WORKER_OPTIONS}, "quiet": True}


def add_cluster_options(p: argparse.ArgumentParser) -> None:
    """The options of ``vsjpegfix batch`` that only the Ray mode uses, beyond ``--ray``/``--ray-workers``."""
    p.add_argument("--segment-seconds", type=float, default=0.0, metavar="N",
                   help="with --ray: split each video longer than 1.5 N seconds at the input's keyframes into segments of at "
                   "least N seconds, restored by different workers and joined without re-encoding (same frames and timestamps "
                   "as restoring it whole; 0 = never split) (default: 0)")


@contextlib.contextmanager
def loopback(pythonpath: bool = False):
    """Keep Ray on 127.0.0.1: it replaces a loopback node address by the machine's outward one unless
    multi-machine "clusters" are switched off (read when the address is resolved, and by its processes)."""
    from ray._private import ray_constants

    keys = ("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "PYTHONPATH")
    saved = {k: os.environ.get(k) for k in keys}
    saved_flag = ray_constants.ENABLE_RAY_CLUSTER
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    if pythonpath:  # the workers of a cluster started here import vsjpegfix from where the driver does
        os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), saved["PYTHONPATH"]) if p)
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = saved_flag
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def is_loopback(address: str) -> bool:
    host = address.rsplit(":", 1)[0].strip("[]")
    return host in ("localhost", "::1") or host.startswith("127.")


def init_ray(address: str | None = None, *, num_cpus: int | None = None) -> bool:
    """Connect to Ray; returns True when a local cluster was started here (the caller shuts it down).

    ``address``: None or "local" starts a local cluster on 127.0.0.1; "auto" joins the running
    cluster of this machine; anything else is a cluster address. Nothing is done when Ray is
    already initialised in this process.
    """
    import ray

    if ray.is_initialized():
        return False
    if address in (None, "", "local"):
        with loopback(pythonpath=True):
            ray.init(
                address="local", num_cpus=num_cpus, include_dashboard=False, _node_ip_address="127.0.0.1",
                object_store_memory=200 * 2**20, log_to_driver=False, logging_level="ERROR",
            )
        return True
    if address == "auto":
        from ray._private.services import canonicalize_bootstrap_address

        with loopback(), contextlib.suppress(Exception):  # a cluster on 127.0.0.1 stays there
            address = canonicalize_bootstrap_address("auto") or address
    if is_loopback(address):
        with loopback():
            ray.init(address=address, _node_ip_address="127.0.0.1", log_to_driver=False, logging_level="ERROR")
    else:
        ray.init(address=address, log_to_driver=False, logging_level="ERROR")
    return False
