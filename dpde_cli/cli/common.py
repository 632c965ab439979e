"""Shared CLI pieces: option types, the error wrapper, the stderr console, progress bars."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console

from dpde_cli.errors import DpdeError, UsageError

F = TypeVar("F", bound=Callable[..., Any])

err_console = Console(stderr=True, highlight=False)


@dataclass
class GlobalOptions:
    """Options of the root command, shared by every subcommand."""

    device: str = "auto"
    verbose: bool = False
    quiet: bool = False


def _complete_model(incomplete: str) -> list[str]:
    from dpde_cli.registry import list_models

    return [name for name in list_models() if name.startswith(incomplete)]


ModelOption = Annotated[
    str,
    typer.Option(
        "--model",
        "-m",
        help="Registered model (see `dpde models`).",
        autocompletion=_complete_model,
    ),
]
WeightsOption = Annotated[
    str | None,
    typer.Option("--weights", "-w", help="Checkpoint to load instead of the shipped weights."),
]
DeviceOption = Annotated[
    str | None,
    typer.Option(
        "--device",
        "-d",
        help="auto | cpu | cuda | cuda:N | mps (default: the "
        "root option, else auto). An absent device is an error, never a fallback.",
    ),
]
PrecisionOption = Annotated[
    str,
    typer.Option("--precision", help="auto | fp32 | fp16 | bf16; half precision only on CUDA."),
]


def global_options(ctx: typer.Context) -> GlobalOptions:
    """The root callback's options (defaults when a command runs on its own)."""
    root = ctx.find_root()
    return root.obj if isinstance(root.obj, GlobalOptions) else GlobalOptions()


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print ``dpde: error: message`` on stderr and return the Exit to raise."""
    err_console.print(f"dpde: error: {message}", markup=False, highlight=False, soft_wrap=True)
    return typer.Exit(code)


def handle_errors(function: F) -> F:
    """Turn expected failures into one line on stderr and an exit code (2 usage, 1 other)."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except UsageError as exc:
            raise fail(str(exc), 2) from None
        except DpdeError as exc:
            raise fail(str(exc), 1) from None
        except KeyboardInterrupt:
            raise fail("interrupted", 130) from None

    return wrapper  # type: ignore[return-value]


def emit_json(record: dict[str, Any]) -> None:
    """One JSON record on stdout (a result line for shell pipelines)."""
    sys.stdout.write(json.dumps(record) + "\n")
    sys.stdout.flush()


def show_progress(quiet: bool) -> bool:
    """Progress bars only when stderr is a terminal and --quiet is off."""
    return not quiet and sys.stderr.isatty()


def make_progress(enabled: bool):
    """A rich progress bar on stderr, or a disabled one."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err_console,
        disable=not enabled,
        transient=False,
    )


def report_failures(failures: list[tuple[str, str]], total: int, quiet: bool) -> None:
    """List failed inputs on stderr at the end of a batch."""
    if not failures:
        return
    err_console.print(
        f"dpde: {len(failures)} of {total} input(s) failed:", markup=False, highlight=False
    )
    for _name, message in failures:
        err_console.print(f"  {message}", markup=False, highlight=False, soft_wrap=True)


def build_predictor(
    model: str, weights: str | None, device: str, precision: str, omega: float | None
):  # -> tuple[Predictor, WeightsSpec]
    """Resolve device and precision, load the model, and wrap it in a Predictor.

    Args:
        model: registered name; weights: checkpoint path or None for the shipped weights;
        device, precision: as the CLI options; omega: fusion weight, or None for no fusion.
    """
    from dpde_cli.device import resolve_device, resolve_precision
    from dpde_cli.predict import Predictor
    from dpde_cli.registry import create_model

    torch_device = resolve_device(device)
    dtype = resolve_precision(torch_device, precision)
    net = create_model(model, weights=weights if weights else "default")
    fusion = None
    if omega is not None:
        from dpde_cli.fusion import FusionConfig

        fusion = FusionConfig(omega=omega)
    return Predictor(net, torch_device, dtype, fusion), net.spec
