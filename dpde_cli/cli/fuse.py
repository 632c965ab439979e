"""`dpde fuse`: refine any depth map with depth gradients by the IRLS fusion."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dpde_cli.cli.common import (
    DeviceOption,
    InputSizeOption,
    ModelOption,
    PrecisionOption,
    QuietOption,
    WeightsOption,
    build_predictor,
    emit_json,
    err_console,
    global_options,
    handle_errors,
)
from dpde_cli.errors import InputError, UsageError
from dpde_cli.formats import DEPTH_FORMATS


@handle_errors
def fuse(
    ctx: typer.Context,
    source: Annotated[
        Path,
        typer.Argument(
            help="The depth map (with --gx/--gy or --gradients), or the photo "
            "(with --depth; gradients from --model's gradient network)."
        ),
    ],
    output: Annotated[
        Path,
        typer.Option("--output", "-o", help="The fused depth map; its extension names the format."),
    ],
    gx: Annotated[Path | None, typer.Option(help="Horizontal gradients (npy, pfm, tiff).")] = None,
    gy: Annotated[Path | None, typer.Option(help="Vertical gradients (npy, pfm, tiff).")] = None,
    gradients: Annotated[
        Path | None,
        typer.Option(help="(2, H, W) .npy of (G_x, G_y), as `predict --save-gradients` writes."),
    ] = None,
    depth: Annotated[
        Path | None, typer.Option(help="Depth map to refine; SOURCE is then the photo.")
    ] = None,
    mask: Annotated[
        Path | None,
        typer.Option(help="Confidence of the depth: PNG (non-zero = trusted) or .npy in [0, 1]."),
    ] = None,
    depth_scale: Annotated[
        float,
        typer.Option(min=1e-9, help="Integer PNG depth units per metre (1000 = millimetres)."),
    ] = 1000.0,
    fmt: Annotated[
        str | None,
        typer.Option(
            "--format",
            "-f",
            help=f"{' | '.join(DEPTH_FORMATS)} (default: from -o's extension; .png is png16, "
            ".jpg a colour preview).",
        ),
    ] = None,
    omega: Annotated[float, typer.Option(help="Weight of the gradient term (paper: 10).")] = 10.0,
    eps: Annotated[float, typer.Option(help="phi(x) = sqrt(x^2 + eps) (paper: 1e-4).")] = 1e-4,
    iterations: Annotated[int, typer.Option(min=1, help="Most IRLS steps.")] = 50,
    tolerance: Annotated[
        float, typer.Option(help="Stop when the objective changes less than this (relative).")
    ] = 1e-4,
    float64: Annotated[bool, typer.Option(help="Solve in float64 (default float32).")] = False,
    model: ModelOption = "dpde-lite",
    weights: WeightsOption = None,
    device: DeviceOption = None,
    precision: PrecisionOption = "auto",
    quiet: QuietOption = False,
    input_size: InputSizeOption = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="A JSON record on stdout.")] = False,
) -> None:
    """Fuse a depth map with depth gradients (IRLS): sharper detail, holes filled.

    Works on any depth map: DPDE's, another model's, or a sensor's with holes (0 or NaN).

    Examples:

    \b
        dpde fuse depth.png --gx gx.npy --gy gy.npy -o fused.png
        dpde fuse depth.png --gradients depth_gradients.npy -o fused.npy
        dpde fuse photo.jpg --depth sensor.png -o filled.png
    """
    import numpy as np

    from dpde_cli.fusion import FusionConfig, irls_fuse
    from dpde_cli.io import (
        depth_format,
        read_depth,
        refuse_unwritable,
        valid_depth,
        write_depth,
        written_in_place,
    )

    from_files = gx is not None or gy is not None or gradients is not None
    if from_files == (depth is not None):
        raise UsageError(
            "give either gradients (--gx and --gy, or --gradients) with a depth "
            "map, or --depth with a photo"
        )
    if gradients is not None and (gx is not None or gy is not None):
        raise UsageError("give --gradients or --gx and --gy, not both")
    if from_files and gradients is None and (gx is None or gy is None):
        raise UsageError("--gx and --gy go together")
    if output.is_dir():
        raise UsageError(f"-o {output} is a folder; fuse writes one file (e.g. {output}/fused.png)")
    fmt = depth_format(output, fmt)
    refuse_unwritable("-o", output)
    opts = global_options(ctx, quiet)
    if output.exists() and not written_in_place(output) and not overwrite:  # as in a batch
        if not opts.quiet:
            err_console.print(
                f"dpde: skipped: {output} exists; --overwrite redoes it",
                markup=False,
                highlight=False,
                soft_wrap=True,
            )
        return
    config = FusionConfig(
        omega=omega,
        eps=eps,
        max_irls_iters=iterations,
        tol=tolerance,
        dtype="float64" if float64 else "float32",
    )

    depth_path = source if from_files else depth
    estimate = read_depth(depth_path, depth_scale)
    valid = valid_depth(depth_path, estimate)  # before any network is loaded
    if from_files:
        grad_x, grad_y = _read_gradients(gx, gy, gradients, estimate.shape)
    else:
        from dpde_cli.io import read_image

        image = read_image(source)
        _check_aspect(source, image.shape[:2], depth_path, estimate.shape)
        predictor, _ = build_predictor(
            model, weights, device or opts.device, precision, None, input_size
        )
        grad_x, grad_y = predictor.predict_gradients(image, estimate.shape)
    _check_units(depth_path, valid, grad_x, grad_y)
    confidence = _read_mask(mask, estimate.shape) if mask is not None else None
    missing = estimate.size - valid.size
    result = irls_fuse(estimate, grad_x, grad_y, mask=confidence, config=config)
    try:
        write_depth(output, np.asarray(result.depth, dtype=np.float32), fmt)
    except OSError as exc:  # a full disk, a folder we may not write in
        raise InputError(output, f"cannot write ({exc.strerror or exc})") from None
    record = {
        "input": str(depth_path),
        "output": str(output),
        "shape": list(estimate.shape),
        "filled_pixels": missing,
        "irls_iterations": result.irls_iters,
        "cg_iterations": result.cg_iters,
        "objective": result.objective,
        "converged": result.converged,
    }
    if as_json:
        emit_json(record)
    else:
        typer.echo(str(output))


def _read_gradients(gx: Path | None, gy: Path | None, both: Path | None, shape: tuple[int, int]):
    """(G_x, G_y) from two single-channel files or one (2, H, W) .npy; shapes checked."""
    import numpy as np

    from dpde_cli.io import load_npy, read_depth

    if both is not None:
        if both.suffix.lower() != ".npy":
            raise InputError(both, "--gradients takes a (2, H, W) .npy file")
        stack = load_npy(both, "gradients")
        if stack.ndim != 3 or stack.shape[0] != 2:
            raise InputError(both, f"expected shape (2, H, W), got {stack.shape}")
        stack = stack.astype(np.float32)
        pairs = ((both, stack[0]), (both, stack[1]))
    else:
        for path in (gx, gy):
            if path.suffix.lower() == ".png":
                raise InputError(path, "gradients are signed: use .npy, .pfm or .tiff, not PNG")
        pairs = tuple((p, read_depth(p, what="gradient")) for p in (gx, gy))
    for path, values in pairs:
        if values.shape != tuple(shape):
            raise InputError(
                path, f"gradient shape {values.shape} does not match the depth map's {tuple(shape)}"
            )
        if not np.isfinite(values).all():
            raise InputError(path, "gradients contain NaN or infinity")
    return pairs[0][1], pairs[1][1]


def _check_aspect(
    image_path: Path, image: tuple[int, int], depth_path: Path, depth: tuple[int, int]
) -> None:
    """The photo and the depth map must show the same view (same aspect ratio)."""
    if abs(image[1] / image[0] - depth[1] / depth[0]) > 0.01 * image[1] / image[0]:
        raise InputError(
            depth_path,
            f"depth map {depth[1]}x{depth[0]} does not have the "
            f"aspect ratio of {image_path} ({image[1]}x{image[0]})",
        )


def _check_units(path: Path, valid, grad_x, grad_y) -> None:
    """Catch depth and gradients in different units (e.g. millimetres against metres);
    ``valid`` holds the depth map's valid values (io.valid_depth)."""
    import numpy as np

    # One pixel's step can never exceed the whole depth range when the units agree.
    span = float(valid.max() - valid.min())
    largest = max(float(np.abs(grad_x).max()), float(np.abs(grad_y).max()))
    if span > 0 and largest > 2.0 * span:
        raise InputError(
            path,
            "the gradients are larger than the whole depth range: depth "
            "and gradients seem to be in different units (depth in metres; "
            "PNG depth uses --depth-scale units per metre)",
        )
    if float(np.median(valid)) > 500:
        raise InputError(
            path,
            f"median depth {float(np.median(valid)):.0f} m: the depth "
            "looks like millimetres; set --depth-scale",
        )


def _read_mask(path: Path, shape: tuple[int, int]):
    """A confidence mask in [0, 1] from a PNG (non-zero = 1) or an .npy of floats."""
    import numpy as np
    from PIL import Image

    from dpde_cli.io import load_npy

    try:
        if path.suffix.lower() == ".npy":
            values = load_npy(path, "mask", kinds="biuf").astype(np.float32)
        else:
            with Image.open(path) as image:
                values = (np.asarray(image.convert("L")) > 0).astype(np.float32)
    except (OSError, ValueError) as exc:
        raise InputError(path, f"cannot read mask ({exc})") from None
    if values.shape != tuple(shape):
        raise InputError(
            path, f"mask shape {values.shape} does not match the depth map's {tuple(shape)}"
        )
    if values.min() < 0 or values.max() > 1:
        raise InputError(path, "mask values must lie in [0, 1]")
    return values
