"""Report headers (vsjpegfix.training.machine): the commit, the GPU peaks, the load meter."""

import shutil
import subprocess

import pytest
import torch

from vsjpegfix.training.machine import (
    LoadMeter,
    describe_machine,
    git_commit,
    known_peak_tflops,
    machine_info,
)


def test_known_peaks():
    assert known_peak_tflops("NVIDIA H100 PCIe", "fp16") == 756.0
    assert known_peak_tflops("NVIDIA H200", "bf16") == 989.4
    assert known_peak_tflops("Tesla T4", "fp32") == 8.1
    assert known_peak_tflops("Some Other GPU", "fp16") is None


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_git_commit_reads_refs_packed_refs_and_worktrees(tmp_path):
    def git(*args, cwd=tmp_path / "repo"):
        return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=cwd, check=True,
                              capture_output=True, text=True).stdout.strip()

    (tmp_path / "repo").mkdir()
    git("init", "-q", "-b", "main")
    (tmp_path / "repo" / "f").write_text("x")
    git("add", "f")
    git("commit", "-q", "-m", "one")
    head = git("rev-parse", "HEAD")
    assert git_commit(tmp_path / "repo") == head
    git("pack-refs", "--all")
    assert not (tmp_path / "repo" / ".git" / "refs" / "heads" / "main").exists()
    assert git_commit(tmp_path / "repo") == head
    git("worktree", "add", "-q", "-b", "other", str(tmp_path / "wt"))
    (tmp_path / "wt" / "g").write_text("y")
    git("add", "g", cwd=tmp_path / "wt")
    git("commit", "-q", "-m", "two", cwd=tmp_path / "wt")
    assert git_commit(tmp_path / "wt") == git("rev-parse", "HEAD", cwd=tmp_path / "wt") != head
    (tmp_path / "plain").mkdir()
    assert git_commit(tmp_path / "plain") is None


def test_machine_descriptions():
    meter = LoadMeter()
    sum(i * i for i in range(10000))
    other = meter.other_cores()
    assert other is None or other >= 0
    info = describe_machine(torch.device("cpu"), 1)
    assert info["torch_threads"] == 1 and info["cpu_count"] >= 1 and info["cpu"]
    assert info["gpu"] is None if not torch.cuda.is_available() else "name" in info["gpu"]
    assert machine_info(torch.device("cpu"))["device"] == "cpu"
