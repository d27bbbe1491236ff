"""Small builders the tests share."""

from __future__ import annotations

from collections.abc import Sequence

from minbert.model.heads import HeadSpec
from minbert.model.task_model import Model


def classifier(
    labels: Sequence[str], *, pooling: str = "cls", hidden_size: int = 512, dropout: float = 0.1, max_length: int = 128
) -> Model:
    """A new single-sentence classifier (one head, named 'main' like a single-task run's) on the default checkpoint."""
    head = HeadSpec("main", labels=list(labels), hidden_size=hidden_size, dropout=dropout)
    return Model.from_checkpoint(None, [head], pooling=pooling, max_length=max_length)
