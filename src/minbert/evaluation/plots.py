"""Pictures people would rather look at than read: learning curves, LR schedule, confusion matrix, reliability
diagram, out-of-scope scores."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, BinaryIO

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def _smooth(raw: Sequence[float], window: int) -> np.ndarray:
    values = np.asarray(raw, dtype=float)
    if window <= 1 or len(values) < window:
        return values
    kernel = np.ones(window) / window
    return np.convolve(values, kernel, mode="valid")


def plot_learning_curves(records: list[dict[str, Any]], path: Path, metric: str = "accuracy") -> Path:
    """Training loss (raw and smoothed) and dev loss on the left, the dev metric on the right, against steps."""
    train = [r for r in records if r["event"] == "train"]
    dev = [r for r in records if r["event"] == "dev"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    if train:
        steps = [r["step"] for r in train]
        losses = [r["loss"] for r in train]
        window = max(1, len(losses) // 50)
        left.plot(
            steps, losses, color="tab:blue", alpha=0.25 if window > 1 else 1.0, linewidth=0.8, label="train loss (step)"
        )
        if window > 1:
            smoothed = _smooth(losses, window)
            left.plot(
                steps[len(steps) - len(smoothed) :],
                smoothed,
                color="tab:blue",
                label=f"train loss (mean of {window} steps)",
            )
    if dev:
        left.plot([r["step"] for r in dev], [r["loss"] for r in dev], "o-", color="tab:orange", label="dev loss")
        right.plot([r["step"] for r in dev], [r[metric] for r in dev], "o-", color="tab:green", label=f"dev {metric}")
        best = max(dev, key=lambda r: r[metric]) if metric != "loss" else min(dev, key=lambda r: r[metric])
        right.annotate(
            f"best {best[metric]:.4f}",
            (best["step"], best[metric]),
            textcoords="offset points",
            xytext=(0, -15),
            ha="center",
        )
    left.set(xlabel="optimizer step", ylabel="loss", title="Loss")
    right.set(xlabel="optimizer step", ylabel=metric, title=f"Dev {metric}")
    for axis in (left, right):
        axis.grid(alpha=0.3)
        if axis.get_legend_handles_labels()[0]:
            axis.legend(loc="best", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_lr_schedule(records: list[dict[str, Any]], path: Path) -> Path:
    train = [r for r in records if r["event"] == "train"]
    fig, axis = plt.subplots(figsize=(6, 3.2))
    axis.plot([r["step"] for r in train], [r["lr"] for r in train], color="tab:purple")
    axis.set(xlabel="optimizer step", ylabel="peak learning rate", title="Learning-rate schedule")
    axis.grid(alpha=0.3)
    axis.ticklabel_format(axis="y", style="sci", scilimits=(0, 0))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_confusion(matrix: np.ndarray, labels: Sequence[str], path: Path, title: str = "Confusion matrix") -> Path:
    """Row-normalised (recall per true class), so large and small classes read the same."""
    totals = matrix.sum(axis=1, keepdims=True)
    normalised = np.divide(matrix, totals, out=np.zeros_like(matrix, dtype=float), where=totals > 0)
    n = len(labels)
    size = min(22, max(5, 0.28 * n + 2))
    fig, axis = plt.subplots(figsize=(size, size * 0.9))
    image = axis.imshow(normalised, cmap="Blues", vmin=0, vmax=1)
    font = 10 if n <= 12 else 7 if n <= 40 else 6
    axis.set_xticks(range(n), labels, rotation=90, fontsize=font)
    axis.set_yticks(range(n), labels, fontsize=font)
    axis.set(xlabel="predicted", ylabel="true", title=title)
    if n <= 12:
        for (i, j), count in np.ndenumerate(matrix):
            axis.text(
                j,
                i,
                str(count),
                ha="center",
                va="center",
                fontsize=9,
                color="white" if normalised[i, j] > 0.5 else "black",
            )
    fig.colorbar(image, ax=axis, fraction=0.046, pad=0.04, label="share of the true class")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_reliability(
    before: np.ndarray, after: np.ndarray, targets: np.ndarray, path: Path, temperature: float
) -> Path:
    """Accuracy against confidence per bin (15 equal-width bins), before and after temperature scaling; a
    calibrated model lies on the diagonal. Bar widths of the histogram below: how many inputs each bin holds."""
    from minbert.evaluation.calibration import expected_calibration_error, reliability

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(5.5, 6.2), height_ratios=[3, 1], sharex=True)
    top.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="perfectly calibrated")
    for probabilities, name, colour in (
        (before, "before", "tab:red"),
        (after, f"after (T = {temperature:.2f})", "tab:blue"),
    ):
        points = reliability(probabilities, targets)
        ece = expected_calibration_error(probabilities, targets)
        top.plot([p[0] for p in points], [p[1] for p in points], "o-", color=colour, label=f"{name}: ECE {ece:.4f}")
        bottom.hist(probabilities.max(axis=1), bins=15, range=(0, 1), color=colour, alpha=0.5, label=name)
    top.set(ylabel="accuracy", title="Reliability diagram", xlim=(0, 1), ylim=(0, 1))
    top.legend(loc="upper left", fontsize=8)
    bottom.set(xlabel="confidence (top-class probability)", ylabel="inputs")
    bottom.set_yscale("log")
    for axis in (top, bottom):
        axis.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_oos_scores(
    in_scores: np.ndarray, oos_scores: np.ndarray, threshold: float | None, path: Path, method: str
) -> Path:
    """Left: the in-scope score of in-scope and out-of-scope test inputs, with the rejection threshold. Right: the
    ROC curve of the score (out-of-scope as the positive class)."""
    from sklearn.metrics import roc_auc_score, roc_curve

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    edges = np.histogram_bin_edges(np.concatenate([in_scores, oos_scores]), bins=50)
    left.hist(in_scores, bins=edges, alpha=0.6, density=True, color="tab:blue", label=f"in-scope ({len(in_scores):,})")
    left.hist(
        oos_scores, bins=edges, alpha=0.6, density=True, color="tab:red", label=f"out-of-scope ({len(oos_scores):,})"
    )
    if threshold is not None:
        left.axvline(threshold, color="black", linestyle="--", label=f"threshold {threshold:.4g}")
    left.set(xlabel=f"in-scope score ({method})", ylabel="density", title="Scores on test")
    truth = np.concatenate([np.zeros(len(in_scores)), np.ones(len(oos_scores))])
    suspicion = -np.concatenate([in_scores, oos_scores])
    fpr, tpr, _ = roc_curve(truth, suspicion)
    right.plot(fpr, tpr, color="tab:purple", label=f"AUROC {roc_auc_score(truth, suspicion):.4f}")
    right.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1)
    right.set(xlabel="false positive rate (in-scope rejected)", ylabel="true positive rate (out-of-scope caught)")
    right.set(title="ROC, out-of-scope positive", xlim=(0, 1), ylim=(0, 1.01))
    for axis in (left, right):
        axis.grid(alpha=0.3)
        axis.legend(loc="best", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_dev_curves(runs: dict[str, list[dict[str, Any]]], metric: str, out: Path | BinaryIO) -> Path | BinaryIO:
    """One dev metric of several runs against the epoch (epochs compare runs of different batch sizes). Names
    are shown as plain text (a `$` never starts matplotlib's mathtext); points that are not numbers are left out."""
    fig, axis = plt.subplots(figsize=(9, 4.5))
    for name, records in runs.items():
        dev = [
            r for r in records if r.get("event") == "dev" and all(_plain_number(r.get(k)) for k in ("epoch", metric))
        ]
        if dev:
            axis.plot([r["epoch"] for r in dev], [r[metric] for r in dev], "o-", markersize=3, label=_literal(name))
    axis.set(xlabel="epoch", ylabel=_literal(metric), title=_literal(f"Dev {metric}"))
    axis.grid(alpha=0.3)
    if axis.get_legend_handles_labels()[0]:
        axis.legend(loc="best", fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=100, format="png")
    plt.close(fig)
    return out


def _literal(text: str) -> str:
    """Text that matplotlib draws as written: `$` would start mathtext, which fails on `$\\frac{$`."""
    return text.replace("$", r"\$")


def _plain_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
