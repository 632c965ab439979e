"""`dpde train`: the paper's two-stage training recipe, resumable, on one GPU or many."""

from __future__ import annotations

import contextlib
import dataclasses
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
    GlobalOptions,
    ModelOption,
    QuietOption,
    choice_enum,
    err_console,
    fail,
    global_options,
    handle_errors,
    make_progress,
    show_progress,
)
from dpde_cli.dataset_catalog import list_datasets
from dpde_cli.errors import UsageError
from dpde_cli.training.config import (
    APPEARANCES,
    OPTIMIZERS,
    RESUME_OVERRIDES,
    SCHEDULES,
    STAGE_CHOICES,
    TrainConfig,
    defaults,
)

Stage = choice_enum("Stage", STAGE_CHOICES)
Dataset = choice_enum("Dataset", list_datasets(trainable=True))
Schedule = choice_enum("Schedule", SCHEDULES)
Appearance = choice_enum("Appearance", APPEARANCES)
Optimizer = choice_enum("Optimizer", OPTIMIZERS)
DEFAULT = defaults()
"""TrainConfig's defaults: the options' own."""

# ------------------------------------------------------------------ the options

DatasetOpt = Annotated[
    Dataset, typer.Option("--dataset", case_sensitive=False, help="Training data.")
]
DataDirOpt = Annotated[
    list[Path] | None,
    typer.Option(
        "--data-dir",
        metavar="<dir>",
        help="The dataset's folder (not for synthetic); repeat it to train on several "
        "folders as one set, or give DIR:WEIGHT to sample each folder by its weight "
        "(a mix: a folder's share does not grow with its number of frames).",
    ),
]
MixOpt = Annotated[
    Path | None,
    typer.Option(
        "--mix",
        metavar="<file.json>",
        help='A training mix: {"sources": [{"dataset", "data_dir", "weight", "options", '
        '"appearance"}, ...]} (instead of --dataset/--data-dir).',
    ),
]
EpochSizeOpt = Annotated[
    int | None,
    typer.Option("--epoch-size", min=1, help="Samples drawn per epoch from a mix."),
]
ZoomOpt = Annotated[
    tuple[float, float],
    typer.Option(
        "--zoom-range",
        metavar="<low high>",
        help="Range of the random zoom of the augmentation (>= 1); with "
        "--canonical-camera a zoom is a longer lens.",
    ),
]
CanonicalOpt = Annotated[
    bool,
    typer.Option(
        "--canonical-camera/--no-canonical-camera",
        help="Train on depth as the Kinect's focal length would see each frame (from its "
        "intrinsics); predictions then follow the photo's focal length.",
    ),
]
StageOpt = Annotated[
    Stage,
    typer.Option(
        "--stage",
        case_sensitive=False,
        help="global (encoder+decoder, BerHu+FSIM), gradient (gradient net, log-L1) "
        "or all (both in turn).",
    ),
]
EpochsOpt = Annotated[int, typer.Option("--epochs", min=1, help="Epochs per stage.")]
MaxStepsOpt = Annotated[
    int | None, typer.Option("--max-steps", min=1, help="Stop each stage after N steps.")
]
BatchOpt = Annotated[
    int, typer.Option("--batch-size", "-b", min=1, help="Images per step and GPU.")
]
LrOpt = Annotated[float, typer.Option("--lr", help="Initial learning rate.")]
OptimizerOpt = Annotated[
    Optimizer, typer.Option(case_sensitive=False, help="sgd (the paper's) or adamw.")
]
MomentumOpt = Annotated[float, typer.Option(help="SGD momentum.")]
DecayOpt = Annotated[float, typer.Option(help="Weight decay (L2 for sgd, decoupled for adamw).")]
ScheduleOpt = Annotated[
    Schedule,
    typer.Option(
        case_sensitive=False,
        help="paper: lr x1, x0.5, x0.1 over thirds of the epochs; constant.",
    ),
]
BerhuOpt = Annotated[float, typer.Option(help="Weight of the BerHu loss.")]
FsimOpt = Annotated[float, typer.Option(help="Weight of the FSIM term.")]
SilogOpt = Annotated[
    float, typer.Option(help="Weight of a scale-invariant log loss (not in the paper).")
]
EncoderLrOpt = Annotated[
    float, typer.Option(help="Encoder lr as a multiple of --lr in stage 1; 0 freezes it.")
]
InputSizeOpt = Annotated[
    tuple[int, int] | None,
    typer.Option(
        "--input-size",
        metavar="<h w>",
        help="Height and width to train at, multiples of 8 (default: model's).",
    ),
]
AugmentOpt = Annotated[
    bool, typer.Option("--augment/--no-augment", help="Scale, rotate, crop, flip, jitter.")
]
AppearanceOpt = Annotated[
    Appearance,
    typer.Option(
        help="Photometric augmentation; strong adds colour casts, greyscale, blur, noise, "
        "JPEG (for rendered data)."
    ),
]
ValFractionOpt = Annotated[
    float, typer.Option("--val-fraction", help="Share of training images held out.")
]
ValSplitOpt = Annotated[
    str | None, typer.Option("--val-split", help="Validate on this split instead.")
]
SyntheticSizeOpt = Annotated[
    int, typer.Option("--synthetic-size", min=1, help="Scenes in the synthetic set.")
]
DatasetOptionOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--dataset-option",
        metavar="<key=value>",
        help="KEY=VALUE passed to the dataset (repeatable), e.g. gt=raw.",
    ),
]
OutOpt = Annotated[Path, typer.Option("--out", "-o", help="Run folder.")]
ResumeOpt = Annotated[
    Path | None,
    typer.Option(
        "--resume",
        help="Continue the run in this folder from its last checkpoint (its saved "
        "config is used; only --epochs, --max-steps, --workers, --device, "
        "--checkpoint-every and --log-every may change).",
    ),
]
SeedOpt = Annotated[int, typer.Option(help="Seed of init, order, augmentation.")]
WorkersOpt = Annotated[
    int | None,
    typer.Option("--workers", "-j", min=0, help="Loader workers (default: min(4, CPUs))."),
]
PretrainedOpt = Annotated[
    bool, typer.Option("--pretrained/--no-pretrained", help="ImageNet-initialised encoder.")
]
InitWeightsOpt = Annotated[
    Path | None, typer.Option("--init-weights", help="Weights or checkpoint to start from.")
]
AmpOpt = Annotated[bool, typer.Option("--amp/--no-amp", help="Mixed precision (CUDA only).")]
ChannelsLastOpt = Annotated[
    bool, typer.Option("--channels-last/--no-channels-last", help="CUDA only.")
]
DeterministicOpt = Annotated[
    bool,
    typer.Option("--deterministic/--no-deterministic", help="Deterministic algorithms on the CPU."),
]
CheckpointEveryOpt = Annotated[
    int | None, typer.Option("--checkpoint-every", min=1, help="Also checkpoint every N steps.")
]
LogEveryOpt = Annotated[int, typer.Option("--log-every", min=1, help="Log every N steps.")]
HalfOpt = Annotated[bool, typer.Option("--export-half", help="Export the weights as float16.")]
ClipOpt = Annotated[float | None, typer.Option("--clip-grad-norm", help="Clip the gradient norm.")]
SyncBnOpt = Annotated[bool, typer.Option("--sync-bn", help="SyncBatchNorm across GPUs (torchrun).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="The weights index as JSON on stdout.")]


@handle_errors
def train(
    ctx: typer.Context,
    dataset: DatasetOpt = DEFAULT["dataset"],
    data_dir: DataDirOpt = None,
    mix: MixOpt = None,
    epoch_size: EpochSizeOpt = DEFAULT["epoch_size"],
    canonical_camera: CanonicalOpt = DEFAULT["canonical_camera"],
    zoom_range: ZoomOpt = DEFAULT["zoom_range"],
    model: ModelOption = DEFAULT["model"],
    stage: StageOpt = DEFAULT["stage"],
    epochs: EpochsOpt = DEFAULT["epochs"],
    max_steps: MaxStepsOpt = DEFAULT["max_steps"],
    batch_size: BatchOpt = DEFAULT["batch_size"],
    lr: LrOpt = DEFAULT["lr"],
    optimizer: OptimizerOpt = DEFAULT["optimizer"],
    momentum: MomentumOpt = DEFAULT["momentum"],
    weight_decay: DecayOpt = DEFAULT["weight_decay"],
    schedule: ScheduleOpt = DEFAULT["schedule"],
    lambda_berhu: BerhuOpt = DEFAULT["lambda_berhu"],
    lambda_fsim: FsimOpt = DEFAULT["lambda_fsim"],
    lambda_silog: SilogOpt = DEFAULT["lambda_silog"],
    encoder_lr_scale: EncoderLrOpt = DEFAULT["encoder_lr_scale"],
    input_size: InputSizeOpt = DEFAULT["input_size"],
    augment: AugmentOpt = DEFAULT["augment"],
    appearance: AppearanceOpt = DEFAULT["appearance"],
    val_fraction: ValFractionOpt = DEFAULT["val_fraction"],
    val_split: ValSplitOpt = DEFAULT["val_split"],
    synthetic_size: SyntheticSizeOpt = DEFAULT["synthetic_size"],
    dataset_option: DatasetOptionOpt = None,
    out: OutOpt = Path(DEFAULT["out"]),
    resume_dir: ResumeOpt = None,
    device: DeviceOption = None,
    seed: SeedOpt = DEFAULT["seed"],
    workers: WorkersOpt = None,
    pretrained: PretrainedOpt = DEFAULT["pretrained"],
    init_weights: InitWeightsOpt = DEFAULT["init_weights"],
    amp: AmpOpt = DEFAULT["amp"],
    channels_last: ChannelsLastOpt = DEFAULT["channels_last"],
    deterministic: DeterministicOpt = DEFAULT["deterministic"],
    checkpoint_every: CheckpointEveryOpt = DEFAULT["checkpoint_every"],
    log_every: LogEveryOpt = DEFAULT["log_every"],
    export_half: HalfOpt = DEFAULT["export_half"],
    clip_grad_norm: ClipOpt = DEFAULT["clip_grad_norm"],
    sync_bn: SyncBnOpt = DEFAULT["sync_bn"],
    as_json: JsonOpt = False,
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
    from dpde_cli.training import trainer

    opts = global_options(ctx, quiet)
    main = int(os.environ.get("RANK", "0")) == 0
    reporter = _Reporter(show_progress(opts.quiet or not main or as_json), opts.quiet or not main)
    run_dir = resume_dir if resume_dir is not None else out
    if resume_dir is not None:
        overrides = _resume_overrides(ctx, opts)
    else:
        config = _config(ctx, opts)
    with _interrupts(reporter, run_dir, main), reporter:
        if resume_dir is not None:
            result = trainer.resume(resume_dir, reporter, overrides=overrides)
        else:
            result = trainer.train(config, reporter)
    if main:
        _print_weights(result, as_json)


def _config(ctx: typer.Context, opts: GlobalOptions) -> TrainConfig:
    """The TrainConfig the options describe (each option is the field of its name)."""
    params = ctx.params
    options = _parse_options(params["dataset_option"] or [])
    if _given(ctx, "synthetic_size") and "length" in options:
        raise UsageError(
            "--dataset-option length=N and --synthetic-size both set the number of "
            "scenes; give one (--synthetic-size)"
        )
    # a --data-dir with synthetic is the dataset builder's to refuse, for library callers too
    values = {name: _plain(params[name]) for name in DEFAULT if name in params}
    data_dir = [str(d) for d in params["data_dir"] or []]
    values["data_dir"] = data_dir[0] if len(data_dir) == 1 else (data_dir or None)
    values["dataset_options"] = options
    values.update(_mix_fields(ctx, data_dir, options))
    values["device"] = params["device"] or opts.device
    if params["workers"] is not None:
        values["workers"] = params["workers"]
    return TrainConfig(**values)


def _mix_fields(ctx: typer.Context, data_dir: list[str], options: dict) -> dict[str, Any]:
    """TrainConfig's sources (and dataset) from --mix, or from --data-dir DIR:WEIGHT."""
    from dpde_cli.data.mix import parse_source, read_mix

    params = ctx.params
    if params["mix"] is not None:
        if data_dir or _given(ctx, "dataset") or options:
            raise UsageError(
                "--mix names every source; drop --dataset, --data-dir and --dataset-option"
            )
        sources = read_mix(params["mix"])
        return {"sources": [s.to_json() for s in sources], "dataset": "mix", "data_dir": None}
    dataset = _plain(params["dataset"])
    parsed = [parse_source(d, dataset) for d in data_dir]
    if not any(":" in d and s.data_dir != d for d, s in zip(data_dir, parsed, strict=True)):
        return {}  # no weights: the folders are one set, as before
    sources = [dataclasses.replace(s, options=dict(options)) for s in parsed]
    return {"sources": [s.to_json() for s in sources], "data_dir": None}


def _plain(value: Any) -> Any:
    """An option's value as TrainConfig holds it (a choice's string, a path's text)."""
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Path):
        return str(value)
    return tuple(value) if isinstance(value, (list, tuple)) else value


def _resume_overrides(ctx: typer.Context, opts: GlobalOptions) -> dict[str, Any]:
    """The fields --resume may change that were typed; refuses any other option (the run
    keeps its saved config)."""
    allowed = {*RESUME_OVERRIDES, "resume_dir", "as_json", "quiet"}
    ignored = sorted(
        "--" + name.replace("_", "-")
        for name in ctx.params
        if name not in allowed and _given(ctx, name)
    )
    if ignored:
        allowed_options = ", ".join("--" + name.replace("_", "-") for name in RESUME_OVERRIDES)
        raise UsageError(
            f"--resume continues the run with its saved config; {', '.join(ignored)} "
            f"cannot change (only {allowed_options})"
        )
    overrides = {name: ctx.params[name] for name in RESUME_OVERRIDES if _given(ctx, name)}
    if "device" in overrides or _given_root_device(ctx):
        overrides["device"] = ctx.params["device"] or opts.device
    return overrides


def _print_weights(result: Any, as_json: bool) -> None:
    """The best and last weights files with their sha256 (or the index as JSON)."""
    if as_json:
        typer.echo(json.dumps({"run_dir": str(result.run_dir), **result.weights.to_json()}))
        return
    for key in ("best", "last"):
        entry = getattr(result.weights, key)
        if entry:
            typer.echo(f"{key}\t{result.run_dir / entry.file}\tsha256:{entry.sha256}")


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
