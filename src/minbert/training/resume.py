"""Resumable training state: everything needed to continue a killed run as if it never stopped.

Saved atomically (write to a temporary file, then rename), so a kill -9 during the save leaves the
previous checkpoint intact. The data order needs no saving: each epoch's batches are a pure function
of (seed, epoch), so the resumed run rebuilds the epoch and skips the batches already done.

The file holds tensors and plain data only (dicts, lists, numbers, strings; the RNG states as tensors
and lists) and is read with `torch.load(weights_only=True)`, which refuses anything else: a pickle
planted in place of a checkpoint cannot run code, it is rejected with an error.
"""

from __future__ import annotations

import os
import pickle
import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from minbert.errors import MinbertError


def rng_states() -> dict[str, Any]:
    """torch's, NumPy's and Python's generator states, as tensors and lists (no NumPy objects)."""
    kind, keys, position, has_gauss, cached_gaussian = np.random.get_state(legacy=True)
    assert isinstance(keys, np.ndarray)  # legacy=True: the MT19937 tuple, not a dict
    version, state, gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "numpy": {
            "kind": kind,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(position),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached_gaussian),
        },
        "python": {"version": version, "state": list(state), "gauss": gauss},
    }


def restore_rng(states: dict[str, Any]) -> None:
    torch.set_rng_state(states["torch"])
    numpy_state = states["numpy"]
    np.random.set_state(
        (
            numpy_state["kind"],
            numpy_state["keys"].numpy().astype(np.uint32),
            numpy_state["pos"],
            numpy_state["has_gauss"],
            numpy_state["cached_gaussian"],
        )
    )
    python_state = states["python"]
    random.setstate((python_state["version"], tuple(python_state["state"]), python_state["gauss"]))


def save_state(path: Path, state: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    torch.save({**state, "rng": rng_states()}, temporary)
    os.replace(temporary, path)


def load_state(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        wanted = re.search(r"GLOBAL (\S+)", str(e))
        asks = f" (it asks to call {wanted.group(1)})" if wanted else ""
        raise MinbertError(
            f"{path}: refused: the training checkpoint holds objects other than tensors and plain data{asks}, so minbert did "
            f"not write it, or it was tampered with; nothing in it was run. Delete {path.parent} to start the run over"
        ) from None
    except Exception as e:  # truncated or damaged: torch raises several types
        raise MinbertError(f"{path}: cannot read the training checkpoint ({e}); delete it to start the run over") from e
    if not isinstance(state, dict) or "rng" not in state:
        raise MinbertError(f"{path}: not a minbert training checkpoint; delete it to start the run over")
    return state
