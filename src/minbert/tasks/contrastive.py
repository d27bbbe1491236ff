"""Contrastive training of the encoder (the first stage of seed 000's two-stage protocol).

    simcse   each batch is encoded twice; the two dropout masks make two views of every sentence,
             and the other sentences of the batch are the negatives (Gao et al. 2021).
    supcon   sentences sharing a label are positives (Khosla et al. 2020). With views=1 each batch is
             encoded once (seed 000): at bs 16 over 60 intents most anchors have no positive and only
             serve as negatives. views=2 encodes it twice, as Khosla et al.'s multiviewed batch: every
             anchor then has at least its own dropout twin as a positive.

The loss reads L2-normalised pooled vectors, optionally through a projection head that is
thrown away afterwards (SimCLR's practice). The heads then train on the encoder. A multitask run's
stage reads every task's sentences (both sides of pairs) for SimCSE, and the single-sentence
classification tasks' labelled sentences for SupCon (labels kept apart per task).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from minbert.data.batching import bucketed_batches
from minbert.data.labels import LabelVocab
from minbert.data.readers import Example
from minbert.model.encoder import Encoder
from minbert.model.heads import Pooling
from minbert.model.tokenizer import Batch, Tokenizer
from minbert.train.losses import nt_xent, supcon


@dataclass
class ContrastiveBatch:
    """Tokenised sentences and their labels (SupCon's positives; unused by SimCSE)."""

    inputs: Batch
    targets: torch.Tensor

    def to(self, device: torch.device) -> ContrastiveBatch:
        return ContrastiveBatch(self.inputs.to(device), self.targets.to(device))

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


class ContrastiveTask:
    """Batches of tokenised sentences (with labels for SupCon) and the contrastive loss; no dev metric."""

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
    ) -> None:
        """`labels` may be None for SimCSE, which needs none."""
        if objective not in ("simcse", "supcon"):
            raise ValueError(f"unknown contrastive objective {objective!r}")
        if views not in (1, 2):
            raise ValueError(f"views must be 1 or 2, not {views}")
        self.tokenizer, self.objective, self.temperature, self.views = tokenizer, objective, temperature, views
        self.batch_size, self.seed, self.bucket = batch_size, seed, bucket
        if objective == "supcon" and labels is None:
            raise ValueError("supcon needs the labels of its sentences")
        self.ids = tokenizer.ids([e.text for e in train])
        self.targets = torch.tensor(labels.encode_all(train) if labels is not None else [0] * len(train))

    @property
    def num_train_examples(self) -> int:
        return len(self.ids)

    def epoch_batches(self, epoch: int) -> list[ContrastiveBatch]:
        index_batches = bucketed_batches(
            [len(i) for i in self.ids], self.batch_size, seed=self.seed * 1000 + epoch + 500, bucket=self.bucket
        )
        return [
            ContrastiveBatch(self.tokenizer.pad([self.ids[i] for i in index]), self.targets[index])
            for index in index_batches
            if len(index) > 1
        ]

    def loss(self, model: ContrastiveModel, batch: ContrastiveBatch) -> torch.Tensor:
        first = model(batch)
        if self.objective == "simcse":
            return nt_xent(first, model(batch), self.temperature)
        if self.views == 2:
            return supcon(torch.cat([first, model(batch)]), batch.targets.repeat(2), self.temperature)
        return supcon(first, batch.targets, self.temperature)

    def evaluate(self, model: nn.Module) -> None:
        return None
