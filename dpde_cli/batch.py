"""The batch engine under `predict` and `pointcloud`, for any batch over image files.

A batch is a list of ``Job`` (an input and the outputs planned for it). ``run_batch``
refuses outputs that are inputs, skips inputs whose outputs all exist (a batch run again
does only what is missing), decodes images in background threads, groups them by size,
runs ``infer`` once per group, writes each input's outputs together (``outputs.staged``:
all of them or none), and returns a ``BatchReport`` of what was done, skipped and failed,
each with a one-line reason. Nothing here prints: ``on_outcome`` hears of each input as it
finishes (the CLI prints its line there).

Example:
    >>> jobs = [Job(item, {"depth": output_path(item, None, ".npy")}) for item in items]
    >>> infer = lambda jobs, images: predictor.predict(images)
    >>> report = run_batch(jobs, write, infer=infer, options=BatchOptions())
    >>> [outcome.reason for outcome in report.failed]
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from dpde_cli.errors import DpdeError, OutputError, UsageError

if TYPE_CHECKING:
    import numpy as np

    from dpde_cli.distributed import Share
    from dpde_cli.inputs import InputItem

T = TypeVar("T")

DEFAULT_OUTPUT = Path("outputs")
"""Where a batch writes when no output is given."""
DONE, SKIPPED, FAILED = "done", "skipped", "failed"


@dataclass(frozen=True)
class Job:
    """One input of a batch and what it writes.

    Attributes:
        item: the input file and its output-relative name (``inputs.expand_inputs``).
        targets: output paths by role ("depth", "preview", "cloud"...), the main one first.
        sources: files it reads besides ``item.path`` (a depth map), never to be written.
    """

    item: InputItem
    targets: dict[str, Path]
    sources: tuple[Path, ...] = ()


@dataclass(frozen=True)
class Outcome:
    """What became of one job.

    Attributes:
        job: the job.
        status: DONE, SKIPPED or FAILED.
        record: its JSON record: the writer's when done, else {"input", "skipped" | "error"}.
    """

    job: Job
    status: str
    record: dict[str, Any]

    @property
    def reason(self) -> str | None:
        """One line: why it failed or was skipped; None when done."""
        return self.record.get("error", self.record.get("skipped"))


@dataclass
class BatchReport:
    """Every job's outcome, in the order they finished."""

    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def done(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status == DONE]

    @property
    def skipped(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status == SKIPPED]

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status == FAILED]


Writer = Callable[[Job, dict[str, Path], Any, Any], dict[str, Any]]
"""(job, the paths to write by role, its image or None, its inference result or None) ->
its JSON record. The paths are temporary names of ``job.targets`` (``outputs.staged``);
records name the targets."""


# ------------------------------------------------------------------------------ planning


def single_output(output: Path | None, count: int) -> bool:
    """Whether ``output`` names one output file (it has an extension and is no folder).

    Raises:
        UsageError: a file for more than one input.
    """
    single = output is not None and output.suffix != "" and not output.is_dir()
    if single and count > 1:
        raise UsageError(f"-o {output} is a file but there are {count} inputs; give a directory")
    return single


def output_path(item: InputItem, output: Path | None, suffix: str, single: bool = False) -> Path:
    """The main output of an input: ``output`` itself for a single file, else the input's
    relative name with ``suffix`` under ``output`` (default ``DEFAULT_OUTPUT``)."""
    if single and output is not None:
        return output
    return (output or DEFAULT_OUTPUT) / item.relative.with_suffix(suffix)


def share_of(jobs: Sequence[Job], share: Share) -> list[Job]:
    """A process's share of a batch (``distributed.Share``), ranked by input path, so that
    shares are disjoint whatever order the inputs came in; outputs keep the names the whole
    batch gave them."""
    return share.take(jobs, key=lambda job: str(job.item.path))


def beside(path: Path, tag: str, suffix: str | None = None) -> Path:
    """A file beside an output: ``depth.png`` -> ``depth<tag><suffix>`` (default: its own)."""
    base = path.with_suffix("")
    return base.with_name(base.name + tag + (path.suffix if suffix is None else suffix))


# ------------------------------------------------------------------------------ running


@dataclass(frozen=True)
class BatchOptions:
    """How a batch runs, whatever it makes.

    Attributes:
        overwrite: redo inputs whose outputs exist (else they are skipped).
        batch_size: the most images per ``infer`` call.
        max_pixels: refuse larger images (``io.read_image``; None: PIL's limit).
        inputs: other files the run reads (weights, a camera file), never to be written.
        on_outcome: called with each input's Outcome as it finishes (the CLI prints there).
    """

    overwrite: bool = False
    batch_size: int = 4
    max_pixels: int | None = None
    inputs: tuple[Path, ...] = ()
    on_outcome: Callable[[Outcome], None] | None = None


def run_batch(
    jobs: Sequence[Job],
    write: Writer,
    *,
    infer: Callable[[list[Job], list[np.ndarray]], list[Any]] | None = None,
    decode: bool = True,
    options: BatchOptions = BatchOptions(),
) -> BatchReport:
    """Decode, infer per batch, write per input; the report of every input.

    Before any work, an output that is an input (of any job, or one of
    ``options.inputs``) is refused, and temporary files that a killed run left beside the
    outputs are removed. Inputs whose outputs all exist are skipped unless
    ``options.overwrite``; those with some of them fail (another run's outputs are not
    ours to mix). An input that cannot be read, or fails while being written (``write``
    raises a DpdeError or OSError), fails alone and leaves its outputs as they were.

    Args:
        jobs: the inputs and their planned outputs.
        write: writes one input's outputs; see ``Writer``.
        infer: (the jobs, their same-size (H, W, 3) uint8 images) -> one result each (the
            jobs tell whose photos they are: their cameras, their measurements); None: none.
        decode: False to skip reading the inputs as images (``write`` gets None).
        options: overwrite, batch size, pixel limit, other inputs, ``on_outcome``.

    Raises:
        UsageError: an output is an input.
    """
    from dpde_cli.outputs import remove_stale_temporaries

    check_outputs(jobs, options.inputs)
    remove_stale_temporaries(path for job in jobs for path in job.targets.values())
    report = BatchReport()

    def finish(job: Job, status: str, record: dict[str, Any]) -> None:
        outcome = Outcome(job, status, record)
        report.outcomes.append(outcome)
        if options.on_outcome is not None:
            options.on_outcome(outcome)

    todo = []
    for job in jobs:
        refused = _refusal(job, options.overwrite)
        if refused is None:
            todo.append(job)
        else:
            finish(job, *refused)
    if decode:
        paths = [job.item.path for job in todo]
        batches = batched_images(todo, paths, options.batch_size, options.max_pixels)
    else:
        batches = ([(job, None)] for job in todo)
    for batch in batches:
        good = [(job, image) for job, image in batch if not isinstance(image, DpdeError)]
        for job, image in batch:
            if isinstance(image, DpdeError):
                finish(job, FAILED, {"input": str(job.item.path), "error": str(image)})
        if not good:
            continue
        images = [image for _, image in good]
        todo_now = [job for job, _ in good]
        results = infer(todo_now, images) if infer is not None else [None] * len(images)
        for (job, image), result in zip(good, results, strict=True):
            finish(job, *_write_one(job, write, image, result))
    return report


def check_outputs(jobs: Sequence[Job], inputs: Iterable[Path] = ()) -> None:
    """Refuse a batch in which an output is an input (of any job, or one of ``inputs``),
    by path and by inode (``outputs.refuse_inputs_as_outputs``); ``run_batch`` does it
    first, a caller may do it earlier (before loading a model).

    Raises:
        UsageError: naming the first such output and how many more there are.
    """
    from dpde_cli.outputs import refuse_inputs_as_outputs

    refuse_inputs_as_outputs(
        ((f"the output {path}", path) for job in jobs for path in job.targets.values()),
        [*inputs, *(p for job in jobs for p in (job.item.path, *job.sources))],
    )


def _refusal(job: Job, overwrite: bool) -> tuple[str, dict[str, Any]] | None:
    """SKIPPED when every output exists, FAILED when some do (without ``overwrite``)."""
    from dpde_cli.outputs import written_in_place

    targets = job.targets.values()
    existing = [p for p in targets if p.exists() and not written_in_place(p)]
    if not existing or overwrite:
        return None
    if len(existing) == len(targets):  # done before: a batch run again skips it
        return SKIPPED, {"input": str(job.item.path), "skipped": f"{existing[0]} exists"}
    error = f"{job.item.path}: {existing[0]} exists (use --overwrite)"
    return FAILED, {"input": str(job.item.path), "error": error}


def _write_one(job: Job, write: Writer, image: Any, result: Any) -> tuple[str, dict[str, Any]]:
    """Write one input's outputs together; (status, record)."""
    from dpde_cli.outputs import staged

    try:
        with staged(job.targets) as paths:
            return DONE, write(job, paths, image, result)
    except (DpdeError, OSError) as exc:
        return FAILED, {"input": str(job.item.path), "error": write_error(job, exc)}


def write_error(job: Job, exc: Exception) -> str:
    """One line for an input whose outputs could not be written: the input, where its
    outputs were going, and why (the OS's words where there are some, never a temporary
    name)."""
    from dpde_cli.outputs import file_in_the_way, os_reason

    source = job.item.path
    if isinstance(exc, OutputError):
        return f"{source}: {exc}"
    if isinstance(exc, DpdeError) or not isinstance(exc, OSError):
        return str(exc)
    reason = os_reason(exc)
    names = {exc.filename, exc.filename2}
    target = next((t for t in job.targets.values() if str(t) in names), None)
    if target is not None:
        return f"{source}: cannot write {target} ({reason})"
    where = next(iter(job.targets.values())).parent
    blocker = file_in_the_way(where)
    if blocker is not None:
        reason = f"{blocker} is a file, not a folder"
    return f"{source}: cannot write its output in {where}/ ({reason})"


# ------------------------------------------------------------------------------ decoding


def group_by_size(
    items: Iterable[T], size: Callable[[T], Hashable | None], most: int | None = None
) -> Iterator[list[T]]:
    """Consecutive items of one size, in lists of at most ``most`` (None: no limit).

    ``size(item)`` None (an image that could not be read) joins whichever list is open.
    The one grouping of every batch of images (``batched_images``, ``evaluate``).

    Example:
        >>> list(group_by_size([1, 1, 2, None, 2], lambda n: n, most=2))
        [[1, 1], [2, None], [2]]
    """
    group: list[T] = []
    current: Hashable | None = None
    for item in items:
        key = size(item)
        other = key is not None and current is not None and key != current
        if group and (other or (most is not None and len(group) >= most)):
            yield group
            group, current = [], None
        group.append(item)
        if key is not None:
            current = key
    if group:
        yield group


def prefetch_images(
    paths: Iterable[Path], workers: int = 2, lookahead: int = 8, max_pixels: int | None = None
) -> Iterator[tuple[Path, np.ndarray | DpdeError]]:
    """Decode images in background threads, yielding (path, image or the error) in order."""
    from dpde_cli.io import read_image

    def load(path: Path) -> np.ndarray | DpdeError:
        try:
            return read_image(path, max_pixels=max_pixels)
        except DpdeError as exc:
            return exc

    paths = list(paths)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(load, p) for p in paths[:lookahead]]
        try:
            for index, path in enumerate(paths):
                if index + lookahead < len(paths):
                    futures.append(pool.submit(load, paths[index + lookahead]))
                yield path, futures[index].result()
        finally:  # stopped early (an error, Ctrl-C): decode nothing more
            for future in futures:
                future.cancel()


def batched_images(
    keys: list[T], paths: list[Path], batch_size: int, max_pixels: int | None = None
) -> Iterator[list[tuple[T, np.ndarray | DpdeError]]]:
    """Decode images in the background and group consecutive ones of one size into batches.

    Args:
        keys: one caller's object per path, handed back beside its image.
        paths: the image files.
        batch_size: the most images in a batch.

    Yields:
        Lists of (key, image or the DpdeError that reading it raised); the images of a list
        share one size, so ``Predictor.predict`` takes them together.
    """
    decoded = prefetch_images(paths, lookahead=2 * batch_size, max_pixels=max_pixels)
    pairs = ((key, image) for key, (_path, image) in zip(keys, decoded, strict=True))
    yield from group_by_size(pairs, _image_size, batch_size)


def _image_size(pair: tuple[Any, Any]) -> Hashable | None:
    """The shape of a decoded image; None for a read error (it fits any batch)."""
    image = pair[1]
    return None if isinstance(image, DpdeError) else image.shape
