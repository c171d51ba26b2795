"""What users and scripts rely on stays put however the package is arranged inside.

The VapourSynth functions on ``vsjpegfix`` itself, the ``vsjpegfix`` command (its entry point and
sub-commands), and the shipped manifest's format.
"""

from __future__ import annotations

import inspect
import json
import sys
import tomllib
from pathlib import Path

import pytest

import vsjpegfix

ROOT = Path(__file__).resolve().parents[1]


def test_vapoursynth_functions_are_on_the_package():
    pytest.importorskip("vapoursynth")
    for name in ("fbcnn", "arcnn", "fastarcnn", "deblock", "attach_quantisers"):
        fn = getattr(vsjpegfix, name)
        assert callable(fn) and fn.__doc__, name
        params = inspect.signature(fn).parameters
        assert next(iter(params)) == "clip", name
    assert {"model", "qf", "strength", "device", "tile_size", "overlap", "batch_size", "num_streams"} <= set(inspect.signature(vsjpegfix.deblock).parameters)
    assert vsjpegfix.__all__ == ["fbcnn", "fastarcnn", "arcnn", "deblock", "attach_quantisers", "__version__"]
    assert isinstance(vsjpegfix.__version__, str)
    with pytest.raises(AttributeError):
        vsjpegfix.not_a_function  # noqa: B018


def test_importing_the_package_needs_no_vapoursynth_core():
    """The command line imports vsjpegfix without loading VapourSynth."""
    import subprocess

    code = "import sys, vsjpegfix, vsjpegfix.apps.cli; print('vapoursynth' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "False"


def test_the_command_is_the_apps_cli():
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts == {"vsjpegfix": "vsjpegfix.apps.cli:main"}
    from vsjpegfix.apps import cli

    assert set(cli.COMMANDS) >= {"weights", "models", "batch"}
    import subprocess

    out = subprocess.run([sys.executable, "-m", "vsjpegfix", "--version"], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0 and vsjpegfix.__version__ in out.stdout + out.stderr


def test_manifest_format():
    manifest = json.loads((ROOT / "weights" / "manifest.json").read_text())
    assert set(manifest) == {"models"}
    required = {"name", "file", "sha256", "arch", "config"}
    for entry in manifest["models"]:
        assert required <= set(entry), entry.get("name")
        assert (ROOT / "weights" / entry["file"]).is_file()
        profile = entry.get("quality_profile")
        if profile is not None:
            assert {"h264_qp", "jpeg_qf", "calibration"} <= set(profile)
    from vsjpegfix.weights.store import read_manifest

    assert set(read_manifest()) == {e["name"] for e in manifest["models"]}
