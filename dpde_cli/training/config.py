"""What a training run depends on: ``TrainConfig`` and its closed choices (no torch here).

The CLI (``dpde_cli/cli/train.py``) derives its option enums, defaults and the options
``--resume`` may change from this module, so every choice is spelt here once; the datasets
and what training uses of each (split, input size) are the dataset catalogue's
(``dpde_cli.dataset_catalog``).

Example:
    >>> config = TrainConfig(dataset="synthetic", synthetic_size=200, epochs=2, out="runs/x")
    >>> config.validate()
    >>> config.stages()
    ('global', 'gradient')
"""

from __future__ import annotations

import json
import math
from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import Any

from dpde_cli.errors import UsageError

STAGES = ("global", "gradient")
"""Training stages in the order ``all`` runs them."""
STAGE_CHOICES = (*STAGES, "all")
"""What ``TrainConfig.stage`` accepts."""
SCHEDULES = ("paper", "constant")
"""Learning-rate schedules (see ``lr_factor``)."""
OPTIMIZERS = ("sgd", "adamw")
"""Optimisers: the paper's SGD with momentum, or AdamW."""
APPEARANCES = ("standard", "strong")
"""Photometric augmentation levels of ``dpde_cli.data.transforms.TrainTransform``."""
KINECT_FX, KINECT_WIDTH = 518.8579, 640
"""The NYUv2 Kinect colour camera's focal length and image width, pixels (the canonical
camera of ``canonical_camera``; ``dpde_cli.geometry.NYU_KINECT`` has all its values)."""
RESUME_OVERRIDES = ("epochs", "max_steps", "workers", "device", "checkpoint_every", "log_every")
"""TrainConfig fields ``resume`` may change (the rest of a run's config stays as saved)."""


def _default_workers() -> int:
    """min(4, usable CPUs) (``dpde_cli.data.default_workers``, imported when needed)."""
    from dpde_cli.data import default_workers

    return default_workers()


@dataclass
class TrainConfig:
    """Everything a training run depends on; saved as ``config.json`` in the run folder.

    Attributes:
        dataset: a dataset with a train split (``dataset_catalog.list_datasets(trainable=True)``).
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
        input_size: (H, W) training size, multiples of 8; None: the dataset's (its
            catalogue entry's ``input_size``), else the model's (240 x 320 for NYUv2).
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
        zoom_range: (low, high) of the random zoom s of the augmentation (>= 1: the image
            is enlarged s times, then cropped; with ``canonical_camera`` a zoom is exactly
            a lens s times longer, so a wide range teaches narrow fields of view).
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
    zoom_range: tuple[float, float] = (1.0, 1.5)
    val_fraction: float = 0.05
    val_split: str | None = None
    workers: int = field(default_factory=_default_workers)
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
        for name, choices in (
            ("stage", STAGE_CHOICES),
            ("schedule", SCHEDULES),
            ("optimizer", OPTIMIZERS),
            ("appearance", APPEARANCES),
        ):
            if getattr(self, name) not in choices:
                raise UsageError(
                    f"unknown {name} {getattr(self, name)!r}; use {', '.join(choices)}"
                )
        for name in ("lambda_berhu", "lambda_fsim", "lambda_silog", "encoder_lr_scale"):
            if not getattr(self, name) >= 0:
                raise UsageError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("epochs", "batch_size", "log_every"):
            if getattr(self, name) < 1:
                raise UsageError(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("max_steps", "checkpoint_every", "synthetic_size", "epoch_size"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise UsageError(f"{name} must be at least 1, got {value}")
        self._validate_ranges()

    def _validate_ranges(self) -> None:
        """The numeric settings with a range of their own, and the folders and sizes."""
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
        low, high = (float(v) for v in self.zoom_range)
        if not 1.0 <= low <= high < math.inf:
            raise UsageError(f"zoom_range must be 1 <= low <= high, got {self.zoom_range}")
        if self.input_size is not None:
            from dpde_cli.registry import check_input_size

            check_input_size(self.input_size)
        if isinstance(self.data_dir, list) and not self.data_dir:
            raise UsageError("data_dir is an empty list; give at least one folder")
        self._validate_sources()

    def _validate_sources(self) -> None:
        """A mix: a non-empty list of sources, each a dataset name with a positive weight."""
        if self.sources is None:
            if self.epoch_size is not None:
                raise UsageError("epoch_size sets the draws of a training mix; give sources")
            return
        if not self.sources:
            raise UsageError("sources is an empty list; give at least one source")
        for source in self.sources:
            weight = source.get("weight", 1.0) if isinstance(source, dict) else None
            if not isinstance(source, dict) or not isinstance(source.get("dataset"), str):
                raise UsageError(f"a source is a dict with a dataset name, got {source!r}")
            if isinstance(weight, bool) or not isinstance(weight, (int, float)):
                raise UsageError(f"a source's weight must be a number, got {weight!r}")
            if not 0 < weight < math.inf:
                raise UsageError(f"a source's weight must be positive, got {weight!r}")

    def canonical_focal(self, input_size: tuple[int, int]) -> float | None:
        """The focal length (pixels at ``input_size``) depth targets refer to: the NYUv2
        Kinect's, scaled to the input width; None without ``canonical_camera``."""
        if not self.canonical_camera:
            return None
        return KINECT_FX * input_size[1] / KINECT_WIDTH

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
        if "zoom_range" in values:
            values["zoom_range"] = tuple(float(v) for v in values["zoom_range"])
        return cls(**values)


def defaults() -> dict[str, Any]:
    """Each TrainConfig field's default value (those with a fixed one: not ``workers``
    and ``dataset_options``, which are computed or mutable)."""
    return {f.name: f.default for f in fields(TrainConfig) if f.default is not MISSING}


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
