"""What a run returns, from the command line's `train` or the Python API's `fit`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from minbert.model.task_model import Model


@dataclass
class RunResult:
    """The trained model, its dev/test metrics (`results['test']['accuracy']`), how training went (`summary`),
    every logged event (`history`: train steps and evaluations), and the run directory if one was written."""

    output_dir: Path | None
    model: Model
    results: dict[str, dict[str, float]]
    summary: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)

    @property
    def report_path(self) -> Path | None:
        return self.output_dir / "report.md" if self.output_dir is not None else None
