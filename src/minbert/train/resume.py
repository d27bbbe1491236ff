"""Resumable training state: everything needed to continue a killed run as if it never stopped.

Saved atomically (write to a temporary file, then rename), so a kill -9 during the save leaves the
previous checkpoint intact. The data order needs no saving: each epoch's batches are a pure function
of (seed, epoch), so the resumed run rebuilds the epoch and skips the batches already done.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from minbert.errors import MinbertError


def rng_states() -> dict[str, Any]:
    return {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}


def restore_rng(states: dict[str, Any]) -> None:
    torch.set_rng_state(states["torch"])
    np.random.set_state(states["numpy"])
    random.setstate(states["python"])


def save_state(path: Path, state: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    torch.save({**state, "rng": rng_states()}, temporary)
    os.replace(temporary, path)


def load_state(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        return torch.load(path, map_location="cpu", weights_only=False)  # our own file, written by save_state
    except Exception as e:
        raise MinbertError(f"{path}: cannot read the training checkpoint ({e}); delete it to start the run over") from e
