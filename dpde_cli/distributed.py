"""Multi-process training under torchrun: the process group, this rank's device, collectives.

Every helper is a no-op on a single process, so the trainer calls them unconditionally.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch

from dpde_cli.errors import UsageError


@dataclass(frozen=True)
class DistInfo:
    """This process's place in a distributed run (rank 0 of 1 when not distributed)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Whether this process writes files and calls the callbacks."""
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        """Whether more than one process takes part."""
        return self.world_size > 1


def env_world_size() -> int:
    """WORLD_SIZE from the environment (1 when unset)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def setup_distributed(device_name: str) -> tuple[DistInfo, torch.device, bool]:
    """Join the process group torchrun describes, and pick this process's device.

    Without WORLD_SIZE > 1 nothing is initialised. Under torchrun, "auto" and "cuda" mean
    ``cuda:LOCAL_RANK`` (CPU when CUDA is absent); the backend is nccl on CUDA, gloo on
    the CPU.

    Returns:
        (info, device, created): created is True when this call initialised the group.

    Raises:
        UsageError: a fixed ``cuda:N`` or ``mps`` under a multi-process launch.
    """
    import torch.distributed as dist

    from dpde_cli.device import resolve_device

    world = env_world_size()
    if world <= 1 and not (dist.is_available() and dist.is_initialized()):
        return DistInfo(), resolve_device(device_name), False
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    name = device_name.strip().lower()
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        name = f"cuda:{local_rank}"
    elif name.startswith("cuda:") and name != f"cuda:{local_rank}":
        raise UsageError(f"--device {device_name} under torchrun: use cuda (one GPU per rank)")
    elif name not in ("cpu",) and not name.startswith("cuda"):
        raise UsageError(f"--device {device_name} cannot run distributed; use cuda or cpu")
    device = resolve_device(name)
    created = False
    if not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", init_method="env://")
        created = True
    info = DistInfo(dist.get_rank(), dist.get_world_size(), local_rank)
    return info, device, created


def all_reduce_sum(tensor: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Sum a tensor over ranks in place (no-op on one process)."""
    if info.enabled:
        import torch.distributed as dist

        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def all_reduce_max(tensor: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """The maximum of a tensor over ranks, in place (no-op on one process)."""
    if info.enabled:
        import torch.distributed as dist

        dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return tensor


def gather_objects(obj: Any, info: DistInfo) -> list[Any]:
    """Every rank's ``obj``, in rank order (a one-item list on one process)."""
    if not info.enabled:
        return [obj]
    import torch.distributed as dist

    out: list[Any] = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


def barrier(info: DistInfo) -> None:
    """Wait for every rank."""
    if info.enabled:
        import torch.distributed as dist

        dist.barrier()
