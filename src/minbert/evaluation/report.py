"""`report.md`: one page a person reads at a glance: setup, results, curves, per-class scores."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

SUMMARY_METRICS = ("accuracy", "macro_f1", "weighted_precision", "weighted_recall", "weighted_f1")
# Shown when a run has them: calibration, multi-label and out-of-scope numbers.
EXTRA_METRICS = (
    *("ece", "nll", "micro_f1", "samples_f1", "hamming_loss"),
    *("in_scope_accuracy", "oos_recall", "oos_precision", "oos_f1", "oos_auroc", "fpr_at_95_tpr"),
)


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    def cell(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:.4f}" if abs(value) <= 1 else f"{value:,.1f}"
        return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value)

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def top_confusions(matrix: np.ndarray, labels: Sequence[str], k: int = 10) -> list[tuple[str, str, int]]:
    off = matrix.copy()
    np.fill_diagonal(off, 0)
    pairs = np.dstack(np.unravel_index(np.argsort(-off, axis=None), off.shape))[0][:k]
    return [(labels[i], labels[j], int(off[i, j])) for i, j in pairs if off[i, j] > 0]


HEADLINE = {"classification": ("accuracy", "macro_f1"), "regression": ("pearson", "spearman")}


def write_report(
    path: Path,
    *,
    title: str,
    setup: dict[str, Any],
    results: dict[str, dict[str, float]],
    task_rows: Sequence[Sequence[Any]] | None,
    training: dict[str, Any],
    per_class: dict[str, dict[str, dict[str, float]]],
    split: str,
    confusions: dict[str, np.ndarray],
    labels: dict[str, Sequence[str]],
    plots: dict[str, str],
) -> Path:
    """One page for any run. `task_rows` (task, head, split, metric, metric) for a multitask run, whose
    results also hold `overall`; without them the results table lists the classification metrics per split.
    `per_class` is per classification head (per label for a multilabel head), `confusions` per single-label head,
    named when there are several tasks."""
    parts = [f"# {title}", "", "## Results", ""]
    if task_rows is None:
        shown = [*SUMMARY_METRICS, *(k for k in EXTRA_METRICS if any(k in m for m in results.values()))]
        rows = [[name, *(m.get(k, float("nan")) for k in shown)] for name, m in results.items()]
        parts += [markdown_table(["split", *shown], rows), ""]
    else:
        parts += [markdown_table(["task", "head", "split", "metric", "metric"], task_rows), ""]
        parts += [
            "Overall = mean over tasks of accuracy or (Pearson + 1) / 2 (the CS224N score for SST + Quora + STS).",
            "",
        ]
        parts += [markdown_table(["split", "overall"], [[name, m["overall"]] for name, m in results.items()]), ""]
    parts += ["## Training", "", markdown_table(["", ""], list(training.items())), ""]
    parts += ["## Setup", "", markdown_table(["", ""], list(setup.items())), ""]
    for caption, file in plots.items():
        parts += [f"### {caption}", "", f"![{caption}]({file})", ""]
    for task, scores_of in per_class.items():
        where = f"{task}, {split}" if task_rows is not None else split
        confused = top_confusions(confusions[task], labels[task]) if task in confusions else []
        if confused:
            parts += [
                f"## Most frequent confusions ({where})",
                "",
                markdown_table(["true", "predicted", "count"], confused),
                "",
            ]
        scores = sorted(scores_of.items(), key=lambda item: item[1]["f1-score"])
        kind = "class" if task in confusions else "label"
        parts += [
            f"## Per-{kind} scores ({where}, worst F1 first)",
            "",
            markdown_table(
                ["label", "precision", "recall", "f1", "support"],
                [[k, v["precision"], v["recall"], v["f1-score"], int(v["support"])] for k, v in scores],
            ),
            "",
        ]
    path.write_text("\n".join(parts), encoding="utf-8")
    return path
