"""Contrastive training of the encoder (the first stage of seed 000's two-stage protocol).

    simcse   each batch is encoded twice; the two dropout masks make two views of every sentence,
             and the other sentences of the batch are the negatives (Gao et al. 2021).
    supcon   sentences sharing a label are positives (Khosla et al. 2020). With views=1 each batch is
             encoded once (seed 000): at bs 16 over 60 intents most anchors have no positive and only
             serve as negatives. views=2 encodes it twice, as Khosla et al.'s multiviewed batch: every
             anchor then has at least its own dropout twin as a positive.
    pairs    SetFit's body training (Tunstall et al. 2022): pairs drawn from the labelled sentences,
             each sentence with one same-label and one other-label partner per round, the cosine of
             a pair regressed onto 1 or 0. It needs no large batch, which suits a few rows per class.

The loss reads L2-normalised pooled vectors, optionally through a projection head that is
thrown away afterwards (SimCLR's practice). The heads then train on the encoder. A multitask run's
stage reads every task's sentences (both sides of pairs) for SimCSE, and the single-sentence
classification tasks' labelled sentences for SupCon (labels kept apart per task).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from minbert.config import RunConfig
from minbert.data.batching import bucketed_batches
from minbert.data.labels import LabelVocab, label_names
from minbert.data.prepare import TaskData
from minbert.data.readers import Example
from minbert.errors import MinbertError
from minbert.model.encoder import Encoder
from minbert.model.heads import HeadSpec, Pooling
from minbert.model.task_model import Model
from minbert.model.tokenizer import Batch, Tokenizer
from minbert.training.losses import cosine_pairs, nt_xent, supcon
from minbert.training.metrics_log import MetricsLog
from minbert.training.trainer import Trainer

log = logging.getLogger("minbert")


@dataclass
class ContrastiveBatch:
    """Tokenised sentences and their labels (SupCon's positives; unused by SimCSE). For pairs: each distinct
    sentence of the batch's pairs once, `pair_rows` (2 x pairs) the rows of each pair's sentence and partner,
    and one target (1 same label, 0 not) per pair."""

    inputs: Batch
    targets: torch.Tensor
    pair_rows: torch.Tensor | None = None

    def to(self, device: torch.device) -> ContrastiveBatch:
        rows = self.pair_rows.to(device) if self.pair_rows is not None else None
        return ContrastiveBatch(self.inputs.to(device), self.targets.to(device), rows)

    def __len__(self) -> int:
        return len(self.targets)


class ContrastiveModel(nn.Module):
    """Encoder + pooling + optional projection: what the contrastive loss sees."""

    def __init__(self, encoder: Encoder, pooling: Pooling, projection_size: int = 0) -> None:
        super().__init__()
        self.encoder, self.pooling = encoder, pooling
        hidden = encoder.config.hidden_size
        self.projection = (
            nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, projection_size))
            if projection_size
            else nn.Identity()
        )

    def forward(self, batch: ContrastiveBatch) -> torch.Tensor:
        output = self.encoder(**batch.inputs.as_kwargs())
        return self.projection(self.pooling(output, batch.inputs.attention_mask))


OBJECTIVES = ("simcse", "supcon", "pairs")


class ContrastiveTask:
    """Batches of tokenised sentences (with labels for SupCon and pairs) and the contrastive loss; no dev metric."""

    def __init__(
        self,
        tokenizer: Tokenizer,
        labels: LabelVocab | None,
        train: Sequence[Example],
        *,
        objective: str,
        temperature: float,
        batch_size: int,
        seed: int,
        bucket: bool = True,
        views: int = 1,
        pair_iterations: int = 20,
    ) -> None:
        """`labels` may be None for SimCSE, which needs none."""
        if objective not in OBJECTIVES:
            raise ValueError(f"unknown contrastive objective {objective!r}")
        if views not in (1, 2):
            raise ValueError(f"views must be 1 or 2, not {views}")
        self.tokenizer, self.objective, self.temperature, self.views = tokenizer, objective, temperature, views
        self.batch_size, self.seed, self.bucket, self.pair_iterations = batch_size, seed, bucket, pair_iterations
        if objective != "simcse" and labels is None:
            raise ValueError(f"{objective} needs the labels of its sentences")
        self.ids = tokenizer.ids([e.text for e in train])
        self.targets = torch.tensor(labels.encode_all(train) if labels is not None else [0] * len(train))
        self.candidates = self._pair_candidates() if objective == "pairs" else []

    @property
    def num_train_examples(self) -> int:
        return len(self.ids)

    def _pair_candidates(self) -> list[list[tuple[np.ndarray, float]]]:
        """Each sentence's partners to draw from, with the target: the others of its label (1; left out when it is
        alone in its class) and the sentences of other labels (0; left out when there is one class). The same for
        every epoch, so they are found once."""
        labels = self.targets.numpy()
        other = {label: np.flatnonzero(labels != label) for label in set(labels.tolist())}
        candidates = []
        for i, label in enumerate(labels.tolist()):
            same = np.flatnonzero(labels == label)
            choices = ((same[same != i], 1.0), (other[label], 0.0))
            candidates.append([(partners, target) for partners, target in choices if len(partners)])
        return candidates

    @property
    def pairs_per_epoch(self) -> int:
        return self.pair_iterations * sum(map(len, self.candidates))

    def pairs(self, epoch: int) -> list[tuple[int, int, float]]:
        """One epoch's (sentence, partner, target) pairs: in each of `pair_iterations` rounds every sentence gets
        a random partner from each of its candidates (a same-label one and one of another label), as SetFit
        draws them. Seeded by the epoch."""
        rng = np.random.default_rng(self.seed * 1000 + epoch + 700)
        return [
            (i, int(rng.choice(partners)), target)
            for _ in range(self.pair_iterations)
            for i, choices in enumerate(self.candidates)
            for partners, target in choices
        ]

    def epoch_batches(self, epoch: int) -> list[ContrastiveBatch]:
        if self.objective == "pairs":
            return self._pair_batches(epoch)
        index_batches = bucketed_batches(
            [len(i) for i in self.ids], self.batch_size, seed=self.seed * 1000 + epoch + 500, bucket=self.bucket
        )
        return [
            ContrastiveBatch(self.tokenizer.pad([self.ids[i] for i in index]), self.targets[index])
            for index in index_batches
            if len(index) > 1
        ]

    def _pair_batches(self, epoch: int) -> list[ContrastiveBatch]:
        pairs = self.pairs(epoch)
        lengths = [max(len(self.ids[i]), len(self.ids[j])) for i, j, _ in pairs]
        index_batches = bucketed_batches(
            lengths, self.batch_size, seed=self.seed * 1000 + epoch + 500, bucket=self.bucket
        )
        return [self._pair_batch([pairs[k] for k in index]) for index in index_batches]

    def _pair_batch(self, pairs: list[tuple[int, int, float]]) -> ContrastiveBatch:
        """A sentence met in several pairs of the batch is encoded once: with few rows per class a batch of 16
        pairs holds about 22 distinct sentences of its 32 (SST-5, 8 per class: the stage took 47 s, not 109 s)."""
        sentences = sorted({i for pair in pairs for i in pair[:2]})
        row = {sentence: r for r, sentence in enumerate(sentences)}
        return ContrastiveBatch(
            self.tokenizer.pad([self.ids[i] for i in sentences]),
            torch.tensor([target for _, _, target in pairs]),
            torch.tensor([[row[i] for i, _, _ in pairs], [row[j] for _, j, _ in pairs]]),
        )

    def loss(self, model: ContrastiveModel, batch: ContrastiveBatch) -> torch.Tensor:
        first = model(batch)
        if self.objective == "pairs":
            assert batch.pair_rows is not None
            return cosine_pairs(first[batch.pair_rows[0]], first[batch.pair_rows[1]], batch.targets)
        if self.objective == "simcse":
            return nt_xent(first, model(batch), self.temperature)
        if self.views == 2:
            return supcon(torch.cat([first, model(batch)]), batch.targets.repeat(2), self.temperature)
        return supcon(first, batch.targets, self.temperature)

    def evaluate(self, model: nn.Module) -> None:
        return None


def contrastive_examples(
    specs: list[HeadSpec], data: dict[str, TaskData], objective: str
) -> tuple[list[Example], LabelVocab | None]:
    """What the contrastive stage trains on: every sentence (SimCSE), or the labelled single sentences
    of the classification tasks, labels kept apart per task when there are several (SupCon and pairs; a
    multilabel row's positives are the rows with the same label set)."""
    if objective == "simcse":
        sentences = [
            Example(text, None, e.source, e.line)
            for spec in specs
            for e in data[spec.name].train
            for text in (e.text, e.text_pair)
            if text is not None
        ]
        return sentences, None
    labelled = [s for s in specs if s.kind == "classification" and s.input == "single"]
    if not labelled:
        raise MinbertError(
            f"contrastive.objective {objective} needs a classification task on single sentences (its labels make the positives); use simcse"
        )
    several = len(labelled) > 1

    def positive_key(spec: HeadSpec, example: Example) -> str:
        """Rows with the same key are positives: the same label, or (multilabel) the same label set."""
        label = " + ".join(sorted(label_names(example))) if spec.multilabel else str(example.label)
        return f"{spec.name}:{label}" if several else label

    examples = [
        Example(e.text, positive_key(spec, e), e.source, e.line) for spec in labelled for e in data[spec.name].train
    ]
    return examples, LabelVocab.from_examples(examples)


def contrastive_stage(
    model: Model,
    specs: list[HeadSpec],
    data: dict[str, TaskData],
    config: RunConfig,
    metrics_log: MetricsLog,
    device: torch.device,
    checkpoint_dir: Path | None,
) -> None:
    """Stage one of the two-stage protocol: contrastive training of the encoder (the projection is discarded)."""
    stage = config.contrastive
    examples, labels = contrastive_examples(specs, data, stage.objective)
    stage_model = ContrastiveModel(model.encoder, model.pooling, stage.projection_size)
    task = ContrastiveTask(
        model.tokenizer,
        labels,
        examples,
        objective=stage.objective,
        temperature=stage.temperature,
        batch_size=stage.batch_size,
        views=stage.views,
        pair_iterations=stage.pair_iterations,
        seed=config.train.seed,
        bucket=config.train.bucket,
    )
    stage_config = config.train.model_copy(
        update={
            "epochs": stage.epochs,
            "batch_size": stage.batch_size,
            "lr": stage.lr,
            "head_lr": None,
            "warmup_ratio": stage.warmup_ratio,
            "schedule": stage.schedule,
            "llrd": 1.0,
            "eval_before": False,
            "patience": None,
            "eval_every": 0,
        }
    )
    shape = (
        f"{task.pairs_per_epoch} pairs an epoch ({stage.pair_iterations} rounds of drawing)"
        if stage.objective == "pairs"
        else f"tau {stage.temperature:g}, {stage.views} view(s)"
    )
    log.info("contrastive stage: %s, %s, %d epochs of %d examples", stage.objective, shape, stage.epochs, len(examples))
    fit = Trainer(
        stage_model, task, stage_config, metrics_log, device, stage="contrastive_", checkpoint_dir=checkpoint_dir
    ).fit()
    log.info("contrastive stage done in %.0f s (%.0f examples/s)", fit.train_seconds, fit.examples_per_second)
