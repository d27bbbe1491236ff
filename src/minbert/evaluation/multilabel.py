"""Multi-label classification: scores over label sets, and the thresholds that turn probabilities into sets.

A multi-label head gives one probability per label; a label is predicted when its probability reaches
the label's threshold. Truth and predictions are (examples, labels) 0/1 matrices; scikit-learn does the
arithmetic. Thresholds are tuned on dev for macro-F1 over a grid of 0.01 ... 0.99: one for every label
(`global`), or each label's own (`per_label`, which maximises each label's F1 and so their mean).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike
from sklearn.metrics import (
    accuracy_score,
    classification_report,
    f1_score,
    hamming_loss,
    precision_recall_fscore_support,
)

THRESHOLD_GRID = np.round(np.arange(0.01, 1.0, 0.01), 2)
THRESHOLD_RULES = ("global", "per_label")


def multilabel_metrics(truth: ArrayLike, predicted: ArrayLike) -> dict[str, float]:
    """Micro-, macro- and samples-F1, subset accuracy (the whole set right; also reported as `accuracy`, which
    selects checkpoints), Hamming loss, and weighted P/R/F1."""
    truth, predicted = np.asarray(truth, dtype=bool), np.asarray(predicted, dtype=bool)
    precision, recall, weighted, _ = precision_recall_fscore_support(
        truth, predicted, average="weighted", zero_division=0
    )
    subset = float(accuracy_score(truth, predicted))
    return {
        "accuracy": subset,
        "subset_accuracy": subset,
        "micro_f1": float(f1_score(truth, predicted, average="micro", zero_division=0)),
        "macro_f1": float(f1_score(truth, predicted, average="macro", zero_division=0)),
        "samples_f1": float(f1_score(truth, predicted, average="samples", zero_division=0)),
        "hamming_loss": float(hamming_loss(truth, predicted)),
        "weighted_precision": float(precision),
        "weighted_recall": float(recall),
        "weighted_f1": float(weighted),
    }


def per_label_report(truth: ArrayLike, predicted: ArrayLike, labels: Sequence[str]) -> dict[str, dict[str, float]]:
    """label -> precision, recall, f1-score, support (every label, as the per-class report of a classifier)."""
    report = classification_report(
        np.asarray(truth, dtype=int),
        np.asarray(predicted, dtype=int),
        labels=list(range(len(labels))),
        target_names=list(labels),
        output_dict=True,
        zero_division=0,
    )
    return {name: values for name, values in report.items() if name in labels}


def label_f1(truth: np.ndarray, probabilities: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """F1 of each label (columns) at each threshold (rows of `thresholds`, broadcast over labels)."""
    predicted = probabilities[None, :, :] >= thresholds[:, None, :]
    positive = truth[None, :, :]
    tp = (predicted & positive).sum(1)
    denominator = predicted.sum(1) + positive.sum(1)
    return np.divide(2 * tp, denominator, out=np.zeros(tp.shape, dtype=float), where=denominator > 0)


def tune_thresholds(probabilities: np.ndarray, truth: np.ndarray, rule: str) -> list[float]:
    """Per-label thresholds of best dev macro-F1 under `rule` (ties: the lowest threshold). A label without
    dev positives keeps 0.5 under per_label (any threshold gives it F1 0 there)."""
    if rule not in THRESHOLD_RULES:
        raise ValueError(f"threshold rule {rule!r} is not one of {THRESHOLD_RULES}")
    truth = np.asarray(truth, dtype=bool)
    grid = np.repeat(THRESHOLD_GRID[:, None], truth.shape[1], axis=1)
    f1 = label_f1(truth, probabilities, grid)  # (grid, labels)
    if rule == "global":
        best = THRESHOLD_GRID[int(f1.mean(1).argmax())]
        return [float(best)] * truth.shape[1]
    chosen = THRESHOLD_GRID[f1.argmax(0)]
    return [float(t) if truth[:, j].any() else 0.5 for j, t in enumerate(chosen)]
