"""The label vocabulary: built from train, saved with the model, checked on every other split."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from minbert.data.readers import Example
from minbert.errors import MinbertError


def _natural_key(label: str) -> tuple[int, float | str]:
    """Numeric labels sort as numbers ('2' < '10'), the rest alphabetically."""
    try:
        return (0, float(label))
    except ValueError:
        return (1, label)


class LabelVocab:
    """Label string <-> class index."""

    def __init__(self, labels: Sequence[str]) -> None:
        if len(set(labels)) != len(labels):
            raise ValueError("duplicate labels in the vocabulary")
        self.labels = list(labels)
        self.index = {label: i for i, label in enumerate(self.labels)}

    @classmethod
    def from_examples(cls, examples: Iterable[Example], multilabel: bool = False) -> LabelVocab:
        """The sorted labels of the examples; of a multi-label set's members, each a label of its own."""
        found = {name for e in examples for name in label_names(e)}
        if len(found) < (1 if multilabel else 2):
            raise MinbertError(f"the training data has {len(found)} distinct label(s); a classifier needs at least 2")
        return cls(sorted(found, key=_natural_key))

    def __len__(self) -> int:
        return len(self.labels)

    def encode(self, example: Example) -> int:
        if isinstance(example.label, tuple):
            raise MinbertError(
                f"{example.where}: holds a label set {list(example.label)!r}, and this head predicts one label; "
                "train a multilabel head (model.multilabel true, or head.multilabel in a multitask run)"
            )
        return self._index(example, example.label)  # type: ignore[arg-type]

    def _index(self, example: Example, label: str) -> int:
        try:
            return self.index[label]
        except KeyError:
            shown = ", ".join(self.labels[:10]) + (", ..." if len(self.labels) > 10 else "")
            raise MinbertError(
                f"{example.where}: label {label!r} does not occur in the training data "
                f"({len(self.labels)} labels: {shown}); fix the row, add training examples of it, or set "
                "data.unseen_labels skip (leave such rows out) or count_wrong (score them as misses)"
            ) from None

    def encode_all(self, examples: Iterable[Example]) -> list[int]:
        return [self.encode(e) for e in examples]

    def multi_hot(self, examples: Iterable[Example]) -> list[list[float]]:
        """One 0/1 row per example with a 1 for each label of its set (a plain label is a set of one)."""
        rows = []
        for example in examples:
            row = [0.0] * len(self.labels)
            for name in label_names(example):
                row[self._index(example, name)] = 1.0
            rows.append(row)
        return rows

    def decode(self, index: int) -> str:
        return self.labels[index]


def label_names(example: Example) -> tuple[str, ...]:
    """The labels of an example: its set (multi-label), or its one label, or none."""
    if isinstance(example.label, tuple):
        return example.label
    return (example.label,) if example.label is not None else ()
