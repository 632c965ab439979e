"""`dpde fuse`: refine any depth map with depth gradients by the IRLS fusion
(``pipelines.fuse_file``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dpde_cli.cli.common import (
    CxOption,
    CyOption,
    DeviceOption,
    ExifOption,
    FovOption,
    FxOption,
    FyOption,
    InputSizeOption,
    IntrinsicsOption,
    ModelOption,
    PrecisionOption,
    QuietOption,
    WeightsOption,
    build_predictor,
    echo,
    emit_json,
    err_console,
    global_options,
    handle_errors,
)
from dpde_cli.formats import DEPTH_FORMATS

SourceArgument = Annotated[
    Path,
    typer.Argument(
        help="The depth map (with --gx/--gy or --gradients), or the photo "
        "(with --depth; gradients from --model's gradient network)."
    ),
]
OutputOption = Annotated[
    Path,
    typer.Option("--output", "-o", help="The fused depth map; its extension names the format."),
]
GxOption = Annotated[Path | None, typer.Option(help="Horizontal gradients (npy, pfm, tiff).")]
GyOption = Annotated[Path | None, typer.Option(help="Vertical gradients (npy, pfm, tiff).")]
GradientsOption = Annotated[
    Path | None,
    typer.Option(help="(2, H, W) .npy of (G_x, G_y), as `predict --save-gradients` writes."),
]
DepthOption = Annotated[
    Path | None, typer.Option(help="Depth map to refine; SOURCE is then the photo.")
]
MaskOption = Annotated[
    Path | None,
    typer.Option(help="Confidence of the depth: PNG (non-zero = trusted) or .npy in [0, 1]."),
]
DepthScaleOption = Annotated[
    float, typer.Option(min=1e-9, help="Integer PNG depth units per metre (1000 = millimetres).")
]
FormatOption = Annotated[
    str | None,
    typer.Option(
        "--format",
        "-f",
        help=f"{' | '.join(DEPTH_FORMATS)} (default: from -o's extension; .png is png16, "
        ".jpg a colour preview).",
    ),
]
OmegaOption = Annotated[float, typer.Option(help="Weight of the gradient term (paper: 10).")]
EpsOption = Annotated[float, typer.Option(help="phi(x) = sqrt(x^2 + eps) (paper: 1e-4).")]
IterationsOption = Annotated[int, typer.Option(min=1, help="Most IRLS steps.")]
ToleranceOption = Annotated[
    float, typer.Option(help="Stop when the objective changes less than this (relative).")
]
Float64Option = Annotated[bool, typer.Option(help="Solve in float64 (default float32).")]
OverwriteOption = Annotated[bool, typer.Option(help="Replace an existing output.")]
JsonOption = Annotated[bool, typer.Option("--json", help="A JSON record on stdout.")]


@handle_errors
def fuse(
    ctx: typer.Context,
    source: SourceArgument,
    output: OutputOption,
    gx: GxOption = None,
    gy: GyOption = None,
    gradients: GradientsOption = None,
    depth: DepthOption = None,
    mask: MaskOption = None,
    depth_scale: DepthScaleOption = 1000.0,
    fmt: FormatOption = None,
    omega: OmegaOption = 10.0,
    eps: EpsOption = 1e-4,
    iterations: IterationsOption = 50,
    tolerance: ToleranceOption = 1e-4,
    float64: Float64Option = False,
    model: ModelOption = "dpde-lite",
    weights: WeightsOption = None,
    device: DeviceOption = None,
    precision: PrecisionOption = "auto",
    quiet: QuietOption = False,
    input_size: InputSizeOption = None,
    overwrite: OverwriteOption = False,
    as_json: JsonOption = False,
    intrinsics: IntrinsicsOption = None,
    fx: FxOption = None,
    fy: FyOption = None,
    cx: CxOption = None,
    cy: CyOption = None,
    fov: FovOption = None,
    exif: ExifOption = True,
) -> None:
    """Fuse a depth map with depth gradients (IRLS): sharper detail, holes filled.

    Works on any depth map: DPDE's, another model's, or a sensor's with holes (0 or NaN).

    Examples:

    \b
        dpde fuse depth.png --gx gx.npy --gy gy.npy -o fused.png
        dpde fuse depth.png --gradients depth_gradients.npy -o fused.npy
        dpde fuse photo.jpg --depth sensor.png -o filled.png
    """
    from dpde_cli.camera import Camera
    from dpde_cli.fusion import FusionConfig
    from dpde_cli.pipelines import fuse_file

    opts = global_options(ctx, quiet)
    camera = Camera(fx, fy, cx, cy, intrinsics, fov, exif)  # for canonical-camera weights
    camera.check()
    config = FusionConfig(
        omega=omega,
        eps=eps,
        max_irls_iters=iterations,
        tol=tolerance,
        dtype="float64" if float64 else "float32",
    )
    record = fuse_file(
        output,
        depth if depth is not None else source,
        gx=gx,
        gy=gy,
        gradients=gradients,
        photo=source if depth is not None else None,
        load_predictor=lambda: build_predictor(
            model, weights, device or opts.device, precision, None, input_size
        )[0],
        mask=mask,
        depth_scale=depth_scale,
        fmt=fmt,
        config=config,
        overwrite=overwrite,
        inputs=[p for p in (Path(weights) if weights else None, intrinsics) if p is not None],
        camera=camera,
    )
    if record is None:
        if not opts.quiet:
            err_console.print(
                f"dpde: skipped: {output} exists; --overwrite redoes it",
                markup=False,
                highlight=False,
                soft_wrap=True,
            )
    elif as_json:
        emit_json(record)
    else:
        echo(str(output))
