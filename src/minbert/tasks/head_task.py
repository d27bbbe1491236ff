"""One head of a multitask model: its examples as tokenised batches, its loss, its dev metrics.

Targets: a classification head's label ids (CE) or 0/1 (BCE, the second label is positive); a
regression head's gold number scaled to [0, 1] by `target_range`. A row whose label is not a
number, or is outside the range, is an error naming its file and line.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F

from minbert.data.batching import bucketed_batches
from minbert.data.labels import LabelVocab
from minbert.data.readers import Example
from minbert.errors import MinbertError
from minbert.evaluate.metrics import classification_metrics, regression_metrics
from minbert.model.multitask_model import HeadSpec, MultitaskModel
from minbert.model.tokenizer import Batch, Tokenizer
from minbert.train.losses import cosent


@dataclass
class HeadBatch:
    """One task's batch: the sentences (or cross-encoded pairs), the bi-encoder's second sentences, targets."""

    first: Batch
    second: Batch | None
    targets: torch.Tensor

    def to(self, device: torch.device) -> HeadBatch:
        return HeadBatch(self.first.to(device), self.second.to(device) if self.second is not None else None, self.targets.to(device))

    def __len__(self) -> int:
        return len(self.targets)


def model_inputs(spec: HeadSpec, examples: Sequence[Example]) -> list:
    """What the model reads for each example: the text, or the (text, text_pair) pair."""
    if spec.pair:
        missing = next((e for e in examples if e.text_pair is None), None)
        if missing is not None:
            raise MinbertError(f"{missing.where}: task {spec.name!r} reads sentence pairs but this row has one text; use a pair format (quora, sts, stsb) or set text_pair_column")
        return [(e.text, e.text_pair) for e in examples]
    return [e.text for e in examples]


def targets_of(spec: HeadSpec, examples: Sequence[Example], labels: LabelVocab | None) -> torch.Tensor:
    if spec.kind == "classification":
        assert labels is not None
        ids = labels.encode_all(examples)
        return torch.tensor(ids, dtype=torch.float if spec.loss == "bce" else torch.long)
    values = []
    low, high = spec.target_range
    for e in examples:
        try:
            value = float(e.label)  # type: ignore[arg-type]
        except ValueError:
            raise MinbertError(f"{e.where}: label {e.label!r} is not a number; task {spec.name!r} is a regression") from None
        if not low <= value <= high:
            raise MinbertError(
                f"{e.where}: score {value:g} is outside task {spec.name!r}'s head.target_range [{low:g}, {high:g}]; "
                f"set tasks.{spec.name}.head.target_range to the scores' [min, max]"
            )
        values.append(spec.to_unit(value))
    return torch.tensor(values, dtype=torch.float)


class HeadTask:
    """Training data and evaluation of one task; `MultitaskTask` mixes several."""

    def __init__(
        self, spec: HeadSpec, tokenizer: Tokenizer, train: Sequence[Example], dev: Sequence[Example] | None = None, *,
        batch_size: int = 32, eval_batch_size: int = 128, seed: int = 42, bucket: bool = True,
    ) -> None:
        self.spec, self.tokenizer = spec, tokenizer
        self.labels = LabelVocab(spec.labels) if spec.kind == "classification" else None
        self.batch_size, self.eval_batch_size, self.seed, self.bucket = batch_size, eval_batch_size, seed, bucket
        self.train_targets = targets_of(spec, train, self.labels)
        inputs = model_inputs(spec, train)
        if spec.input == "bi":
            self.first = tokenizer.ids_with_types([a for a, _ in inputs])
            self.second: list | None = tokenizer.ids_with_types([b for _, b in inputs])
        else:
            self.first, self.second = tokenizer.ids_with_types(inputs), None
        self.dev = list(dev) if dev else None
        if self.dev:
            self.dev_inputs = model_inputs(spec, self.dev)
            self.dev_targets = targets_of(spec, self.dev, self.labels)  # fail now on a bad dev row

    @property
    def num_train_examples(self) -> int:
        return len(self.train_targets)

    def _pad(self, rows: list, index: list[int]) -> Batch:
        return self.tokenizer.pad([rows[i][0] for i in index], [rows[i][1] for i in index])

    def epoch_batches(self, epoch: int) -> list[HeadBatch]:
        """Bucketed by (summed) length, shuffled by (seed, epoch)."""
        lengths = [len(ids) + (len(self.second[i][0]) if self.second else 0) for i, (ids, _) in enumerate(self.first)]
        index_batches = bucketed_batches(lengths, self.batch_size, seed=self.seed * 1000 + epoch, bucket=self.bucket)
        return [
            HeadBatch(self._pad(self.first, index), self._pad(self.second, index) if self.second else None, self.train_targets[index])
            for index in index_batches
        ]

    def loss(self, model: MultitaskModel, batch: HeadBatch) -> torch.Tensor:
        raw = model(self.spec.name, batch.first, batch.second).float()
        return head_loss(self.spec, raw, batch.targets)

    def evaluate(self, model: MultitaskModel) -> dict[str, float] | None:
        if not self.dev:
            return None
        return score(self.spec, model, self.dev_inputs, self.dev_targets, self.eval_batch_size)


def head_loss(spec: HeadSpec, raw: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    if spec.loss == "ce":
        return F.cross_entropy(raw, targets)
    if spec.loss == "bce":
        return F.binary_cross_entropy_with_logits(raw, targets.float())
    if spec.loss == "mse":
        return F.mse_loss(raw, targets)
    return cosent(raw, targets)


def score(spec: HeadSpec, model: MultitaskModel, inputs: list, targets: torch.Tensor, batch_size: int = 128) -> dict[str, float]:
    """Accuracy/F1 (classification) or Pearson/Spearman/MSE in the gold units (regression), plus the loss."""
    raw = model.raw_outputs(spec.name, inputs, batch_size)
    loss = head_loss(spec, raw, targets).item()
    if spec.kind == "regression":
        predicted = spec.from_unit(model.heads[spec.name].scores(raw))  # type: ignore[operator]
        return {**regression_metrics(spec.from_unit(targets).tolist(), predicted.tolist()), "loss": loss}
    predicted_ids = (raw > 0).long() if spec.loss == "bce" else raw.argmax(-1)
    return {**classification_metrics(targets.long().tolist(), predicted_ids.tolist()), "loss": loss}


def score_examples(spec: HeadSpec, model: MultitaskModel, examples: Sequence[Example], batch_size: int = 128) -> dict[str, float]:
    """`score` on labelled examples (a split read from a file)."""
    labels = LabelVocab(spec.labels) if spec.kind == "classification" else None
    return score(spec, model, model_inputs(spec, examples), targets_of(spec, examples, labels), batch_size)
