"""The side-by-side benchmark runs and prints its table (tiny sizes; no time is asserted)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO

pytestmark = [pytest.mark.slow, pytest.mark.slowest]


def test_benchmark_smoke(tmp_path, data_dir):
    out = tmp_path / "bench.json"
    done = subprocess.run(
        # No --setup-st-onnx: the test suite never builds sentence-transformers' 1.5 GB ONNX environment; its
        # contenders run when `bench.py --setup-st-onnx` made it, and are reported as skipped otherwise.
        [
            sys.executable,
            str(REPO / "benchmarks" / "bench.py"),
            "--smoke",
            "--train-rounds",
            "2",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "MINBERT_DATA": str(data_dir)},
        timeout=1500,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    print(done.stdout)
    rows = (
        "train/transformers",
        "train/transformers-bf16",
        "train/minbert",
        "train/minbert-hf-init",
        "infer/transformers-sorted",
        "infer/sentence-transformers",
        "infer/sentence-transformers-bf16",
        "infer/transformers-sorted-bf16",
        "infer/minbert-unbucketed",
        "infer/minbert-bf16",
        "infer/minbert-compiled",
        "infer/minbert-onnx-int8",
        "GEMM share",
        "machine: ",
        "padding at batch 64",
        "frozen-encoder probe epoch",
    )
    for row in rows:
        assert row in done.stdout
    onnx_rows = ("infer/sentence-transformers-onnx", "infer/sentence-transformers-onnx-qint8")
    for row in onnx_rows:
        if (REPO / "benchmarks" / ".venv-st-onnx" / "bin" / "python").is_file():
            assert row in done.stdout
        else:
            assert f"skipping {row}: its environment is missing (run with --setup-st-onnx once)" in done.stderr
    results = json.loads(out.read_text())["results"]
    assert 1.0 <= results["padding"]["length_sorted"] <= results["padding"]["input_order"]
    assert results["train/minbert"]["examples_per_s"] > 0 and 0 <= results["train/minbert"]["dev_accuracy"] <= 1
    assert results["train/minbert"]["gflops"] > 0 and results["infer/transformers"]["gflops"] > 0
    assert "median of 2 alternating rounds" in done.stdout
    for name in [n for n in results if n.startswith("train/")]:  # each row is one of its two rounds
        assert len(results[name]["rounds"]) == 2 and results[name]["examples_per_s"] in results[name]["rounds"]
