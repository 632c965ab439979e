"""Shared CLI pieces: option types, the error wrapper, the stderr console, progress bars."""

from __future__ import annotations

import contextlib
import functools
import json
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console

from dpde_cli.batch import DEFAULT_OUTPUT
from dpde_cli.errors import DpdeError, UsageError
from dpde_cli.sparse import ALIGNMENTS

if TYPE_CHECKING:
    from dpde_cli.batch import BatchReport, Outcome
    from dpde_cli.distributed import InferenceRun

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


def choice_enum(name: str, values: Iterable[str]) -> Any:
    """A str Enum of a closed choice the library spells (a catalogue, a config's choices),
    so that typer offers exactly what the library accepts."""
    return Enum(name, [(value, value) for value in values], type=str)


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
        "the size the weights were trained at; at most 2048x2048 pixels together). Another "
        "size changes the metric scale: the network judges distance by apparent size.",
    ),
]
QuietOption = Annotated[
    bool,
    typer.Option("--quiet", "-q", help="No progress bar or notes on stderr (errors still show)."),
]
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
ShardOption = Annotated[
    str | None,
    typer.Option(
        "--shard",
        metavar="K/N",
        help="Take share K of N (1-based) of the sorted inputs: every Nth from the Kth, for "
        "job arrays (one process per share; a re-run redoes what is missing). Under torchrun "
        "each rank takes its part of it.",
    ),
]

# The camera (``camera.Camera``): pointcloud back-projects with it; predict gives its focal
# length to models whose depth follows the camera.
IntrinsicsOption = Annotated[
    Path | None,
    typer.Option(
        "--intrinsics",
        help="Camera file: JSON {fx, fy, cx, cy[, width, height]} (or K, or Open3D's), "
        "or a 3x3 matrix as text.",
    ),
]
FxOption = Annotated[float | None, typer.Option(help="Focal length x, pixels (full image).")]
FyOption = Annotated[float | None, typer.Option(help="Focal length y, pixels (default fx).")]
CxOption = Annotated[float | None, typer.Option(help="Principal point x, pixels.")]
CyOption = Annotated[float | None, typer.Option(help="Principal point y, pixels.")]
FovOption = Annotated[
    float | None,
    typer.Option(
        help="Horizontal field of view, degrees, for photos without an EXIF focal length."
    ),
]
ExifOption = Annotated[
    bool, typer.Option("--exif/--no-exif", help="Read the focal length from EXIF.")
]
DepthScaleOption = Annotated[
    float, typer.Option(min=1e-9, help="PNG depth units per metre (1000: millimetres).")
]

# Known distances (``sparse.Measurements``), completed through ``completion``.
Align = Enum("Align", {name.replace("-", "_"): name for name in ALIGNMENTS}, type=str)  # type: ignore[misc]
SparseDepthOption = Annotated[
    Path | None,
    typer.Option(
        "--sparse-depth",
        help="Measured depth to make the prediction metric (LiDAR, ToF, stereo points): "
        "png16 in --depth-scale units, or .npy/.pfm/.tiff metres; 0 or NaN = no "
        "measurement; any resolution of the photo's aspect ratio. For several photos a "
        "directory of maps named as the photos (photos/a/b.jpg -> DIR/a/b.png); a photo "
        "without its map fails (reported at the end, the others done).",
    ),
]
AnchorOption = Annotated[
    list[str] | None,
    typer.Option(
        "--anchor",
        metavar="X,Y=METRES",
        help="A known distance at pixel (X, Y) of the full photo (0,0 = top-left pixel's "
        "centre); repeatable; one photo only.",
    ),
]
AlignOption = Annotated[
    Align,
    typer.Option(
        "--align",
        case_sensitive=False,
        help="How the prediction is fitted to the measurements before completion: a "
        "robust scale (one point is enough) or scale and shift.",
    ),
]


def measurements(sparse: Path | None, anchors: list[str] | None, depth_scale: float, align):
    """The ``sparse.Measurements`` of the options."""
    from dpde_cli.sparse import Measurements

    return Measurements(sparse, tuple(anchors or ()), depth_scale, align.value)


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
    """One JSON record on stdout (a result line for shell pipelines), through the one
    error path of writes (``outputs.write_stdout``)."""
    from dpde_cli.outputs import write_stdout

    write_stdout(json.dumps(record) + "\n")


def echo(text: str) -> None:
    """A result line on stdout, whole, through the one error path of writes."""
    from dpde_cli.outputs import write_stdout

    write_stdout(text + "\n")


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
    max_depth: float | None = None,
):  # -> tuple[Predictor, WeightsSpec]
    """The Predictor the options ask for (``predict.create_predictor``), and its WeightsSpec.

    Args:
        model: registered name; weights: checkpoint path or None for the shipped weights;
        device, precision: as the CLI options; omega: fusion weight, or None for no fusion;
        input_size: (H, W) to run the network at instead of the weights' own;
        max_depth: an evaluation protocol's far limit, where it is past the model's.
    """
    from dpde_cli.predict import create_predictor

    fusion = None
    if omega is not None:
        from dpde_cli.fusion import FusionConfig

        fusion = FusionConfig(omega=omega)
    predictor = create_predictor(
        model,
        weights or "default",
        device=device,
        precision=precision,
        fusion=fusion,
        input_size=input_size,
        max_depth=max_depth,
    )
    return predictor, predictor.spec


@contextlib.contextmanager
def batch_printer(
    label: str, total: int, *, quiet: bool, as_json: bool
) -> Iterator[Callable[[Outcome], None]]:
    """The CLI's side of a batch (``batch.run_batch``): a progress bar on stderr, and as
    each input finishes its output path on stdout (its JSON record with ``as_json``,
    skips and failures too). Yields the ``on_outcome`` to give the batch."""
    from dpde_cli.batch import DONE

    with make_progress(show_progress(quiet or as_json)) as progress:
        task = progress.add_task(label, total=total)

        def on_outcome(outcome: Outcome) -> None:
            if as_json:
                emit_json(outcome.record)
            elif outcome.status == DONE:
                echo(outcome.record["output"])
            progress.advance(task)

        yield on_outcome


def warn_default_camera(
    printer: Callable[[Outcome], None], more: bool, consequence: str
) -> Callable[[Outcome], None]:
    """``printer``, after a warning on stderr before the first photo whose intrinsics are
    a guess (once per batch: the others are not named)."""
    warned: list[Outcome] = []

    def on_outcome(outcome: Outcome) -> None:
        source = outcome.record.get("intrinsics_source", "")
        if source.startswith("default") and not warned:
            warned.append(outcome)
            _warn_default(outcome.job.item.path, outcome.record["intrinsics"], more, consequence)
        printer(outcome)

    return on_outcome


def _warn_default(path: Path, values: dict[str, Any], more: bool, consequence: str) -> None:
    """Say on stderr that the intrinsics are a guess."""
    from dpde_cli.geometry import Intrinsics

    camera = Intrinsics(**values)
    hfov = camera.fov_degrees()[0]
    err_console.print(
        f"dpde: warning: {path}: no camera intrinsics (no --fx/--intrinsics, no EXIF focal "
        f"length in 35 mm terms or with the sensor's resolution, no --fov); assuming the "
        f"NYUv2 Kinect camera scaled to the image (fx "
        f"{camera.fx:.1f} px at {camera.width}x{camera.height}, {hfov:.0f} degrees across): "
        f"{consequence}" + (" (other inputs without intrinsics are not named)" if more else ""),
        markup=False,
        highlight=False,
        soft_wrap=True,
    )


def report_batch(report: BatchReport, quiet: bool, run: InferenceRun | None = None) -> None:
    """At the end of a batch: the skips (unless quiet) and the failures on stderr; under
    torchrun those of every rank, printed by rank 0.

    Raises:
        typer.Exit: code 1 when some input failed (the others are done), on every rank.
    """
    first = [str(next(iter(o.job.targets.values()))) for o in report.skipped[:1]]
    summary = (len(report.outcomes), len(report.skipped), first, [o.reason for o in report.failed])
    parts = run.gather(summary) if run is not None else [summary]
    total, skipped = sum(part[0] for part in parts), sum(part[1] for part in parts)
    first = [path for part in parts for path in part[2]]
    failed = [reason for part in parts for reason in part[3]]
    main = run is None or run.is_main
    if skipped and main and not quiet:
        err_console.print(
            f"dpde: {skipped} of {total} input(s) skipped: their outputs exist "
            f"(first: {first[0]}); --overwrite redoes them",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
    if main:
        report_failures(failed, total)
    if failed:
        raise typer.Exit(1)
