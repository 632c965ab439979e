"""Training: the paper's two-stage recipe, resumable, on one device or many (DDP).

Stage ``global`` trains the encoder and decoder with ``lambda_B * BerHu + lambda_F * FSIM``;
stage ``gradient`` trains the gradient network with the log-L1 loss while the global network
stays frozen; ``all`` runs both, stage 2 starting from stage 1's best weights. SGD with
momentum 0.9, lr 1e-2, halved after the first third of the epochs and 1e-3 for the last
third (the paper's 10 / 10 / 10 of 30 epochs, scaled to ``epochs``).

Run folder (``TrainConfig.out``):

    config.json                  the final TrainConfig (what ``resume`` reads)
    log.jsonl                    one JSON object a line: kind "start" / "resume", "step"
                                 (every ``log_every`` steps), "epoch" (losses, lr, val_*,
                                 images_per_s)
    checkpoints/last.pt          model, optimiser, scheduler, GradScaler, RNG states of
                                 every rank, progress, weights index, config (atomic)
    weights/<model>-<sha8>.pt    best and last weights: {"model": state dict, "run": the
                                 run's model, input_size, dataset, val_depth_max}, so that
                                 a copy anywhere runs as trained (registry.run_spec)
    weights.json                 {"model", "input_size", "best", "last", "stages"}: file,
                                 sha256, stage, epoch, step, metric, value of each;
                                 "val_depth_max": the farthest validation ground truth
                                 (where predictions are clamped: registry.run_spec)

Multi-GPU: ``torchrun --nproc_per_node N -m dpde_cli train ...`` sets WORLD_SIZE, RANK and
LOCAL_RANK; ``train`` then joins the process group (nccl on CUDA, gloo on CPU), wraps the
network in DistributedDataParallel, shards the data (``batch_size`` is per process), reduces
losses and validation metrics over ranks, and lets rank 0 alone write files.

Example:
    >>> from dpde_cli.train import TrainConfig, train, resume
    >>> result = train(TrainConfig(dataset="nyuv2", data_dir="~/data/nyu", out="runs/nyu"))
    >>> result = resume("runs/nyu")  # after an interruption: continues where it stopped
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import random
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from dpde_cli.data import default_workers, load_sample, loader_interrupts, worker_init
from dpde_cli.distributed import (
    all_reduce_max,
    all_reduce_sum,
    barrier,
    gather_objects,
    setup_distributed,
)
from dpde_cli.errors import DpdeError, UsageError
from dpde_cli.registry import RUN_CONFIG, WEIGHTS_INDEX, check_input_size

STAGES = ("global", "gradient")
"""Training stages in the order ``all`` runs them."""
STAGE_CHOICES = (*STAGES, "all")
SCHEDULES = ("paper", "constant")
OPTIMIZERS = ("sgd", "adamw")
TRAIN_SPLITS = {"nyuv2": "train", "make3d": "train", "folder": "all", "middlebury": "train"}
"""The split each dataset trains on."""
DATASET_INPUT_SIZES = {"make3d": (448, 352)}
"""Default (H, W) input size per dataset, where the model's own would distort the images
(Make3D's portrait 460 x 345 of the paper, rounded to multiples of 32)."""
RESUME_OVERRIDES = frozenset(
    {"epochs", "max_steps", "workers", "device", "checkpoint_every", "log_every"}
)
"""TrainConfig fields ``resume`` may change."""

LOG_FILE = "log.jsonl"
CHECKPOINT_FILE = "checkpoints/last.pt"
WEIGHTS_DIR = "weights"
CHECKPOINT_FORMAT = "dpde-train-checkpoint/1"
_HOLDOUT_SEED = 20210893  # fixed: the held-out images do not change with --seed


# --------------------------------------------------------------------------- configuration


@dataclass
class TrainConfig:
    """Everything a training run depends on; saved as ``config.json`` in the run folder.

    Attributes:
        dataset: nyuv2 | make3d | folder | synthetic (see ``dpde_cli.data``).
        data_dir: the dataset's folder, or a list of folders trained on as one set (as
            ``dpde eval`` scores several); None for synthetic.
        dataset_options: extra keyword options of the dataset (e.g. ``{"gt": "raw"}``).
        synthetic_size: number of scenes of the synthetic set.
        model: registered model name.
        stage: global | gradient | all.
        epochs: epochs per stage (30 in the paper).
        max_steps: stop each stage after this many optimiser steps (None: no limit).
        batch_size: images per step and process (the global batch is this x processes).
        lr: initial learning rate (1e-2).
        optimizer: "sgd" (the paper's) or "adamw" (not in the paper).
        momentum: SGD momentum (0.9; adamw keeps its default betas).
        weight_decay: L2 weight decay (not stated in the paper).
        schedule: "paper" (x1 for the first third of the epochs, x0.5 for the second,
            x0.1 for the last) or "constant".
        lambda_berhu, lambda_fsim: loss weights of stage 1 (1 and 1).
        lambda_silog: weight of the scale-invariant log loss in stage 1 (0: the paper's
            loss).
        encoder_lr_scale: the encoder's learning rate as a multiple of ``lr`` in stage 1
            (1: the paper's; 0 freezes the encoder, batch-norm statistics included).
        input_size: (H, W) training size, multiples of 8; None: the dataset default, else
            the model's (240 x 320 for NYUv2).
        augment: random scale, rotation, crop, flip and colour jitter.
        appearance: photometric augmentation, "standard" (the colour jitter) or "strong"
            (wide jitter, colour cast, greyscale, blur, noise, JPEG: for rendered data).
        val_fraction: share of the training images held out for validation (0: none).
        val_split: validate on this split of the dataset instead (e.g. "test"); not the
            split training uses, and not for a folder (it has one split).
        workers: DataLoader worker processes (persistent, seeded); default min(4, the
            CPUs this process may use).
        seed: seed of weights init, sample order, augmentations and dropout.
        device: auto | cpu | cuda | cuda:N | mps (cuda:LOCAL_RANK under torchrun).
        amp: mixed precision (CUDA only; bf16 where supported, else fp16 + GradScaler).
        channels_last: channels-last memory format (CUDA only).
        deterministic: ``torch.use_deterministic_algorithms`` on the CPU.
        out: run folder.
        pretrained: ImageNet-initialised encoder (ignored with ``init_weights``).
        init_weights: weights or checkpoint to start from (e.g. a stage-1 run's weights).
        checkpoint_every: also checkpoint every N steps (the epoch checkpoint is always on).
        log_every: log a step record every N steps.
        export_half: convert the exported weights to float16 when training ends.
        clip_grad_norm: clip the gradient norm to this value (None: no clipping).
        sync_bn: SyncBatchNorm across processes (CUDA, multi-process only).
        sources: a training mix (``dpde_cli.data.mix``): a list of ``Source.to_json()``
            dicts, each a dataset with a sampling weight; None: ``dataset`` and
            ``data_dir`` as one set.
        epoch_size: samples drawn per epoch from a mix (None: as many as it has frames).
        canonical_camera: train on depth as the NYUv2 Kinect (its focal length at the
            input size) would see each frame, from the frame's intrinsics, so that the
            weights' metric scale follows the camera at prediction time
            (``WeightsSpec.canonical_focal``).
    """

    dataset: str = "nyuv2"
    data_dir: str | list[str] | None = None
    dataset_options: dict[str, Any] = field(default_factory=dict)
    synthetic_size: int = 1000
    model: str = "dpde-r50"
    stage: str = "all"
    epochs: int = 30
    max_steps: int | None = None
    batch_size: int = 8
    lr: float = 1e-2
    optimizer: str = "sgd"
    momentum: float = 0.9
    weight_decay: float = 1e-4
    schedule: str = "paper"
    lambda_berhu: float = 1.0
    lambda_fsim: float = 1.0
    lambda_silog: float = 0.0
    encoder_lr_scale: float = 1.0
    input_size: tuple[int, int] | None = None
    augment: bool = True
    appearance: str = "standard"
    val_fraction: float = 0.05
    val_split: str | None = None
    workers: int = field(default_factory=default_workers)
    seed: int = 0
    device: str = "auto"
    amp: bool = True
    channels_last: bool = True
    deterministic: bool = True
    out: str = "runs/train"
    pretrained: bool = True
    init_weights: str | None = None
    checkpoint_every: int | None = None
    log_every: int = 10
    export_half: bool = False
    clip_grad_norm: float | None = None
    sync_bn: bool = False
    sources: list[dict[str, Any]] | None = None
    epoch_size: int | None = None
    canonical_camera: bool = False

    def validate(self) -> None:
        """Raise UsageError for values that cannot work."""
        if self.stage not in STAGE_CHOICES:
            raise UsageError(f"unknown stage {self.stage!r}; use {', '.join(STAGE_CHOICES)}")
        if self.schedule not in SCHEDULES:
            raise UsageError(f"unknown schedule {self.schedule!r}; use {', '.join(SCHEDULES)}")
        if self.optimizer not in OPTIMIZERS:
            raise UsageError(f"unknown optimizer {self.optimizer!r}; use {', '.join(OPTIMIZERS)}")
        from dpde_cli.data.transforms import APPEARANCES

        if self.appearance not in APPEARANCES:
            raise UsageError(
                f"unknown appearance {self.appearance!r}; use {', '.join(APPEARANCES)}"
            )
        for name in ("lambda_berhu", "lambda_fsim", "lambda_silog", "encoder_lr_scale"):
            if not getattr(self, name) >= 0:
                raise UsageError(f"{name} must be >= 0, got {getattr(self, name)}")
        positive = {
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "log_every": self.log_every,
        }
        for name, value in positive.items():
            if value < 1:
                raise UsageError(f"{name} must be at least 1, got {value}")
        for name in ("max_steps", "checkpoint_every", "synthetic_size", "epoch_size"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise UsageError(f"{name} must be at least 1, got {value}")
        if not 0 < self.lr < math.inf:
            raise UsageError(f"lr must be positive, got {self.lr}")
        if not 0.0 <= self.momentum < 1.0:
            raise UsageError(f"momentum must be in [0, 1), got {self.momentum}")
        if not 0.0 <= self.weight_decay < math.inf:
            raise UsageError(f"weight_decay must be >= 0, got {self.weight_decay}")
        if self.clip_grad_norm is not None and not 0 < self.clip_grad_norm < math.inf:
            raise UsageError(f"clip_grad_norm must be positive, got {self.clip_grad_norm}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise UsageError(f"val_fraction must be in [0, 1), got {self.val_fraction}")
        if self.workers < 0:
            raise UsageError(f"workers must be >= 0, got {self.workers}")
        if self.input_size is not None:
            check_input_size(self.input_size)
        if isinstance(self.data_dir, list) and not self.data_dir:
            raise UsageError("data_dir is an empty list; give at least one folder")
        if self.sources is not None:
            from dpde_cli.data.mix import source_from_json

            if not self.sources:
                raise UsageError("sources is an empty list; give at least one source")
            for source in self.sources:
                source_from_json(source)  # a bad weight or key is a UsageError here
        elif self.epoch_size is not None:
            raise UsageError("epoch_size sets the draws of a training mix; give sources")

    def canonical_focal(self, input_size: tuple[int, int]) -> float | None:
        """The focal length (pixels at ``input_size``) depth targets refer to, or None."""
        if not self.canonical_camera:
            return None
        from dpde_cli.geometry import Intrinsics

        return Intrinsics.nyu_kinect().scaled(input_size[1], input_size[0]).fx

    def data_dirs(self) -> list[str | None]:
        """The data folders as a list (one, several, or [None] for synthetic)."""
        return list(self.data_dir) if isinstance(self.data_dir, list) else [self.data_dir]

    def stages(self) -> tuple[str, ...]:
        """The stages this config runs, in order."""
        return STAGES if self.stage == "all" else (self.stage,)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (tuples become lists)."""
        return json.loads(json.dumps(asdict(self)))

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TrainConfig:
        """Inverse of ``to_json``; unknown keys are an error."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise UsageError(f"unknown TrainConfig field(s): {', '.join(unknown)}")
        values = dict(data)
        if values.get("input_size") is not None:
            values["input_size"] = tuple(int(v) for v in values["input_size"])
        return cls(**values)


def lr_factor(epoch: int, epochs: int, schedule: str = "paper") -> float:
    """The learning-rate multiplier of an epoch (0-based).

    "paper": 1 for epochs < ceil(E/3), 0.5 for epochs < ceil(2E/3), 0.1 after (E = 30:
    1e-2 for 0-9, 5e-3 for 10-19, 1e-3 for 20-29 with lr 1e-2). "constant": 1.
    """
    if schedule == "constant":
        return 1.0
    if epoch < math.ceil(epochs / 3):
        return 1.0
    if epoch < math.ceil(2 * epochs / 3):
        return 0.5
    return 0.1


class TrainCallbacks:
    """Hooks ``train`` calls on rank 0; subclass and override what you need.

    Records are the dicts written to log.jsonl (step records carry losses only on
    logging steps). An exception raised in a hook stops training; the last checkpoint
    stays valid for ``resume``.
    """

    def on_stage_start(self, stage: str, total_steps: int, done_steps: int) -> None:
        """A stage starts (or resumes after ``done_steps`` of ``total_steps``)."""

    def on_step(self, record: dict[str, Any]) -> None:
        """After every optimiser step (and after its checkpoint, if one is due)."""

    def on_epoch(self, record: dict[str, Any]) -> None:
        """After each epoch's validation, export and checkpoint."""

    def on_checkpoint(self, path: Path, stage: str, step: int) -> None:
        """checkpoints/last.pt was written (or, on resume, read): a resume continues from
        ``step`` steps into ``stage``; steps after it would be redone."""

    def on_message(self, message: str) -> None:
        """A note for the user."""


@dataclass
class TrainResult:
    """What ``train`` and ``resume`` return (on every rank).

    Attributes:
        run_dir: the run folder.
        weights: the weights index (weights.json): best and last file, sha256, metric.
        epochs: the epoch records of this call, in order.
    """

    run_dir: Path
    weights: dict[str, Any]
    epochs: list[dict[str, Any]]


# --------------------------------------------------------------------------- data


class EpochSampler(DistributedSampler):
    """A DistributedSampler whose order depends only on (seed, epoch), resumable mid-epoch.

    Yields ``(epoch, index)`` keys (the dataset seeds its augmentation from them), and can
    skip the first ``skip`` samples of this rank's share (``set_position``). Works without
    a process group (``num_replicas=1, rank=0``).
    """

    def __init__(
        self, dataset: Dataset, num_replicas: int, rank: int, seed: int, shuffle: bool = True
    ) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed)
        self.skip = 0

    def set_position(self, epoch: int, skip: int = 0) -> None:
        """Select the epoch and how many of this rank's samples to skip."""
        self.set_epoch(epoch)
        self.skip = int(skip)

    def __iter__(self) -> Iterator[tuple[int, int]]:  # type: ignore[override]
        indices = list(super().__iter__())[self.skip :]
        return iter([(self.epoch, int(i)) for i in indices])

    def __len__(self) -> int:
        return max(0, self.num_samples - self.skip)


class TrainingView(Dataset):
    """Selected items of a dataset with a transform, as the tensors a train step needs.

    Keys are an index, or ``(epoch, index)`` from EpochSampler; a random transform draws
    from a generator seeded by (seed, epoch, dataset index), so a sample is augmented the
    same way in any worker, after any resume. A bad item is a one-line DataError in any
    worker (``dpde_cli.data.load_sample``).

    Args:
        base: a dataset yielding dpde sample dicts.
        indices: the base items to use.
        transform: a TrainTransform or EvalTransform.
        seed: augmentation seed.
    """

    def __init__(self, base: Dataset, indices: Sequence[int], transform: Any, seed: int) -> None:
        self.base = base
        self.indices = list(indices)
        self.transform = transform
        self.seed = seed

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, torch.Tensor]:
        from dpde_cli.data.transforms import sample_generator

        epoch, position = key if isinstance(key, tuple) else (0, key)
        index = self.indices[position]
        sample = load_sample(self.base, index)
        sample = self.transform(sample, sample_generator(self.seed, epoch, index))
        return {
            "image": sample["image"].float(),
            "depth": sample["depth"].float(),
            "valid": sample["valid"].bool() & (sample["depth"] > 0),
        }


def _seed_worker(worker_id: int) -> None:
    """Seed python and numpy in a DataLoader worker from its torch seed; Ctrl-C is left to
    the main process (``dpde_cli.data.worker_init``)."""
    worker_init(worker_id)
    seed = torch.initial_seed() % 2**32
    random.seed(seed)
    np.random.seed(seed)


def _seed_of(*parts: int) -> int:
    """A 63-bit seed mixed from integers."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1, np.uint64)[0] >> 1)


def resolve_input_size(config: TrainConfig, spec_size: tuple[int, int]) -> tuple[int, int]:
    """The training (H, W): the config's, else the dataset default, else the model's."""
    if config.input_size is not None:
        return (int(config.input_size[0]), int(config.input_size[1]))
    return DATASET_INPUT_SIZES.get(config.dataset, tuple(spec_size))


def build_datasets(
    config: TrainConfig, input_size: tuple[int, int]
) -> tuple[Dataset, Dataset | None]:
    """The base training set and, with ``val_split``, a separate validation set.

    Several data folders are one set (``dpde_cli.data.build_datasets``), as eval has them.

    Returns:
        (train, val): val is None when the validation images are held out of ``train``.

    Raises:
        UsageError: a ``val_split`` that would validate on the training images.
    """
    from dpde_cli.data import build_dataset
    from dpde_cli.data import build_datasets as combine

    options = dict(config.dataset_options)
    if config.dataset == "synthetic":
        # Rendered at the input size; with val_split, validation uses other scenes.
        from dpde_cli.data.synthetic import SceneConfig

        options.setdefault("length", config.synthetic_size)
        options.setdefault("config", SceneConfig(height=input_size[0], width=input_size[1]))
        options.setdefault("seed", 0)
        # config.data_dir goes through so that the builder refuses one, not ignores it
        train_set = build_dataset("synthetic", config.data_dir, "train", **options)
        if config.val_split is None:
            return train_set, None
        count = max(1, round(options["length"] * (config.val_fraction or 0.05)))
        val_options = {**options, "length": count, "seed": options["seed"] + options["length"]}
        return train_set, build_dataset("synthetic", None, config.val_split, **val_options)
    split = TRAIN_SPLITS.get(config.dataset, "train")
    _check_val_split(config, split)
    train_set = combine(config.dataset, config.data_dirs(), split, options)
    val_set = None
    if config.val_split is not None:
        val_set = combine(config.dataset, config.data_dirs(), config.val_split, options)
    return train_set, val_set


def _check_val_split(config: TrainConfig, train_split: str) -> None:
    """Refuse a validation split that holds the training images (a folder's only one)."""
    if config.val_split is None:
        return
    if config.dataset == "folder":
        raise UsageError(
            f"--val-split {config.val_split}: a folder has no splits, validation would "
            "score the training images; hold images out with --val-fraction instead"
        )
    if config.val_split == train_split:
        raise UsageError(
            f"--val-split {config.val_split} is the split {config.dataset} trains on; "
            "validate on another split or hold images out with --val-fraction"
        )


def holdout_split(length: int, fraction: float) -> tuple[list[int], list[int]]:
    """Split range(length) into (train, val) indices; val is a fixed random ``fraction``.

    The held-out images depend only on ``length`` and ``fraction``, not on the run's seed.
    """
    if fraction <= 0:
        return list(range(length)), []
    n_val = max(1, round(length * fraction))
    if n_val >= length:
        raise UsageError(
            f"val_fraction {fraction} leaves no training image out of {length}; lower it"
        )
    order = np.random.default_rng(_HOLDOUT_SEED).permutation(length)
    return sorted(int(i) for i in order[n_val:]), sorted(int(i) for i in order[:n_val])


# --------------------------------------------------------------------------- small helpers


class _DepthNet(nn.Module):
    """Stage 1's trainable network: normalise, encoder + decoder -> (B, 1, H, W) metres.

    Registers only the encoder and decoder, so DDP syncs nothing of the gradient network.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.encoder, self.decoder = model.encoder, model.decoder
        self._normalize, self._forward_depth = model.normalize, model.forward_depth

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self._forward_depth(self._normalize(image))


class _GradientNet(nn.Module):
    """Stage 2's trainable network: normalise, gradient net -> (B, 2, H, W) metres/pixel.

    Registers only the gradient network (DDP leaves the frozen global network alone).
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.gradient_net = model.gradient_net
        self._normalize = model.normalize

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.gradient_net(self._normalize(image))


def _better(value: float, best: float | None) -> bool:
    """Whether ``value`` beats ``best`` (lower is better; NaN never wins over a number)."""
    if best is None:
        return True
    if not math.isfinite(value):
        return False
    return not math.isfinite(best) or value < best


def _finite_or_none(value: Any) -> Any:
    """A value for strict JSON: a NaN or infinite float becomes None (null)."""
    return None if isinstance(value, float) and not math.isfinite(value) else value


def _json_line(record: dict[str, Any]) -> str:
    """One compact JSON line, strict JSON (floats written exactly; NaN and inf, which
    JSON has not, as null)."""
    plain = {k: _finite_or_none(v) for k, v in record.items()}
    return json.dumps(plain, separators=(",", ":"), allow_nan=False) + "\n"


def _write_json(path: Path, data: Any) -> None:
    """Write JSON atomically."""
    from dpde_cli.io import write_text

    write_text(path, json.dumps(data, indent=2) + "\n")


def _state_bytes(state: dict[str, Any]) -> bytes:
    """torch.save of a state dict into bytes (deterministic for equal tensors)."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


def export_weights(
    state: dict[str, torch.Tensor],
    weights_dir: Path,
    model_name: str,
    half: bool = False,
    run: dict[str, Any] | None = None,
) -> tuple[Path, str]:
    """Write a state dict in the registry's weights format as ``<model>-<sha256[:8]>.pt``.

    Args:
        state: the model's state dict (any device).
        weights_dir: folder to write into.
        model_name: registered name (the file name's prefix).
        half: convert floating tensors to float16.
        run: facts about the run (``registry.RUN_FACTS``): stored beside the state dict as
            {"model": state, "run": run}; None: a bare state dict.

    Returns:
        (path, sha256 hex digest of the file).
    """
    import hashlib

    from dpde_cli.io import atomic_path

    plain = {}
    for key, value in state.items():
        value = value.detach().to("cpu").contiguous()
        if half and value.is_floating_point():
            value = value.half()
        plain[key] = value.clone()
    data = _state_bytes(plain if run is None else {"model": plain, "run": run})
    digest = hashlib.sha256(data).hexdigest()
    path = weights_dir / f"{model_name}-{digest[:8]}.pt"
    if not path.exists():
        with atomic_path(path) as tmp:
            tmp.write_bytes(data)
    return path, digest


def average_weights(
    paths: Sequence[Path], weights_dir: Path, model_name: str | None = None, half: bool = False
) -> tuple[Path, str]:
    """The uniform average of weight files of one model, exported as ``export_weights`` does.

    Every floating-point tensor is averaged (BatchNorm running statistics included) in
    float32; other tensors (BatchNorm's batch counters) and the run facts come from the last
    file. Averaging a model with its fine-tuned descendants (a "model soup"; WiSE-FT for two)
    is how the shipped dpde-lite weights were made (see the registry's spec). ``model_name``
    (the file name's prefix) defaults to the model the last file's run facts name.

    Raises:
        WeightsError: fewer than two files, files whose keys or shapes differ, or no model
            name given or recorded.
    """
    from dpde_cli.errors import WeightsError
    from dpde_cli.registry import read_weights

    if len(paths) < 2:
        raise WeightsError("averaging needs at least two weights files")
    states = [read_weights(Path(p)) for p in paths]
    last, facts = states[-1]
    model_name = model_name or facts.get("model")
    if not model_name:
        raise WeightsError(f"{paths[-1]}: the file does not name its model; give the model name")
    for path, (state, _) in zip(paths, states, strict=True):
        if state.keys() != last.keys():
            raise WeightsError(f"{path}: its keys differ from {paths[-1]}'s")
        wrong = [k for k in state if state[k].shape != last[k].shape]
        if wrong:
            raise WeightsError(f"{path}: shapes differ from {paths[-1]}'s ({wrong[0]}, ...)")
    average = {}
    for key, value in last.items():
        if value.is_floating_point():
            total = states[0][0][key].float()
            for state, _ in states[1:]:
                total = total + state[key].float()  # not sum(): 0 + -0.0 is +0.0
            average[key] = (total / len(states)).to(value.dtype)
        else:
            average[key] = value
    weights_dir.mkdir(parents=True, exist_ok=True)
    return export_weights(average, weights_dir, model_name, half=half, run=facts or None)


def _rng_state(device: torch.device) -> dict[str, Any]:
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


def _set_rng_state(state: dict[str, Any], device: torch.device) -> None:
    """Restore what ``_rng_state`` captured."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def _seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@contextlib.contextmanager
def _deterministic(enabled: bool) -> Iterator[None]:
    """torch.use_deterministic_algorithms for the block, restoring the previous setting."""
    before = torch.are_deterministic_algorithms_enabled()
    before_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    if enabled:
        torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before, warn_only=before_warn)


def read_log(run_dir: str | Path, kind: str | None = None) -> list[dict[str, Any]]:
    """The records of a run's log.jsonl, optionally only those of one kind ("step", ...)."""
    path = Path(run_dir) / LOG_FILE
    if not path.is_file():
        return []
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r for r in records if kind is None or r.get("kind") == kind]


def _truncate_log(path: Path, stage_index: int, step: int) -> None:
    """Drop log records written after the checkpoint at (stage_index, step)."""
    from dpde_cli.io import atomic_path

    if not path.is_file():
        return
    kept = []
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        record = json.loads(line)
        if "stage" in record and "step" in record:
            key = (STAGES.index(record["stage"]), int(record["step"]))
            if key > (stage_index, step):
                continue
        kept.append(line + "\n")
    with atomic_path(path) as tmp:
        tmp.write_text("".join(kept))


# --------------------------------------------------------------------------- the trainer


@dataclass
class _Progress:
    """Where a stage stands; saved in every checkpoint."""

    stage: str
    epoch: int = 0
    batch: int = 0  # batches done in the current epoch
    step: int = 0  # optimiser steps done in this stage
    done: bool = False
    best: dict[str, Any] | None = None


class _Trainer:
    """One training run on this process; ``run`` executes the remaining stages."""

    def __init__(
        self,
        config: TrainConfig,
        callbacks: TrainCallbacks | None,
        train_set: Dataset | None,
        val_set: Dataset | None,
        checkpoint: dict[str, Any] | None,
    ) -> None:
        from dpde_cli.io import refuse_unwritable

        config.validate()
        self.config = config
        self.run_dir = Path(config.out).expanduser()
        if checkpoint is None and (self.run_dir / CHECKPOINT_FILE).exists():
            raise UsageError(
                f"{self.run_dir} already holds a run; continue it with --resume "
                f"{self.run_dir} or choose another --out"
            )
        refuse_unwritable("--out", self.run_dir, folder=True)  # before any work
        self.info, self.device, self._owns_group = setup_distributed(config.device)
        try:
            self._setup(callbacks, train_set, val_set, checkpoint)
        except BaseException:
            self.close()
            raise

    def _setup(
        self,
        callbacks: TrainCallbacks | None,
        train_set: Dataset | None,
        val_set: Dataset | None,
        checkpoint: dict[str, Any] | None,
    ) -> None:
        """Data first (fails fast on a bad folder), then the model on its device."""
        from dpde_cli.device import resolve_precision
        from dpde_cli.registry import create_model, get_entry

        config = self.config
        self.callbacks = (callbacks if self.info.is_main else None) or TrainCallbacks()
        self.cuda = self.device.type == "cuda"
        self.amp_dtype = resolve_precision(self.device, "auto" if config.amp else "fp32")
        self.input_size = resolve_input_size(config, get_entry(config.model).weights.input_size)
        config.input_size = self.input_size
        self.checkpoint = checkpoint
        self.epoch_records: list[dict[str, Any]] = []
        self.val_depth_max: float | None = None  # set by each validation
        self.weights_index: dict[str, Any] = {
            "model": config.model,
            "input_size": list(self.input_size),
            "dtype": "float32",
            "best": None,
            "last": None,
            "stages": {},
        }
        focal = config.canonical_focal(self.input_size)
        if focal is not None:
            self.weights_index["canonical_focal"] = focal
        self._build_data(train_set, val_set)

        _seed_everything(config.seed)
        if config.init_weights:
            self.model = create_model(config.model, weights=config.init_weights)
        else:
            self.model = create_model(config.model, weights=None, pretrained=config.pretrained)
        if config.sync_bn and self.info.enabled and self.cuda:
            spec = self.model.spec
            self.model = nn.SyncBatchNorm.convert_sync_batchnorm(self.model)
            self.model.spec = spec
        self.model.to(self.device)
        if self.cuda:
            torch.backends.cudnn.benchmark = True
        if config.channels_last and self.cuda:
            self.model.to(memory_format=torch.channels_last)
        _seed_everything(_seed_of(config.seed, self.info.rank, 1))

    # ------------------------------------------------------------------ data

    def _build_data(self, train_set: Dataset | None, val_set: Dataset | None) -> None:
        """The train / validation loaders (sharded across ranks)."""
        from dpde_cli.data.transforms import EvalTransform, TrainTransform

        config = self.config
        focal = config.canonical_focal(self.input_size)
        if config.sources is not None and train_set is None:
            self._build_mix(focal)
        else:
            if train_set is None:
                train_set, val_set = build_datasets(config, self.input_size)
            train_indices, val_indices = list(range(len(train_set))), []
            if val_set is None:
                train_indices, val_indices = holdout_split(len(train_set), config.val_fraction)
            augment = (
                TrainTransform(
                    self.input_size, appearance=config.appearance, canonical_focal=focal
                )
                if config.augment
                else EvalTransform(self.input_size, canonical_focal=focal)
            )
            evaluate = EvalTransform(self.input_size, canonical_focal=focal)
            self.train_view = TrainingView(train_set, train_indices, augment, config.seed)
            if val_set is not None:
                self.val_view = TrainingView(val_set, range(len(val_set)), evaluate, config.seed)
            elif val_indices:
                self.val_view = TrainingView(train_set, val_indices, evaluate, config.seed)
            else:
                self.val_view = None
            self.sampler = EpochSampler(
                self.train_view, self.info.world_size, self.info.rank, config.seed, shuffle=True
            )
        self.steps_per_epoch = self.sampler.num_samples // config.batch_size
        if self.steps_per_epoch < 1:
            raise UsageError(
                f"the training set has {len(self.train_view)} images, fewer than one batch of "
                f"{config.batch_size} per process ({self.info.world_size} process(es)); "
                "lower --batch-size"
            )
        self.loader_generator = torch.Generator()
        workers = config.workers
        common = {
            "num_workers": workers,
            "pin_memory": self.cuda,
            "worker_init_fn": _seed_worker if workers else None,
            "persistent_workers": workers > 0,
        }
        self.train_loader = DataLoader(
            self.train_view,
            batch_size=config.batch_size,
            sampler=self.sampler,
            drop_last=True,
            generator=self.loader_generator,
            **common,
        )
        self.val_loader = None
        if self.val_view is not None:
            shard = list(range(self.info.rank, len(self.val_view), self.info.world_size))
            self.val_loader = DataLoader(
                torch.utils.data.Subset(self.val_view, shard),
                batch_size=config.batch_size,
                shuffle=False,
                generator=torch.Generator().manual_seed(config.seed),
                **common,
            )

    def _build_mix(self, canonical_focal: float | None) -> None:
        """The views and the weighted sampler of a training mix (``config.sources``)."""
        from dpde_cli.data.mix import WeightedEpochSampler, build_mix, source_from_json

        config = self.config
        mix = build_mix(
            [source_from_json(s) for s in config.sources or []],
            self.input_size,
            config.seed,
            val_fraction=config.val_fraction,
            augment=config.augment,
            appearance=config.appearance,
            canonical_focal=canonical_focal,
            train_splits=TRAIN_SPLITS,
        )
        self.train_view, self.val_view = mix.train, mix.val
        self.sampler = WeightedEpochSampler(
            mix.train.weights,
            config.epoch_size or len(mix.train),
            self.info.world_size,
            self.info.rank,
            config.seed,
        )

    # ------------------------------------------------------------------ run

    def run(self) -> TrainResult:
        """Run (or continue) every stage of the config."""
        start_stage = 0
        progress = None
        if self.checkpoint is not None:
            progress = self._restore_common(self.checkpoint)
            start_stage = STAGES.index(progress.stage)
            if progress.stage not in self.config.stages():
                raise UsageError(f"checkpoint stage {progress.stage} is not in this run")
            self.callbacks.on_checkpoint(
                self.run_dir / CHECKPOINT_FILE, progress.stage, progress.step
            )
        self._prepare_run_dir(resuming=self.checkpoint is not None, progress=progress)
        with _deterministic(self.config.deterministic and self.device.type == "cpu"):
            for stage in self.config.stages():
                if STAGES.index(stage) < start_stage:
                    continue
                resume_state = self.checkpoint if progress and progress.stage == stage else None
                self._run_stage(stage, resume_state)
                self.checkpoint = None
            self._finish()
        return TrainResult(self.run_dir, self.weights_index, self.epoch_records)

    def close(self) -> None:
        """Stop the loader workers (persistent, they would idle until garbage collection)
        and leave the process group if this run created it."""
        self.train_loader = self.val_loader = None
        if self._owns_group:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()
            self._owns_group = False

    def _prepare_run_dir(self, resuming: bool, progress: _Progress | None) -> None:
        """Create the run folder, write config.json, and open the log (rank 0)."""
        if not self.info.is_main:
            return
        (self.run_dir / WEIGHTS_DIR).mkdir(parents=True, exist_ok=True)
        _write_json(self.run_dir / RUN_CONFIG, self.config.to_json())
        log_path = self.run_dir / LOG_FILE
        if not resuming:  # a folder whose run never reached a checkpoint starts over
            log_path.unlink(missing_ok=True)
            (self.run_dir / WEIGHTS_INDEX).unlink(missing_ok=True)
        elif progress is not None:
            _truncate_log(log_path, STAGES.index(progress.stage), progress.step)
            _write_json(self.run_dir / WEIGHTS_INDEX, self.weights_index)
            self._prune_weights()
        self._log(
            {
                "kind": "resume" if resuming else "start",
                "time": round(time.time(), 3),
                "world_size": self.info.world_size,
                "device": str(self.device),
                "amp": str(self.amp_dtype).replace("torch.", "") if self.amp_dtype else None,
                "input_size": list(self.input_size),
                "train_images": len(self.train_view),
                "val_images": len(self.val_view) if self.val_view is not None else 0,
                "torch": torch.__version__,
            }
        )

    def _log(self, record: dict[str, Any]) -> None:
        """Append a record to log.jsonl (rank 0)."""
        if self.info.is_main:
            with open(self.run_dir / LOG_FILE, "a") as handle:
                handle.write(_json_line(record))

    # ------------------------------------------------------------------ one stage

    def _stage_setup(self, stage: str) -> tuple[nn.Module, list[nn.Parameter]]:
        """Freeze what the stage does not train; the (possibly DDP) trainable network."""
        model = self.model
        train_global = stage == "global"
        for parameter in model.global_parameters():
            parameter.requires_grad_(train_global)
        for parameter in model.gradient_net.parameters():
            parameter.requires_grad_(not train_global)
        freeze_encoder = train_global and self.config.encoder_lr_scale == 0
        if freeze_encoder:
            for parameter in model.encoder.parameters():
                parameter.requires_grad_(False)
        model.train()
        if not train_global:  # frozen global network: BN statistics stay as they are
            model.encoder.eval()
            model.decoder.eval()
        if freeze_encoder:
            model.encoder.eval()
        net: nn.Module = _DepthNet(model) if train_global else _GradientNet(model)
        params = [p for p in model.parameters() if p.requires_grad]
        if self.info.enabled:
            from torch.nn.parallel import DistributedDataParallel

            net = DistributedDataParallel(
                net, device_ids=[self.device.index] if self.cuda else None
            )
        return net, params

    def _run_stage(self, stage: str, resume_state: dict[str, Any] | None) -> None:
        """Train one stage to its end, validating, exporting and checkpointing each epoch."""
        from dpde_cli.losses import GlobalDepthLoss

        config = self.config
        net, params = self._stage_setup(stage)
        optimizer = self._optimizer(stage, params)
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda epoch: lr_factor(epoch, config.epochs, config.schedule)
        )
        scaler = torch.amp.GradScaler(
            self.device.type, enabled=self.amp_dtype == torch.float16 and self.cuda
        )
        progress = _Progress(stage)
        self.loss_sum = torch.zeros((), dtype=torch.float64, device=self.device)
        self.loss_count = 0
        self.valid_pixels = torch.zeros((), dtype=torch.float64, device=self.device)
        if resume_state is not None:
            progress = self._restore_stage(resume_state, optimizer, scheduler, scaler)
        self.stage_state = (optimizer, scheduler, scaler)
        if progress.done:  # finished before the checkpoint; a finished stage stays finished
            return
        total = config.epochs * self.steps_per_epoch
        if config.max_steps is not None:
            total = min(total, config.max_steps)
        self.callbacks.on_stage_start(stage, total, progress.step)
        if progress.step >= total or progress.epoch >= config.epochs:
            # resumed with a smaller --max-steps / --epochs: finish the stage here
            self._end_epoch(stage, progress, total, 0, 0.0)
            return
        if resume_state is None and config.stage == "gradient" and not config.init_weights:
            self.callbacks.on_message(
                "training the gradient network without --init-weights: the exported "
                "weights hold an untrained global network"
            )
        criterion = GlobalDepthLoss(config.lambda_berhu, config.lambda_fsim, config.lambda_silog)

        while not progress.done:
            self.sampler.set_position(progress.epoch, progress.batch * config.batch_size)
            self.loader_generator.manual_seed(_seed_of(config.seed, self.info.rank, progress.epoch))
            epoch_start = time.perf_counter()
            window_start, window_steps = epoch_start, 0
            steps_this_epoch = 0
            for batch in self.train_loader:
                loss, parts = self._train_step(
                    net, params, criterion, stage, batch, optimizer, scaler
                )
                progress.step += 1
                progress.batch += 1
                steps_this_epoch += 1
                window_steps += 1
                record: dict[str, Any] = {
                    "kind": "step",
                    "stage": stage,
                    "epoch": progress.epoch,
                    "step": progress.step,
                }
                if progress.step % config.log_every == 0 or progress.step == total:
                    now = time.perf_counter()
                    values = self._reduce_mean([loss, *parts.values()])
                    if not math.isfinite(values[0]):
                        raise DpdeError(
                            f"the {stage} loss became {values[0]} at step {progress.step}; "
                            "lower --lr (or check the data)"
                        )
                    record.update(
                        lr=scheduler.get_last_lr()[0],
                        loss=values[0],
                        **dict(zip(parts, values[1:], strict=True)),
                        images_per_s=self._rate(window_steps, now - window_start),
                    )
                    window_start, window_steps = now, 0
                    self._log(record)
                due = config.checkpoint_every and progress.step % config.checkpoint_every == 0
                if due and progress.batch < self.steps_per_epoch and progress.step < total:
                    self._save_checkpoint(progress)
                self.callbacks.on_step(record)
                if progress.step >= total:
                    break
            train_seconds = time.perf_counter() - epoch_start
            self._end_epoch(stage, progress, total, steps_this_epoch, train_seconds)

    def _optimizer(self, stage: str, params: list[nn.Parameter]) -> torch.optim.Optimizer:
        """SGD (the paper's) or AdamW over ``params``; the encoder's group scaled in stage 1."""
        config = self.config
        scale = config.encoder_lr_scale if stage == "global" else 1.0
        groups: list[dict[str, Any]] = [{"params": params}]
        encoder_ids = {id(p) for p in self.model.encoder.parameters()}
        encoder = [p for p in params if id(p) in encoder_ids]
        if encoder and scale != 1.0:  # else one group: the layout earlier checkpoints hold
            rest = [p for p in params if id(p) not in encoder_ids]
            groups = [{"params": rest}, {"params": encoder, "lr": config.lr * scale}]
        if config.optimizer == "adamw":
            return torch.optim.AdamW(groups, lr=config.lr, weight_decay=config.weight_decay)
        return torch.optim.SGD(
            groups, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
        )

    def _train_step(
        self,
        net: nn.Module,
        params: list[nn.Parameter],
        criterion: nn.Module,
        stage: str,
        batch: dict[str, torch.Tensor],
        optimizer: torch.optim.Optimizer,
        scaler: torch.amp.GradScaler,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """One optimiser step; returns the detached loss and its parts."""
        from dpde_cli.device import autocast
        from dpde_cli.losses import gradient_log_l1_loss

        image, depth, valid = self._to_device(batch)
        with autocast(self.device, self.amp_dtype):
            output = net(image)
        if stage == "global":
            loss, parts = criterion(output.float(), depth, valid)
        else:
            loss = gradient_log_l1_loss(output.float(), depth, valid)
            parts = {}
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if self.config.clip_grad_norm is not None:
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(params, self.config.clip_grad_norm)
        scaler.step(optimizer)
        scaler.update()
        loss = loss.detach()
        self.loss_sum += loss.double()
        self.loss_count += 1
        self.valid_pixels += valid.sum()  # on the device: no sync per step
        return loss, {k: v.detach() for k, v in parts.items()}

    def _to_device(
        self, batch: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Move a batch to the device (image channels-last on CUDA when asked)."""
        image = batch["image"].to(self.device, non_blocking=True)
        if self.cuda and self.config.channels_last:
            image = image.contiguous(memory_format=torch.channels_last)
        depth = batch["depth"].to(self.device, non_blocking=True)
        valid = batch["valid"].to(self.device, non_blocking=True)
        return image, depth, valid

    def _reduce_mean(self, values: list[torch.Tensor]) -> list[float]:
        """Means over ranks of scalar tensors, as floats."""
        stacked = torch.stack([v.float() for v in values]).double()
        all_reduce_sum(stacked, self.info)
        return [float(v) for v in stacked / self.info.world_size]

    def _rate(self, steps: int, seconds: float) -> float | None:
        """Training images per second over all ranks; None when no step was timed (a
        stage that a resume found already at its end)."""
        images = steps * self.config.batch_size * self.info.world_size
        return round(images / seconds, 3) if steps and seconds > 0 else None

    def _end_epoch(
        self, stage: str, progress: _Progress, total: int, steps: int, seconds: float
    ) -> None:
        """Validate, step the schedule, export, log and checkpoint at an epoch's end."""
        _optimizer, scheduler, _scaler = self.stage_state
        lr = scheduler.get_last_lr()[0]
        sums = torch.stack(
            [
                self.loss_sum,
                torch.tensor(float(self.loss_count), dtype=torch.float64, device=self.device),
                self.valid_pixels,
            ]
        )
        all_reduce_sum(sums, self.info)
        train_loss = float(sums[0] / sums[1]) if float(sums[1]) > 0 else float("nan")
        if float(sums[1]) > 0 and float(sums[2]) == 0:
            raise DpdeError(
                f"no valid depth in {int(sums[1])} training batches: every depth pixel is 0 "
                "or missing (check the depth files, and for a folder their units: "
                "--dataset-option depth_scale=UNITS_PER_METRE); no weights written"
            )
        self._sync_buffers()
        metrics = self._validate()
        finished = progress.batch >= self.steps_per_epoch
        record: dict[str, Any] = {
            "kind": "epoch",
            "stage": stage,
            "epoch": progress.epoch,
            "step": progress.step,
            "lr": lr,
            "train_loss": train_loss,
            **metrics,
            "images_per_s": self._rate(steps, seconds),
            "seconds": round(seconds, 3),
        }
        if finished:
            scheduler.step()
            progress.epoch += 1
            progress.batch = 0
            self.loss_sum.zero_()
            self.loss_count = 0
            self.valid_pixels.zero_()
        progress.done = progress.step >= total or progress.epoch >= self.config.epochs
        metric, value = self._selection(stage, record)
        improved = _better(value, progress.best["value"] if progress.best else None)
        if improved:
            progress.best = {"metric": metric, "value": value, "epoch": record["epoch"],
                             "step": progress.step}  # fmt: skip
        record["best"] = improved
        self._export(stage, record, progress, improved)
        self._log(record)
        loaded = None
        if progress.done and stage != self.config.stages()[-1]:
            loaded = self._load_stage_best(stage)
        self._save_checkpoint(progress)
        self.epoch_records.append(record)
        self.callbacks.on_epoch(record)
        if loaded is not None:  # after the epoch's summary, which it concludes
            self.callbacks.on_message(
                f"stage {stage} done; the next stage starts from its best weights "
                f"({loaded['metric']} {loaded['value']:.4g}, epoch {loaded['epoch']})"
            )

    def _sync_buffers(self) -> None:
        """Give every rank rank 0's buffers (BN running statistics), as DDP's next forward
        would: each rank updated them with its own last batch, and the model validated,
        exported and checkpointed must be one model."""
        if not self.info.enabled:
            return
        import torch.distributed as dist

        for buffer in self.model.buffers():
            dist.broadcast(buffer, src=0)

    @staticmethod
    def _selection(stage: str, record: dict[str, Any]) -> tuple[str, float]:
        """The metric that picks the best weights: val RMS (stage 1), val gradient loss
        (stage 2), the training loss without validation; lower is better."""
        key = "val_rms" if stage == "global" else "val_grad_loss"
        if key in record and math.isfinite(record[key]):
            return key, float(record[key])
        return "train_loss", float(record["train_loss"])

    @torch.no_grad()
    def _validate(self) -> dict[str, float]:
        """Validation metrics (per image, then averaged; reduced over ranks): val_rms,
        val_abs_rel, val_d1, ... and val_grad_loss (the stage-2 loss)."""
        from dpde_cli.device import autocast
        from dpde_cli.losses import gradient_terms
        from dpde_cli.metrics import BASE_METRICS, compute_metrics

        if self.val_loader is None:
            return {}
        was_training = self.model.training
        modes = {name: module.training for name, module in self.model.named_children()}
        self.model.eval()
        names = list(BASE_METRICS)
        # per metric: sum over images, count of images; then gradient-term sum and count
        totals = torch.zeros(2 * len(names) + 2, dtype=torch.float64, device=self.device)
        far = torch.zeros((), dtype=torch.float64, device=self.device)
        for batch in self.val_loader:
            image, depth, valid = self._to_device(batch)
            far = torch.maximum(far, torch.where(valid, depth, 0.0).amax().double())
            with autocast(self.device, self.amp_dtype):
                output = self.model(image)
            pred = output.depth.float().clamp(min=1e-3)
            values = compute_metrics(pred, depth, valid & (depth > 0))
            for i, name in enumerate(names):
                finite = torch.isfinite(values[name])
                totals[2 * i] += values[name][finite].sum()
                totals[2 * i + 1] += finite.sum()
            terms, mask = gradient_terms(output.gradients.float(), depth, valid)
            totals[-2] += terms[mask].double().sum()
            totals[-1] += mask.sum()
        all_reduce_sum(totals, self.info)
        self.val_depth_max = float(all_reduce_max(far, self.info))
        for name, module in self.model.named_children():
            module.train(modes[name])
        self.model.training = was_training
        out = {}
        for i, name in enumerate(names):
            count = float(totals[2 * i + 1])
            out[f"val_{name}"] = float(totals[2 * i] / count) if count else float("nan")
        count = float(totals[-1])
        out["val_grad_loss"] = float(totals[-2] / count) if count else float("nan")
        return out

    # ------------------------------------------------------------------ files

    def _export(
        self, stage: str, record: dict[str, Any], progress: _Progress, improved: bool
    ) -> None:
        """Export last (and best, when improved) weights; update weights.json (rank 0)."""
        if not self.info.is_main:
            return
        if self.val_depth_max is not None:  # the far limit predictions may reach
            self.weights_index["val_depth_max"] = round(self.val_depth_max, 3)
        path, digest = export_weights(
            self.model.state_dict(),
            self.run_dir / WEIGHTS_DIR,
            self.config.model,
            run=self._run_facts(),
        )
        metric, value = self._selection(stage, record)
        entry = {
            "file": str(path.relative_to(self.run_dir)),
            "sha256": digest,
            "stage": stage,
            "epoch": record["epoch"],
            "step": progress.step,
            "metric": metric,
            "value": value,
        }
        stages = self.weights_index["stages"].setdefault(stage, {"best": None, "last": None})
        stages["last"] = entry
        if improved:
            stages["best"] = entry
        self.weights_index["last"] = entry
        self.weights_index["best"] = stages["best"]
        _write_json(self.run_dir / WEIGHTS_INDEX, self.weights_index)

    def _run_facts(self) -> dict[str, Any]:
        """What an exported weights file says of this run (``registry.RUN_FACTS``)."""
        from dpde_cli.registry import run_facts

        return run_facts(self.config.to_json(), self.weights_index)

    def _load_stage_best(self, stage: str) -> dict[str, Any] | None:
        """Before the next stage: load this stage's best weights into the model (all ranks);
        returns their weights-index entry (None: no best yet)."""
        barrier(self.info)
        entry = self._broadcast_index()["stages"].get(stage, {}).get("best")
        if entry is None:
            return None
        from dpde_cli.registry import read_state_dict

        state = read_state_dict(self.run_dir / entry["file"])
        own = self.model.state_dict()
        self.model.load_state_dict({k: v.to(own[k].dtype) for k, v in state.items()})
        return entry

    def _broadcast_index(self) -> dict[str, Any]:
        """The weights index as rank 0 holds it (only rank 0 exports)."""
        if not self.info.enabled:
            return self.weights_index
        import torch.distributed as dist

        box = [self.weights_index]
        dist.broadcast_object_list(box, src=0)
        self.weights_index = box[0]
        return self.weights_index

    def _prune_weights(self) -> None:
        """Delete exported files the weights index no longer names (rank 0)."""
        keep = set()
        for entry in [self.weights_index.get("best"), self.weights_index.get("last")]:
            if entry:
                keep.add(entry["file"])
        for stage in self.weights_index.get("stages", {}).values():
            for entry in stage.values():
                if entry:
                    keep.add(entry["file"])
        for path in (self.run_dir / WEIGHTS_DIR).glob("*.pt"):
            if str(path.relative_to(self.run_dir)) not in keep:
                path.unlink(missing_ok=True)

    def _local_state(self) -> dict[str, Any]:
        """This rank's part of a checkpoint: RNG states and the running loss sums."""
        return {
            "rng": _rng_state(self.device),
            "loss_sum": float(self.loss_sum),
            "loss_count": self.loss_count,
            "valid_pixels": float(self.valid_pixels),
        }

    def _save_checkpoint(self, progress: _Progress) -> None:
        """Write checkpoints/last.pt atomically (rank 0; every rank sends its RNG state)."""
        from dpde_cli.io import atomic_path

        ranks = gather_objects(self._local_state(), self.info)
        if not self.info.is_main:
            return
        optimizer, scheduler, scaler = self.stage_state
        payload = {
            "format": CHECKPOINT_FORMAT,
            "model": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "scaler": scaler.state_dict(),
            "ranks": ranks,
            "world_size": self.info.world_size,
            "progress": asdict(progress),
            "weights_index": self.weights_index,
            "config": self.config.to_json(),
        }
        with atomic_path(self.run_dir / CHECKPOINT_FILE) as tmp:
            torch.save(payload, tmp)
        self._prune_weights()
        self.callbacks.on_checkpoint(self.run_dir / CHECKPOINT_FILE, progress.stage, progress.step)

    def _restore_common(self, checkpoint: dict[str, Any]) -> _Progress:
        """Model weights, weights index and progress from a checkpoint (all ranks)."""
        state = checkpoint["model"]
        own = self.model.state_dict()
        self.model.load_state_dict({k: v.to(own[k].dtype) for k, v in state.items()})
        self.weights_index = checkpoint["weights_index"]
        return _Progress(**checkpoint["progress"])

    def _restore_stage(
        self,
        checkpoint: dict[str, Any],
        optimizer: torch.optim.Optimizer,
        scheduler: Any,
        scaler: torch.amp.GradScaler,
    ) -> _Progress:
        """Optimiser, scheduler, scaler, RNG and loss sums of the interrupted stage."""
        progress = _Progress(**checkpoint["progress"])
        if progress.done:  # a finished stage: the next one starts fresh from here
            self._restore_rng(checkpoint)
            return progress
        optimizer.load_state_dict(checkpoint["optimizer"])
        scheduler.load_state_dict(checkpoint["scheduler"])
        scaler.load_state_dict(checkpoint["scaler"])
        local = self._restore_rng(checkpoint)
        if local is not None:
            self.loss_sum.fill_(local["loss_sum"])
            self.loss_count = int(local["loss_count"])
            # checkpoints from before the count: assume the data had depth
            self.valid_pixels.fill_(local.get("valid_pixels", 1.0))
        return progress

    def _restore_rng(self, checkpoint: dict[str, Any]) -> dict[str, Any] | None:
        """This rank's saved RNG state (exact when the world size is unchanged)."""
        ranks = checkpoint["ranks"]
        if checkpoint["world_size"] != self.info.world_size or self.info.rank >= len(ranks):
            self.callbacks.on_message(
                f"resuming on {self.info.world_size} process(es) a run saved with "
                f"{checkpoint['world_size']}: the continuation is not bit-exact"
            )
            _seed_everything(_seed_of(self.config.seed, self.info.rank, 2))
            return None
        local = ranks[self.info.rank]
        _set_rng_state(local["rng"], self.device)
        return local

    def _finish(self) -> None:
        """Optionally convert the exported weights to float16; final weights.json (rank 0).
        Every rank leaves together: one that tears its gloo group down while another still
        works can abort ("terminate called without an active exception", seen once)."""
        barrier(self.info)
        if self.info.is_main:
            self._final_weights()
        barrier(self.info)

    def _final_weights(self) -> None:
        """Convert the exported weights to float16 when asked; write the final index."""
        if self.config.export_half and self.weights_index.get("dtype") != "float16":
            from dpde_cli.registry import read_weights

            converted: dict[str, dict[str, Any]] = {}
            for holder in [self.weights_index, *self.weights_index["stages"].values()]:
                for key in ("best", "last"):
                    entry = holder.get(key)
                    if not entry:
                        continue
                    if entry["file"] not in converted:
                        state, facts = read_weights(self.run_dir / entry["file"])
                        path, digest = export_weights(
                            state,
                            self.run_dir / WEIGHTS_DIR,
                            self.config.model,
                            half=True,
                            run=facts,
                        )
                        converted[entry["file"]] = {
                            "file": str(path.relative_to(self.run_dir)),
                            "sha256": digest,
                        }
                    holder[key] = {**entry, **converted[entry["file"]]}
            self.weights_index["dtype"] = "float16"
            self._prune_weights()
        _write_json(self.run_dir / WEIGHTS_INDEX, self.weights_index)


# --------------------------------------------------------------------------- public API


def train(
    config: TrainConfig,
    callbacks: TrainCallbacks | None = None,
    *,
    train_set: Dataset | None = None,
    val_set: Dataset | None = None,
) -> TrainResult:
    """Train a registered model with the paper's recipe; see the module docstring.

    Args:
        config: the run's configuration (``config.out`` must not hold a run yet).
        callbacks: progress hooks (called on rank 0 only).
        train_set: a dataset of dpde sample dicts to use instead of ``config.dataset``
            (then ``val_fraction`` of it is held out unless ``val_set`` is given).
        val_set: a validation dataset of sample dicts.

    Returns:
        TrainResult: run folder, weights index, epoch records.

    Raises:
        UsageError: bad configuration, or ``config.out`` already holds a run.
        DpdeError: data or weights problems, or a loss that became NaN.

    Example:
        >>> train(TrainConfig(dataset="synthetic", synthetic_size=200, epochs=2, out="runs/x"))
    """
    return _run(replace(config), callbacks, train_set, val_set, checkpoint=None)


def _run(
    config: TrainConfig,
    callbacks: TrainCallbacks | None,
    train_set: Dataset | None,
    val_set: Dataset | None,
    checkpoint: dict[str, Any] | None,
) -> TrainResult:
    """Run a trainer (fresh, or from ``checkpoint``) to its end and release its workers and
    process group, with Ctrl-C kept an interrupt while loader workers run."""
    with loader_interrupts():
        trainer = _Trainer(config, callbacks, train_set, val_set, checkpoint=checkpoint)
        try:
            return trainer.run()
        finally:
            trainer.close()


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a training checkpoint (tensors and plain containers only).

    Raises:
        DpdeError: missing, unreadable, or not a dpde training checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise DpdeError(f"{path}: no checkpoint to resume from")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated zip, refused globals, ...
        raise DpdeError(f"{path}: not a loadable checkpoint ({exc})") from exc
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != CHECKPOINT_FORMAT:
        raise DpdeError(f"{path}: not a dpde training checkpoint")
    return checkpoint


def resume(
    run_dir: str | Path,
    callbacks: TrainCallbacks | None = None,
    *,
    overrides: dict[str, Any] | None = None,
    train_set: Dataset | None = None,
    val_set: Dataset | None = None,
) -> TrainResult:
    """Continue an interrupted run from its last checkpoint, exactly where it stopped.

    With the same world size and device type the continuation repeats the uninterrupted
    run (bit-exact on the CPU): model, optimiser, scheduler, GradScaler, every rank's RNG
    state and the position inside the epoch are restored, and the sample order and
    augmentations depend only on (seed, epoch, index).

    Args:
        run_dir: the run folder (holds config.json and checkpoints/last.pt).
        callbacks: progress hooks.
        overrides: TrainConfig fields to change (only those in RESUME_OVERRIDES).
        train_set, val_set: the in-memory datasets the run was started with, if any.

    Returns:
        TrainResult of the continued run.

    Raises:
        UsageError: an override outside RESUME_OVERRIDES.
        DpdeError: no config or checkpoint in run_dir.
    """
    run_dir = Path(run_dir).expanduser()
    config_path = run_dir / RUN_CONFIG
    if not config_path.is_file():
        raise DpdeError(f"{run_dir}: not a dpde run folder (no {RUN_CONFIG})")
    try:
        config = TrainConfig.from_json(json.loads(config_path.read_text()))
    except (OSError, ValueError, TypeError) as exc:
        raise DpdeError(f"{config_path}: cannot read ({exc})") from exc
    overrides = dict(overrides or {})
    refused = sorted(set(overrides) - RESUME_OVERRIDES)
    if refused:
        raise UsageError(
            f"cannot change {', '.join(refused)} when resuming; only "
            f"{', '.join(sorted(RESUME_OVERRIDES))}"
        )
    config = replace(config, out=str(run_dir), **overrides)
    checkpoint = load_checkpoint(run_dir / CHECKPOINT_FILE)
    progress = checkpoint["progress"]
    if progress["done"] and progress["stage"] == config.stages()[-1]:
        if callbacks is not None:
            callbacks.on_message(f"{run_dir}: the run is complete; nothing to resume")
        index = json.loads((run_dir / WEIGHTS_INDEX).read_text())
        return TrainResult(run_dir, index, [])
    return _run(config, callbacks, train_set, val_set, checkpoint=checkpoint)
