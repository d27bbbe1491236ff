"""Single-sentence classification: examples -> tokenised batches, cross-entropy, accuracy/F1.

With a frozen encoder (eval mode, no dropout) a sentence's vector never changes, so the task
encodes train and dev once and every epoch trains the head on the cached vectors: a
frozen-probe epoch costs a few matrix products instead of a full encoder pass.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from minbert.data.batching import bucketed_batches
from minbert.data.labels import LabelVocab
from minbert.data.readers import Example
from minbert.evaluate.metrics import classification_metrics
from minbert.model.task_model import SequenceClassifier
from minbert.model.tokenizer import Batch
from minbert.train.losses import ce_plus_scl

log = logging.getLogger(__name__)


@dataclass
class TrainingBatch:
    inputs: Batch
    targets: torch.Tensor

    def to(self, device: torch.device) -> TrainingBatch:
        return TrainingBatch(self.inputs.to(device), self.targets.to(device))

    def __len__(self) -> int:
        return len(self.targets)


@dataclass
class FeatureBatch:
    """Cached sentence vectors of a frozen encoder, with their targets."""

    features: torch.Tensor
    targets: torch.Tensor

    def to(self, device: torch.device) -> FeatureBatch:
        return FeatureBatch(self.features.to(device), self.targets.to(device))

    def __len__(self) -> int:
        return len(self.targets)


@dataclass
class Evaluation:
    """Metrics plus what they were computed from, for reports and plots."""

    metrics: dict[str, float]
    y_true: list[int]
    y_pred: list[int]
    probabilities: np.ndarray = field(repr=False)


def evaluate_examples(model: SequenceClassifier, examples: Sequence[Example], labels: LabelVocab, batch_size: int = 128, bf16: bool = False) -> Evaluation:
    """Predict every example and score against its label."""
    return score_logits(model.logits([e.text for e in examples], batch_size=batch_size, bf16=bf16), labels.encode_all(examples))


def score_logits(logits: torch.Tensor, y_true: list[int]) -> Evaluation:
    loss = F.cross_entropy(logits, torch.tensor(y_true)).item()
    y_pred = logits.argmax(-1).tolist()
    metrics = {**classification_metrics(y_true, y_pred), "loss": loss}
    return Evaluation(metrics, y_true, y_pred, torch.softmax(logits, -1).numpy())


class ClassificationTask:
    """Holds the tokenised (or, frozen, encoded) training set and the dev set; hands the trainer what it needs."""

    def __init__(
        self,
        model: SequenceClassifier,
        labels: LabelVocab,
        train: Sequence[Example],
        dev: Sequence[Example] | None = None,
        *,
        batch_size: int = 32,
        eval_batch_size: int = 128,
        seed: int = 42,
        bucket: bool = True,
        bf16: bool = False,
        cache_features: bool = True,
        objective: str = "ce",
        scl_lambda: float = 0.9,
        scl_temperature: float = 0.3,
    ) -> None:
        self.model = model
        self.labels = labels
        self.dev = list(dev) if dev else None
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size
        self.seed, self.bucket, self.bf16 = seed, bucket, bf16
        self.objective, self.scl_lambda, self.scl_temperature = objective, scl_lambda, scl_temperature
        self.train_targets = torch.tensor(labels.encode_all(train))
        self.dev_targets = labels.encode_all(self.dev) if self.dev else None  # fail now on an unseen dev label
        self.cached = cache_features and model.encoder_frozen
        if self.cached:
            started = time.perf_counter()
            self.train_features = model.sentence_features([e.text for e in train], eval_batch_size, bf16)
            self.dev_features = model.sentence_features([e.text for e in self.dev], eval_batch_size, bf16) if self.dev else None
            log.info("frozen encoder: cached %d sentence vectors in %.1f s; epochs train the head only", len(train) + len(self.dev or []), time.perf_counter() - started)
        else:
            self.train_ids = model.tokenizer.ids([e.text for e in train])

    @property
    def num_train_examples(self) -> int:
        return len(self.train_targets)

    def epoch_batches(self, epoch: int) -> list[TrainingBatch] | list[FeatureBatch]:
        """This epoch's batches: seeded by (seed, epoch), bucketed by length, padded to the longest."""
        seed = self.seed * 1000 + epoch
        if self.cached:  # vectors have no length: plain shuffled batches
            index_batches = bucketed_batches([1] * self.num_train_examples, self.batch_size, seed=seed, bucket=False)
            return [FeatureBatch(self.train_features[index], self.train_targets[index]) for index in index_batches]
        index_batches = bucketed_batches([len(ids) for ids in self.train_ids], self.batch_size, seed=seed, bucket=self.bucket)
        tokenizer = self.model.tokenizer
        return [TrainingBatch(tokenizer.pad([self.train_ids[i] for i in index]), self.train_targets[index]) for index in index_batches]

    def loss(self, model: SequenceClassifier, batch: TrainingBatch | FeatureBatch) -> torch.Tensor:
        features = batch.features if isinstance(batch, FeatureBatch) else model.sentence_embedding(batch.inputs)
        logits = model.head(features)
        if self.objective == "ce+scl":
            return ce_plus_scl(logits, features, batch.targets, self.scl_lambda, self.scl_temperature)
        return F.cross_entropy(logits.float(), batch.targets)

    def evaluate(self, model: SequenceClassifier) -> dict[str, float] | None:
        if not self.dev:
            return None
        if self.cached:
            return score_logits(model.head_logits(self.dev_features), self.dev_targets).metrics
        return evaluate_examples(model, self.dev, self.labels, self.eval_batch_size, self.bf16).metrics
