"""The loop itself, with a scripted task: early stopping, best-checkpoint restore, accumulation, eval_every."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from minbert.config import TrainConfig
from minbert.training.metrics_log import MetricsLog, read_metrics
from minbert.training.trainer import Trainer
from tests.training.test_optim_schedule import TinyClassifier


@dataclass
class ToyBatch:
    ids: torch.Tensor
    targets: torch.Tensor

    def to(self, device):
        return self

    def __len__(self):
        return len(self.targets)


class ScriptedTask:
    """Real batches and loss on a tiny model; dev accuracy follows a script, and we record the
    weights at each evaluation to check which ones the trainer restores."""

    def __init__(self, accuracies: list[float], batches_per_epoch: int = 4) -> None:
        self.accuracies = list(accuracies)
        self.batches_per_epoch = batches_per_epoch
        self.num_train_examples = 8 * batches_per_epoch
        self.snapshots: list[dict[str, torch.Tensor]] = []

    def epoch_batches(self, epoch: int) -> list[ToyBatch]:
        g = torch.Generator().manual_seed(epoch)
        return [
            ToyBatch(torch.randint(1, 50, (8, 6), generator=g), torch.randint(0, 3, (8,), generator=g))
            for _ in range(self.batches_per_epoch)
        ]

    def loss(self, model, batch: ToyBatch) -> torch.Tensor:
        return torch.nn.functional.cross_entropy(model.head(model.encoder(batch.ids).pooler_output), batch.targets)

    def evaluate(self, model) -> dict[str, float]:
        self.snapshots.append({k: v.clone() for k, v in model.state_dict().items()})
        accuracy = self.accuracies.pop(0)
        return {"accuracy": accuracy, "macro_f1": accuracy, "loss": 1 - accuracy}


def fit(tmp_path: Path, task: ScriptedTask, **overrides):
    config = TrainConfig(progress=False, lr=1e-2, **overrides)
    log = MetricsLog(tmp_path / "metrics.jsonl")
    model = TinyClassifier()
    result = Trainer(model, task, config, log, torch.device("cpu")).fit()
    log.close()
    return model, result, read_metrics(tmp_path / "metrics.jsonl")


def test_early_stopping_restores_the_best_weights(tmp_path):
    task = ScriptedTask([0.1, 0.3, 0.6, 0.5, 0.55, 0.9])
    model, result, records = fit(tmp_path, task, epochs=6, patience=2)
    assert result.stopped_early
    assert result.best_metric == 0.6 and result.best_epoch == 2.0 and result.best_step == 8
    assert len(task.snapshots) == 5  # before training + epochs 1..4; epoch 5 never ran
    best = task.snapshots[2]
    assert all(torch.equal(v, best[k]) for k, v in model.state_dict().items())
    assert not all(torch.equal(v, task.snapshots[4][k]) for k, v in model.state_dict().items())
    assert max(r["step"] for r in records if r["event"] == "train") == 16


def test_loss_metric_prefers_lower(tmp_path):
    task = ScriptedTask([0.2, 0.9, 0.4])  # loss = 1 - accuracy
    _, result, _ = fit(tmp_path, task, epochs=2, metric="loss")
    assert result.best_metric == pytest.approx(0.1) and result.best_step == 4


def test_gradient_accumulation_counts_optimizer_steps(tmp_path):
    task = ScriptedTask([0.1, 0.2, 0.3], batches_per_epoch=5)
    _, result, records = fit(tmp_path, task, epochs=2, grad_accum=2)
    assert result.steps == 6  # ceil(5 / 2) per epoch
    assert [r["step"] for r in records if r["event"] == "train"] == [1, 2, 3, 4, 5, 6]


def test_eval_every_n_steps_and_at_the_end(tmp_path):
    task = ScriptedTask([0.1] * 10, batches_per_epoch=5)
    _, _, records = fit(tmp_path, task, epochs=2, eval_every=3)
    assert [r["step"] for r in records if r["event"] == "dev"] == [0, 3, 6, 9, 10]


def test_epoch_log_reports_the_mean_loss_of_the_epoch(tmp_path, caplog):
    """The epoch line must be the mean over the epoch's batches (the bar's moving average follows the last few)."""
    task = ScriptedTask([0.1, 0.2, 0.3], batches_per_epoch=5)
    with caplog.at_level("INFO", logger="minbert.training.trainer"):
        _, _, records = fit(tmp_path, task, epochs=2)
    losses = [r["loss"] for r in records if r["event"] == "train"]
    lines = [m for m in caplog.messages if m.startswith("epoch ")]
    assert len(lines) == 2
    for epoch, line in enumerate(lines):
        expected = sum(losses[5 * epoch : 5 * epoch + 5]) / 5
        assert f"mean loss {expected:.4f} over 5 batches" in line


def test_a_run_resumed_with_a_patience_it_has_used_up_stops_before_training_more(tmp_path, caplog):
    """Dev peaked at epoch 1 and fell for two epochs; resumed with patience 2, the run stops at once
    (no fourth epoch) with the epoch-1 weights."""
    first = ScriptedTask([0.1, 0.6, 0.5, 0.4, 0.3])
    config = TrainConfig(progress=False, lr=1e-2, epochs=4, checkpoint_interval_s=0)
    log = MetricsLog(tmp_path / "metrics.jsonl")
    Trainer(TinyClassifier(), first, config, log, torch.device("cpu"), checkpoint_dir=tmp_path / "ckpt").fit()
    log.close()
    resumed_task = ScriptedTask([])
    log = MetricsLog(tmp_path / "resumed.jsonl")
    model = TinyClassifier()
    resumed = config.model_copy(update={"resume": True, "patience": 2})
    with caplog.at_level("INFO", logger="minbert.training.trainer"):
        result = Trainer(model, resumed_task, resumed, log, torch.device("cpu"), checkpoint_dir=tmp_path / "ckpt").fit()
    log.close()
    assert result.stopped_early and result.best_epoch == 1.0 and result.steps == 12
    assert not [r for r in read_metrics(tmp_path / "resumed.jsonl") if r["event"] == "train"]
    assert all(torch.equal(v, first.snapshots[1][k]) for k, v in model.state_dict().items())
    assert "early stop" in caplog.text
