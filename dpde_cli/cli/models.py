"""`dpde models`: the registered models, their weights and sizes."""

from __future__ import annotations

from typing import Annotated

import typer

from dpde_cli.cli.common import emit_json, handle_errors, wide_console
from dpde_cli.outputs import stdout_guard


@handle_errors
def models(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON record per model.")] = False,
    pattern: Annotated[
        str, typer.Argument(help="Glob pattern on the names; a plain word matches a part.")
    ] = "*",
) -> None:
    """List the registered models: weights, input size, parameters (metrics in --json)."""
    from dpde_cli.models_info import find_models

    records = find_models(pattern)
    if as_json:
        for record in records:
            emit_json(record)
        return
    from rich.table import Table

    table = Table(title="dpde models")
    for column in ("model", "params (global + gradient)", "input", "weights", "trained on"):
        table.add_column(column, overflow="fold")
    for r in records:
        params = f"{r['params_global'] / 1e6:.2f} M + {r['params_gradient'] / 1e6:.3f} M"
        weights = r["weights_file"] or "none shipped (use --weights)"
        if r["weights_file"] and not r["weights_present"]:
            weights += " (missing)"
        trained_on = r["training_data"].split(";")[0].split(":")[0]  # in full in --json
        table.add_row(r["name"], params, "x".join(map(str, r["input_size"])), weights, trained_on)
    with stdout_guard():  # a full disk or a closed pipe: one line, not a traceback
        wide_console().print(table)
