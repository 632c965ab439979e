"""The root `dpde` command: global options and the subcommands."""

from __future__ import annotations

from typing import Annotated

import typer

from dpde_cli import __version__
from dpde_cli.cli import eval as eval_cmd
from dpde_cli.cli import export as export_cmd
from dpde_cli.cli import fuse as fuse_cmd
from dpde_cli.cli import models as models_cmd
from dpde_cli.cli import pointcloud as pointcloud_cmd
from dpde_cli.cli import predict as predict_cmd
from dpde_cli.cli import train as train_cmd
from dpde_cli.cli.common import GlobalOptions

app = typer.Typer(
    name="dpde",
    help="Detail-preserving monocular depth estimation: photo in, metric depth out.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"dpde {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    device: Annotated[
        str, typer.Option("--device", "-d", help="auto | cpu | cuda | cuda:N | mps.")
    ] = "auto",
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="More detail on stderr.")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress or notes.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show version.")
    ] = False,
) -> None:
    """dpde: detail-preserving depth estimation (DPDE) from the command line."""
    ctx.obj = GlobalOptions(device=device, verbose=verbose, quiet=quiet)


app.command("predict", no_args_is_help=True)(predict_cmd.predict)
app.command("models")(models_cmd.models)
app.command("train", no_args_is_help=True)(train_cmd.train)
app.command("pointcloud", no_args_is_help=True)(pointcloud_cmd.pointcloud)
app.command("eval", no_args_is_help=True)(eval_cmd.eval_command)
app.command("fuse", no_args_is_help=True)(fuse_cmd.fuse)
app.command("export", no_args_is_help=True)(export_cmd.export)


def main() -> None:
    """Console-script entry point."""
    app()
