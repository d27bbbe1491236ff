"""`report.md`: one page a person reads at a glance: setup, results, curves, per-class scores."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

SUMMARY_METRICS = ("accuracy", "macro_f1", "weighted_precision", "weighted_recall", "weighted_f1")


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


def write_report(
    path: Path,
    *,
    title: str,
    setup: dict[str, Any],
    results: dict[str, dict[str, float]],
    training: dict[str, Any],
    per_class: dict[str, dict[str, float]] | None,
    per_class_split: str,
    confusion: np.ndarray | None,
    labels: Sequence[str],
    plots: dict[str, str],
) -> Path:
    parts = [f"# {title}", ""]
    parts += ["## Results", "", markdown_table(["split", *SUMMARY_METRICS], [[split, *(m.get(k, float("nan")) for k in SUMMARY_METRICS)] for split, m in results.items()]), ""]
    parts += ["## Training", "", markdown_table(["", ""], list(training.items())), ""]
    parts += ["## Setup", "", markdown_table(["", ""], list(setup.items())), ""]
    for caption, file in plots.items():
        parts += [f"### {caption}", "", f"![{caption}]({file})", ""]
    if confusion is not None:
        confused = top_confusions(confusion, labels)
        if confused:
            parts += [f"## Most frequent confusions ({per_class_split})", "", markdown_table(["true", "predicted", "count"], confused), ""]
    if per_class:
        rows = sorted(per_class.items(), key=lambda item: item[1]["f1-score"])
        parts += [
            f"## Per-class scores ({per_class_split}, worst F1 first)",
            "",
            markdown_table(["label", "precision", "recall", "f1", "support"], [[k, v["precision"], v["recall"], v["f1-score"], int(v["support"])] for k, v in rows]),
            "",
        ]
    path.write_text("\n".join(parts), encoding="utf-8")
    return path
