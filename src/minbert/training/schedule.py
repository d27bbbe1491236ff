"""Learning-rate schedules: linear warm-up, then linear / cosine decay to 0, or constant."""

from __future__ import annotations

import math

import torch


def lr_factor(step: int, total_steps: int, warmup_steps: int, kind: str = "linear") -> float:
    """Multiplier of the peak LR at `step` (0-based, the step about to be taken)."""
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    if kind == "constant":
        return 1.0
    remaining = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / remaining)
    if kind == "linear":
        return 1.0 - progress
    if kind == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    raise ValueError(f"unknown schedule {kind!r}; use linear, cosine or constant")


def build_scheduler(
    optimizer: torch.optim.Optimizer, total_steps: int, warmup_ratio: float = 0.0, kind: str = "linear"
) -> torch.optim.lr_scheduler.LambdaLR:
    warmup_steps = int(round(warmup_ratio * total_steps))
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, total_steps, warmup_steps, kind))
