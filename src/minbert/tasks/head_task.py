"""One head of the model as the trainer sees it: its examples as batches, its loss, its dev metrics.

The same task serves every head: single sentences, cross-encoded pairs and bi-encoded pairs;
classification (CE, BCE, CE + lambda * SCL, multi-label BCE) and regression (MSE, BCE, CoSENT). Targets:
a classification head's label ids (CE), 0/1 (BCE, the second label is positive) or a 0/1 row per label
set (multilabel); a regression head's gold number scaled to [0, 1] by `target_range`. A row whose label is not a number, or is outside the
range, is an error naming its file and line.

With a frozen encoder (eval mode, no dropout) a sentence's pooled vector never changes, so the task
encodes train and dev once and every epoch trains the projection and head on the cached vectors: a
frozen-probe epoch costs a few matrix products instead of a full encoder pass.

With a teacher (`Distillation`) every training row also carries the teacher's output, and the loss
is (1-alpha) * the head's loss on the labelled rows + alpha * the distillation loss on all rows;
unlabelled rows (texts only the teacher labels) take part in the second term only.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from minbert.data.batching import bucketed_batches
from minbert.data.labels import LabelVocab, label_names
from minbert.data.readers import Example
from minbert.errors import MinbertError
from minbert.evaluation.calibration import expected_calibration_error, negative_log_likelihood
from minbert.evaluation.metrics import classification_metrics, regression_metrics
from minbert.evaluation.multilabel import multilabel_metrics, tune_thresholds
from minbert.model.heads import HeadSpec
from minbert.model.task_model import Encoded, HeadPredictions, Model
from minbert.model.tokenizer import Batch
from minbert.tasks.distillation import Distillation
from minbert.training.losses import ce_plus_scl, cosent, distillation_loss


@dataclass
class HeadBatch:
    """One task's batch: the sentences (or cross-encoded pairs), the bi-encoder's second sentences, targets."""

    first: Batch
    second: Batch | None
    targets: torch.Tensor
    teacher: torch.Tensor | None = None  # the teacher's raw outputs (distillation)
    labelled: torch.Tensor | None = None  # which rows have a label (distillation with unlabelled texts)

    def to(self, device: torch.device) -> HeadBatch:
        return HeadBatch(
            self.first.to(device),
            self.second.to(device) if self.second is not None else None,
            self.targets.to(device),
            *moved(device, self.teacher, self.labelled),
        )

    def __len__(self) -> int:
        return len(self.targets)


@dataclass
class FeatureBatch:
    """Cached pooled vectors of a frozen encoder (the bi-encoder's two sides), with their targets."""

    first: torch.Tensor
    second: torch.Tensor | None
    targets: torch.Tensor
    teacher: torch.Tensor | None = None
    labelled: torch.Tensor | None = None

    def to(self, device: torch.device) -> FeatureBatch:
        return FeatureBatch(
            self.first.to(device),
            self.second.to(device) if self.second is not None else None,
            self.targets.to(device),
            *moved(device, self.teacher, self.labelled),
        )

    def __len__(self) -> int:
        return len(self.targets)


def moved(device: torch.device, *tensors: torch.Tensor | None) -> list[torch.Tensor | None]:
    return [t.to(device) if t is not None else None for t in tensors]


@dataclass
class Evaluation:
    """Metrics plus what they were computed from (classification: gold and predicted ids), for reports and plots."""

    metrics: dict[str, float]
    y_true: list[Any] = field(default_factory=list)  # class ids; a multilabel head's 0/1 rows
    y_pred: list[Any] = field(default_factory=list)
    probabilities: np.ndarray | None = field(default=None, repr=False)


log = logging.getLogger(__name__)


def model_inputs(spec: HeadSpec, examples: Sequence[Example]) -> list[Any]:
    """What the model reads for each example: the text, or the (text, text_pair) pair."""
    if spec.pair:
        missing = next((e for e in examples if e.text_pair is None), None)
        if missing is not None:
            raise MinbertError(
                f"{missing.where}: task {spec.name!r} reads sentence pairs but this row has one text; "
                "use a pair format (quora, sts, stsb) or set text_pair_column"
            )
        return [(e.text, e.text_pair) for e in examples]
    paired = next((e for e in examples if e.text_pair is not None), None)
    if paired is not None:
        raise MinbertError(
            f"{paired.where}: holds sentence pairs, and task {spec.name!r} reads single sentences (it would read only the first text). "
            "Train pairs with `task: multitask` and a cross or bi head (see configs/sts_bi.yaml, configs/quora_cross.yaml)"
        )
    return [e.text for e in examples]


def targets_of(spec: HeadSpec, examples: Sequence[Example]) -> torch.Tensor:
    if spec.multilabel:
        return torch.tensor(LabelVocab(spec.labels).multi_hot(examples), dtype=torch.float).reshape(
            -1, len(spec.labels)
        )
    if spec.kind == "classification":
        ids = LabelVocab(spec.labels).encode_all(examples)
        return torch.tensor(ids, dtype=torch.float if spec.loss == "bce" else torch.long)
    values = []
    low, high = spec.target_range
    for e in examples:
        try:
            value = float(e.label)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise MinbertError(
                f"{e.where}: label {e.label!r} is not a number; task {spec.name!r} is a regression"
            ) from None
        if not low <= value <= high:
            raise MinbertError(
                f"{e.where}: score {value:g} is outside task {spec.name!r}'s head.target_range [{low:g}, {high:g}]; "
                f"set tasks.{spec.name}.head.target_range to the scores' [min, max]"
            )
        values.append(spec.to_unit(value))
    return torch.tensor(values, dtype=torch.float)


def class_weights(spec: HeadSpec, targets: torch.Tensor, asked: str | dict[str, float]) -> torch.Tensor | None:
    """Per-class loss weights of a classification head: balanced (n / (classes x count of the class), scikit-learn's
    rule; a class absent from train gets 1) or given by label (others 1); None for none. A multilabel head's are
    BCE's pos_weight per label: balanced = negatives / positives of the label in train."""
    if asked == "none" or spec.kind != "classification":
        return None
    if spec.multilabel and not isinstance(asked, dict):
        positives = targets.sum(0)
        return torch.where(
            positives > 0, (len(targets) - positives) / positives.clamp(min=1), torch.ones_like(positives)
        )
    if isinstance(asked, dict):
        unknown = sorted(set(asked) - set(spec.labels))
        if unknown:
            raise MinbertError(
                f"train.class_weights: {', '.join(map(repr, unknown))} is not a label of task {spec.name!r} "
                f"(its labels: {', '.join(spec.labels[:8])}{', ...' if len(spec.labels) > 8 else ''})"
            )
        if any(w <= 0 for w in asked.values()):
            raise MinbertError("train.class_weights: every weight must be above 0")
        return torch.tensor([float(asked.get(label, 1.0)) for label in spec.labels])
    counts = torch.bincount(targets.long(), minlength=len(spec.labels)).float()
    return torch.where(counts > 0, len(targets) / (len(spec.labels) * counts.clamp(min=1)), torch.ones_like(counts))


def head_loss(
    spec: HeadSpec, raw: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor | None = None
) -> torch.Tensor:
    """The head's training loss; `weights` (per class) weigh CE by the gold class and BCE's positives by w1 / w0;
    a multilabel head's are each label's pos_weight."""
    if spec.multilabel:
        return F.binary_cross_entropy_with_logits(raw, targets, pos_weight=weights)
    if spec.loss == "ce":
        return F.cross_entropy(raw, targets, weight=weights)
    if spec.loss == "bce" and spec.kind == "classification" and weights is not None:
        return weights[0] * F.binary_cross_entropy_with_logits(raw, targets.float(), pos_weight=weights[1] / weights[0])
    if spec.loss == "bce":
        return F.binary_cross_entropy_with_logits(raw, targets.float())
    if spec.loss == "mse":
        return F.mse_loss(raw, targets)
    return cosent(raw, targets)


def score_raw(spec: HeadSpec, raw: torch.Tensor, targets: torch.Tensor) -> Evaluation:
    """Accuracy/F1 (classification) or Pearson/Spearman/MSE in the gold units (regression), plus the loss."""
    raw = raw.float()
    loss = head_loss(spec, raw, targets).item()
    if spec.kind == "regression":
        predicted = spec.scores(raw)
        return Evaluation({**regression_metrics(spec.from_unit(targets).tolist(), predicted.tolist()), "loss": loss})
    probabilities = spec.probabilities(raw).numpy()
    if spec.multilabel:
        truth, chosen = targets.long().numpy(), spec.predicted_ids(raw).numpy()
        metrics = {**multilabel_metrics(truth, chosen), "loss": loss}
        return Evaluation(metrics, truth.tolist(), chosen.tolist(), probabilities)
    y_true, y_pred = targets.long().tolist(), spec.predicted_ids(raw).tolist()
    calibration = (
        {
            "ece": expected_calibration_error(probabilities, targets.long().numpy()),
            "nll": negative_log_likelihood(probabilities, targets.long().numpy()),
        }
        if spec.loss == "ce"
        else {}
    )
    return Evaluation(
        {**classification_metrics(y_true, y_pred), "loss": loss, **calibration}, y_true, y_pred, probabilities
    )


def evaluate_examples(
    model: HeadPredictions,
    task: str,
    examples: Sequence[Example],
    batch_size: int = 128,
    bf16: bool = False,
    unseen: Sequence[Example] = (),
) -> Evaluation:
    """Predict every labelled example of one task and score it; `unseen` rows (labels training never saw,
    data.unseen_labels count_wrong) are predicted too and scored as misses."""
    spec = model.spec(task)
    evaluation = score_raw(
        spec, model.raw_outputs(task, model_inputs(spec, examples), batch_size, bf16), targets_of(spec, examples)
    )
    if not unseen:
        return evaluation
    raw = model.raw_outputs(task, model_inputs(spec, unseen), batch_size, bf16)
    return count_unseen_as_wrong(spec, evaluation, unseen, raw)


def count_unseen_as_wrong(
    spec: HeadSpec, evaluation: Evaluation, unseen: Sequence[Example], raw: torch.Tensor
) -> Evaluation:
    """Accuracy and F1 over every row, each label training never saw a miss: a single-label row gets a class no
    prediction can match; a multi-label row keeps its known labels, and each unseen one is a column of its own
    that is never predicted (a false negative). Loss, ECE and NLL stay those of the rows with known labels (an
    unseen class has no probability)."""
    if spec.multilabel:
        names = sorted({label for e in unseen for label in label_names(e) if label not in spec.labels})
        columns, width = [*spec.labels, *names], len(spec.labels)
        seen_truth = np.asarray(evaluation.y_true, dtype=int).reshape(-1, width)
        truth = np.vstack(
            [
                np.hstack([seen_truth, np.zeros((len(seen_truth), len(names)), dtype=int)]),
                np.asarray([[int(c in label_names(e)) for c in columns] for e in unseen], dtype=int),
            ]
        )
        chosen = np.vstack(
            [np.asarray(evaluation.y_pred, dtype=int).reshape(-1, width), spec.predicted_ids(raw).long().numpy()]
        )
        metrics = multilabel_metrics(truth, np.hstack([chosen, np.zeros((len(chosen), len(names)), dtype=int)]))
    else:
        y_true = [*evaluation.y_true, *([len(spec.labels)] * len(raw))]
        metrics = classification_metrics(y_true, [*evaluation.y_pred, *spec.predicted_ids(raw).tolist()])
    return Evaluation(
        {**evaluation.metrics, **metrics, "unseen_label_rows": float(len(raw))},
        evaluation.y_true,
        evaluation.y_pred,
        evaluation.probabilities,
    )


class HeadTask:
    """Training data and dev evaluation of one head; `MultitaskTask` mixes several (or holds one)."""

    def __init__(
        self,
        spec: HeadSpec,
        model: Model,
        train: Sequence[Example],
        dev: Sequence[Example] | None = None,
        *,
        batch_size: int = 32,
        eval_batch_size: int = 128,
        seed: int = 42,
        bucket: bool = True,
        bf16: bool = False,
        cache_features: bool = True,
        scl: tuple[float, float] | None = None,
        distill: Distillation | None = None,
        unlabelled: Sequence[Example] = (),
        weights: str | dict[str, float] = "none",
    ) -> None:
        """`scl` = (lambda, temperature) adds Gunel et al.'s supervised contrastive term to a CE head's loss;
        `distill` adds a teacher's soft targets, also for the `unlabelled` texts."""
        self.spec, self.tokenizer = spec, model.tokenizer
        self.batch_size, self.eval_batch_size, self.seed, self.bucket, self.bf16 = (
            batch_size,
            eval_batch_size,
            seed,
            bucket,
            bf16,
        )
        if scl is not None and spec.loss != "ce":
            raise MinbertError(
                f"task {spec.name!r}: train.objective ce+scl needs a single-label classification head with loss ce, "
                f"not {'a multilabel head (bce)' if spec.multilabel else spec.loss}; use train.objective ce"
            )
        self.scl, self.distill = scl, distill
        if unlabelled and distill is None:
            raise MinbertError(f"task {spec.name!r}: unlabelled training texts need a teacher to label them")
        self.train_targets = targets_of(spec, train)
        self.weights = class_weights(spec, self.train_targets, weights)
        if self.weights is not None and scl is not None:
            raise MinbertError("train.class_weights weigh plain CE; train.objective ce+scl does not take them")
        inputs = model_inputs(spec, train)
        self.labelled: torch.Tensor | None = None
        self.teacher_outputs: torch.Tensor | None = None
        if unlabelled:
            inputs += model_inputs(spec, unlabelled)
            placeholder = torch.zeros(len(unlabelled), *self.train_targets.shape[1:], dtype=self.train_targets.dtype)
            self.train_targets = torch.cat([self.train_targets, placeholder])
            self.labelled = torch.cat(
                [torch.ones(len(train), dtype=torch.bool), torch.zeros(len(unlabelled), dtype=torch.bool)]
            )
        if distill is not None:
            self.teacher_outputs = distill.outputs(spec, inputs, eval_batch_size, bf16)
        self.dev = list(dev) if dev else None
        if self.dev:
            self.dev_inputs = model_inputs(spec, self.dev)
            self.dev_targets = targets_of(spec, self.dev)  # fail now on a bad dev row
        self.cached = cache_features and model.encoder_frozen
        self.dev_vectors: tuple[torch.Tensor, torch.Tensor | None] | None = None
        if self.cached:
            started = time.perf_counter()
            self.train_vectors = self._vectors(model, inputs)
            self.dev_vectors = self._vectors(model, self.dev_inputs) if self.dev else None
            self.train_inputs = inputs
            log.info(
                "task %s, frozen encoder: cached %d sentence vectors in %.1f s; epochs train the head only",
                spec.name,
                len(train) + len(self.dev or []),
                time.perf_counter() - started,
            )
            return
        sides = [self.tokenizer.ids_with_types(side) for side in self._sides(inputs)]
        self.first, self.second = sides[0], sides[1] if len(sides) > 1 else None

    def encoded(self) -> list[Encoded]:
        """The train and dev vectors this task cached from a frozen encoder, for `Model.encoding_once` to reuse
        after training (none when the encoder trained)."""
        if not self.cached:
            return []
        cached = [(self.train_inputs, self.train_vectors)]
        if self.dev_vectors is not None:
            cached.append((self.dev_inputs, self.dev_vectors))
        return [
            Encoded(side, self.eval_batch_size, self.bf16, vectors)
            for inputs, pair in cached
            for side, vectors in zip(self._sides(inputs), pair, strict=False)
            if vectors is not None
        ]

    def _sides(self, inputs: list[Any]) -> list[list[Any]]:
        """What the encoder reads: the inputs, or a bi-encoder's two sides."""
        return [[a for a, _ in inputs], [b for _, b in inputs]] if self.spec.input == "bi" else [inputs]

    def _vectors(self, model: Model, inputs: list[Any]) -> tuple[torch.Tensor, torch.Tensor | None]:
        vectors = [model.pooled_vectors(side, self.eval_batch_size, self.bf16) for side in self._sides(inputs)]
        return vectors[0], vectors[1] if len(vectors) > 1 else None

    @property
    def num_train_examples(self) -> int:
        return len(self.train_targets)

    def _pad(self, rows: list[tuple[list[int], list[int]]], index: list[int]) -> Batch:
        return self.tokenizer.pad(
            [rows[i][0] for i in index], [rows[i][1] for i in index] if self.spec.input == "cross" else None
        )

    def epoch_batches(self, epoch: int) -> list[HeadBatch] | list[FeatureBatch]:
        """This epoch's batches: seeded by (seed, epoch), bucketed by (summed) length, padded to the longest."""
        seed = self.seed * 1000 + epoch
        if self.cached:  # vectors have no length: plain shuffled batches
            first, second = self.train_vectors
            index_batches = bucketed_batches([1] * self.num_train_examples, self.batch_size, seed=seed, bucket=False)
            return [
                FeatureBatch(
                    first[i], second[i] if second is not None else None, self.train_targets[i], *self._extras(i)
                )
                for i in index_batches
            ]
        second_rows = self.second
        lengths = [len(ids) + (len(second_rows[i][0]) if second_rows else 0) for i, (ids, _) in enumerate(self.first)]
        index_batches = bucketed_batches(lengths, self.batch_size, seed=seed, bucket=self.bucket)
        return [
            HeadBatch(
                self._pad(self.first, index),
                self._pad(second_rows, index) if second_rows else None,
                self.train_targets[index],
                *self._extras(index),
            )
            for index in index_batches
        ]

    def _extras(self, index: list[int]) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """The batch's rows of the teacher's outputs and of the labelled mask (None without distillation)."""
        return (
            self.teacher_outputs[index] if self.teacher_outputs is not None else None,
            self.labelled[index] if self.labelled is not None else None,
        )

    def loss(self, model: Model, batch: HeadBatch | FeatureBatch) -> torch.Tensor:
        name = self.spec.name
        if isinstance(batch, FeatureBatch):
            u = model.shared(batch.first)
            v = model.shared(batch.second) if batch.second is not None else None
        else:
            u = model.sentence_embedding(batch.first)
            v = model.sentence_embedding(batch.second) if batch.second is not None else None
        raw = model.heads[name](u, v).float()
        if self.distill is None or batch.teacher is None:
            return self._task_loss(raw, u, batch.targets)
        kind = self.spec.loss if self.spec.kind == "classification" else "mse"
        soft = distillation_loss(raw, batch.teacher, kind, self.distill.temperature)
        alpha = self.distill.alpha
        rows = batch.labelled
        if rows is not None and not bool(rows.any()):  # only unlabelled texts in this batch: no task term
            return alpha * soft
        if rows is not None:
            hard = self._task_loss(raw[rows], u[rows], batch.targets[rows])
        else:
            hard = self._task_loss(raw, u, batch.targets)
        return (1 - alpha) * hard + alpha * soft

    def _task_loss(self, raw: torch.Tensor, u: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        if self.scl is not None:
            return ce_plus_scl(raw, u, targets, *self.scl)
        weights = self.weights.to(raw.device) if self.weights is not None else None
        return head_loss(self.spec, raw, targets, weights)

    def evaluate(self, model: Model) -> dict[str, float] | None:
        """Dev metrics of the model as it is now. A multilabel head is scored at the global threshold of best dev
        macro-F1 (thresholds are tuned on dev after training): at a fixed 0.5 an untrained head, which says yes
        to nearly every label, out-scores a trained one and would be the checkpoint kept."""
        if not self.dev:
            return None
        if self.dev_vectors is not None:
            raw = model.heads_on_vectors(self.spec.name, *self.dev_vectors)
        else:
            raw = model.raw_outputs(self.spec.name, self.dev_inputs, self.eval_batch_size, self.bf16)
        spec = self.spec
        if spec.multilabel and not spec.thresholds:
            probabilities = spec.probabilities(raw).numpy()
            tuned = tune_thresholds(probabilities, self.dev_targets.numpy().astype(bool), "global")
            spec = dataclasses.replace(spec, thresholds=tuned)
        return score_raw(spec, raw, self.dev_targets).metrics
