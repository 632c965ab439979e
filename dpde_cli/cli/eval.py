"""`dpde eval`: a model's depth metrics on a benchmark, under a protocol it prints."""

from __future__ import annotations

import csv
import functools
import io
import json
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from dpde_cli.cli.common import (
    BatchSizeOption,
    DeviceOption,
    InputSizeOption,
    ModelOption,
    PrecisionOption,
    QuietOption,
    WeightsOption,
    build_predictor,
    choice_enum,
    err_console,
    global_options,
    handle_errors,
    make_progress,
    report_failures,
    show_progress,
    wide_console,
)
from dpde_cli.dataset_catalog import list_datasets
from dpde_cli.errors import UsageError
from dpde_cli.outputs import stdout_guard

if TYPE_CHECKING:
    from rich.console import Console

    from dpde_cli.eval_pipeline import EvalReport

# The paper's table order (Tables 1-3), then the other standard metrics.
COLUMNS = ("rms", "log10", "abs_rel", "d1", "d2", "d3", "rms_log", "sq_rel", "silog")


SparseSamplesOption = Annotated[
    int | None,
    typer.Option(
        min=1,
        metavar="<n>",
        help="Also complete each prediction from N ground-truth pixels drawn uniformly from "
        "the valid ones (the sparse-to-dense protocol of Ma & Karaman 2018), as "
        "`predict --sparse-depth` would; that row comes first.",
    ),
]
SparseSeedOption = Annotated[
    int | None, typer.Option(metavar="<s>", help="Seed of those draws (image i: S + i; default 0).")
]


Dataset = choice_enum("Dataset", list_datasets())


class Crop(str, Enum):
    eigen = "eigen"
    none = "none"


class Averaging(str, Enum):
    image = "image"
    pixel = "pixel"


class Alignment(str, Enum):
    none = "none"
    median = "median"
    lstsq = "lstsq"


class GroundTruth(str, Enum):
    filled = "filled"
    raw = "raw"


DatasetOption = Annotated[
    Dataset | None,
    typer.Option("--dataset", case_sensitive=False, help="Required, but with --merge."),
]
DataDirOption = Annotated[
    list[Path] | None,
    typer.Option(
        "--data-dir",
        metavar="<dir>",
        help="The dataset's folder; repeat it to evaluate several folders as one set "
        "(names get the shortest path tail that tells the folders apart as prefix).",
    ),
]
SplitOption = Annotated[
    str | None,
    typer.Option(help="test | train | all, as the dataset has (default test; folder: all)."),
]
FuseOption = Annotated[bool, typer.Option("--fuse/--no-fuse", help="IRLS gradient fusion.")]
AblationOption = Annotated[
    bool, typer.Option(help="Also report the run without the gradient stream (fusion).")
]
GroundTruthOption = Annotated[
    GroundTruth | None, typer.Option(help="nyuv2 .mat: filled depths or rawDepths.")
]
DepthScaleOption = Annotated[
    float | None, typer.Option(help="folder: depth PNG units per metre (default 1000).")
]
CropOption = Annotated[Crop | None, typer.Option(help="Default per dataset (nyuv2: eigen).")]
MinDepthOption = Annotated[float | None, typer.Option(help="Valid GT above this, metres.")]
MaxDepthOption = Annotated[float | None, typer.Option(help="Valid GT below this, metres.")]
AveragingOption = Annotated[
    Averaging | None, typer.Option(help="image: per image then mean; pixel: pooled.")
]
AlignOption = Annotated[
    Alignment | None, typer.Option(help="none (metric) | median | lstsq scale+shift.")
]
FlipOption = Annotated[bool, typer.Option(help="Horizontal-flip test-time augmentation.")]
MetricsOption = Annotated[
    list[str] | None,
    typer.Option(
        "--metric",
        metavar="<name>",
        help="Add ssim, gsm and/or edges (depth-boundary F1); repeatable.",
    ),
]
BaselineOption = Annotated[
    float | None,
    typer.Option(
        help="Also evaluate a constant depth (metres) and the same constant "
        "scaled by each image's GT median (an oracle)."
    ),
]
LimitOption = Annotated[int | None, typer.Option(min=1, help="Only the first N images.")]
WorkersOption = Annotated[
    int | None, typer.Option(min=0, help="DataLoader workers (default: min(4, CPUs)).")
]
JsonOption = Annotated[
    Path | None,
    typer.Option(
        "--json",
        metavar="<file>",
        help="Write results as JSON to this file; - for stdout (the table then goes to "
        "stderr). With --shard: the shard's sums, for --merge.",
    ),
]
CsvOption = Annotated[
    Path | None,
    typer.Option("--csv", metavar="<file>", help="Write results as CSV; - for stdout."),
]
SavePredictionsOption = Annotated[
    Path | None, typer.Option(help="Write each prediction as a 16-bit PNG (mm) here.")
]
EvalShardOption = Annotated[
    str | None,
    typer.Option(
        "--shard",
        metavar="K/N",
        help="Evaluate share K of N (1-based) of the images (every Nth from the Kth) and "
        "write its sums to --json FILE (needed); `dpde eval --merge` adds every shard's up.",
    ),
]
MergeOption = Annotated[
    bool,
    typer.Option(
        "--merge",
        help="Combine the --json reports of every --shard of one run (the REPORTS "
        "arguments) into the table one process prints; no model runs.",
    ),
]
ReportsArgument = Annotated[
    list[Path] | None,
    typer.Argument(metavar="REPORTS", help="With --merge: the shards' JSON reports."),
]


@handle_errors
def eval_command(
    ctx: typer.Context,
    reports: ReportsArgument = None,
    dataset: DatasetOption = None,
    data_dir: DataDirOption = None,
    split: SplitOption = None,
    model: ModelOption = "dpde-lite",
    weights: WeightsOption = None,
    device: DeviceOption = None,
    precision: PrecisionOption = "auto",
    input_size: InputSizeOption = None,
    fuse: FuseOption = True,
    ablation: AblationOption = False,
    gt: GroundTruthOption = None,
    depth_scale: DepthScaleOption = None,
    crop: CropOption = None,
    min_depth: MinDepthOption = None,
    max_depth: MaxDepthOption = None,
    averaging: AveragingOption = None,
    align: AlignOption = None,
    flip_tta: FlipOption = False,
    metrics: MetricsOption = None,
    constant_baseline: BaselineOption = None,
    limit: LimitOption = None,
    batch_size: BatchSizeOption = 4,
    workers: WorkersOption = None,
    json_out: JsonOption = None,
    csv_out: CsvOption = None,
    save_predictions: SavePredictionsOption = None,
    shard: EvalShardOption = None,
    merge: MergeOption = False,
    quiet: QuietOption = False,
    sparse_samples: SparseSamplesOption = None,
    sparse_seed: SparseSeedOption = None,
) -> None:
    """Evaluate a model on NYUv2, Make3D, Middlebury or an RGB-D folder.

    Examples:

    \b
        dpde eval --dataset nyuv2 --data-dir ~/data/nyu --ablation
        dpde eval --dataset folder --data-dir captures/ --align median --limit 20
        dpde eval --dataset folder --data-dir captures/ --sparse-samples 200
        dpde eval --dataset nyuv2 --data-dir ~/data/nyu --shard 2/4 --json part2.json
        dpde eval --merge part1.json part2.json part3.json part4.json
        torchrun --nproc_per_node 2 -m dpde_cli eval --dataset nyuv2 --data-dir ~/data/nyu
    """
    from dpde_cli.eval_pipeline import EvalConfig, merge_reports, run_evaluation

    opts = global_options(ctx, quiet)
    _check_outputs(data_dir, weights, json_out, csv_out, save_predictions)
    if merge or reports:
        _check_merge(merge, dataset, shard)
        report = merge_reports(reports or [])
    else:
        if dataset is None:
            raise UsageError("--dataset is required (or --merge with the shards' reports)")
        if shard is not None and json_out is None:
            raise UsageError("--shard writes the shard's sums for --merge: give --json FILE")
        config = EvalConfig(
            dataset=dataset.value,
            data_dirs=tuple(data_dir or ()),
            split=split,
            crop=crop.value if crop else None,
            min_depth=min_depth,
            max_depth=max_depth,
            averaging=averaging.value if averaging else None,
            alignment=align.value if align else None,
            flip_tta=flip_tta,
            gt=gt.value if gt else None,
            depth_scale=depth_scale,
            model=model,
            weights=weights,
            fuse=fuse,
            ablation=ablation,
            metrics=tuple(metrics or ()),
            constant_baseline=constant_baseline,
            limit=limit,
            batch_size=batch_size,
            workers=workers,
            save_predictions=save_predictions,
            sparse_samples=sparse_samples,
            sparse_seed=sparse_seed,
        )
        load = functools.partial(_load, model, weights, precision, fuse, input_size)
        with make_progress(show_progress(opts.quiet)) as progress:
            task = progress.add_task(f"eval {dataset.value}", total=None)
            update = lambda done, total: progress.update(task, completed=done, total=total)  # noqa: E731
            report = run_evaluation(config, load, device or opts.device, shard, update)
    _show(report, json_out, csv_out)


def _load(model, weights, precision, fuse, input_size, device, max_depth):  # -> Predictor
    """The model on ``device`` (each rank's under torchrun), fusing unless --no-fuse, its
    predictions clipped at the protocol's ``max_depth`` where that is past the model's."""
    predictor, _ = build_predictor(
        model, weights, device, precision, 10.0 if fuse else None, input_size, max_depth
    )
    return predictor


def _check_outputs(data_dir, weights, json_out, csv_out, save_predictions) -> None:
    """Every refusal of an output path, before any work."""
    _check_report_paths(json_out=json_out, csv_out=csv_out)
    _check_writable(json_out=json_out, csv_out=csv_out, save_predictions=save_predictions)
    _check_not_inputs(
        data_dir, weights, json_out=json_out, csv_out=csv_out, save_predictions=save_predictions
    )


def _check_merge(merge: bool, dataset: Dataset | None, shard: str | None) -> None:
    """--merge takes reports and nothing to evaluate."""
    if not merge:
        raise UsageError("report files are arguments of --merge (dpde eval --merge a.json b.json)")
    if dataset is not None or shard is not None:
        raise UsageError("--merge combines reports; it takes no --dataset or --shard")


def _show(report: EvalReport, json_out: Path | None, csv_out: Path | None) -> None:
    """The table (or a shard's line) and the reports, on rank 0; exit 1 on failures."""
    header = report.header
    if report.is_main:
        console = wide_console(stderr=STDOUT in (json_out, csv_out))  # stderr: a report on stdout
        with stdout_guard():  # a full disk or a closed pipe: one line, not a traceback
            if report.result is None:
                _print_shard(header, json_out, console)
            else:
                _print_table(header, report.result.variants, report.extra, console)
        if json_out is not None:
            _write_report(json_out, json.dumps(report.json(), indent=2) + "\n")
        if csv_out is not None and report.result is not None:
            _write_report(csv_out, _csv(header, report.result.variants))
        if report.failed:  # scored without them: said last, where a batch's failures go
            report_failures(report.failed, report.partial.covered)
    if report.failed:
        raise typer.Exit(1)


def _print_shard(header: dict[str, Any], json_out: Path | None, console: Console) -> None:
    """What a shard did, and where its sums went."""
    console.print(
        f"shard {header['shard']}: {header['images']} image(s) of {header['dataset']} "
        f"evaluated; sums in {json_out} for dpde eval --merge",
        markup=False,
        highlight=False,
    )


STDOUT = Path("-")
"""The report path that means standard output."""


def _check_report_paths(**paths: Path | None) -> None:
    """Refuse report paths that look like options (``--json -q`` would write a file "-q")
    and two reports on stdout or in one file (the second would replace the first)."""
    from dpde_cli.io import written_in_place

    for option, path in paths.items():
        if path is not None and path != STDOUT and str(path).startswith("-"):
            flag = "--" + option.removesuffix("_out")
            raise UsageError(f"{flag} takes a file name (- for stdout), got {str(path)!r}")
    if list(paths.values()).count(STDOUT) > 1:
        raise UsageError("only one of --json and --csv can go to stdout (-)")
    files = [p for p in paths.values() if p is not None and p != STDOUT]
    same = len(files) == 2 and files[0].resolve() == files[1].resolve()
    if same and not written_in_place(files[0]):
        raise UsageError(f"--json and --csv both name {files[0]}; give each its own file")


def _check_writable(**paths: Path | None) -> None:
    """Refuse, before the run, output paths it could not write at its end: a report file
    that is a folder, or a folder (a report's, or --save-predictions) that cannot be made
    or written to."""
    from dpde_cli.io import refuse_unwritable

    for option, path in paths.items():
        if path is not None and path != STDOUT:
            flag = "--" + option.removesuffix("_out").replace("_", "-")
            refuse_unwritable(flag, path, folder=option == "save_predictions")


def _check_not_inputs(data_dirs: list[Path] | None, weights: str | None, **paths: Path | None):
    """Refuse outputs that are inputs: the weights file; in a data folder, whose files
    cannot all be listed, the predictions, and a report that would replace a file other
    than an earlier report."""
    from dpde_cli.outputs import refuse_inputs_as_outputs, refuse_outputs_inside

    named = [
        (f"--{option.removesuffix('_out').replace('_', '-')} {path}", path)
        for option, path in paths.items()
        if path is not None and path != STDOUT
    ]
    refuse_inputs_as_outputs(named, [Path(weights)] if weights else [])
    risky = [
        (name, path)
        for name, path in named
        if name.startswith("--save-predictions") or (path.is_file() and not _is_report(path))
    ]
    refuse_outputs_inside(risky, [d for d in data_dirs or [] if d is not None])


def _is_report(path: Path) -> bool:
    """Whether a file is a report `dpde eval` wrote (JSON or CSV), by its first bytes."""
    try:
        with open(path, "rb") as handle:
            start = handle.read(64)
    except OSError:
        return False
    return start.startswith((b'{\n  "dataset": ', b"dataset,model,variant,"))


def _write_report(path: Path, text: str) -> None:
    """A report to its file (atomically), or to stdout for "-"; a failure is one line
    naming the file (``outputs.writing``)."""
    from dpde_cli.io import write_text
    from dpde_cli.outputs import remove_stale_temporaries, write_stdout

    if path == STDOUT:
        write_stdout(text)
    else:
        remove_stale_temporaries([path])
        write_text(path, text)


def _print_table(
    header: dict[str, Any],
    variants: dict[str, dict[str, float]],
    extra: tuple[str, ...],
    console: Console,
) -> None:
    """The results in the paper's layout on ``console``; the protocol under it."""
    from rich.table import Table

    from dpde_cli.metrics import METRIC_LABELS

    columns = (*COLUMNS, *extra)
    table = Table(
        title=f"{header['model']} on {header['dataset']} ({header['split']}, "
        f"{header['images']} images)"
    )
    table.add_column("variant")
    for key in columns:
        table.add_column(METRIC_LABELS[key], justify="right")
    for row, values in variants.items():
        table.add_row(row, *(f"{values[key]:.3f}" for key in columns))
    console.print(table)
    console.print(f"protocol: {header['protocol']}", markup=False, highlight=False)
    console.print(
        f"{header['seconds_per_image']:.3f} s per image on {header['device']} "
        f"(network at {'x'.join(map(str, header['input_size']))}"
        f"{' + fusion' if header['fusion'] else ''})",
        markup=False,
    )
    if header["skipped"]:
        err_console.print(
            f"dpde: {len(header['skipped'])} image(s) had no valid ground "
            f"truth and were skipped: {', '.join(header['skipped'][:5])}",
            markup=False,
        )


def _csv(header: dict[str, Any], variants: dict[str, dict[str, float]]) -> str:
    """One CSV row per variant, with the protocol in every row."""
    buffer = io.StringIO()
    metric_names = list(next(iter(variants.values())))
    writer = csv.writer(buffer)
    writer.writerow(["dataset", "model", "variant", *metric_names, "images", "protocol"])
    for row, values in variants.items():
        writer.writerow(
            [
                header["dataset"],
                header["model"],
                row,
                *(f"{values[k]:.6f}" for k in metric_names),
                header["images"],
                header["protocol"],
            ]
        )
    return buffer.getvalue()
