"""Classification metrics (scikit-learn does the arithmetic; we choose and name them)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.stats import rankdata
from sklearn.metrics import (
    accuracy_score,
    classification_report,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
)


def classification_metrics(y_true: Sequence[int], y_pred: Sequence[int]) -> dict[str, float]:
    """Accuracy, macro-F1 and weighted P/R/F1 over the classes that occur in truth or prediction."""
    precision, recall, f1, _ = precision_recall_fscore_support(y_true, y_pred, average="weighted", zero_division=0)
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, average="macro", zero_division=0)),
        "weighted_precision": float(precision),
        "weighted_recall": float(recall),
        "weighted_f1": float(f1),
    }


def per_class_report(
    y_true: Sequence[int], y_pred: Sequence[int], labels: Sequence[str]
) -> dict[str, dict[str, float]]:
    """label -> precision, recall, f1-score, support (only classes present in truth or prediction)."""
    present = sorted(set(y_true) | set(y_pred))
    report = classification_report(
        y_true, y_pred, labels=present, target_names=[labels[i] for i in present], output_dict=True, zero_division=0
    )
    return {name: values for name, values in report.items() if name in labels}


def confusion(y_true: Sequence[int], y_pred: Sequence[int], num_labels: int) -> np.ndarray:
    return confusion_matrix(y_true, y_pred, labels=list(range(num_labels)))


def pearson(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray) -> float:
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.std() == 0 or y.std() == 0:
        return float("nan")
    return float(np.corrcoef(x, y)[0, 1])


def spearman(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray) -> float:
    """Pearson correlation of the ranks (ties get their average rank)."""
    return pearson(rankdata(x), rankdata(y))


def regression_metrics(y_true: Sequence[float], y_pred: Sequence[float]) -> dict[str, float]:
    """Pearson and Spearman correlation (the STS metrics) and mean squared error."""
    t, p = np.asarray(y_true, dtype=float), np.asarray(y_pred, dtype=float)
    return {"pearson": pearson(t, p), "spearman": spearman(t, p), "mse": float(((t - p) ** 2).mean())}
