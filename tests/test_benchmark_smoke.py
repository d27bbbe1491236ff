"""The side-by-side benchmark runs and prints its table (tiny sizes; no time is asserted)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow


def test_benchmark_smoke(tmp_path, data_dir):
    out = tmp_path / "bench.json"
    done = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "bench.py"), "--smoke", "--out", str(out)],
        capture_output=True, text=True, env={**os.environ, "MINBERT_DATA": str(data_dir)}, timeout=900,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    print(done.stdout)
    for row in ("train/transformers", "train/minbert", "infer/sentence-transformers", "infer/minbert-bf16", "machine limit"):
        assert row in done.stdout
    results = json.loads(out.read_text())["results"]
    assert results["train/minbert"]["examples_per_s"] > 0 and 0 <= results["train/minbert"]["dev_accuracy"] <= 1
