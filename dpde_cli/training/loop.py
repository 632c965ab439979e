"""One stage's machinery, one epoch of training, and validation.

``start_stage`` freezes what a stage does not train and builds its optimiser, schedule
and scaler; ``train_one_epoch`` runs the optimiser steps of one epoch and returns its
running sums; ``validate`` scores the model on the validation images with
``dpde_cli.metrics.MetricAccumulator``. Everything reduces over the processes of a
distributed run, so every rank sees the same numbers.

Example:
    >>> stage = start_stage(model, "global", config, runtime)
    >>> stats = train_one_epoch(stage, runtime, data, progress, total, EpochSums.zeros(dev))
    >>> metrics, far = validate(model, data.val_loader, runtime)
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from dpde_cli.distributed import DistInfo, all_reduce_max, all_reduce_sum
from dpde_cli.errors import DpdeError
from dpde_cli.training.checkpoint import Progress, RankState, seed_everything
from dpde_cli.training.config import TrainConfig, lr_factor
from dpde_cli.training.data import TrainingData, seed_of


@dataclass(frozen=True)
class Runtime:
    """Where and how this process computes.

    Attributes:
        info: its place in a distributed run.
        device: its device.
        amp_dtype: autocast dtype (None: fp32).
        channels_last: images and model in channels-last memory format (CUDA only).
    """

    info: DistInfo
    device: torch.device
    amp_dtype: torch.dtype | None
    channels_last: bool

    def to_device(
        self, batch: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """A batch's (image, depth, valid) on the device."""
        image = batch["image"].to(self.device, non_blocking=True)
        if self.channels_last:
            image = image.contiguous(memory_format=torch.channels_last)
        depth = batch["depth"].to(self.device, non_blocking=True)
        valid = batch["valid"].to(self.device, non_blocking=True)
        return image, depth, valid

    def reduce_mean(self, values: list[torch.Tensor]) -> list[float]:
        """Means over ranks of scalar tensors, as floats."""
        stacked = torch.stack([v.float() for v in values]).double()
        all_reduce_sum(stacked, self.info)
        return [float(v) for v in stacked / self.info.world_size]

    @contextlib.contextmanager
    def deterministic(self, enabled: bool) -> Iterator[None]:
        """torch.use_deterministic_algorithms for the block on the CPU (when ``enabled``),
        restoring the previous setting."""
        before = torch.are_deterministic_algorithms_enabled()
        before_warn = torch.is_deterministic_algorithms_warn_only_enabled()
        if enabled and self.device.type == "cpu":
            torch.use_deterministic_algorithms(True, warn_only=True)
        try:
            yield
        finally:
            torch.use_deterministic_algorithms(before, warn_only=before_warn)

    def rate(self, steps: int, seconds: float, batch_size: int) -> float | None:
        """Training images per second over all ranks; None when no step was timed (a
        stage that a resume found already at its end)."""
        images = steps * batch_size * self.info.world_size
        return round(images / seconds, 3) if steps and seconds > 0 else None


# --------------------------------------------------------------------------- a stage


def training_model(config: TrainConfig, runtime: Runtime) -> nn.Module:
    """The registered model, initialised as the config says, on the device; the global
    RNGs seeded for the model's init, then for this rank's training."""
    from dpde_cli.registry import create_model

    seed_everything(config.seed)
    if config.init_weights:
        model = create_model(config.model, weights=config.init_weights)
    else:
        model = create_model(config.model, weights=None, pretrained=config.pretrained)
    cuda = runtime.device.type == "cuda"
    if config.sync_bn and runtime.info.enabled and cuda:
        spec, run = model.spec, model.run_facts
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        model.spec, model.run_facts = spec, run
    model.to(runtime.device)
    if cuda:
        torch.backends.cudnn.benchmark = True
    if runtime.channels_last:
        model.to(memory_format=torch.channels_last)
    seed_everything(seed_of(config.seed, runtime.info.rank, 1))
    return model


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


@dataclass
class Stage:
    """What trains in one stage and how.

    Attributes:
        name: "global" (encoder + decoder, BerHu + FSIM) or "gradient" (log-L1).
        net: the trainable network (DDP-wrapped in a distributed run).
        params: the parameters it trains.
        optimizer, scheduler, scaler: their state is checkpointed.
        criterion: stage 1's loss (None in stage 2).
        clip_grad_norm: gradient-norm clip (None: none).
    """

    name: str
    net: nn.Module
    params: list[nn.Parameter]
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler
    criterion: nn.Module | None
    clip_grad_norm: float | None = None

    @property
    def lr(self) -> float:
        """The current learning rate (of the first parameter group)."""
        return self.scheduler.get_last_lr()[0]


def start_stage(model: nn.Module, name: str, config: TrainConfig, runtime: Runtime) -> Stage:
    """Freeze what stage ``name`` does not train; its network, optimiser, schedule, scaler."""
    from dpde_cli.losses import GlobalDepthLoss

    train_global = name == "global"
    for parameter in model.global_parameters():
        parameter.requires_grad_(train_global)
    for parameter in model.gradient_net.parameters():
        parameter.requires_grad_(not train_global)
    freeze_encoder = train_global and config.encoder_lr_scale == 0
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
    if runtime.info.enabled:
        from torch.nn.parallel import DistributedDataParallel

        cuda = runtime.device.type == "cuda"
        net = DistributedDataParallel(net, device_ids=[runtime.device.index] if cuda else None)
    optimizer = _optimizer(model, name, params, config)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda epoch: lr_factor(epoch, config.epochs, config.schedule)
    )
    scaler = torch.amp.GradScaler(
        runtime.device.type,
        enabled=runtime.amp_dtype == torch.float16 and runtime.device.type == "cuda",
    )
    criterion = None
    if train_global:
        criterion = GlobalDepthLoss(config.lambda_berhu, config.lambda_fsim, config.lambda_silog)
    return Stage(name, net, params, optimizer, scheduler, scaler, criterion, config.clip_grad_norm)


def _optimizer(
    model: nn.Module, stage: str, params: list[nn.Parameter], config: TrainConfig
) -> torch.optim.Optimizer:
    """SGD (the paper's) or AdamW over ``params``; the encoder's group scaled in stage 1."""
    scale = config.encoder_lr_scale if stage == "global" else 1.0
    groups: list[dict[str, Any]] = [{"params": params}]
    encoder_ids = {id(p) for p in model.encoder.parameters()}
    encoder = [p for p in params if id(p) in encoder_ids]
    if encoder and scale != 1.0:  # else one group: the layout earlier checkpoints hold
        rest = [p for p in params if id(p) not in encoder_ids]
        groups = [{"params": rest}, {"params": encoder, "lr": config.lr * scale}]
    if config.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.SGD(
        groups, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
    )


# --------------------------------------------------------------------------- an epoch


@dataclass
class EpochSums:
    """Running sums of the epoch in progress on this process (on the device: no sync per
    step); checkpointed, so that a resume mid-epoch reports the same training loss.

    Attributes:
        loss: sum of the step losses (float64).
        count: steps summed.
        valid_pixels: valid depth pixels seen (float64).
    """

    loss: torch.Tensor
    count: int
    valid_pixels: torch.Tensor

    @classmethod
    def zeros(cls, device: torch.device) -> EpochSums:
        """Nothing summed yet."""
        zero = torch.zeros((), dtype=torch.float64, device=device)
        return cls(zero, 0, zero.clone())

    @classmethod
    def restore(cls, saved: RankState, device: torch.device) -> EpochSums:
        """The sums a checkpoint saved for this process."""
        sums = cls.zeros(device)
        sums.loss.fill_(saved.loss_sum)
        sums.valid_pixels.fill_(saved.valid_pixels)
        return cls(sums.loss, saved.loss_count, sums.valid_pixels)

    def saved(self, rng: dict[str, Any]) -> RankState:
        """This process's part of a checkpoint: the sums and its RNG state."""
        return RankState(rng, float(self.loss), self.count, float(self.valid_pixels))

    def add(self, loss: torch.Tensor, valid: torch.Tensor) -> EpochSums:
        """The sums with one more step's loss and valid mask."""
        return EpochSums(self.loss + loss.double(), self.count + 1, self.valid_pixels + valid.sum())

    def reduced(self, info: DistInfo) -> tuple[float, float, float]:
        """(loss sum, steps, valid pixels) summed over ranks."""
        count = torch.tensor(float(self.count), dtype=torch.float64, device=self.loss.device)
        sums = torch.stack([self.loss, count, self.valid_pixels])
        all_reduce_sum(sums, info)
        return float(sums[0]), float(sums[1]), float(sums[2])


@dataclass
class EpochStats:
    """What ``train_one_epoch`` returns: the epoch's running sums (from its start, a resume
    included), and the steps and seconds of this call."""

    sums: EpochSums
    steps: int = 0
    seconds: float = 0.0


def train_step(
    stage: Stage, runtime: Runtime, batch: dict[str, torch.Tensor]
) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor]:
    """One optimiser step; returns the detached loss, its parts and the valid mask."""
    from dpde_cli.device import autocast
    from dpde_cli.losses import gradient_log_l1_loss

    image, depth, valid = runtime.to_device(batch)
    with autocast(runtime.device, runtime.amp_dtype):
        output = stage.net(image)
    if stage.criterion is not None:
        loss, parts = stage.criterion(output.float(), depth, valid)
    else:
        loss, parts = gradient_log_l1_loss(output.float(), depth, valid), {}
    stage.optimizer.zero_grad(set_to_none=True)
    stage.scaler.scale(loss).backward()
    if stage.clip_grad_norm is not None:
        stage.scaler.unscale_(stage.optimizer)
        torch.nn.utils.clip_grad_norm_(stage.params, stage.clip_grad_norm)
    stage.scaler.step(stage.optimizer)
    stage.scaler.update()
    return loss.detach(), {k: v.detach() for k, v in parts.items()}, valid


StepHook = Callable[[dict[str, Any], EpochSums], None]
"""Called after every step with its record (losses on logging steps) and the sums so far."""


def train_one_epoch(
    stage: Stage,
    runtime: Runtime,
    data: TrainingData,
    progress: Progress,
    total: int,
    sums: EpochSums,
    log_every: int,
    after_step: StepHook,
) -> EpochStats:
    """Train from ``progress`` (epoch, batch, step: advanced in place) to the epoch's end
    or the stage's ``total`` steps.

    Args:
        sums: the epoch's sums so far (zeros, or a mid-epoch checkpoint's).
        log_every: losses (reduced over ranks) go into the record every N steps and at
            the last step.
        after_step: called after each step (the trainer logs, checkpoints, reports).

    Returns:
        EpochStats: the epoch's sums, and the steps and seconds of this call.

    Raises:
        DpdeError: the loss became NaN or infinite.
    """
    data.start_epoch(progress.epoch, progress.batch)
    start = time.perf_counter()
    window_start, window_steps, steps = start, 0, 0
    for batch in data.train_loader:
        loss, parts, valid = train_step(stage, runtime, batch)
        sums = sums.add(loss, valid)
        progress.step += 1
        progress.batch += 1
        steps += 1
        window_steps += 1
        record: dict[str, Any] = {
            "kind": "step", "stage": stage.name, "epoch": progress.epoch, "step": progress.step,
        }  # fmt: skip
        if progress.step % log_every == 0 or progress.step == total:
            now = time.perf_counter()
            values = runtime.reduce_mean([loss, *parts.values()])
            if not math.isfinite(values[0]):
                raise DpdeError(
                    f"the {stage.name} loss became {values[0]} at step {progress.step}; "
                    "lower --lr (or check the data)"
                )
            record.update(
                lr=stage.lr,
                loss=values[0],
                **dict(zip(parts, values[1:], strict=True)),
                images_per_s=runtime.rate(window_steps, now - window_start, data.batch_size),
            )
            window_start, window_steps = now, 0
        after_step(record, sums)
        if progress.step >= total:
            break
    return EpochStats(sums, steps, time.perf_counter() - start)


def selection(stage: str, record: dict[str, Any]) -> tuple[str, float]:
    """The metric that picks the best weights from an epoch record: val RMS (stage 1), val
    gradient loss (stage 2), the training loss without validation; lower is better."""
    key = "val_rms" if stage == "global" else "val_grad_loss"
    if key in record and math.isfinite(record[key]):
        return key, float(record[key])
    return "train_loss", float(record["train_loss"])


def better(value: float, best: float | None) -> bool:
    """Whether ``value`` beats ``best`` (lower is better; NaN never wins over a number)."""
    if best is None:
        return True
    if not math.isfinite(value):
        return False
    return not math.isfinite(best) or value < best


# --------------------------------------------------------------------------- validation


@torch.no_grad()
def validate(
    model: nn.Module, loader: torch.utils.data.DataLoader | None, runtime: Runtime
) -> tuple[dict[str, float], float | None]:
    """Score the model on the validation images (reduced over ranks).

    Returns:
        (metrics, far): val_rms, val_abs_rel, val_d1, ... (per image, then averaged) and
        val_grad_loss (the stage-2 loss); far, the farthest valid ground truth in metres.
        ({}, None) without a loader.
    """
    from dpde_cli.device import autocast
    from dpde_cli.losses import gradient_terms
    from dpde_cli.metrics import BASE_METRICS, MetricAccumulator

    if loader is None:
        return {}, None
    modes = {name: module.training for name, module in model.named_children()}
    was_training = model.training
    model.eval()
    accumulator = MetricAccumulator("image")
    device = runtime.device
    gradient = torch.zeros(2, dtype=torch.float64, device=device)  # sum of terms, count
    far = torch.zeros((), dtype=torch.float64, device=device)
    for batch in loader:
        image, depth, valid = runtime.to_device(batch)
        far = torch.maximum(far, torch.where(valid, depth, 0.0).amax().double())
        with autocast(device, runtime.amp_dtype):
            output = model(image)
        accumulator.update(output.depth.float().clamp(min=1e-3), depth, valid & (depth > 0))
        terms, mask = gradient_terms(output.gradients.float(), depth, valid)
        gradient += torch.stack([terms[mask].double().sum(), mask.sum().double()])
    for name, module in model.named_children():
        module.train(modes[name])
    model.training = was_training
    # per metric: the sum over images where it is finite, and their count
    names = list(BASE_METRICS)
    values = [[r[n] for r in accumulator.records if math.isfinite(r[n])] for n in names]
    totals = [x for v in values for x in (math.fsum(v), len(v))]
    reduced = torch.tensor(totals, dtype=torch.float64, device=device)
    reduced = torch.cat([reduced, gradient])
    all_reduce_sum(reduced, runtime.info)
    far = float(all_reduce_max(far, runtime.info))
    out = {}
    for i, name in enumerate([*names, "grad_loss"]):
        total, count = float(reduced[2 * i]), float(reduced[2 * i + 1])
        out[f"val_{name}"] = total / count if count else float("nan")
    return out, far
