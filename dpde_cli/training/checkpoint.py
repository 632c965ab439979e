"""Training checkpoints: ``TrainState``, saved and loaded whole, and untrusted torch files.

``checkpoints/last.pt`` holds everything a resume needs: model, optimiser, scheduler,
GradScaler, every rank's RNG state and running loss sums, the progress inside the stage,
the weights index and the config. It is written atomically and checked field by field
when read, so a damaged or foreign file is a one-line error naming the file and the field.

Every torch file dpde reads (checkpoints, weights) is untrusted: ``load_untrusted`` loads
tensors and plain containers only and never runs pickled code.

Example:
    >>> state = TrainState.load(Path("runs/nyu/checkpoints/last.pt"))
    >>> state.progress.stage, state.progress.step
    ('global', 1200)
"""

from __future__ import annotations

import random
import re
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dpde_cli.errors import DpdeError, WeightsError
from dpde_cli.training.config import STAGES
from dpde_cli.training.run_folder import WeightsIndex, checked_field

CHECKPOINT_FORMAT = "dpde-train-checkpoint/1"
"""The "format" tag of a training checkpoint."""


def load_untrusted(path: Path, what: str = "PyTorch file") -> Any:
    """``torch.load`` of an untrusted file: tensors and plain containers only, on the CPU.

    Torch's own message (which advises loading with ``weights_only=False`` or allow-listing
    the file's globals, either of which would run the file's code) is reduced to one line
    of ours; torch's warnings about the file are not shown.

    Args:
        path: the file.
        what: what it should be, for the message ("PyTorch weights file", ...).

    Raises:
        WeightsError: "PATH: not a WHAT (reason)".
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle errors, truncated zip, refused globals
        raise WeightsError(f"{path}: not a {what} ({_load_failure(exc)})") from exc


def _load_failure(exc: Exception) -> str:
    """One line saying why torch.load refused a file, without torch's advice."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))
    if "WeightsUnpickler error:" not in text:
        first = text.strip().splitlines()[0] if text.strip() else ""
        return f"{type(exc).__name__}: {first}"  # "101" alone says nothing
    lines = text.rsplit("WeightsUnpickler error:", 1)[1].strip().splitlines()
    cause = lines[0].strip() if lines else "refused"
    named = re.search(r"Unsupported global: GLOBAL (\S+)", cause)
    if named:
        cause = f"it holds the pickled global {named.group(1)}, which is never run"
    elif "weights_only" in cause or "safe_globals" in cause:
        cause = "it holds pickled code, which is never run"
    return f"only tensors are loaded: {cause}"


# --------------------------------------------------------------------------- RNGs


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state(device: torch.device) -> dict[str, Any]:
    """Python, numpy, torch (and CUDA) RNG states, as weights_only-loadable values."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached),
        "torch": torch.get_rng_state(),
    }
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict[str, Any], device: torch.device) -> None:
    """Restore what ``rng_state`` captured."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


# --------------------------------------------------------------------------- the state


@dataclass(frozen=True)
class Best:
    """The best epoch of a stage so far: its selection metric and value (lower is better)."""

    metric: str
    value: float
    epoch: int
    step: int


@dataclass
class Progress:
    """Where a stage stands.

    Attributes:
        stage: "global" or "gradient".
        epoch: the current epoch (0-based).
        batch: batches done in the current epoch.
        step: optimiser steps done in this stage.
        done: whether the stage is finished.
        best: the stage's best epoch so far.
    """

    stage: str
    epoch: int = 0
    batch: int = 0
    step: int = 0
    done: bool = False
    best: Best | None = None


@dataclass(frozen=True)
class RankState:
    """One process's part of a checkpoint: its RNG states and its running sums of the
    epoch in progress (so a resume mid-epoch reports the same training loss)."""

    rng: dict[str, Any]
    loss_sum: float = 0.0
    loss_count: int = 0
    valid_pixels: float = 0.0


@dataclass
class TrainState:
    """Everything a resume needs; saved and loaded as a whole (``checkpoints/last.pt``).

    Attributes:
        model: the model's state dict (CPU tensors).
        optimizer, scheduler, scaler: state dicts of the stage in progress.
        ranks: every process's RankState, by rank.
        world_size: processes of the run that saved it.
        progress: where the stage stands.
        weights_index: the weights exported so far.
        config: the run's TrainConfig as JSON.
    """

    model: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    scheduler: dict[str, Any]
    scaler: dict[str, Any]
    ranks: list[RankState]
    world_size: int
    progress: Progress
    weights_index: WeightsIndex
    config: dict[str, Any]

    def save(self, path: Path) -> None:
        """Write the state to ``path`` atomically (no partial file under that name)."""
        from dpde_cli.io import atomic_path

        payload = {
            "format": CHECKPOINT_FORMAT,
            "model": self.model,
            "optimizer": self.optimizer,
            "scheduler": self.scheduler,
            "scaler": self.scaler,
            "ranks": [asdict(rank) for rank in self.ranks],
            "world_size": self.world_size,
            "progress": asdict(self.progress),
            "weights_index": self.weights_index.to_json(),
            "config": self.config,
        }
        with atomic_path(path) as tmp:
            torch.save(payload, tmp)

    @classmethod
    def load(cls, path: Path) -> TrainState:
        """Read and check a checkpoint.

        Raises:
            DpdeError: missing, unreadable, not a dpde training checkpoint, or a field
                missing or of the wrong kind (the message names the file and the field).
        """
        if not path.is_file():
            raise DpdeError(f"{path}: no checkpoint to resume from")
        try:
            data = load_untrusted(path, "loadable checkpoint")
        except WeightsError as exc:
            raise DpdeError(str(exc)) from None
        if not isinstance(data, dict) or data.get("format") != CHECKPOINT_FORMAT:
            raise DpdeError(f"{path}: not a dpde training checkpoint")

        def get(key: str, kinds: type | tuple[type, ...]) -> Any:
            return checked_field(data, key, kinds, str(path))

        model = get("model", dict)
        if not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in model.items()):
            raise DpdeError(f"{path}: field 'model' is not a state dict")
        world_size = get("world_size", int)
        ranks = [_rank_state(value, path, i) for i, value in enumerate(get("ranks", list))]
        if world_size < 1 or not ranks:
            raise DpdeError(f"{path}: fields 'world_size' and 'ranks' hold no process")
        return cls(
            model=model,
            optimizer=get("optimizer", dict),
            scheduler=get("scheduler", dict),
            scaler=get("scaler", dict),
            ranks=ranks,
            world_size=world_size,
            progress=_progress(get("progress", dict), path),
            weights_index=WeightsIndex.from_json(
                get("weights_index", dict), str(path), "weights_index."
            ),
            config=get("config", dict),
        )


def _progress(data: dict[str, Any], path: Path) -> Progress:
    """Progress from a checkpoint's "progress" field, checked."""

    def get(key: str, kinds: type | tuple[type, ...]) -> Any:
        return checked_field(data, key, kinds, str(path), "progress.")

    stage = get("stage", str)
    if stage not in STAGES:
        raise DpdeError(f"{path}: field 'progress.stage' is not one of {', '.join(STAGES)}")
    counts = {key: get(key, int) for key in ("epoch", "batch", "step")}
    if min(counts.values()) < 0:
        raise DpdeError(f"{path}: field 'progress' holds a negative count")
    best = get("best", (dict, type(None)))
    if best is not None:

        def best_of(key: str, kinds: type | tuple[type, ...]) -> Any:
            return checked_field(best, key, kinds, str(path), "progress.best.")

        best = Best(
            best_of("metric", str),
            float(best_of("value", (int, float))),
            best_of("epoch", int),
            best_of("step", int),
        )
    return Progress(stage=stage, done=get("done", bool), best=best, **counts)


def _rank_state(data: Any, path: Path, rank: int) -> RankState:
    """One rank's RankState from a checkpoint's "ranks" list, checked."""
    within = f"ranks.{rank}."
    rng = checked_field(data, "rng", dict, str(path), within)
    for key, kinds in (("python", (tuple, list)), ("numpy", (tuple, list))):
        checked_field(rng, key, kinds, str(path), f"{within}rng.")
    checked_field(rng, "torch", torch.Tensor, str(path), f"{within}rng.")
    number = (int, float)
    valid_pixels = 1.0  # checkpoints from before the count: assume the data had depth
    if "valid_pixels" in data:
        valid_pixels = float(checked_field(data, "valid_pixels", number, str(path), within))
    return RankState(
        rng=rng,
        loss_sum=float(checked_field(data, "loss_sum", number, str(path), within)),
        loss_count=checked_field(data, "loss_count", int, str(path), within),
        valid_pixels=valid_pixels,
    )
