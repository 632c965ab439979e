"""Shared pieces of the training tests: a learnable toy dataset, a simulated crash, a fast
CPU config of the tiny registered model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from dpde_cli.training.config import TrainConfig
from dpde_cli.training.trainer import TrainCallbacks

SIZE = (64, 96)  # dpde-tiny's input size


class Planes(Dataset):
    """Tilted floor-like planes: the nearer, the brighter, so depth can be learnt fast."""

    def __init__(self, length: int, size: tuple[int, int] = SIZE) -> None:
        self.length = length
        self.size = size

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, Any]:
        generator = torch.Generator().manual_seed(1000 + index)
        height, width = self.size
        near = 1.0 + 2.0 * torch.rand((), generator=generator)
        slope = 3.0 * torch.rand((), generator=generator)
        rows = torch.linspace(0, 1, height)[:, None].expand(height, width)
        depth = (near + slope * (1 - rows))[None]
        valid = torch.ones(1, height, width, dtype=torch.bool)
        valid[:, :2] = False  # a border without depth, as NYUv2 frames have
        return {
            "image": (1.0 / depth).expand(3, height, width).clone(),
            "depth": torch.where(valid, depth, torch.zeros_like(depth)),
            "valid": valid,
            "intrinsics": torch.tensor([60.0, 60.0, 47.5, 31.5]),
            "name": f"plane-{index}",
        }


class StopAt(TrainCallbacks):
    """Raise Interrupt after a given (stage, step): a simulated crash."""

    class Interrupt(Exception):
        pass

    def __init__(self, stage: str, step: int) -> None:
        self.stage, self.step = stage, step

    def on_step(self, record: dict[str, Any]) -> None:
        if (record["stage"], record["step"]) == (self.stage, self.step):
            raise self.Interrupt()


def tiny_config(out: Path, **changes: Any) -> TrainConfig:
    """A fast dpde-tiny CPU config."""
    values = {
        "model": "dpde-tiny",
        "device": "cpu",
        "pretrained": False,
        "workers": 0,
        "batch_size": 4,
        "log_every": 1,
        "out": str(out),
    }
    values.update(changes)
    return TrainConfig(**values)


def without_timing(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Log records without their wall-clock fields."""
    drop = {"images_per_s", "seconds", "time"}
    return [{k: v for k, v in r.items() if k not in drop} for r in records]
