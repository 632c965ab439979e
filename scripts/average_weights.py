"""Average weight files of one model into one (a model soup; WiSE-FT for two files).

    .venv/bin/python scripts/average_weights.py A.pt B.pt -o runs/soup/ [--half]

Writes <model>-<sha256[:8]>.pt into the folder and prints its path; the result loads with
`--weights` or `--init-weights` like any exported weights file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dpde_cli.cli.common import handle_errors


@handle_errors
def main(
    files: Annotated[list[Path], typer.Argument(help="Two or more weights files.")],
    out: Annotated[Path, typer.Option("-o", "--out", help="Folder to write into.")],
    model: Annotated[
        str | None,
        typer.Option("-m", "--model", help="Model name (default: the one the files record)."),
    ] = None,
    half: Annotated[bool, typer.Option(help="Store float16.")] = False,
) -> None:
    """Average the floating-point tensors of the files uniformly."""
    from dpde_cli.training.weights import average_weights

    path, digest = average_weights(files, out, model, half=half)
    typer.echo(f"{path}\tsha256:{digest}")


if __name__ == "__main__":
    typer.run(main)
