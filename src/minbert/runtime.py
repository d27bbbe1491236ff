"""Where and how computation runs: device choice, bf16 autocast, seeding, threads.

One seed controls everything: Python's, NumPy's and torch's generators, so the same config
and seed give the same numbers on CPU.
"""

from __future__ import annotations

import contextlib
import os
import random
from typing import Iterator

import numpy as np
import torch

from minbert.errors import MinbertError


def resolve_device(device: str = "auto") -> torch.device:
    """'auto' = CUDA when present, else CPU; 'cpu', 'cuda', 'cuda:1' as asked."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError as e:
        raise MinbertError(f"device {device!r} is not a torch device; use 'auto', 'cpu' or 'cuda'") from e
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise MinbertError(f"device {device!r} asked for, but this machine has no CUDA GPU; use 'cpu' or 'auto'")
    return resolved


@contextlib.contextmanager
def autocast(device: torch.device, bf16: bool) -> Iterator[None]:
    """bf16 autocast on CPU (AVX-512 bf16 doubles GEMM speed) or CUDA; a no-op when off."""
    if not bf16:
        yield
        return
    with torch.autocast(device_type=device.type, dtype=torch.bfloat16):
        yield


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    os.environ["PYTHONHASHSEED"] = str(seed)


def set_threads(threads: int | None) -> None:
    """Pin intra-op threads (None keeps torch's default: one per core)."""
    if threads:
        torch.set_num_threads(threads)
