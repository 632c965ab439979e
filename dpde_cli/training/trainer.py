"""Training: the paper's two-stage recipe, resumable, on one device or many (DDP).

Stage ``global`` trains the encoder and decoder with ``lambda_B * BerHu + lambda_F * FSIM``;
stage ``gradient`` trains the gradient network with the log-L1 loss while the global network
stays frozen; ``all`` runs both, stage 2 starting from stage 1's best weights. SGD with
momentum 0.9, lr 1e-2, halved after the first third of the epochs and 1e-3 for the last
third (the paper's 10 / 10 / 10 of 30 epochs, scaled to ``epochs``).

Each epoch: ``train_one_epoch``, then ``validate``, step the schedule, pick the best,
export the weights, log, checkpoint (``run_folder.py`` describes the files, and
``checkpoint.py`` what a resume continues from).

Multi-GPU: ``torchrun --nproc_per_node N -m dpde_cli train ...`` sets WORLD_SIZE, RANK and
LOCAL_RANK; ``train`` then joins the process group (nccl on CUDA, gloo on CPU), wraps the
network in DistributedDataParallel, shards the data (``batch_size`` is per process), reduces
losses and validation metrics over ranks, and lets rank 0 alone write files.

Example:
    >>> from dpde_cli.training import TrainConfig, train, resume
    >>> result = train(TrainConfig(dataset="nyuv2", data_dir="~/data/nyu", out="runs/nyu"))
    >>> result = resume("runs/nyu")  # after an interruption: continues where it stopped
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from dpde_cli.data import loader_interrupts
from dpde_cli.distributed import barrier, gather_objects, setup_distributed
from dpde_cli.errors import DpdeError, UsageError
from dpde_cli.training.checkpoint import (
    Best,
    Progress,
    RankState,
    TrainState,
    rng_state,
    seed_everything,
    set_rng_state,
)
from dpde_cli.training.config import RESUME_OVERRIDES, STAGES, TrainConfig
from dpde_cli.training.data import resolve_input_size, seed_of, training_data, training_sets
from dpde_cli.training.loop import (
    EpochStats,
    EpochSums,
    Runtime,
    Stage,
    better,
    selection,
    start_stage,
    train_one_epoch,
    training_model,
    validate,
)
from dpde_cli.training.run_folder import RunFolder, WeightsEntry, WeightsIndex


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
    weights: WeightsIndex
    epochs: list[dict[str, Any]]


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
        config: the run's configuration (``config.out`` must not hold a run, nor other
            files, yet).
        callbacks: progress hooks (called on rank 0 only).
        train_set: a dataset of dpde sample dicts to use instead of ``config.dataset``
            (then ``val_fraction`` of it is held out unless ``val_set`` is given).
        val_set: a validation dataset of sample dicts.

    Returns:
        TrainResult: run folder, weights index, epoch records.

    Raises:
        UsageError: bad configuration, or ``config.out`` holds a run or other files.
        DpdeError: data or weights problems, or a loss that became NaN.

    Example:
        >>> train(TrainConfig(dataset="synthetic", synthetic_size=200, epochs=2, out="runs/x"))
    """
    from dpde_cli.io import refuse_unwritable

    config = replace(config)
    config.validate()
    folder = RunFolder(config.out)
    folder.check_new_run()
    refuse_unwritable("--out", folder.path, folder=True)  # before any work
    return _run(config, callbacks, train_set, val_set, saved=None)


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
        DpdeError: no config or checkpoint in run_dir, or a damaged one.
    """
    from dpde_cli.io import refuse_unwritable

    folder = RunFolder(run_dir)
    config = folder.read_config()
    overrides = dict(overrides or {})
    refused = sorted(set(overrides) - set(RESUME_OVERRIDES))
    if refused:
        raise UsageError(
            f"cannot change {', '.join(refused)} when resuming; only "
            f"{', '.join(sorted(RESUME_OVERRIDES))}"
        )
    config = replace(config, out=str(folder.path), **overrides)
    config.validate()
    saved = TrainState.load(folder.checkpoint_path)
    refuse_unwritable("--resume", folder.path, folder=True)  # before any work
    if saved.progress.done and saved.progress.stage == config.stages()[-1]:
        folder.remove_temporaries()
        if callbacks is not None:
            callbacks.on_message(f"{folder.path}: the run is complete; nothing to resume")
        return TrainResult(folder.path, folder.read_index(), [])
    return _run(config, callbacks, train_set, val_set, saved=saved)


def _run(
    config: TrainConfig,
    callbacks: TrainCallbacks | None,
    train_set: Dataset | None,
    val_set: Dataset | None,
    saved: TrainState | None,
) -> TrainResult:
    """Run a trainer (fresh, or from ``saved``) to its end and release its workers and
    process group, with Ctrl-C kept an interrupt while loader workers run."""
    with loader_interrupts():
        trainer = _Trainer(config, callbacks, train_set, val_set)
        try:
            return trainer.run(saved)
        finally:
            trainer.close()


# --------------------------------------------------------------------------- the trainer


class _Trainer:
    """One training run on this process: its setup (data first, so a bad folder fails
    fast, then the model on its device), and ``run``, which executes the stages."""

    def __init__(
        self,
        config: TrainConfig,
        callbacks: TrainCallbacks | None,
        train_set: Dataset | None,
        val_set: Dataset | None,
    ) -> None:
        from dpde_cli.device import resolve_precision
        from dpde_cli.registry import get_entry

        info, device, self._owns_group = setup_distributed(config.device)
        self.data = None
        try:
            cuda = device.type == "cuda"
            amp_dtype = resolve_precision(device, "auto" if config.amp else "fp32")
            self.runtime = Runtime(info, device, amp_dtype, cuda and config.channels_last)
            self.config = config
            self.folder = RunFolder(config.out)
            self.callbacks = (callbacks if info.is_main else None) or TrainCallbacks()
            input_size = resolve_input_size(config, get_entry(config.model).weights.input_size)
            config.input_size = input_size
            focal = config.canonical_focal(input_size)
            self.index = WeightsIndex(config.model, input_size, canonical_focal=focal)
            self.epoch_records: list[dict[str, Any]] = []
            if train_set is None and config.sources is None:
                train_set, val_set = training_sets(config, input_size)
            self.data = training_data(config, input_size, info, train_set, val_set, cuda)
            self.model = training_model(config, self.runtime)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Stop the loader workers and leave the process group if this run created it."""
        if self.data is not None:
            self.data.close()
        if self._owns_group:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()
            self._owns_group = False

    def run(self, saved: TrainState | None) -> TrainResult:
        """Run (or continue from ``saved``) every stage of the config."""
        if saved is not None:
            self._restore_model(saved)
        self._open_folder(saved)
        with self.runtime.deterministic(self.config.deterministic):
            for name in self.config.stages():
                if saved is not None and STAGES.index(name) < STAGES.index(saved.progress.stage):
                    continue
                here = saved if saved is not None and saved.progress.stage == name else None
                self._run_stage(name, here)
            self._finish()
        return TrainResult(self.folder.path, self.index, self.epoch_records)

    def _run_stage(self, name: str, saved: TrainState | None) -> None:
        """Train one stage to its end: epochs of training, each closed by ``_end_epoch``."""
        config = self.config
        stage = start_stage(self.model, name, config, self.runtime)
        progress, sums = Progress(name), EpochSums.zeros(self.runtime.device)
        if saved is not None:
            progress, sums = self._restore_stage(saved, stage)
        if progress.done:  # finished before the checkpoint; a finished stage stays finished
            return
        total = config.epochs * self.data.steps_per_epoch
        if config.max_steps is not None:
            total = min(total, config.max_steps)
        self.callbacks.on_stage_start(name, total, progress.step)
        if progress.step >= total or progress.epoch >= config.epochs:
            # resumed with a smaller --max-steps / --epochs: finish the stage here
            self._end_epoch(stage, progress, total, EpochStats(sums))
            return
        if saved is None and config.stage == "gradient" and not config.init_weights:
            self.callbacks.on_message(
                "training the gradient network without --init-weights: the exported "
                "weights hold an untrained global network"
            )
        after_step = functools.partial(self._after_step, stage, progress, total)
        while not progress.done:
            stats = train_one_epoch(
                stage, self.runtime, self.data, progress, total, sums, config.log_every, after_step
            )
            sums = self._end_epoch(stage, progress, total, stats)

    def _after_step(
        self,
        stage: Stage,
        progress: Progress,
        total: int,
        record: dict[str, Any],
        sums: EpochSums,
    ) -> None:
        """Log a logging step's record, checkpoint when one is due mid-epoch, report."""
        if "loss" in record:
            self._log(record)
        every = self.config.checkpoint_every
        due = every and progress.step % every == 0
        if due and progress.batch < self.data.steps_per_epoch and progress.step < total:
            self._save(stage, progress, sums)
        self.callbacks.on_step(record)

    def _end_epoch(
        self, stage: Stage, progress: Progress, total: int, stats: EpochStats
    ) -> EpochSums:
        """Validate, step the schedule, pick the best, export, log and checkpoint at an
        epoch's end; returns the sums the next epoch starts from."""
        lr = stage.lr
        loss_sum, count, valid_pixels = stats.sums.reduced(self.runtime.info)
        if count > 0 and valid_pixels == 0:
            raise DpdeError(
                f"no valid depth in {int(count)} training batches: every depth pixel is 0 "
                "or missing (check the depth files, and for a folder their units: "
                "--dataset-option depth_scale=UNITS_PER_METRE); no weights written"
            )
        self._sync_buffers()
        metrics, far = validate(self.model, self.data.val_loader, self.runtime)
        record: dict[str, Any] = {
            "kind": "epoch",
            "stage": stage.name,
            "epoch": progress.epoch,
            "step": progress.step,
            "lr": lr,
            "train_loss": loss_sum / count if count > 0 else float("nan"),
            **metrics,
            "images_per_s": self.runtime.rate(stats.steps, stats.seconds, self.config.batch_size),
            "seconds": round(stats.seconds, 3),
        }
        sums = stats.sums
        if progress.batch >= self.data.steps_per_epoch:  # the epoch is complete
            stage.scheduler.step()
            progress.epoch += 1
            progress.batch = 0
            sums = EpochSums.zeros(self.runtime.device)
        progress.done = progress.step >= total or progress.epoch >= self.config.epochs
        metric, value = selection(stage.name, record)
        improved = better(value, progress.best.value if progress.best else None)
        if improved:
            progress.best = Best(metric, value, record["epoch"], progress.step)
        record["best"] = improved
        if far is not None:  # the far limit predictions may reach
            self.index.val_depth_max = round(far, 3)
        self._export(stage.name, record, progress.step, improved)
        self._log(record)
        loaded = None
        if progress.done and stage.name != self.config.stages()[-1]:
            loaded = self._load_stage_best(stage.name)
        self._save(stage, progress, sums)
        self.epoch_records.append(record)
        self.callbacks.on_epoch(record)
        if loaded is not None:  # after the epoch's summary, which it concludes
            self.callbacks.on_message(
                f"stage {stage.name} done; the next stage starts from its best weights "
                f"({loaded.metric} {loaded.value:.4g}, epoch {loaded.epoch})"
            )
        return sums

    def _sync_buffers(self) -> None:
        """Give every rank rank 0's buffers (BN running statistics), as DDP's next forward
        would: each rank updated them with its own last batch, and the model validated,
        exported and checkpointed must be one model."""
        if not self.runtime.info.enabled:
            return
        import torch.distributed as dist

        for buffer in self.model.buffers():
            dist.broadcast(buffer, src=0)

    # ------------------------------------------------------------------ files

    def _open_folder(self, saved: TrainState | None) -> None:
        """Write config.json, bring the folder to the checkpoint (or start it over), and
        open the log (rank 0)."""
        if not self.runtime.info.is_main:
            return
        folder = self.folder
        folder.remove_temporaries()
        folder.write_config(self.config)  # first: a folder holding it is a run's
        folder.weights_dir.mkdir(parents=True, exist_ok=True)
        if saved is None:  # a folder whose run never reached a checkpoint starts over
            folder.start_over()
        else:
            folder.truncate_log(saved.progress.stage, saved.progress.step)
            folder.write_index(self.index)
            folder.prune(self.index)
        runtime = self.runtime
        self._log(
            {
                "kind": "resume" if saved is not None else "start",
                "time": round(time.time(), 3),
                "world_size": runtime.info.world_size,
                "device": str(runtime.device),
                "amp": str(runtime.amp_dtype).replace("torch.", "") if runtime.amp_dtype else None,
                "input_size": list(self.index.input_size),
                "train_images": len(self.data.train_view),
                "val_images": len(self.data.val_view) if self.data.val_view is not None else 0,
                "torch": torch.__version__,
            }
        )

    def _log(self, record: dict[str, Any]) -> None:
        """Append a record to log.jsonl (rank 0)."""
        if self.runtime.info.is_main:
            self.folder.append_log(record)

    def _export(self, stage: str, record: dict[str, Any], step: int, improved: bool) -> None:
        """Export the model's weights as the stage's last (and best, when improved); update
        weights.json (rank 0)."""
        from dpde_cli.registry import run_facts

        if not self.runtime.info.is_main:
            return
        facts = run_facts(self.config.to_json(), self.index.to_json())
        file, digest = self.folder.export(self.model.state_dict(), self.config.model, facts)
        metric, value = selection(stage, record)
        entry = WeightsEntry(file, digest, stage, record["epoch"], step, metric, value)
        self.index.record(entry, improved)
        self.folder.write_index(self.index)

    def _load_stage_best(self, stage: str) -> WeightsEntry | None:
        """Before the next stage: load this stage's best weights into the model (all ranks);
        returns their weights-index entry (None: no best yet)."""
        from dpde_cli.registry import read_state_dict

        barrier(self.runtime.info)
        if self.runtime.info.enabled:  # only rank 0 exports: its index is the one
            import torch.distributed as dist

            box = [self.index]
            dist.broadcast_object_list(box, src=0)
            self.index = box[0]
        stage_weights = self.index.stages.get(stage)
        entry = stage_weights.best if stage_weights is not None else None
        if entry is None:
            return None
        _load_into(self.model, read_state_dict(self.folder.path / entry.file))
        return entry

    def _save(self, stage: Stage, progress: Progress, sums: EpochSums) -> None:
        """Write checkpoints/last.pt (rank 0; every rank sends its RNG state and sums)."""
        info = self.runtime.info
        ranks = gather_objects(sums.saved(rng_state(self.runtime.device)), info)
        if not info.is_main:
            return
        TrainState(
            model={k: v.detach().cpu() for k, v in self.model.state_dict().items()},
            optimizer=stage.optimizer.state_dict(),
            scheduler=stage.scheduler.state_dict(),
            scaler=stage.scaler.state_dict(),
            ranks=ranks,
            world_size=info.world_size,
            progress=replace(progress),
            weights_index=self.index,
            config=self.config.to_json(),
        ).save(self.folder.checkpoint_path)
        self.folder.prune(self.index)
        self.callbacks.on_checkpoint(self.folder.checkpoint_path, progress.stage, progress.step)

    def _finish(self) -> None:
        """Optionally convert the exported weights to float16; final weights.json (rank 0).
        Every rank leaves together: one that tears its gloo group down while another still
        works can abort ("terminate called without an active exception", seen once)."""
        barrier(self.runtime.info)
        if self.runtime.info.is_main:
            if self.config.export_half and self.index.dtype != "float16":
                self.index = self.folder.export_half(self.index)
            self.folder.write_index(self.index)
        barrier(self.runtime.info)

    # ------------------------------------------------------------------ resuming

    def _restore_model(self, saved: TrainState) -> None:
        """Model weights and weights index of a checkpoint (all ranks); tell the callbacks
        where the run goes on."""
        from dpde_cli.registry import check_state_dict

        path = self.folder.checkpoint_path
        if saved.progress.stage not in self.config.stages():
            raise UsageError(f"checkpoint stage {saved.progress.stage} is not in this run")
        check_state_dict(self.model, saved.model, path)
        _load_into(self.model, saved.model)
        self.index = saved.weights_index
        self.callbacks.on_checkpoint(path, saved.progress.stage, saved.progress.step)

    def _restore_stage(self, saved: TrainState, stage: Stage) -> tuple[Progress, EpochSums]:
        """Progress, optimiser, scheduler, scaler, RNG and sums of the interrupted stage."""
        progress = replace(saved.progress)
        zeros = EpochSums.zeros(self.runtime.device)
        if progress.done:  # a finished stage: the next one starts fresh from here
            self._restore_rng(saved)
            return progress, zeros
        try:
            stage.optimizer.load_state_dict(saved.optimizer)
            stage.scheduler.load_state_dict(saved.scheduler)
            stage.scaler.load_state_dict(saved.scaler)
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise DpdeError(
                f"{self.folder.checkpoint_path}: its optimiser state does not fit this run "
                f"({str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__})"
            ) from None
        rank = self._restore_rng(saved)
        return progress, (EpochSums.restore(rank, self.runtime.device) if rank else zeros)

    def _restore_rng(self, saved: TrainState) -> RankState | None:
        """This rank's saved RNG state and sums (exact when the world size is unchanged)."""
        info = self.runtime.info
        if saved.world_size != info.world_size or info.rank >= len(saved.ranks):
            self.callbacks.on_message(
                f"resuming on {info.world_size} process(es) a run saved with "
                f"{saved.world_size}: the continuation is not bit-exact"
            )
            seed_everything(seed_of(self.config.seed, info.rank, 2))
            return None
        rank = saved.ranks[info.rank]
        try:
            set_rng_state(rank.rng, self.runtime.device)
        except (KeyError, TypeError, ValueError, RuntimeError):
            raise DpdeError(
                f"{self.folder.checkpoint_path}: field 'ranks.{info.rank}.rng' is not an RNG state"
            ) from None
        return rank


# --------------------------------------------------------------------------- helpers


def _load_into(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Load a state dict, each tensor in the model's own dtype (float16 exports too)."""
    own = model.state_dict()
    model.load_state_dict({k: v.to(own[k].dtype) for k, v in state.items()})
