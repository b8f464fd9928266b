"""Process-group helpers for data-parallel training launched with ``torchrun``.

``torchrun --nproc_per_node=N script.py`` starts N processes and tells each its
place through environment variables (``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``,
``MASTER_ADDR``, ``MASTER_PORT``). :func:`init_distributed` reads them and joins
the process group (NCCL when CUDA is available, gloo on CPU); without them it
does nothing, so the same script runs unchanged as one plain process. Every
other helper answers sensibly in both cases (rank 0 of a world of 1).
"""

from __future__ import annotations

import os
from typing import Any

import torch
import torch.distributed as dist

__all__ = [
    "init_distributed",
    "is_distributed",
    "is_main",
    "rank",
    "local_rank",
    "world_size",
    "barrier",
    "cleanup",
    "default_device",
    "all_reduce_mean",
    "all_gather_object",
]


def init_distributed() -> bool:
    """Join the process group described by torchrun's env vars; return whether one is active.

    Idempotent, and a no-op (returning False) when the process was not launched
    by torchrun. On CUDA it also selects ``cuda:LOCAL_RANK`` as the current
    device so that NCCL collectives and ``default_device()`` agree.
    """
    if dist.is_available() and dist.is_initialized():
        return True
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return False
    use_cuda = torch.cuda.is_available()
    if use_cuda:
        torch.cuda.set_device(local_rank())
    dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return True


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", 0))


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def is_main() -> bool:
    """True on the process that writes files and logs (global rank 0)."""
    return rank() == 0


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def cleanup() -> None:
    """Leave the process group (call once at the end of a torchrun script)."""
    if is_distributed():
        dist.destroy_process_group()


def default_device() -> torch.device:
    """``cuda:LOCAL_RANK`` when CUDA is available, else the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda", local_rank())
    return torch.device("cpu")


def all_reduce_mean(tensor: torch.Tensor) -> torch.Tensor:
    """Mean of ``tensor`` over all ranks (a copy; the input is untouched)."""
    out = tensor.detach().clone()
    if is_distributed():
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
        out /= world_size()
    return out


def all_gather_object(obj: Any) -> list[Any]:
    """Picklable ``obj`` from every rank, in rank order (``[obj]`` without a group)."""
    if not is_distributed():
        return [obj]
    gathered: list[Any] = [None] * world_size()
    dist.all_gather_object(gathered, obj)
    return gathered
