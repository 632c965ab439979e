"""`dpde export`: a model and its weights as one ONNX or TorchScript file."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from dpde_cli.cli.common import (
    QuietOption,
    WeightsOption,
    _complete_model,
    err_console,
    global_options,
    handle_errors,
)

ModelArgument = Annotated[
    str,
    typer.Argument(help="Registered model (see `dpde models`).", autocompletion=_complete_model),
]
ExportOutputOption = Annotated[
    Path,
    typer.Option("--output", "-o", help="The file to write: .onnx, or .pt for TorchScript."),
]


class ExportFormat(str, Enum):
    """Export file formats (``dpde_cli.exported.FORMATS``)."""

    onnx = "onnx"
    torchscript = "torchscript"


ExportFormatOption = Annotated[
    ExportFormat | None,
    typer.Option(
        "--format",
        "-f",
        case_sensitive=False,
        help="onnx | torchscript (default: from -o's extension).",
    ),
]
HalfOption = Annotated[
    bool,
    typer.Option("--half", help="fp16 weights inside the graph (input and outputs stay fp32)."),
]


@handle_errors
def export(
    ctx: typer.Context,
    model: ModelArgument,
    output: ExportOutputOption,
    weights: WeightsOption = None,
    fmt: ExportFormatOption = None,
    half: HalfOption = False,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output.")] = False,
    quiet: QuietOption = False,
) -> None:
    """Export a model with its weights to ONNX or TorchScript.

    The file takes RGB in [0, 1] (B, 3, H, W; any batch, H and W multiples of 8) and gives
    `depth` (B, 1, H, W) in metres and `gradients` (B, 2, H, W); the weights spec rides
    along as metadata. `dpde predict --weights FILE.onnx` runs it with onnxruntime.

    Examples:

    \b
        dpde export dpde-lite -o dpde-lite.onnx
        dpde export dpde-r50 --weights run/weights/best.pt -o r50.onnx --half
    """
    from dpde_cli.errors import UsageError
    from dpde_cli.export import export_format, export_registered
    from dpde_cli.io import refuse_unwritable, written_in_place

    refuse_unwritable("-o", output)
    fmt = export_format(output, fmt.value if fmt else None)
    if weights and Path(weights).exists() and output.exists() and output.samefile(weights):
        raise UsageError(f"-o {output} is the weights file; give another name")
    if output.exists() and not written_in_place(output) and not overwrite:
        if not global_options(ctx, quiet).quiet:
            err_console.print(
                f"dpde: skipped: {output} exists; --overwrite redoes it",
                markup=False,
                highlight=False,
                soft_wrap=True,
            )
        return
    typer.echo(export_registered(model, output, weights or "default", fmt, half))
