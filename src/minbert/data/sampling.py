"""Training-set manipulations for the few-shot and robustness protocols (Gunel et al. 2021).

few_shot_sample   N examples that follow the training set's label distribution, seeded
per_class_sample  K examples of every class, seeded (SetFit's and DNNC's protocol)
inject_label_noise  flip exactly round(fraction * N) labels to a different label, seeded
split_examples    train/dev/test parts of one labelled file (datasets without official splits), seeded
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections import Counter, defaultdict
from collections.abc import Sequence

from minbert.data.readers import Example
from minbert.errors import MinbertError


def stratified_counts(counts: dict[str, int], n: int) -> dict[str, int]:
    """Per-label quotas summing to n, proportional to counts (largest remainder), at least 1 per label while n allows."""
    total = sum(counts.values())
    exact = {label: n * c / total for label, c in counts.items()}
    quota = {label: math.floor(v) for label, v in exact.items()}
    if n >= len(counts):
        for label in quota:
            quota[label] = max(1, quota[label])
    while sum(quota.values()) > n:  # the minimum-1 rule can overshoot: take from the largest quotas
        largest = max(
            (label for label in quota if quota[label] > 1),
            key=lambda label: (quota[label] - exact[label], quota[label]),
        )
        quota[largest] -= 1
    by_remainder = sorted(counts, key=lambda label: (exact[label] - quota[label], counts[label], label), reverse=True)
    for label in by_remainder[: n - sum(quota.values())]:
        quota[label] += 1
    return {label: min(q, counts[label]) for label, q in quota.items()}


def few_shot_sample(examples: Sequence[Example], n: int, seed: int) -> list[Example]:
    """n examples drawn per label in proportion to the label distribution; same seed, same sample."""
    if n > len(examples):
        raise MinbertError(f"few-shot N={n} is larger than the training set ({len(examples)} examples)")
    by_label: dict[str, list[Example]] = defaultdict(list)
    for example in examples:
        by_label[example.label].append(example)  # type: ignore[index]
    rng = random.Random(seed)
    quota = stratified_counts({label: len(group) for label, group in by_label.items()}, n)
    chosen = [e for label in sorted(by_label) for e in rng.sample(by_label[label], quota[label])]
    rng.shuffle(chosen)
    return chosen


def per_class_sample(examples: Sequence[Example], k: int, seed: int) -> list[Example]:
    """K examples of every class (all of a class that has fewer), drawn with a seeded generator: the per-class
    few-shot protocol of SetFit and DNNC. Same examples, seed and k give the same sample, in the same order."""
    by_label: dict[str, list[Example]] = defaultdict(list)
    for example in examples:
        if not isinstance(example.label, str):
            raise MinbertError(
                f"{example.where}: shots_per_class samples single-label rows; this row has {example.label!r}"
            )
        by_label[example.label].append(example)
    rng = random.Random(seed)
    chosen = [e for label in sorted(by_label) for e in rng.sample(by_label[label], min(k, len(by_label[label])))]
    rng.shuffle(chosen)
    return chosen


def inject_label_noise(examples: Sequence[Example], fraction: float, seed: int) -> list[Example]:
    """A copy with exactly round(fraction * N) labels replaced by a different, uniformly drawn label."""
    if not 0 <= fraction <= 1:
        raise MinbertError(f"noise fraction {fraction} must be between 0 and 1")
    labels = sorted({e.label for e in examples})  # type: ignore[type-var]
    if len(labels) < 2:
        raise MinbertError("label noise needs at least two labels")
    rng = random.Random(seed)
    flipped = set(rng.sample(range(len(examples)), round(fraction * len(examples))))
    return [
        dataclasses.replace(e, label=rng.choice([label for label in labels if label != e.label])) if i in flipped else e
        for i, e in enumerate(examples)
    ]


def label_distribution(examples: Sequence[Example]) -> dict[str, float]:
    counts = Counter(e.label for e in examples)
    return {label: c / len(examples) for label, c in counts.items()}  # type: ignore[misc]


def split_examples(
    examples: Sequence[Example], fractions: Sequence[float], seed: int, max_strata: int = 50
) -> list[list[Example]]:
    """Seeded parts of sizes ~fractions, stratified by label when there are few distinct labels
    (classes); many distinct labels (regression scores) are split at random. Every example lands in
    exactly one part."""
    rng = random.Random(seed)
    by_label: dict[str | tuple[str, ...] | None, list[Example]] = defaultdict(list)
    for example in examples:
        by_label[example.label].append(example)
    strata = list(by_label.values()) if len(by_label) <= max_strata else [list(examples)]
    parts: list[list[Example]] = [[] for _ in fractions]
    for stratum in strata:
        stratum = list(stratum)
        rng.shuffle(stratum)
        bounds = [round(sum(fractions[: i + 1]) * len(stratum)) for i in range(len(fractions))]
        start = 0
        for part, end in zip(parts, bounds, strict=True):
            part.extend(stratum[start:end])
            start = end
    for part in parts:
        rng.shuffle(part)
    return parts
