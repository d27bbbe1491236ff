"""Multi-label metrics and thresholds against hand computations and brute force."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from minbert.evaluation.multilabel import THRESHOLD_GRID, multilabel_metrics, per_label_report, tune_thresholds
from minbert.model.heads import HeadSpec
from minbert.model.task_model import predictions
from minbert.tasks.head_task import class_weights, head_loss


def test_multilabel_metrics_by_hand():
    truth = np.array([[1, 0, 1], [0, 1, 0], [1, 1, 0], [0, 0, 1]])
    guess = np.array([[1, 0, 0], [0, 1, 0], [1, 1, 1], [0, 0, 0]])
    m = multilabel_metrics(truth, guess)
    # label 0: tp 2 fp 0 fn 0 -> F1 1; label 1: tp 2 -> 1; label 2: tp 0, fp 1, fn 2 -> 0
    assert m["macro_f1"] == pytest.approx((1 + 1 + 0) / 3)
    tp, fp, fn = 4, 1, 2
    assert m["micro_f1"] == pytest.approx(2 * tp / (2 * tp + fp + fn))
    # per row: 2*|t&g| / (|t| + |g|) -> 2/3, 1, 4/5, 0 (an empty guess against a non-empty truth)
    assert m["samples_f1"] == pytest.approx((2 / 3 + 1 + 4 / 5 + 0) / 4)
    assert m["subset_accuracy"] == m["accuracy"] == pytest.approx(1 / 4)
    assert m["hamming_loss"] == pytest.approx(3 / 12)
    report = per_label_report(truth, guess, ["a", "b", "c"])
    assert report["c"]["recall"] == 0 and report["a"]["support"] == 2 and set(report) == {"a", "b", "c"}


@pytest.mark.parametrize("rule", ["global", "per_label"])
def test_tuned_thresholds_are_the_brute_force_best_for_macro_f1(rule):
    rng = np.random.default_rng(1)
    truth = rng.random((80, 3)) < np.array([0.5, 0.2, 0.05])
    probabilities = np.clip(truth * 0.35 + rng.random((80, 3)) * 0.6, 0, 1)

    def macro_f1(thresholds):  # numpy, not scikit-learn: the brute force below calls it thousands of times
        guess = probabilities >= np.asarray(thresholds)
        tp, predicted, positive = (guess & truth).sum(0), guess.sum(0), truth.sum(0)
        return np.mean(np.where(predicted + positive > 0, 2 * tp / np.maximum(predicted + positive, 1), 0.0))

    assert macro_f1([0.5] * 3) == pytest.approx(multilabel_metrics(truth, probabilities >= 0.5)["macro_f1"])

    chosen = tune_thresholds(probabilities, truth, rule)
    grid = THRESHOLD_GRID[::7]  # a coarse brute force: the tuned thresholds must do at least as well
    candidates = [[t] * 3 for t in THRESHOLD_GRID] if rule == "global" else itertools.product(grid, repeat=3)
    best = max(macro_f1(c) for c in candidates)
    assert macro_f1(chosen) >= best - 1e-12
    if rule == "global":
        assert len(set(chosen)) == 1 and macro_f1(chosen) == pytest.approx(best)


def test_a_label_without_dev_positives_keeps_one_half():
    truth = np.array([[1, 0], [0, 0], [1, 0]], dtype=bool)
    assert tune_thresholds(np.array([[0.9, 0.3], [0.2, 0.1], [0.7, 0.8]]), truth, "per_label")[1] == 0.5


def test_predictions_give_the_label_set_and_flag_an_empty_one():
    spec = HeadSpec("main", loss="bce", multilabel=True, labels=["joy", "anger", "fear"], thresholds=[0.5, 0.3, 0.9])
    raw = torch.logit(torch.tensor([[0.6, 0.4, 0.8], [0.2, 0.1, 0.3]]))
    first, second = predictions(spec, raw)
    assert first.labels == ["joy", "anger"] and first.none_above_threshold is False  # type: ignore[union-attr]
    assert second.labels == ["fear"] and second.none_above_threshold is True  # type: ignore[union-attr]
    assert first.probabilities["fear"] == pytest.approx(0.8)  # type: ignore[union-attr]


def test_multilabel_class_weights_are_bce_pos_weights():
    spec = HeadSpec("main", loss="bce", multilabel=True, labels=["a", "b", "c"])
    targets = torch.tensor([[1.0, 0, 0], [1, 1, 0], [0, 0, 0], [1, 0, 0]])
    weights = class_weights(spec, targets, "balanced")
    assert weights.tolist() == pytest.approx([1 / 3, 3.0, 1.0])  # negatives / positives; no positive: 1
    raw = torch.tensor([[0.3, -1.0, 0.2], [1.0, 0.5, -0.3], [0.0, 0.0, 0.0], [2.0, -2.0, 1.0]])
    manual = -(
        weights * targets * torch.log(torch.sigmoid(raw)) + (1 - targets) * torch.log(1 - torch.sigmoid(raw))
    ).mean()
    assert head_loss(spec, raw, targets, weights).item() == pytest.approx(manual.item(), rel=1e-5)
    assert class_weights(spec, targets, {"b": 4.0}).tolist() == [1.0, 4.0, 1.0]
