"""Multi-process data-parallel training with torch.distributed (DistributedDataParallel).

    minbert train CONFIG --nproc 2                                   # one machine, 2 processes
    torchrun --nproc_per_node 2 -m minbert train CONFIG              # the same, launched by torchrun
    torchrun --nnodes 2 --node_rank R --master_addr HOST --master_port 29500 \\
             --nproc_per_node 2 -m minbert train CONFIG              # several machines (run on each, R = 0, 1)

Every process builds the same global batches (they are a pure function of seed and epoch) and takes
its shard of each; DDP averages the gradients. Each shard's loss is scaled by its share of the
global batch, so the update equals single-process training on the global batch whatever the shard
sizes (up to float rounding, and with dropout the masks differ). In-batch contrastive losses see only
the local shard. Rank 0 alone writes metrics, checkpoints, the model and the report.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from collections.abc import Sequence
from typing import Any

import torch
import torch.distributed as dist
from torch import nn


def world() -> tuple[int, int]:
    """(rank, world size); (0, 1) without a process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def is_main() -> bool:
    return world()[0] == 0


def init_from_env(device_type: str = "cpu") -> bool:
    """Join the process group that torchrun describes in the environment; False when not launched so."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or dist.is_initialized():
        return False
    dist.init_process_group(backend="nccl" if device_type == "cuda" else "gloo")
    if device_type == "cpu" and "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // int(os.environ.get("LOCAL_WORLD_SIZE", "1"))))
    return True


def finish() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def leave() -> None:
    """A rank that failed leaves without the barrier: the others may be waiting for it in a collective that
    never comes (rank 0 alone claims the output_dir and writes the run), and torchrun stops them once it exits."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def launch(nproc: int, argv: Sequence[str]) -> int:
    """Re-run this command under torchrun with `nproc` local processes; returns its exit code."""
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={nproc}",
        "-m",
        "minbert",
        *argv,
    ]
    env = {
        **os.environ,
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc))),
    }
    return subprocess.run(command, env=env, check=False).returncode


def shard(batch: Any, rank: int, size: int) -> Any:
    """This rank's rows of a batch: tensors are split along dim 0, nested dataclasses recursively."""
    if isinstance(batch, torch.Tensor):
        return batch.tensor_split(size)[rank]
    if dataclasses.is_dataclass(batch) and not isinstance(batch, type):
        return dataclasses.replace(
            batch, **{f.name: shard(getattr(batch, f.name), rank, size) for f in dataclasses.fields(batch) if f.init}
        )
    return batch


class LossModule(nn.Module):
    """The task's loss as a module, so DDP sees a forward pass (it prepares gradient reduction there)."""

    def __init__(self, model: nn.Module, task: Any) -> None:
        super().__init__()
        self.model, self.task = model, task

    def forward(self, batch: Any) -> torch.Tensor:
        return self.task.loss(self.model, batch)


class DataParallelLoss:
    """Each rank's shard of the global batch through DDP, its loss weighted by its share of the batch."""

    def __init__(self, model: nn.Module, task: Any) -> None:
        self.rank, self.size = world()
        # some parameters get no gradient in a step (BERT's pooler under cls/mean pooling, the other heads
        # of a multitask model): DDP must look for them rather than wait for their gradients
        self.module = nn.parallel.DistributedDataParallel(LossModule(model, task), find_unused_parameters=True)

    def __call__(self, batch: Any) -> torch.Tensor:
        total = len(batch)
        local = shard(batch, self.rank, self.size)
        if len(local) == 0:  # a last batch smaller than the world: this rank computes on it but adds nothing
            return self.module(batch) * 0.0
        return self.module(local) * (len(local) * self.size / total)

    def global_value(self, loss: torch.Tensor) -> float:
        """The global batch's mean loss (for logging): the mean over ranks of the share-weighted shard losses."""
        value = loss.detach().float().clone()
        dist.all_reduce(value)
        return value.item() / self.size
