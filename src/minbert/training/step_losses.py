"""The loss of every step, for metrics.jsonl, the progress bar and the epoch's mean, without a host sync per
step on a GPU: reading a CUDA loss (`.item()`) waits for the device, so there the values stay tensors and are
read in groups, and before anything that reports them (an evaluation, a checkpoint, the epoch's end). On a
CPU each value is read at once, so metrics.jsonl is written exactly as before."""

from __future__ import annotations

from typing import Any

import torch

from minbert.training.metrics_log import MetricsLog

GROUP = 50  # steps between reads on a GPU


class StepLosses:
    def __init__(self, metrics: MetricsLog, event: str, lazy: bool) -> None:
        self.metrics, self.event, self.lazy = metrics, event, lazy
        self.pending: list[tuple[torch.Tensor | float, dict[str, Any] | None]] = []
        self.running: float | None = None  # moving average for the progress bar
        self.total, self.batches, self.steps_pending = 0.0, 0, 0

    def add(self, loss: torch.Tensor | float) -> None:
        """One micro-batch's loss (a float when it was already read, as a multi-process mean is)."""
        if isinstance(loss, torch.Tensor):
            loss = loss.detach() if self.lazy else loss.item()
        self.pending.append((loss, None))

    def close_step(self, step: int, **record: Any) -> None:
        """The optimizer stepped: its record (epoch, lr) goes with the last micro-batch's loss."""
        value, _ = self.pending[-1]
        self.pending[-1] = (value, {"step": step, **record})
        self.steps_pending += 1
        if not self.lazy or self.steps_pending >= GROUP:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        tensors = [v for v, _ in self.pending if isinstance(v, torch.Tensor)]
        read = iter(torch.stack(tensors).float().tolist()) if tensors else iter(())
        for value, record in self.pending:
            loss = next(read) if isinstance(value, torch.Tensor) else float(value)
            self.running = loss if self.running is None else 0.9 * self.running + 0.1 * loss
            self.total, self.batches = self.total + loss, self.batches + 1
            if record is not None:
                step = record.pop("step")
                self.metrics.write(self.event, step, epoch=record.pop("epoch"), loss=loss, **record)
        self.pending, self.steps_pending = [], 0

    def epoch_mean(self) -> tuple[float, int]:
        """(mean loss, micro-batches) of the epoch so far, everything pending read."""
        self.flush()
        return (self.total / self.batches if self.batches else float("nan")), self.batches
