"""`dpde predict`: photos in, metric depth maps out (``pipelines.predict_files``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dpde_cli.cli.common import (
    Align,
    AlignOption,
    AnchorOption,
    BatchJsonOption,
    BatchSizeOption,
    CxOption,
    CyOption,
    DepthScaleOption,
    DeviceOption,
    ExifOption,
    FovOption,
    FuseOption,
    FxOption,
    FyOption,
    InputSizeOption,
    IntrinsicsOption,
    MaxPixelsOption,
    ModelOption,
    OmegaOption,
    OutputOption,
    OverwriteOption,
    PrecisionOption,
    QuietOption,
    RecursiveOption,
    ShardOption,
    SparseDepthOption,
    WeightsOption,
    batch_printer,
    build_predictor,
    global_options,
    handle_errors,
    measurements,
    report_batch,
    warn_default_camera,
)
from dpde_cli.formats import DEPTH_FORMATS

InputsArgument = Annotated[
    list[str],
    typer.Argument(help="Images, directories, glob patterns, or - to read paths from stdin."),
]
FormatOption = Annotated[
    str | None,
    typer.Option(
        "--format",
        "-f",
        help=f"{' | '.join(DEPTH_FORMATS)} (default: from -o's "
        "extension, else png16 = 16-bit PNG in millimetres).",
    ),
]
UnfusedOption = Annotated[
    bool, typer.Option(help="Also write the global network's depth as <name>_unfused.")
]
GradientsOption = Annotated[
    bool, typer.Option(help="Also write (2, H, W) float32 gradients as <name>_gradients.npy.")
]
PreviewOption = Annotated[
    bool, typer.Option(help="Also write a colour-mapped preview as <name>_color.png.")
]
ColormapOption = Annotated[str, typer.Option(help="matplotlib colormap for previews.")]
DepthRangeOption = Annotated[
    tuple[float, float] | None,
    typer.Option(
        metavar="<near far>",
        help="Near and far metres of the preview colours (default: the model's range, "
        "the same for every frame).",
    ),
]


@handle_errors
def predict(
    ctx: typer.Context,
    inputs: InputsArgument,
    output: OutputOption = None,
    fmt: FormatOption = None,
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
    save_unfused: UnfusedOption = False,
    save_gradients: GradientsOption = False,
    preview: PreviewOption = False,
    colormap: ColormapOption = "turbo",
    depth_range: DepthRangeOption = None,
    max_pixels: MaxPixelsOption = None,
    sparse_depth: SparseDepthOption = None,
    anchor: AnchorOption = None,
    align: AlignOption = Align.scale,
    depth_scale: DepthScaleOption = 1000.0,
    intrinsics: IntrinsicsOption = None,
    fx: FxOption = None,
    fy: FyOption = None,
    cx: CxOption = None,
    cy: CyOption = None,
    fov: FovOption = None,
    exif: ExifOption = True,
    shard: ShardOption = None,
) -> None:
    """Predict metric depth for photos.

    With --sparse-depth or --anchor, the prediction is made metric by
    known distances: a robust scale (or scale and shift) fitted to them,
    then completed between them (`--json` records the fit).

    The camera (--fx/--intrinsics/EXIF/--fov/default, as `dpde
    pointcloud`) matters only to weights trained for a canonical focal
    length (`dpde train --canonical-camera`); the shipped weights ignore
    it.

    Examples:

    \b
        dpde predict photo.jpg -o depth.png
        dpde predict photos/ -r -o out/ --preview --json
        find photos -name '*.jpg' | dpde predict - -o out/
        dpde predict photo.jpg --sparse-depth lidar.png --json
        dpde predict photo.jpg --anchor 320,240=2.5 --anchor 100,400=1.2
        dpde predict photos/ -r -o out/ --shard 3/8    (job 3 of an array of 8)
        torchrun --nproc_per_node 4 -m dpde_cli predict photos/ -r -o out/
    """
    from dpde_cli.batch import BatchOptions, check_outputs, share_of
    from dpde_cli.camera import Camera, uses_camera
    from dpde_cli.distributed import inference_run
    from dpde_cli.inputs import expand_inputs
    from dpde_cli.pipelines import DepthOutputs, depth_format_for, plan_predictions, predict_files

    opts = global_options(ctx, quiet)
    items = expand_inputs(inputs, recursive=recursive)
    fmt = depth_format_for(output, len(items), fmt)
    outputs = DepthOutputs(fmt, save_unfused, save_gradients, preview, colormap, depth_range)
    camera = Camera(fx, fy, cx, cy, intrinsics, fov, exif)
    camera.check()
    measured = measurements(sparse_depth, anchor, depth_scale, align)
    measured.check(items)
    jobs = plan_predictions(items, output, outputs, measured)
    extra = [p for p in (intrinsics, Path(weights) if weights else None) if p is not None]
    check_outputs(jobs, extra)  # every usage error before the model loads
    run = inference_run(shard, device or opts.device)  # --shard K/N, torchrun's rank
    jobs = share_of(jobs, run.share)
    predictor, _ = build_predictor(
        model, weights, run.device, precision, omega if fuse else None, input_size
    )
    with batch_printer(
        "predict", len(jobs), quiet=run.quiet(opts.quiet), as_json=as_json
    ) as printer:
        if uses_camera(predictor.inference):
            printer = warn_default_camera(printer, len(items) > 1, "the metric scale may be off")
        options = BatchOptions(overwrite, batch_size, max_pixels, tuple(extra), printer)
        report = predict_files(predictor, jobs, outputs, options, camera, measured)
    report_batch(report, opts.quiet, run)
