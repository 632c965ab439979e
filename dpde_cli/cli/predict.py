"""`dpde predict`: photos in, metric depth maps out."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer

from dpde_cli.cli.common import (
    DEFAULT_OUTPUT,
    BatchJsonOption,
    BatchSizeOption,
    DeviceOption,
    FuseOption,
    InputSizeOption,
    MaxPixelsOption,
    ModelOption,
    OmegaOption,
    OutputOption,
    OverwriteOption,
    PrecisionOption,
    QuietOption,
    RecursiveOption,
    WeightsOption,
    build_predictor,
    global_options,
    handle_errors,
    run_batches,
    single_output,
)
from dpde_cli.formats import DEPTH_FORMATS, FORMAT_EXTENSIONS, depth_format


@handle_errors
def predict(
    ctx: typer.Context,
    inputs: Annotated[
        list[str],
        typer.Argument(help="Images, directories, glob patterns, or - to read paths from stdin."),
    ],
    output: OutputOption = None,
    fmt: Annotated[
        str | None,
        typer.Option(
            "--format",
            "-f",
            help=f"{' | '.join(DEPTH_FORMATS)} (default: from -o's "
            "extension, else png16 = 16-bit PNG in millimetres).",
        ),
    ] = None,
    model: ModelOption = "dpde-lite",
    weights: WeightsOption = None,
    device: DeviceOption = None,
    precision: PrecisionOption = "auto",
    quiet: QuietOption = False,
    input_size: InputSizeOption = None,
    batch_size: BatchSizeOption = 4,
    recursive: RecursiveOption = False,
    overwrite: OverwriteOption = False,
    as_json: BatchJsonOption = False,
    fuse: FuseOption = True,
    omega: OmegaOption = 10.0,
    save_unfused: Annotated[
        bool, typer.Option(help="Also write the global network's depth as <name>_unfused.")
    ] = False,
    save_gradients: Annotated[
        bool, typer.Option(help="Also write (2, H, W) float32 gradients as <name>_gradients.npy.")
    ] = False,
    preview: Annotated[
        bool, typer.Option(help="Also write a colour-mapped preview as <name>_color.png.")
    ] = False,
    colormap: Annotated[str, typer.Option(help="matplotlib colormap for previews.")] = "turbo",
    depth_range: Annotated[
        tuple[float, float] | None,
        typer.Option(
            metavar="<near far>",
            help="Near and far metres of the preview colours (default: the model's range, "
            "the same for every frame).",
        ),
    ] = None,
    max_pixels: MaxPixelsOption = None,
) -> None:
    """Predict metric depth for photos.

    Examples:

    \b
        dpde predict photo.jpg -o depth.png
        dpde predict photos/ -r -o out/ --preview --json
        find photos -name '*.jpg' | dpde predict - -o out/
    """
    from dpde_cli.inputs import expand_inputs
    from dpde_cli.io import check_colormap, check_depth_range

    opts = global_options(ctx, quiet)
    items = expand_inputs(inputs, recursive=recursive)
    single_file = single_output(output, len(items))
    # depth_format checks an explicit --format, and reads -o's extension for one file.
    fmt = depth_format(output, fmt) if single_file or fmt else "png16"
    if preview or fmt == "color":
        check_colormap(colormap)
    if depth_range is not None:
        depth_range = check_depth_range(depth_range)

    predictor, spec = build_predictor(
        model, weights, device or opts.device, precision, omega if fuse else None, input_size
    )
    preview_range = depth_range or spec.depth_range
    plans = [
        _plan(item, output, single_file, fmt, save_unfused, save_gradients, preview)
        for item in items
    ]

    run_batches(
        items,
        plans,
        lambda it, targets, _im, pred: _write(it.path, targets, pred, fmt, colormap, preview_range),
        infer=predictor.predict,
        label="predict",
        quiet=opts.quiet,
        as_json=as_json,
        overwrite=overwrite,
        batch_size=batch_size,
        max_pixels=max_pixels,
    )


def _plan(
    item,
    output: Path | None,
    single_file: bool,
    fmt: str,
    unfused: bool,
    gradients: bool,
    preview: bool,
) -> dict[str, Path]:
    """Output paths of one input: depth, and the optional extras beside it."""
    ext = FORMAT_EXTENSIONS[fmt]
    if single_file:
        depth_path = output
    else:
        depth_path = (output or DEFAULT_OUTPUT) / item.relative.with_suffix(ext)
    base = depth_path.with_suffix("")
    targets = {"depth": depth_path}
    if unfused:
        targets["unfused"] = base.with_name(base.name + "_unfused" + depth_path.suffix)
    if gradients:
        targets["gradients"] = base.with_name(base.name + "_gradients.npy")
    if preview and fmt != "color":
        targets["preview"] = base.with_name(base.name + "_color.png")
    return targets


def _write(
    path: Path,
    targets: dict[str, Path],
    pred,
    fmt: str,
    colormap: str,
    depth_range: tuple[float, float],
) -> dict[str, Any]:
    """Write one prediction's files atomically; return its JSON record."""
    import numpy as np

    from dpde_cli.io import atomic_path, write_depth, write_npy

    start = time.perf_counter()
    write_depth(targets["depth"], pred.depth, fmt, colormap, depth_range)
    if "unfused" in targets:
        write_depth(targets["unfused"], pred.depth_unfused, fmt, colormap, depth_range)
    if "gradients" in targets:
        with atomic_path(targets["gradients"]) as tmp:
            write_npy(tmp, pred.gradients.astype(np.float32))
    if "preview" in targets:
        write_depth(targets["preview"], pred.depth, "color", colormap, depth_range)
    valid = pred.depth[np.isfinite(pred.depth)]
    return {
        "input": str(path),
        "output": str(targets["depth"]),
        "outputs": {k: str(v) for k, v in targets.items()},
        "shape": list(pred.depth.shape),
        "network_size": list(pred.network_size),
        "depth_min": round(float(valid.min()), 4),
        "depth_median": round(float(np.median(valid)), 4),
        "depth_max": round(float(valid.max()), 4),
        "fusion": pred.fusion,
        "seconds": round(pred.seconds + time.perf_counter() - start, 4),
    }
