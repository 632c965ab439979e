"""`dpde train`: the paper's two-stage training recipe, resumable, on one GPU or many."""

from __future__ import annotations

import contextlib
import json
import os
import shlex
from collections.abc import Iterator
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from dpde_cli.cli.common import (
    DeviceOption,
    ModelOption,
    QuietOption,
    err_console,
    fail,
    global_options,
    handle_errors,
    make_progress,
    show_progress,
)
from dpde_cli.errors import UsageError


class Stage(str, Enum):
    """Training stages."""

    global_ = "global"
    gradient = "gradient"
    all = "all"


class Dataset(str, Enum):
    """Datasets that can be trained on."""

    nyuv2 = "nyuv2"
    make3d = "make3d"
    folder = "folder"
    synthetic = "synthetic"


class Schedule(str, Enum):
    """Learning-rate schedules."""

    paper = "paper"
    constant = "constant"


class Appearance(str, Enum):
    """Photometric augmentation levels."""

    standard = "standard"
    strong = "strong"


class Optimizer(str, Enum):
    """Optimisers."""

    sgd = "sgd"
    adamw = "adamw"


# CLI parameter name -> TrainConfig field, for the options `--resume` may change.
_RESUME_OPTIONS = {
    "epochs": "epochs",
    "max_steps": "max_steps",
    "workers": "workers",
    "device": "device",
    "checkpoint_every": "checkpoint_every",
    "log_every": "log_every",
}


@handle_errors
def train(
    ctx: typer.Context,
    dataset: Annotated[
        Dataset, typer.Option("--dataset", case_sensitive=False, help="Training data.")
    ] = Dataset.nyuv2,
    data_dir: Annotated[
        list[Path] | None,
        typer.Option(
            "--data-dir",
            metavar="<dir>",
            help="The dataset's folder (not for synthetic); repeat it to train on several "
            "folders as one set.",
        ),
    ] = None,
    model: ModelOption = "dpde-r50",
    stage: Annotated[
        Stage,
        typer.Option(
            "--stage",
            case_sensitive=False,
            help="global (encoder+decoder, BerHu+FSIM), gradient (gradient net, log-L1) "
            "or all (both in turn).",
        ),
    ] = Stage.all,
    epochs: Annotated[int, typer.Option("--epochs", min=1, help="Epochs per stage.")] = 30,
    max_steps: Annotated[
        int | None, typer.Option("--max-steps", min=1, help="Stop each stage after N steps.")
    ] = None,
    batch_size: Annotated[
        int, typer.Option("--batch-size", "-b", min=1, help="Images per step and GPU.")
    ] = 8,
    lr: Annotated[float, typer.Option("--lr", help="Initial learning rate.")] = 1e-2,
    optimizer: Annotated[
        Optimizer,
        typer.Option(case_sensitive=False, help="sgd (the paper's) or adamw."),
    ] = Optimizer.sgd,
    momentum: Annotated[float, typer.Option(help="SGD momentum.")] = 0.9,
    weight_decay: Annotated[
        float, typer.Option(help="Weight decay (L2 for sgd, decoupled for adamw).")
    ] = 1e-4,
    schedule: Annotated[
        Schedule,
        typer.Option(
            case_sensitive=False,
            help="paper: lr x1, x0.5, x0.1 over thirds of the epochs; constant.",
        ),
    ] = Schedule.paper,
    lambda_berhu: Annotated[float, typer.Option(help="Weight of the BerHu loss.")] = 1.0,
    lambda_fsim: Annotated[float, typer.Option(help="Weight of the FSIM term.")] = 1.0,
    lambda_silog: Annotated[
        float,
        typer.Option(help="Weight of a scale-invariant log loss (not in the paper)."),
    ] = 0.0,
    encoder_lr_scale: Annotated[
        float,
        typer.Option(help="Encoder lr as a multiple of --lr in stage 1; 0 freezes it."),
    ] = 1.0,
    input_size: Annotated[
        tuple[int, int] | None,
        typer.Option(
            "--input-size",
            metavar="<h w>",
            help="Height and width to train at, multiples of 8 (default: model's).",
        ),
    ] = None,
    augment: Annotated[
        bool, typer.Option("--augment/--no-augment", help="Scale, rotate, crop, flip, jitter.")
    ] = True,
    appearance: Annotated[
        Appearance,
        typer.Option(
            help="Photometric augmentation; strong adds colour casts, greyscale, blur, noise, "
            "JPEG (for rendered data)."
        ),
    ] = Appearance.standard,
    val_fraction: Annotated[
        float, typer.Option("--val-fraction", help="Share of training images held out.")
    ] = 0.05,
    val_split: Annotated[
        str | None, typer.Option("--val-split", help="Validate on this split instead.")
    ] = None,
    synthetic_size: Annotated[
        int, typer.Option("--synthetic-size", min=1, help="Scenes in the synthetic set.")
    ] = 1000,
    dataset_option: Annotated[
        list[str] | None,
        typer.Option(
            "--dataset-option",
            metavar="<key=value>",
            help="KEY=VALUE passed to the dataset (repeatable), e.g. gt=raw.",
        ),
    ] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Run folder.")] = Path("runs/train"),
    resume_dir: Annotated[
        Path | None,
        typer.Option(
            "--resume",
            help="Continue the run in this folder from its last checkpoint (its saved "
            "config is used; only --epochs, --max-steps, --workers, --device, "
            "--checkpoint-every and --log-every may change).",
        ),
    ] = None,
    device: DeviceOption = None,
    seed: Annotated[int, typer.Option(help="Seed of init, order, augmentation.")] = 0,
    workers: Annotated[
        int | None,
        typer.Option("--workers", "-j", min=0, help="Loader workers (default: min(4, CPUs))."),
    ] = None,
    pretrained: Annotated[
        bool,
        typer.Option("--pretrained/--no-pretrained", help="ImageNet-initialised encoder."),
    ] = True,
    init_weights: Annotated[
        Path | None,
        typer.Option("--init-weights", help="Weights or checkpoint to start from."),
    ] = None,
    amp: Annotated[
        bool, typer.Option("--amp/--no-amp", help="Mixed precision (CUDA only).")
    ] = True,
    channels_last: Annotated[
        bool, typer.Option("--channels-last/--no-channels-last", help="CUDA only.")
    ] = True,
    deterministic: Annotated[
        bool,
        typer.Option(
            "--deterministic/--no-deterministic", help="Deterministic algorithms on the CPU."
        ),
    ] = True,
    checkpoint_every: Annotated[
        int | None,
        typer.Option("--checkpoint-every", min=1, help="Also checkpoint every N steps."),
    ] = None,
    log_every: Annotated[int, typer.Option("--log-every", min=1, help="Log every N steps.")] = 10,
    export_half: Annotated[
        bool, typer.Option("--export-half", help="Export the weights as float16.")
    ] = False,
    clip_grad_norm: Annotated[
        float | None, typer.Option("--clip-grad-norm", help="Clip the gradient norm.")
    ] = None,
    sync_bn: Annotated[
        bool, typer.Option("--sync-bn", help="SyncBatchNorm across GPUs (torchrun).")
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="The weights index as JSON on stdout.")
    ] = False,
    quiet: QuietOption = False,
) -> None:
    """Train a model with the paper's recipe (SGD, BerHu + FSIM, then the gradient net).

    Writes config.json, log.jsonl, checkpoints/last.pt, weights/<model>-<sha8>.pt and
    weights.json into --out; prints the best and last weights with their sha256.

    Examples:

    \b
        dpde train --dataset nyuv2 --data-dir ~/data/nyu --out runs/nyu
        dpde train --resume runs/nyu
        torchrun --nproc_per_node 4 -m dpde_cli train --dataset nyuv2 --data-dir ~/data/nyu \\
            --out runs/nyu4
        dpde train --dataset synthetic --synthetic-size 200 --model dpde-lite --epochs 2 \\
            --out runs/try
    """
    from dpde_cli import train as training
    from dpde_cli.data import default_workers

    opts = global_options(ctx, quiet)
    main = int(os.environ.get("RANK", "0")) == 0
    quiet = opts.quiet or not main
    callbacks = _Reporter(show_progress(quiet or as_json), quiet)
    if resume_dir is not None:
        _check_resume_options(ctx)
    else:
        _check_data_options(ctx, dataset_option or [])
    run_dir = resume_dir if resume_dir is not None else out
    with _interrupts(callbacks, run_dir, main), callbacks:
        if resume_dir is not None:
            overrides = {
                field: ctx.params[name] if name != "device" else (device or opts.device)
                for name, field in _RESUME_OPTIONS.items()
                if _given(ctx, name) or (name == "device" and _given_root_device(ctx))
            }
            result = training.resume(resume_dir, callbacks, overrides=overrides)
        else:
            config = training.TrainConfig(
                dataset=dataset.value,
                data_dir=_data_dir_field(data_dir or []),
                dataset_options=_parse_options(dataset_option or []),
                synthetic_size=synthetic_size,
                model=model,
                stage=stage.value,
                epochs=epochs,
                max_steps=max_steps,
                batch_size=batch_size,
                lr=lr,
                optimizer=optimizer.value,
                momentum=momentum,
                weight_decay=weight_decay,
                schedule=schedule.value,
                lambda_berhu=lambda_berhu,
                lambda_fsim=lambda_fsim,
                lambda_silog=lambda_silog,
                encoder_lr_scale=encoder_lr_scale,
                input_size=tuple(input_size) if input_size else None,
                augment=augment,
                appearance=appearance.value,
                val_fraction=val_fraction,
                val_split=val_split,
                workers=default_workers() if workers is None else workers,
                seed=seed,
                device=device or opts.device,
                amp=amp,
                channels_last=channels_last,
                deterministic=deterministic,
                out=str(out),
                pretrained=pretrained,
                init_weights=str(init_weights) if init_weights is not None else None,
                checkpoint_every=checkpoint_every,
                log_every=log_every,
                export_half=export_half,
                clip_grad_norm=clip_grad_norm,
                sync_bn=sync_bn,
            )
            result = training.train(config, callbacks)
    if not main:
        return
    if as_json:
        typer.echo(json.dumps({"run_dir": str(result.run_dir), **result.weights}))
        return
    for key in ("best", "last"):
        entry = result.weights.get(key)
        if entry:
            typer.echo(f"{key}\t{result.run_dir / entry['file']}\tsha256:{entry['sha256']}")


def _check_resume_options(ctx: typer.Context) -> None:
    """Refuse options that --resume would ignore (the run keeps its saved config)."""
    allowed = {*_RESUME_OPTIONS, "resume_dir", "as_json", "quiet"}
    ignored = sorted(
        "--" + name.replace("_", "-")
        for name in ctx.params
        if name not in allowed and _given(ctx, name)
    )
    if ignored:
        raise UsageError(
            f"--resume continues the run with its saved config; {', '.join(ignored)} "
            "cannot change (only --epochs, --max-steps, --workers, --device, "
            "--checkpoint-every, --log-every)"
        )


def _check_data_options(ctx: typer.Context, dataset_option: list[str]) -> None:
    """Refuse data options that would be silently overridden (a --data-dir with synthetic
    is the dataset builder's to refuse, for library callers too)."""
    if _given(ctx, "synthetic_size") and "length" in _parse_options(dataset_option):
        raise UsageError(
            "--dataset-option length=N and --synthetic-size both set the number of "
            "scenes; give one (--synthetic-size)"
        )


def _data_dir_field(data_dir: list[Path]) -> str | list[str] | None:
    """TrainConfig.data_dir: None, one folder, or a list of folders trained on as one set."""
    if not data_dir:
        return None
    return str(data_dir[0]) if len(data_dir) == 1 else [str(d) for d in data_dir]


@contextlib.contextmanager
def _interrupts(reporter: _Reporter, run_dir: Path, main: bool) -> Iterator[None]:
    """Ctrl-C: exit 130 saying what a resume continues from (rank 0; the other ranks
    keep the plain message of handle_errors)."""
    try:
        yield
    except KeyboardInterrupt:
        if not main:
            raise
        raise fail(reporter.interrupted_message(run_dir), 130) from None


def _given(ctx: typer.Context, name: str) -> bool:
    """Whether an option was typed on the command line (not a default)."""
    source = ctx.get_parameter_source(name)
    return getattr(source, "name", None) == "COMMANDLINE"  # typer may bundle its own click


def _given_root_device(ctx: typer.Context) -> bool:
    """Whether the root command's --device was typed."""
    root = ctx.find_root()
    return root is not ctx and _given(root, "device")


def _parse_options(items: list[str]) -> dict[str, Any]:
    """KEY=VALUE strings -> dict; values parsed as JSON where they can be, else strings."""
    options: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--dataset-option wants KEY=VALUE, got {item!r}")
        try:
            options[key.strip()] = json.loads(value)
        except ValueError:
            options[key.strip()] = value
    return options


class _Reporter:
    """TrainCallbacks that drive a rich progress bar and print epoch summaries on stderr."""

    def __init__(self, progress_enabled: bool, quiet: bool) -> None:
        self.progress = make_progress(progress_enabled)
        self.quiet = quiet
        self.task = None
        self.checkpoint: tuple[Path, str, int] | None = None

    def interrupted_message(self, run_dir: Path) -> str:
        """What an interrupted run leaves: where its last checkpoint is and how to go on."""
        if self.checkpoint is None:
            return (
                f"interrupted before the first checkpoint; {run_dir} holds nothing to "
                "resume, start the run again"
            )
        path, stage, step = self.checkpoint
        return (
            f"interrupted; the last checkpoint, {path}, is at stage {stage} step {step} "
            f"(later steps are lost); continue with: dpde train --resume "
            f"{shlex.quote(str(run_dir))}"
        )

    def __enter__(self) -> _Reporter:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(*exc)

    def on_stage_start(self, stage: str, total_steps: int, done_steps: int) -> None:
        if self.task is not None:
            self.progress.remove_task(self.task)
        self.task = self.progress.add_task(
            f"train {stage}", total=total_steps, completed=done_steps
        )

    def on_step(self, record: dict[str, Any]) -> None:
        if self.task is not None:
            self.progress.advance(self.task)
            if "loss" in record:
                self.progress.update(
                    self.task, description=f"train {record['stage']} loss {record['loss']:.4f}"
                )

    def on_epoch(self, record: dict[str, Any]) -> None:
        if self.quiet:
            return
        parts = [
            f"{record['stage']} epoch {record['epoch'] + 1}",
            f"step {record['step']}",
            f"lr {record['lr']:.3g}",
            f"loss {record['train_loss']:.4f}",
        ]
        for key, label in (("val_rms", "RMS"), ("val_abs_rel", "REL"), ("val_d1", "d1")):
            if key in record:
                parts.append(f"val {label} {record[key]:.4f}")
        if record["stage"] == "gradient" and "val_grad_loss" in record:
            parts.append(f"val grad {record['val_grad_loss']:.4f}")
        if record.get("images_per_s") is not None:
            parts.append(f"{record['images_per_s']:.1f} img/s")
        if record.get("best"):
            parts.append("(best)")
        self.progress.console.print(", ".join(parts), markup=False, highlight=False)

    def on_checkpoint(self, path: Path, stage: str, step: int) -> None:
        self.checkpoint = (path, stage, step)

    def on_message(self, message: str) -> None:
        if not self.quiet:
            err_console.print(f"dpde: {message}", markup=False, highlight=False)
