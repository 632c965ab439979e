"""Many processes: training and inference under torchrun, and shares of a batch's inputs.

The process group, this rank's device and the collectives serve training (DDP) and
inference alike; every helper is a no-op on a single process, so callers use them
unconditionally. A ``Share`` is one process's part of a sorted list of inputs: ``--shard
K/N`` (job arrays, no torch.distributed), torchrun's rank, or both (``inference_run``).

Example:
    >>> run = inference_run("2/4", "auto")   # under torchrun too
    >>> mine = run.share.take(items, key=str)
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import torch

from dpde_cli.errors import UsageError

T = TypeVar("T")


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


# ------------------------------------------------------------------------------ shares


@dataclass(frozen=True)
class Share:
    """One process's part of a sorted list of inputs: every ``step``-th from ``offset``.

    Round-robin over the sorted list, so the shares of ``step`` processes are disjoint,
    cover the list, differ in size by at most one, and are the same in every run.

    Attributes:
        offset: the first position taken (0-based), ``0 <= offset < step``.
        step: how many shares there are.
    """

    offset: int = 0
    step: int = 1

    @property
    def whole(self) -> bool:
        """Whether this share is every input."""
        return self.step == 1

    @property
    def label(self) -> str:
        """``K/N``, 1-based, as ``--shard`` takes it."""
        return f"{self.offset + 1}/{self.step}"

    def indices(self, count: int) -> range:
        """This share's positions in a sorted list of ``count`` inputs."""
        return range(self.offset, count, self.step)

    def take(self, items: Sequence[T], key: Callable[[T], Any] = str) -> list[T]:
        """This share of ``items`` (ranked by ``key``, ties by position), in their order.

        Example:
            >>> Share(1, 2).take(["d", "a", "c", "b"])
            ['d', 'b']
        """
        ranked = sorted(range(len(items)), key=lambda i: key(items[i]))
        mine = {ranked[p] for p in self.indices(len(items))}
        return [item for i, item in enumerate(items) if i in mine]

    def within(self, rank: int, world_size: int) -> Share:
        """Rank ``rank`` of ``world_size``'s part of this share (round-robin again)."""
        return Share(self.offset + self.step * rank, self.step * world_size)


def parse_shard(text: str) -> Share:
    """``K/N`` (1-based, ``1 <= K <= N``) -> its Share.

    Raises:
        UsageError: anything else, in one line naming --shard.
    """
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if match is None or not 1 <= int(match[1]) <= int(match[2]):
        raise UsageError(f"--shard {text!r}: expected K/N with 1 <= K <= N, e.g. --shard 2/8")
    return Share(int(match[1]) - 1, int(match[2]))


@dataclass(frozen=True)
class InferenceRun:
    """One process's part of an inference run (``inference_run``).

    Attributes:
        share: the inputs it takes (``--shard`` composed with its torchrun rank).
        info: its rank (rank 0 of 1 without torchrun).
        device: its device name (``cuda:LOCAL_RANK`` or cpu under torchrun, else as given).
        sharded: whether ``--shard`` was given.
    """

    share: Share
    info: DistInfo
    device: str
    sharded: bool = False

    @property
    def is_main(self) -> bool:
        """Whether this process prints the run's summary."""
        return self.info.is_main

    def quiet(self, quiet: bool) -> bool:
        """Whether to hide progress: ``quiet``, or on every rank but 0."""
        return quiet or not self.is_main

    def gather(self, obj: T) -> list[T]:
        """Every rank's ``obj``, in rank order (``[obj]`` on one process)."""
        return gather_objects(obj, self.info)


def inference_run(shard: str | None, device: str) -> InferenceRun:
    """This process's share and device, under torchrun or not.

    Under torchrun (WORLD_SIZE > 1) it joins the process group (``setup_distributed``:
    ``cuda:LOCAL_RANK``, or the CPU with gloo; left at the process's exit) and takes share
    RANK+1 of WORLD_SIZE of the ``--shard`` share; otherwise the ``--shard`` share alone
    (every input without it).

    Raises:
        UsageError: a bad ``shard`` or a device that cannot run distributed.
    """
    share = parse_shard(shard) if shard is not None else Share()
    if env_world_size() <= 1:
        return InferenceRun(share, DistInfo(), device, shard is not None)
    info, torch_device, created = setup_distributed(device)
    if created:
        import atexit

        import torch.distributed as dist

        atexit.register(dist.destroy_process_group)
    within = share.within(info.rank, info.world_size)
    return InferenceRun(within, info, str(torch_device), shard is not None)
