"""The GPU check stays runnable: on a machine without CUDA it says so in one line and exits 0; with CUDA
its checks run (tests/ cannot, here). Its check functions are imported, so a broken import fails CI too."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from tests.conftest import REPO


def test_gpu_check_without_cuda_says_so_and_exits_0():
    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU: run `python benchmarks/gpu_check.py` itself")
    done = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "gpu_check.py")], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines() == [
        f"gpu_check: no CUDA device (torch {torch.__version__} sees none); nothing to check on this machine"
    ]


def test_gpu_check_help_lists_every_check():
    done = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "gpu_check.py"), "--help"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0
    for check in ("parity", "train", "eval", "serve", "ddp", "throughput"):
        assert check in done.stdout
