"""What the trainer trains: one model's heads, each step one task's batch (chosen by the sampler), with
dev metrics per task plus one overall score to select the checkpoint. A single-task run is the same
thing with one head, whose metrics keep their plain names (accuracy, not main_accuracy).

The overall score generalises the CS224N project's ((SST acc + Quora acc + (STS r + 1) / 2) / 3):
the mean over tasks of accuracy (classification) or (Pearson + 1) / 2 (regression).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from minbert.model.task_model import Model
from minbert.tasks.head_task import FeatureBatch, HeadBatch, HeadTask
from minbert.training.task_sampling import task_schedule, task_weights

log = logging.getLogger(__name__)


@dataclass
class TaskBatch:
    task: str
    batch: HeadBatch | FeatureBatch

    def to(self, device: torch.device) -> TaskBatch:
        return TaskBatch(self.task, self.batch.to(device))

    def __len__(self) -> int:
        return len(self.batch)


def overall_score(metrics: dict[str, dict[str, float]]) -> float:
    """Mean of each task's accuracy or (pearson + 1) / 2 (the CS224N project's score)."""
    parts = [m["accuracy"] if "accuracy" in m else (m["pearson"] + 1) / 2 for m in metrics.values()]
    return sum(parts) / len(parts)


class MultitaskTask:
    """What the trainer needs (batches, loss, dev metrics) over one or several `HeadTask`s. With
    `prefixed=False` (one task only) the dev metrics keep their plain names."""

    def __init__(
        self,
        tasks: Sequence[HeadTask],
        *,
        weights: dict[str, float] | None = None,
        sampling: str = "proportional",
        steps_per_epoch: int | None = None,
        epochs: int = 1,
        seed: int = 42,
        prefixed: bool = True,
    ) -> None:
        if not prefixed and len(tasks) != 1:
            raise ValueError("plain metric names need exactly one task")
        self.prefixed = prefixed
        self.tasks = {t.spec.name: t for t in tasks}
        self.weights = weights or {}
        self.sampling, self.epochs, self.seed = sampling, epochs, seed
        self.sizes = [-(-t.num_train_examples // t.batch_size) for t in tasks]  # batches per pass
        self.steps_per_epoch = steps_per_epoch or sum(self.sizes)
        if len(tasks) > 1:
            shares = ", ".join(
                f"{name} {w:.2f}"
                for name, w in zip(self.tasks, task_weights(self.sizes, sampling, 0, epochs), strict=True)
            )
            log.info(
                "multitask: %d steps per epoch, %s sampling (first-epoch shares: %s)",
                self.steps_per_epoch,
                sampling,
                shares,
            )

    @property
    def num_train_examples(self) -> int:
        return sum(t.num_train_examples for t in self.tasks.values())

    def _schedule(self, epoch: int) -> list[int]:
        if len(self.sizes) == 1:
            return [0] * self.steps_per_epoch
        return task_schedule(
            self.sizes, self.sampling, self.steps_per_epoch, epoch=epoch, epochs=self.epochs, seed=self.seed
        )

    def epoch_batches(self, epoch: int) -> list[TaskBatch]:
        """This epoch's steps. A pure function of the epoch (a resumed run rebuilds it exactly): each task
        continues where the earlier epochs left its data, starting a new reshuffled pass when it runs out."""
        consumed = [0] * len(self.sizes)
        for earlier in range(epoch):
            for index in self._schedule(earlier):
                consumed[index] += 1
        names = list(self.tasks)
        passes: dict[int, list[HeadBatch] | list[FeatureBatch]] = {}
        out = []
        for index in self._schedule(epoch):
            position = consumed[index]
            consumed[index] += 1
            key = index * 1_000_000 + position // self.sizes[index]
            if key not in passes:
                passes[key] = self.tasks[names[index]].epoch_batches(position // self.sizes[index])
            out.append(TaskBatch(names[index], passes[key][position % self.sizes[index]]))
        return out

    def loss(self, model: Model, batch: TaskBatch) -> torch.Tensor:
        return self.weights.get(batch.task, 1.0) * self.tasks[batch.task].loss(model, batch.batch)

    def evaluate(self, model: Model) -> dict[str, float] | None:
        per_task = {name: m for name, task in self.tasks.items() if (m := task.evaluate(model)) is not None}
        if not per_task:
            return None
        flat = flatten(per_task, self.prefixed)
        if self.prefixed:  # the mean loss over tasks, for train.metric loss
            flat["loss"] = sum(m["loss"] for m in per_task.values()) / len(per_task)
        return flat


def flatten(per_task: dict[str, dict[str, float]], prefixed: bool) -> dict[str, float]:
    """Several tasks' metrics as <task>_<metric> plus overall; a single task's (not prefixed) as they are."""
    if not prefixed:
        return dict(next(iter(per_task.values())))
    flat = {f"{name}_{metric}": value for name, metrics in per_task.items() for metric, value in metrics.items()}
    return {**flat, "overall": overall_score(per_task)}
