"""Where and how computation runs: device choice, bf16 autocast, seeding, threads.

One seed controls everything: Python's, NumPy's and torch's generators, so the same config
and seed give the same numbers on CPU.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from minbert.errors import MinbertError

log = logging.getLogger("minbert")
CPUINFO = Path("/proc/cpuinfo")


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


@functools.cache
def cpu_has_native_bf16() -> bool | None:
    """Whether the CPU has bf16 instructions (avx512_bf16 or AMX), from /proc/cpuinfo; None where
    that file does not exist. Without them oneDNN emulates bf16, and bf16 is slower than fp32."""
    if not CPUINFO.is_file():
        return None
    flags = set(CPUINFO.read_text(errors="replace").split())
    return bool(flags & {"avx512_bf16", "amx_bf16"})


def cpu_description(flags: tuple[str, ...] = ("amx_bf16", "avx512_bf16")) -> str:
    """'AMD EPYC, 2 cores, avx512_bf16': the CPU model and which of `flags` it has, recorded with every result
    because the machines a run may land on differ."""
    model, present = "unknown CPU", list[str]()
    try:
        for line in CPUINFO.read_text(errors="replace").splitlines():
            if line.startswith("model name") and model == "unknown CPU":
                model = line.split(":", 1)[1].strip()
            elif line.startswith("flags") and not present:
                present = line.split(":", 1)[1].split()
    except OSError:
        pass
    found = [flag for flag in flags if flag in present]
    return f"{model}, {os.cpu_count()} cores, {' '.join(found) or 'none of ' + '/'.join(flags)}"


@functools.cache
def warn_emulated_bf16() -> None:
    log.warning(
        "bf16 asked for, but this CPU has no bf16 instructions (no avx512_bf16 / amx_bf16 in %s): bf16 is emulated "
        "and slower than fp32 here (3x slower training measured on such a CPU); turn bf16 off (--train.bf16 false)",
        CPUINFO,
    )


@functools.cache
def bf16_matmul_speedup(size: int = 512, repeats: int = 5) -> float:
    """How many times faster a bf16 matmul runs than an fp32 one here, measured once (~0.1 s, best of
    `repeats` each). The CPU flag alone does not say bf16 pays: AMX makes it several times faster, while
    avx512_bf16 without AMX ranged from faster (an AMD EPYC) to 0.6x fp32's speed (a Xeon)."""
    generator = torch.Generator().manual_seed(0)
    a, b = torch.randn(size, size, generator=generator), torch.randn(size, size, generator=generator)
    pairs = {torch.float32: (a, b), torch.bfloat16: (a.bfloat16(), b.bfloat16())}
    best = dict.fromkeys(pairs, float("inf"))
    for _ in range(repeats + 1):  # the first round warms up both kernels
        for dtype, (x, y) in pairs.items():
            started = time.perf_counter()
            torch.mm(x, y)
            best[dtype] = min(best[dtype], time.perf_counter() - started)
    return best[torch.float32] / best[torch.bfloat16]


@functools.cache
def warn_slow_bf16(speedup: float) -> None:
    log.warning(
        "bf16 asked for: this CPU has bf16 instructions, but a bf16 matmul measured %.2fx the speed of an fp32 one "
        "here (%s), so bf16 is likely slower than fp32; turn bf16 off (--train.bf16 false)",
        speedup,
        cpu_description(),
    )


@contextlib.contextmanager
def autocast(device: torch.device, bf16: bool) -> Iterator[None]:
    """bf16 autocast on CPU or CUDA; a no-op when off. On CPU it pays with AMX, and on some CPUs with
    AVX-512 bf16 only (1.3-1.7x faster training measured on one), so it warns once when the CPU would
    emulate bf16 or a bf16 matmul measures slower than fp32."""
    if not bf16:
        yield
        return
    if device.type == "cpu" and cpu_has_native_bf16() is False:
        warn_emulated_bf16()
    elif device.type == "cpu" and (speedup := bf16_matmul_speedup()) < 1.0:
        warn_slow_bf16(round(speedup, 2))
    with torch.autocast(device_type=device.type, dtype=torch.bfloat16):
        yield


def compile_encoder(model: Any) -> Any:
    """torch.compile the model's encoder in place, with dynamic shapes since batches vary in length.
    Whether it pays depends on the CPU (inference 1.21x on an AVX-512 host without bf16, 0.97x on one
    with avx512_bf16), and the first batches of each new shape compile (~10 s), so it is opt-in. The weights and
    saved files are unchanged."""
    model.encoder.compile(dynamic=True)
    return model


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    os.environ["PYTHONHASHSEED"] = str(seed)


def set_threads(threads: int | None) -> None:
    """Pin intra-op threads (None keeps torch's default: one per core)."""
    if threads:
        torch.set_num_threads(threads)
