"""Training one PINN across K processes with ``torch.distributed`` (``torchrun``).

The scheme: every rank holds the whole model and the whole per-point weight
vector; the collocation points of each step's global batch (the same ids on every
rank, :func:`~seispinn.pinn.collocation.batch_ids`) are split by owner — the
point id, or the shot for multi-shot inversions, modulo K — so each point's
residual, and the gradient of its SA λ, are computed only on the rank that owns
it. Each rank's loss terms are local sums divided by the *global* batch size, and
the gradients are summed across ranks (all-reduce), so the step is the
single-process step up to floating-point summation order. λ is replicated (4
bytes a point, plus Adam's 8): after the all-reduce every rank applies the same
update, the checkpoint that rank 0 writes is complete, and a run resumes with
any K.

Launch: ``torchrun --nproc_per_node=K -m seispinn invert --config F.toml``
(gloo on CPU, NCCL on GPU, one GPU per rank).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor

__all__ = [
    "Shard",
    "shard",
    "init_from_env",
    "all_reduce_",
    "barrier",
    "is_main",
]


@dataclass(frozen=True)
class Shard:
    """This process's place: ``rank`` in ``[0, world)``."""

    rank: int = 0
    world: int = 1

    def owns(self, key: Tensor) -> Tensor:
        """``[B]`` bool: which items of owner keys ``key`` ``[B]`` (ids or shots) are
        this rank's."""
        if self.world == 1:
            return torch.ones_like(key, dtype=torch.bool)
        return key % self.world == self.rank


def shard() -> Shard:
    """The current process group's shard (rank 0 of 1 when not distributed)."""
    if dist.is_available() and dist.is_initialized():
        return Shard(dist.get_rank(), dist.get_world_size())
    return Shard()


def init_from_env() -> Shard:
    """Join the process group that ``torchrun`` describes (``WORLD_SIZE`` > 1 in the
    environment): NCCL with one GPU per local rank when CUDA is there, else gloo.
    A plain run returns rank 0 of 1."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and dist.is_available() and not dist.is_initialized():
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
            dist.init_process_group("nccl")
        else:
            dist.init_process_group("gloo")
    return shard()


def all_reduce_(tensors: list[Tensor]) -> None:
    """Sum ``tensors`` across ranks, in place, as one flat buffer (one message)."""
    if shard().world == 1 or not tensors:
        return
    flat = torch.cat([t.reshape(-1) for t in tensors])
    dist.all_reduce(flat)
    offset = 0
    for t in tensors:
        t.copy_(flat[offset : offset + t.numel()].view_as(t))
        offset += t.numel()


def barrier() -> None:
    if shard().world > 1:
        dist.barrier()


def is_main() -> bool:
    """Rank 0 (or not distributed): the process that writes files and prints."""
    return shard().rank == 0
