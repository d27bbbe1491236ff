"""One run for every config: what single-task runs had (feature cache, CE + SCL, the contrastive stage)
works for multitask runs too, and vice versa."""

from __future__ import annotations

import pytest
import torch
import yaml
from safetensors.torch import load_file

from minbert import MinbertError, load_config, train
from minbert.model.checkpoint import resolve_checkpoint
from minbert.training.metrics_log import read_metrics
from tests.training.test_resume import head_rows

pytestmark = pytest.mark.slow


def multitask_config(tmp_path, data_dir, **train) -> str:
    cs224n = data_dir / "cs224n_multitask"
    config = {
        "task": "multitask",
        "model": {"max_length": 32, "pooling": "mean"},
        "tasks": [
            {
                "name": "sst",
                "head": {"hidden_size": 32},
                "data": {
                    "train": head_rows(cs224n / "ids-sst-train.csv", 97, tmp_path / "sst-train.csv"),
                    "dev": head_rows(cs224n / "ids-sst-dev.csv", 41, tmp_path / "sst-dev.csv"),
                    "format": "cs224n",
                },
            },
            {
                "name": "sts",
                "head": {"kind": "regression", "input": "bi", "hidden_size": 16, "loss": "mse"},
                "data": {
                    "train": head_rows(cs224n / "sts-train.csv", 65, tmp_path / "sts-train.csv"),
                    "dev": head_rows(cs224n / "sts-dev.csv", 41, tmp_path / "sts-dev.csv"),
                    "format": "sts",
                },
            },
        ],
        "train": {"epochs": 2, "batch_size": 16, "lr": 1e-3, "seed": 3, "progress": False, "threads": 1, **train},
    }
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(config))
    return str(path)


def test_frozen_encoder_multitask_trains_on_cached_vectors_with_the_same_results(tmp_path, data_dir, caplog):
    """Every head, the bi-encoder's included, reads cached vectors; without the cache the numbers are the same."""
    config = multitask_config(tmp_path, data_dir, freeze="encoder", bucket=False)
    with caplog.at_level("INFO"):
        cached = train(load_config(config, ["--output_dir", str(tmp_path / "cached")]))
    assert "task sts, frozen encoder: cached" in caplog.text and "task sst, frozen encoder: cached" in caplog.text
    fresh = train(load_config(config, ["--output_dir", str(tmp_path / "fresh"), "--train.cache_features", "false"]))
    assert cached.summary["steps"] == fresh.summary["steps"] == 2 * (6 + 4)
    for key, value in fresh.results["dev"].items():
        assert cached.results["dev"][key] == pytest.approx(value, abs=1e-4), key
    original = load_file(str(resolve_checkpoint(None) / "model.safetensors"))
    tuned = load_file(str(tmp_path / "cached" / "model" / "encoder" / "model.safetensors"))
    assert all(torch.equal(original[k], tuned[k]) for k in tuned if k in original)


def test_multitask_run_with_ce_plus_scl_and_a_simcse_stage(tmp_path, data_dir):
    config = multitask_config(tmp_path, data_dir, objective="ce+scl", scl_lambda=0.5, epochs=1)
    run = train(
        load_config(
            config,
            [
                "--output_dir",
                str(tmp_path / "run"),
                "--contrastive.objective",
                "simcse",
                "--contrastive.batch_size",
                "32",
            ],
        )
    )
    events = [r["event"] for r in read_metrics(tmp_path / "run" / "metrics.jsonl")]
    assert (
        events.count("contrastive_train") == 7
    )  # 96 SST sentences + both sides of 64 STS pairs = 224, in batches of 32
    assert {"sst_accuracy", "sts_pearson", "overall"} <= set(run.results["dev"])
    report = (tmp_path / "run" / "report.md").read_text()
    assert "ce+scl (lambda 0.5" in report and "## Per-class scores (sst, dev" in report


def sts_only(tmp_path, data_dir, **train) -> str:
    raw = yaml.safe_load(open(multitask_config(tmp_path, data_dir, **train)))
    raw["tasks"] = raw["tasks"][1:]
    (tmp_path / "sts_only.yaml").write_text(yaml.safe_dump(raw))
    return str(tmp_path / "sts_only.yaml")


def test_ce_plus_scl_needs_a_cross_entropy_head(tmp_path, data_dir):
    with pytest.raises(MinbertError, match="no head has loss ce"):
        train(load_config(sts_only(tmp_path, data_dir, objective="ce+scl"), ["--output_dir", str(tmp_path / "run")]))


def test_supcon_stage_in_a_multitask_run_needs_a_single_sentence_classification_task(tmp_path, data_dir):
    with pytest.raises(MinbertError, match="supcon needs a classification task on single sentences"):
        train(
            load_config(
                sts_only(tmp_path, data_dir),
                ["--output_dir", str(tmp_path / "run"), "--contrastive.objective", "supcon"],
            )
        )
