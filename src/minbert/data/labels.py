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
    def from_examples(cls, examples: Iterable[Example]) -> LabelVocab:
        found = {e.label for e in examples if e.label is not None}
        if len(found) < 2:
            raise MinbertError(f"the training data has {len(found)} distinct label(s); a classifier needs at least 2")
        return cls(sorted(found, key=_natural_key))

    def __len__(self) -> int:
        return len(self.labels)

    def encode(self, example: Example) -> int:
        try:
            return self.index[example.label]  # type: ignore[index]
        except KeyError:
            shown = ", ".join(self.labels[:10]) + (", ..." if len(self.labels) > 10 else "")
            raise MinbertError(
                f"{example.where}: label {example.label!r} does not occur in the training data "
                f"({len(self.labels)} labels: {shown}); fix the row or add training examples of it"
            ) from None

    def encode_all(self, examples: Iterable[Example]) -> list[int]:
        return [self.encode(e) for e in examples]

    def decode(self, index: int) -> str:
        return self.labels[index]
