"""`metrics.jsonl`: one JSON object per event (train step, evaluation), optionally mirrored to TensorBoard."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from minbert.errors import MinbertError


class MetricsLog:
    def __init__(self, path: Path, tensorboard: bool = False, append: bool = False) -> None:
        """`append` keeps the records of a run being resumed (the trainer then `truncate`s to its checkpoint)."""
        from minbert.train.distributed import is_main

        self.path = path
        self.enabled = is_main()  # in multi-process training only rank 0 writes
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.handle = self.path.open("a" if append or not self.enabled else "w", encoding="utf-8")
        self.lines = len(read_metrics(path)) if append and path.is_file() else 0
        self.writer = None
        if tensorboard and self.enabled:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as e:
                raise MinbertError("train.tensorboard needs the tensorboard package: pip install tensorboard") from e
            self.writer = SummaryWriter(str(path.parent / "tensorboard"))

    def write(self, event: str, step: int, **values: Any) -> None:
        if not self.enabled:
            return
        record = {"event": event, "step": step, **values}
        self.handle.write(json.dumps(record) + "\n")
        self.handle.flush()
        self.lines += 1
        if self.writer is not None:
            for key, value in values.items():
                if isinstance(value, (int, float)):
                    self.writer.add_scalar(f"{event}/{key}", value, step)

    def truncate(self, lines: int) -> None:
        """Drop the records written after a checkpoint (a resumed run writes them again)."""
        if not self.enabled:
            return
        self.handle.close()
        kept = self.path.read_text(encoding="utf-8").splitlines(keepends=True)[:lines]
        self.path.write_text("".join(kept), encoding="utf-8")
        self.handle = self.path.open("a", encoding="utf-8")
        self.lines = len(kept)

    def close(self) -> None:
        self.handle.close()
        if self.writer is not None:
            self.writer.close()


def read_metrics(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
