"""`dpde eval`: a model's depth metrics on a benchmark, under a protocol it prints."""

from __future__ import annotations

import csv
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
from dpde_cli.dataset_catalog import dataset_spec, list_datasets
from dpde_cli.errors import UsageError
from dpde_cli.outputs import stdout_guard

if TYPE_CHECKING:
    from rich.console import Console

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


@handle_errors
def eval_command(
    ctx: typer.Context,
    dataset: Annotated[Dataset, typer.Option("--dataset", case_sensitive=False)],
    data_dir: Annotated[
        list[Path] | None,
        typer.Option(
            "--data-dir",
            metavar="<dir>",
            help="The dataset's folder; repeat it to evaluate several folders as one set "
            "(names get the shortest path tail that tells the folders apart as prefix).",
        ),
    ] = None,
    split: Annotated[
        str | None,
        typer.Option(help="test | train | all, as the dataset has (default test; folder: all)."),
    ] = None,
    model: ModelOption = "dpde-lite",
    weights: WeightsOption = None,
    device: DeviceOption = None,
    precision: PrecisionOption = "auto",
    input_size: InputSizeOption = None,
    fuse: Annotated[bool, typer.Option("--fuse/--no-fuse", help="IRLS gradient fusion.")] = True,
    ablation: Annotated[
        bool, typer.Option(help="Also report the run without the gradient stream (fusion).")
    ] = False,
    gt: Annotated[
        GroundTruth | None, typer.Option(help="nyuv2 .mat: filled depths or rawDepths.")
    ] = None,
    depth_scale: Annotated[
        float | None, typer.Option(help="folder: depth PNG units per metre (default 1000).")
    ] = None,
    crop: Annotated[Crop | None, typer.Option(help="Default per dataset (nyuv2: eigen).")] = None,
    min_depth: Annotated[float | None, typer.Option(help="Valid GT above this, metres.")] = None,
    max_depth: Annotated[float | None, typer.Option(help="Valid GT below this, metres.")] = None,
    averaging: Annotated[
        Averaging | None, typer.Option(help="image: per image then mean; pixel: pooled.")
    ] = None,
    align: Annotated[
        Alignment | None, typer.Option(help="none (metric) | median | lstsq scale+shift.")
    ] = None,
    flip_tta: Annotated[bool, typer.Option(help="Horizontal-flip test-time augmentation.")] = False,
    metrics: Annotated[
        list[str] | None,
        typer.Option(
            "--metric",
            metavar="<name>",
            help="Add ssim, gsm and/or edges (depth-boundary F1); repeatable.",
        ),
    ] = None,
    constant_baseline: Annotated[
        float | None,
        typer.Option(
            help="Also evaluate a constant depth (metres) and the same constant "
            "scaled by each image's GT median (an oracle)."
        ),
    ] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Only the first N images.")] = None,
    batch_size: BatchSizeOption = 4,
    workers: Annotated[
        int | None, typer.Option(min=0, help="DataLoader workers (default: min(4, CPUs)).")
    ] = None,
    json_out: Annotated[
        Path | None,
        typer.Option(
            "--json",
            metavar="<file>",
            help="Write results as JSON to this file; - for stdout (the table then goes to "
            "stderr).",
        ),
    ] = None,
    csv_out: Annotated[
        Path | None,
        typer.Option("--csv", metavar="<file>", help="Write results as CSV; - for stdout."),
    ] = None,
    save_predictions: Annotated[
        Path | None, typer.Option(help="Write each prediction as a 16-bit PNG (mm) here.")
    ] = None,
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
    """
    from dpde_cli.data import build_datasets, default_workers
    from dpde_cli.evaluate import SparseSamples, check_protocol, constant_baselines, evaluate
    from dpde_cli.metrics import default_protocol

    opts = global_options(ctx, quiet)
    quiet = opts.quiet
    _check_report_paths(json_out=json_out, csv_out=csv_out)
    _check_writable(json_out=json_out, csv_out=csv_out, save_predictions=save_predictions)
    _check_not_inputs(
        data_dir, weights, json_out=json_out, csv_out=csv_out, save_predictions=save_predictions
    )
    name = dataset.value
    split = split or dataset_spec(name).eval_split
    overrides: dict[str, Any] = {
        key: value
        for key, value in (
            ("crop", crop.value if crop else None),
            ("min_depth", min_depth),
            ("max_depth", max_depth),
            ("averaging", averaging.value if averaging else None),
            ("alignment", align.value if align else None),
        )
        if value is not None
    }
    protocol = default_protocol(name, flip_tta=flip_tta, **overrides)
    options: dict[str, Any] = {}
    if gt is not None:
        if name != "nyuv2":
            raise UsageError(f"--gt is for --dataset nyuv2 (filled or raw depth), not {name}")
        options["gt"] = gt.value
    if depth_scale is not None:
        if name != "folder":
            raise UsageError(f"--depth-scale is for --dataset folder, not {name}")
        options["depth_scale"] = depth_scale
    data = build_datasets(name, data_dir or [None], split, options)
    check_protocol(data, protocol)
    if ablation and not fuse:
        raise UsageError("--ablation compares fusion on and off; drop --no-fuse")
    if sparse_seed is not None and sparse_samples is None:
        raise UsageError("--sparse-seed seeds the draws of --sparse-samples; give that too")
    sparse = SparseSamples(sparse_samples, sparse_seed or 0) if sparse_samples else None
    baselines = []
    if constant_baseline is not None:
        baselines = constant_baselines(constant_baseline, protocol.alignment)
    # the protocol's far limit where past the model's, which would clip what --max-depth 80
    # asks to score (weights trained on KITTI-like folders)
    predictor, _ = build_predictor(
        model,
        weights,
        device or opts.device,
        precision,
        10.0 if fuse else None,
        input_size,
        max_depth=protocol.max_depth,
    )
    total = min(limit or len(data), len(data))
    with make_progress(show_progress(quiet)) as progress:
        task = progress.add_task(f"eval {name}", total=total)
        result = evaluate(
            predictor,
            data,
            protocol,
            batch_size=batch_size,
            workers=default_workers() if workers is None else workers,
            limit=limit,
            extra_metrics=tuple(metrics or ()),
            ablation=ablation,
            baselines=baselines,
            save_predictions=save_predictions,
            on_progress=lambda done: progress.update(task, completed=done),
            sparse=sparse,
        )
    header = {
        "dataset": name,
        "split": split,
        "data_dir": [str(d) for d in data_dir or []],
        "model": model,
        "weights": weights or "shipped",
        "input_size": list(predictor.inference.input_size),
        "fusion": fuse,
        "ground_truth": result.ground_truth,
        "protocol": result.protocol,
        "images": result.n_images,
        "skipped": result.skipped,
        "failed": result.failed,
        "seconds_per_image": round(result.seconds_per_image, 4),
        "device": str(predictor.device),
    }
    to_stdout = STDOUT in (json_out, csv_out)
    console = wide_console(stderr=to_stdout)  # the table on stderr when a report is on stdout
    with stdout_guard():  # a full disk or a closed pipe: one line, not a traceback
        _print_table(header, result.variants, tuple(metrics or ()), console)
    if json_out is not None:
        report = {**header, "results": result.variants, "per_image": result.records}
        _write_report(json_out, json.dumps(report, indent=2) + "\n")
    if csv_out is not None:
        _write_report(csv_out, _csv(header, result.variants))
    if result.failed:  # scored without them: said last, where a batch's failures go
        report_failures(result.failed, total)
        raise typer.Exit(1)


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
