"""`metrics.jsonl`: one JSON object per event (train step, evaluation), optionally mirrored to TensorBoard.
Every record is also kept in memory (`records`), which is all there is for a run without an output directory."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from minbert.errors import MinbertError


class MetricsLog:
    def __init__(self, path: Path | None, tensorboard: bool = False, append: bool = False) -> None:
        """`append` keeps the records of a run being resumed (the trainer then `truncate`s to its checkpoint);
        no `path` writes nothing to disk."""
        from minbert.training.distributed import is_main

        self.path = path
        self.enabled = is_main()  # in multi-process training only rank 0 writes
        self.records: list[dict[str, Any]] = read_metrics(path) if append and path and path.is_file() else []
        self.handle = None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.handle = path.open("a" if append or not self.enabled else "w", encoding="utf-8")
        self.lines = len(self.records)
        self.writer = None
        if tensorboard and self.enabled and path is not None:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as e:
                raise MinbertError("train.tensorboard needs the tensorboard package: pip install tensorboard") from e
            self.writer = SummaryWriter(str(path.parent / "tensorboard"))
        elif tensorboard and path is None:
            raise MinbertError("train.tensorboard writes beside metrics.jsonl: give an output directory")

    def write(self, event: str, step: int, **values: Any) -> None:
        if not self.enabled:
            return
        record = {"event": event, "step": step, **values}
        self.records.append(record)
        if self.handle is not None:
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
        del self.records[lines:]
        self.lines = len(self.records)
        if self.handle is None or self.path is None:
            return
        self.handle.close()
        kept = self.path.read_text(encoding="utf-8").splitlines(keepends=True)[:lines]
        self.path.write_text("".join(kept), encoding="utf-8")
        self.handle = self.path.open("a", encoding="utf-8")

    def close(self) -> None:
        if self.handle is not None:
            self.handle.close()
        if self.writer is not None:
            self.writer.close()


def read_metrics(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
