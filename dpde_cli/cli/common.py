"""Shared CLI pieces: option types, the error wrapper, the stderr console, progress bars."""

from __future__ import annotations

import contextlib
import functools
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console

from dpde_cli.errors import DpdeError, InputError, UsageError

if TYPE_CHECKING:
    import numpy as np

    from dpde_cli.inputs import InputItem

F = TypeVar("F", bound=Callable[..., Any])

err_console = Console(stderr=True, highlight=False)


def wide_console(stderr: bool = False) -> Console:
    """A console for tables: a terminal's own width, else (piped to a file or to grep,
    where rich assumes 80 and a table would cut its numbers and fold its names) at least
    120 columns."""
    console = Console(stderr=stderr)
    if console.is_terminal:
        return console
    return Console(stderr=stderr, width=max(120, console.width))


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
InputSizeOption = Annotated[
    tuple[int, int] | None,
    typer.Option(
        "--input-size",
        metavar="<h w>",
        help="Height and width the network runs at, multiples of 8, for photos of that "
        "aspect ratio; others run at as many pixels in their own aspect ratio (default: "
        "the size the weights were trained at). Another size changes the metric scale: the network "
        "judges distance by apparent size.",
    ),
]
QuietOption = Annotated[
    bool,
    typer.Option("--quiet", "-q", help="No progress bar or notes on stderr (errors still show)."),
]
DEFAULT_OUTPUT = Path("outputs")
"""Where predict and pointcloud write when no -o is given."""

OutputOption = Annotated[
    Path | None,
    typer.Option(
        "--output",
        "-o",
        help=f"Output file (one input) or directory (default: ./{DEFAULT_OUTPUT}/).",
    ),
]
BatchSizeOption = Annotated[
    int, typer.Option("--batch-size", "-b", min=1, help="Images per network pass.")
]
FuseOption = Annotated[
    bool, typer.Option("--fuse/--no-fuse", help="Refine with the IRLS gradient fusion.")
]
OmegaOption = Annotated[float, typer.Option(help="Fusion weight of the gradient term.")]
RecursiveOption = Annotated[bool, typer.Option("--recursive", "-r", help="Descend into folders.")]
OverwriteOption = Annotated[bool, typer.Option(help="Replace existing outputs.")]
BatchJsonOption = Annotated[
    bool, typer.Option("--json", help="One JSON record per input on stdout.")
]
MaxPixelsOption = Annotated[
    int | None, typer.Option(min=1, help="Refuse larger images (default ~89 MP).")
]
PrecisionOption = Annotated[
    str,
    typer.Option("--precision", help="auto | fp32 | fp16 | bf16; half precision only on CUDA."),
]


def global_options(ctx: typer.Context, quiet: bool = False) -> GlobalOptions:
    """The root callback's options (defaults when a command runs on its own), with a
    command's own ``--quiet`` added to the root's."""
    import dataclasses

    root = ctx.find_root()
    opts = root.obj if isinstance(root.obj, GlobalOptions) else GlobalOptions()
    return dataclasses.replace(opts, quiet=opts.quiet or quiet)


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


def report_failures(failures: list[str], total: int) -> None:
    """List failed inputs, one line each, on stderr at the end of a batch (even with
    --quiet: they are errors)."""
    if not failures:
        return
    err_console.print(
        f"dpde: {len(failures)} of {total} input(s) failed:", markup=False, highlight=False
    )
    for message in failures:
        err_console.print(f"  {message}", markup=False, highlight=False, soft_wrap=True)


def build_predictor(
    model: str,
    weights: str | None,
    device: str,
    precision: str,
    omega: float | None,
    input_size: tuple[int, int] | None = None,
):  # -> tuple[Predictor, WeightsSpec]
    """Resolve device and precision, load the model, and wrap it in a Predictor.

    Args:
        model: registered name; weights: checkpoint path or None for the shipped weights;
        device, precision: as the CLI options; omega: fusion weight, or None for no fusion;
        input_size: (H, W) to run the network at instead of the weights' own.
    """
    import dataclasses

    from dpde_cli.device import resolve_device, resolve_precision
    from dpde_cli.predict import Predictor
    from dpde_cli.registry import check_input_size, create_model

    size = check_input_size(input_size) if input_size else None
    torch_device = resolve_device(device)
    dtype = resolve_precision(torch_device, precision)
    net = create_model(model, weights=weights if weights else "default")
    if size is not None:
        net.spec = dataclasses.replace(net.spec, input_size=size)
    fusion = None
    if omega is not None:
        from dpde_cli.fusion import FusionConfig

        fusion = FusionConfig(omega=omega)
    return Predictor(net, torch_device, dtype, fusion), net.spec


def single_output(output: Path | None, count: int) -> bool:
    """Whether -o names one output file (it has an extension and is no directory).

    Raises:
        UsageError: a file for more than one input.
    """
    single = output is not None and output.suffix != "" and not output.is_dir()
    if single and count > 1:
        raise UsageError(f"-o {output} is a file but there are {count} inputs; give a directory")
    return single


def run_batches(
    items: list[InputItem],
    plans: list[dict[str, Path]],
    write: Callable[[InputItem, dict[str, Path], np.ndarray | None, Any], dict[str, Any]],
    *,
    infer: Callable[[list[np.ndarray]], list[Any]] | None,
    label: str,
    quiet: bool,
    as_json: bool,
    overwrite: bool,
    batch_size: int = 1,
    max_pixels: int | None = None,
    decode: bool = True,
) -> None:
    """The loop of a batch command: decode, infer per batch, write per input, report.

    Inputs whose planned outputs all exist are skipped (unless ``overwrite``), so that a
    batch run again does only what is missing, and those with some of them fail; images are
    decoded in the background and grouped by size (``predict.batched_images``), ``infer``
    runs once per batch, ``write`` once per input. Each input prints its output path (or a
    JSON record with ``as_json``) on stdout; skips and failures are listed on stderr at the
    end. An input that fails while being written leaves none of its outputs behind.

    Args:
        items, plans: the inputs and, for each, its output paths by role.
        write: (item, its paths, its image or None, its inference result or None) -> the
            JSON record; an InputError or OSError it raises fails only that input.
        infer: a batch of same-size (H, W, 3) uint8 images -> one result each; None: none.
        decode: False to skip reading the inputs as images (``write`` gets None).

    Raises:
        typer.Exit: code 1 when some input failed (the others are done).
    """
    from dpde_cli.io import written_in_place
    from dpde_cli.predict import batched_images

    failures: list[str] = []
    skipped: list[str] = []
    with make_progress(show_progress(quiet or as_json)) as progress:
        task = progress.add_task(label, total=len(items))

        def finish(path: Path, record: dict[str, Any]) -> None:
            if "error" in record:
                failures.append(record["error"])
            if as_json:
                emit_json(record)
            elif "error" not in record and "skipped" not in record:
                typer.echo(record["output"])
            progress.advance(task)

        def write_one(item: InputItem, targets: dict[str, Path], image, result) -> None:
            try:
                record = write(item, targets, image, result)
            except (DpdeError, OSError) as exc:
                for target in targets.values():  # none of a failed input's outputs stay
                    # (a folder in an output's place made it fail; /dev/null is not ours)
                    if not target.is_dir() and not written_in_place(target):
                        with contextlib.suppress(OSError):  # (or a file in a folder's place)
                            target.unlink(missing_ok=True)
                record = {"input": str(item.path), "error": _write_error(item.path, targets, exc)}
            finish(item.path, record)

        todo = []
        for item, targets in zip(items, plans, strict=True):
            existing = [str(p) for p in targets.values() if p.exists() and not written_in_place(p)]
            if existing and not overwrite and len(existing) == len(targets):
                skipped.append(existing[0])  # done before: a batch run again skips it
                finish(item.path, {"input": str(item.path), "skipped": f"{existing[0]} exists"})
            elif existing and not overwrite:  # some of another run's outputs: not ours to mix
                error = f"{item.path}: {existing[0]} exists (use --overwrite)"
                finish(item.path, {"input": str(item.path), "error": error})
            else:
                todo.append((item, targets))
        if decode:
            batches = batched_images(todo, [it.path for it, _ in todo], batch_size, max_pixels)
        else:
            batches = iter([[(key, None)] for key in todo])
        for batch in batches:
            good = [(key, im) for key, im in batch if not isinstance(im, DpdeError)]
            for (item, _targets), im in batch:
                if isinstance(im, DpdeError):
                    finish(item.path, {"input": str(item.path), "error": str(im)})
            if not good:
                continue
            images = [im for _, im in good]
            results = infer(images) if infer is not None else [None] * len(images)
            for ((item, targets), image), result in zip(good, results, strict=True):
                write_one(item, targets, image, result)
    if skipped and not quiet:
        err_console.print(
            f"dpde: {len(skipped)} of {len(items)} input(s) skipped: their outputs exist "
            f"(first: {skipped[0]}); --overwrite redoes them",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
    report_failures(failures, len(items))
    if failures:
        raise typer.Exit(1)


def _write_error(source: Path, targets: dict[str, Path], exc: Exception) -> str:
    """One line for an input whose outputs could not be written: the input, where its outputs
    were going, and why (the OS's words where there are some, never a temporary name)."""
    from dpde_cli.io import file_in_the_way

    if isinstance(exc, InputError):
        return str(exc)
    reason = getattr(exc, "strerror", None) or str(exc)
    if "requested and" in reason:  # PIL's words for a short write: the disk is full
        reason = f"short write, disk full? ({reason})"
    target = _failed_target(targets, exc)
    if target is not None:
        return f"{source}: cannot write {target} ({reason})"
    where = next(iter(targets.values())).parent
    blocker = file_in_the_way(where)
    if blocker is not None:
        reason = f"{blocker} is a file, not a folder"
    return f"{source}: cannot write its output in {where}/ ({reason})"


def _failed_target(targets: dict[str, Path], exc: Exception) -> Path | None:
    """The output an OSError was about, where it names one (``io.atomic_path`` names the
    output, not its temporary file); None if it names none."""
    names = {getattr(exc, "filename", None), getattr(exc, "filename2", None)}
    return next((target for target in targets.values() if str(target) in names), None)
