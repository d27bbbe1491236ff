"""Few-shot sampling keeps the label distribution and is deterministic; noise flips exactly the asked fraction."""

from __future__ import annotations

import pytest

from minbert import MinbertError
from minbert.data.readers import Example, read_examples
from minbert.data.sampling import few_shot_sample, inject_label_noise, label_distribution, stratified_counts


@pytest.fixture(scope="module")
def massive_train(data_dir):
    return read_examples(data_dir / "massive_en_us" / "train.jsonl", "massive")


def test_quotas_sum_to_n_and_follow_the_counts():
    counts = {"a": 600, "b": 300, "c": 100}
    assert stratified_counts(counts, 20) == {"a": 12, "b": 6, "c": 2}
    assert sum(stratified_counts(counts, 7).values()) == 7
    assert stratified_counts({"a": 98, "b": 1, "c": 1}, 3) == {"a": 1, "b": 1, "c": 1}


@pytest.mark.parametrize("n", [20, 100, 1000])
def test_few_shot_sample_keeps_the_distribution(massive_train, n):
    sample = few_shot_sample(massive_train, n, seed=3)
    assert len(sample) == n and len({id(e) for e in sample}) == n
    full, got = label_distribution(massive_train), label_distribution(sample)
    if n >= 1000:
        assert max(abs(full[label] - got.get(label, 0.0)) for label in full) <= 1 / n + 1e-9
    else:  # fewer examples than labels x 2: every drawn label is one of the most frequent
        assert all(label in full for label in got)
    assert sample == few_shot_sample(massive_train, n, seed=3)
    assert sample != few_shot_sample(massive_train, n, seed=4)


def test_few_shot_too_large():
    examples = [Example("t", "a", "f", 1)]
    with pytest.raises(MinbertError, match="larger than the training set"):
        few_shot_sample(examples, 5, seed=0)


@pytest.mark.parametrize("fraction", [0.0, 0.1, 0.2, 0.5])
def test_noise_flips_exactly_the_fraction(massive_train, fraction):
    noisy = inject_label_noise(massive_train, fraction, seed=1)
    flipped = sum(a.label != b.label for a, b in zip(massive_train, noisy, strict=True))
    assert flipped == round(fraction * len(massive_train))
    assert [e.text for e in noisy] == [e.text for e in massive_train]
    assert noisy == inject_label_noise(massive_train, fraction, seed=1)
