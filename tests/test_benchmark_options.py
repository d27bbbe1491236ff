"""The benchmark's contender selection (no contender runs)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

from tests.conftest import REPO

spec = importlib.util.spec_from_file_location("bench", REPO / "benchmarks" / "bench.py")
assert spec is not None and spec.loader is not None
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)


def test_only_takes_whole_names_or_prefixes():
    picked = {word: [name for name in bench.WORKERS if bench.selects(word, name)] for word in bench.WORKERS}
    assert all(names == [word] for word, names in picked.items())  # a whole name picks that contender alone
    assert [n for n in bench.WORKERS if bench.selects("train/minbert-", n)] == [
        "train/minbert-bf16",
        "train/minbert-hf-init",
    ]
    assert all(bench.selects("infer", n) == n.startswith("infer/") for n in bench.WORKERS)


def test_only_refuses_a_word_that_names_no_contender():
    done = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "bench.py"), "--only", "infer", "train/minbrt"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2 and "--only train/minbrt: no contender is named so" in done.stderr
