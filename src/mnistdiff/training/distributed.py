"""Data-parallel training over the processes torchrun starts: NCCL on GPUs, gloo on CPUs.

    torchrun --nproc_per_node=N -m mnistdiff train ...

Every process holds the whole model and draws the same data order and noise from the shared
generator; each takes its slice of every global batch, and DistributedDataParallel averages the
gradients, so all processes make the same update. Process 0 alone writes files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from mnistdiff.precision import pick_device


@dataclass(frozen=True)
class Group:
    """This process's place among `world_size` training processes."""

    rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")
    started_here: bool = False  # whether leave() should end the process group

    @property
    def main(self) -> bool:
        return self.rank == 0


def join(device: str = "auto") -> Group:
    """The process group torchrun describes in the environment (WORLD_SIZE, RANK, LOCAL_RANK, ...),
    joined with NCCL on GPUs or gloo on CPUs; one process without torchrun."""
    where = pick_device(device)
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1 and not dist.is_initialized():
        return Group(device=where)
    if where.type == "cuda":
        where = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(where)
    started = not dist.is_initialized()
    if started:
        dist.init_process_group("nccl" if where.type == "cuda" else "gloo")
    return Group(dist.get_rank(), dist.get_world_size(), where, started)


def leave(group: Group) -> None:
    if group.started_here and dist.is_initialized():
        dist.destroy_process_group()


def wrap(model: nn.Module, group: Group) -> nn.Module:
    """The model for the training forward: wrapped in DDP when there are several processes."""
    if group.world_size == 1:
        return model
    ids = [group.device.index] if group.device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids)


def largest(group: Group, values: list[float]) -> list[float]:
    """The largest of each value over all processes: the same answer everywhere (a stop flag, a clock)."""
    if group.world_size == 1:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=group.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return t.tolist()


def mean(group: Group, value: torch.Tensor) -> float:
    """The mean of a scalar over all processes (each process's loss, averaged as DDP averages gradients)."""
    if group.world_size == 1:
        return value.item()
    t = value.detach().float().reshape(1).to(group.device)
    dist.all_reduce(t)
    return t.item() / group.world_size


def barrier(group: Group) -> None:
    if group.world_size > 1:
        dist.barrier()
