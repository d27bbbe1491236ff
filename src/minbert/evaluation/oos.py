"""Out-of-scope detection: how well an in-scope score separates known intents from everything else.

Scores are "higher = more in-scope" (max softmax probability, negative energy); an input is
rejected when its score is below the threshold. `choose_threshold` picks the threshold on dev;
`oos_metrics` reports the paper-style numbers (CLINC150, Larson et al. 2019) for a threshold and
the threshold-free ones (AUROC, AUPR and FPR at 95 % TPR, out-of-scope as the positive class).
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve


def oos_metrics(
    in_scores: np.ndarray, in_correct: np.ndarray, oos_scores: np.ndarray, threshold: float | None
) -> dict[str, float]:
    """in_correct: whether the top class of each in-scope input is its gold label."""
    truth = np.concatenate([np.zeros(len(in_scores)), np.ones(len(oos_scores))])  # 1 = out-of-scope
    suspicion = -np.concatenate([in_scores, oos_scores])  # higher = more out-of-scope
    fpr, tpr, _ = roc_curve(truth, suspicion)
    metrics = {
        "oos_auroc": float(roc_auc_score(truth, suspicion)),
        "oos_aupr": float(average_precision_score(truth, suspicion)),
        "fpr_at_95_tpr": float(fpr[np.searchsorted(tpr, 0.95)]),
        "in_scope_accuracy_without_rejection": float(in_correct.mean()),
    }
    return metrics | (at_threshold(in_scores, in_correct, oos_scores, threshold) if threshold is not None else {})


def at_threshold(in_scores: np.ndarray, in_correct: np.ndarray, oos_scores: np.ndarray, threshold: float) -> dict:
    """`rejection_metrics` of rejecting every input whose in-scope score is below `threshold`."""
    return rejection_metrics(in_correct, in_scores < threshold, oos_scores < threshold)


def rejection_metrics(in_correct: np.ndarray, in_rejected: np.ndarray, oos_caught: np.ndarray) -> dict:
    """In-scope accuracy (a rejected in-scope input counts as wrong) and OOS recall / precision / F1, from which
    inputs were flagged out-of-scope (by a threshold, or by predicting an oos class)."""
    flagged = in_rejected.sum() + oos_caught.sum()
    recall = float(oos_caught.mean()) if len(oos_caught) else 0.0
    precision = float(oos_caught.sum() / flagged) if flagged else 0.0
    return {
        "in_scope_accuracy": float((in_correct & ~in_rejected).mean()),
        "oos_recall": recall,
        "oos_precision": precision,
        "oos_f1": 2 * precision * recall / (precision + recall) if precision + recall else 0.0,
    }


CRITERIA = ("f1", "recall")


def choose_threshold(
    in_scores: np.ndarray,
    in_correct: np.ndarray,
    oos_scores: np.ndarray | None,
    in_scope_recall: float = 0.95,
    max_accuracy_drop: float = 0.01,
    criterion: str = "f1",
) -> float:
    """With out-of-scope dev texts: among the thresholds that cost at most `max_accuracy_drop` of in-scope
    accuracy (rejected in-scope inputs count as wrong), the one of best OOS F1 (`f1`), or of most OOS recall
    (`recall`: the whole budget spent on catching out-of-scope inputs). Without them: the threshold that keeps
    `in_scope_recall` of the in-scope dev inputs."""
    if criterion not in CRITERIA:
        raise ValueError(f"criterion {criterion!r} is not one of {CRITERIA}")
    if oos_scores is None or len(oos_scores) == 0:
        return float(np.quantile(in_scores, 1.0 - in_scope_recall))
    floor = in_correct.mean() - max_accuracy_drop
    best, best_value = float(in_scores.min()), -1.0
    for threshold in np.unique(np.concatenate([in_scores, oos_scores])):
        if (in_correct & (in_scores >= threshold)).mean() < floor:
            break  # the accuracy only falls as the threshold rises
        value = at_threshold(in_scores, in_correct, oos_scores, float(threshold))[f"oos_{criterion}"]
        if value > best_value or (criterion == "recall" and value == best_value):
            best, best_value = float(threshold), value
    return best
