"""`metrics.jsonl`: one JSON object per event (train step, evaluation), optionally mirrored to TensorBoard."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from minbert.errors import MinbertError


class MetricsLog:
    def __init__(self, path: Path, tensorboard: bool = False) -> None:
        self.path = path
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.handle = self.path.open("w", encoding="utf-8")
        self.writer = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as e:
                raise MinbertError("train.tensorboard needs the tensorboard package: pip install tensorboard") from e
            self.writer = SummaryWriter(str(path.parent / "tensorboard"))

    def write(self, event: str, step: int, **values: Any) -> None:
        record = {"event": event, "step": step, **values}
        self.handle.write(json.dumps(record) + "\n")
        self.handle.flush()
        if self.writer is not None:
            for key, value in values.items():
                if isinstance(value, (int, float)):
                    self.writer.add_scalar(f"{event}/{key}", value, step)

    def close(self) -> None:
        self.handle.close()
        if self.writer is not None:
            self.writer.close()


def read_metrics(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
