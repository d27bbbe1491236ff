"""Which task each multitask step trains on.

round_robin   tasks in turn: equal steps per task, whatever their sizes
proportional  drawn with probability proportional to the task's number of batches
annealed      Stickland & Murray (2019): probability ~ size^alpha, alpha from 1 (first epoch)
              down to 0.2 (last): large tasks lead early, small ones catch up later
"""

from __future__ import annotations

import random
from collections.abc import Sequence

SAMPLING_MODES = ("round_robin", "proportional", "annealed")


def task_weights(sizes: Sequence[int], mode: str, epoch: int = 0, epochs: int = 1) -> list[float]:
    """The probability of each task at this epoch (for round_robin: the share of steps)."""
    if mode == "round_robin":
        raw = [1.0] * len(sizes)
    elif mode == "proportional":
        raw = [float(s) for s in sizes]
    elif mode == "annealed":
        alpha = 1.0 - 0.8 * (epoch / (epochs - 1) if epochs > 1 else 0.0)
        raw = [float(s) ** alpha for s in sizes]
    else:
        raise ValueError(f"task sampling {mode!r} is not one of {SAMPLING_MODES}")
    total = sum(raw)
    return [w / total for w in raw]


def task_schedule(
    sizes: Sequence[int], mode: str, steps: int, *, epoch: int = 0, epochs: int = 1, seed: int = 0
) -> list[int]:
    """The task index of each of this epoch's steps; seeded by (seed, epoch)."""
    if mode == "round_robin":
        return [step % len(sizes) for step in range(steps)]
    rng = random.Random(seed * 1000 + epoch)
    return rng.choices(range(len(sizes)), weights=task_weights(sizes, mode, epoch, epochs), k=steps)
