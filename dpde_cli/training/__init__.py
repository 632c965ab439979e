"""Training: the paper's two-stage recipe, resumable, on one device or many (DDP).

    config.py      TrainConfig and its closed choices (no torch: the CLI reads it)
    data.py        datasets of a config, held-out split, transforms, sampler, loaders
    run_folder.py  the run folder's files: config, log, weights index, exports
    checkpoint.py  TrainState (what a resume needs) and untrusted torch files
    loop.py        a stage's optimiser, one epoch of training, validation
    trainer.py     train() and resume(): the stages, epoch by epoch
    weights.py     weights files: export and averaging

Example:
    >>> from dpde_cli.training import TrainConfig, resume, train
    >>> result = train(TrainConfig(dataset="nyuv2", data_dir="~/data/nyu", out="runs/nyu"))
    >>> result.weights.best.file
    'weights/dpde-r50-0123abcd.pt'
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "TrainConfig": "config",
    "TrainCallbacks": "trainer",
    "TrainResult": "trainer",
    "train": "trainer",
    "resume": "trainer",
    "read_log": "run_folder",
    "WeightsIndex": "run_folder",
    "export_weights": "weights",
    "average_weights": "weights",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    """The public names, imported on first use (``config`` and ``run_folder`` stay free of
    torch, so that the CLI and the registry can read them without it)."""
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
