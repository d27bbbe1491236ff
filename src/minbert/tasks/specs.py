"""A head described once, from its task config and training rows: the one `HeadSpec` builder that the
file-based run and the Python API share."""

from __future__ import annotations

from minbert.config import SINGLE_TASK, TaskConfig
from minbert.data.labels import LabelVocab
from minbert.data.readers import Example
from minbert.errors import MinbertError
from minbert.model.heads import HeadSpec


def is_multilabel(task: TaskConfig, train: list[Example]) -> bool:
    """A classification head is multi-label when asked, when its labels are split on a separator, or when the
    training rows carry label sets (JSON lists, the goemotions format)."""
    head, data = task.head, task.data
    found = head.kind == "classification" and (
        head.multilabel or data.label_separator is not None or any(isinstance(e.label, tuple) for e in train)
    )
    where = "model" if task.name == SINGLE_TASK else f"tasks.{task.name}.head"
    if head.kind == "classification" and not found and "multilabel_threshold" in head.changed():
        raise MinbertError(
            f"{where}.multilabel_threshold is read by a multilabel head, and the training data has one label per row; "
            f"set {where}.multilabel true (or data.label_separator)"
        )
    if found and head.loss not in ("ce", "bce"):
        raise MinbertError(f"{where}: a multilabel head trains with loss bce, not {head.loss}")
    return found


def split_unseen(spec: HeadSpec, examples: list[Example]) -> tuple[list[Example], list[Example]]:
    """(rows whose labels the head knows, rows with a label it never saw in training) of a classification head;
    a multi-label row is unseen when any of its labels is."""
    if spec.kind != "classification":
        return examples, []
    known = set(spec.labels)
    seen: list[Example] = []
    unseen: list[Example] = []
    for e in examples:
        labels = e.label if isinstance(e.label, tuple) else (e.label,)
        (seen if all(label in known for label in labels) else unseen).append(e)
    return seen, unseen


def head_spec(task: TaskConfig, train: list[Example]) -> HeadSpec:
    """The head a task trains: its config's shape, the labels of its whole training split (so a few-shot
    sample still knows every class), bce for a multi-label head."""
    head = task.head
    multilabel = is_multilabel(task, train)
    labels = LabelVocab.from_examples(train, multilabel).labels if head.kind == "classification" else []
    return HeadSpec(
        name=task.name,
        kind=head.kind,
        input=head.input,
        features=head.features,
        loss="bce" if multilabel else head.loss,
        multilabel=multilabel,
        labels=labels,
        hidden_size=head.hidden_size,
        activation=head.activation,
        dropout=head.dropout,
        target_range=list(head.target_range) if head.target_range else [0.0, 1.0],
    )
