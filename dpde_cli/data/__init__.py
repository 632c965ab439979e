"""Datasets: one module per dataset, all yielding the same sample dict.

Sample keys: ``image`` (3, H, W) float32 in [0, 1], ``depth`` (1, H, W) float32 metres
(0 = invalid), ``valid`` (1, H, W) bool, ``intrinsics`` (4,) float32 [fx, fy, cx, cy] for
that image size, ``name`` str. See ``dpde_cli.data._common``.

The CLI builds datasets by name, from the catalogue (``dpde_cli.dataset_catalog``, which
says how to add one):

    >>> from dpde_cli.data import build_dataset
    >>> ds = build_dataset("nyuv2", "~/data/nyu", split="test")
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import inspect
import os
import signal
from collections.abc import Iterator
from pathlib import Path

from torch.utils.data import ConcatDataset, Dataset

from dpde_cli.dataset_catalog import dataset_spec
from dpde_cli.dataset_catalog import list_datasets as list_datasets  # re-exported
from dpde_cli.errors import DpdeError, UsageError

SYNTHETIC_SEEDS = {"train": 0, "test": 1_000_000}
"""First scene seed of each synthetic split: ``dpde train`` renders seeds 0, 1, ... and
``dpde eval`` scores seeds from 1,000,000 on, scenes no training run of fewer than a million
scenes has seen (the shipped dpde-lite weights saw seeds in 100000-177999, as their
model card lists)."""
SYNTHETIC_TEST_LENGTH = 100
"""Scenes in the synthetic test split."""


def synthetic_scenes(
    data_dir: str | Path | None = None,
    split: str = "test",
    length: int = SYNTHETIC_TEST_LENGTH,
    config: object = None,
    seed: int | None = None,
    **scene: object,
) -> Dataset:
    """Procedural synthetic scenes (dpde_cli.data.synthetic.SyntheticScenes); no files.

    The split picks the seed range (``SYNTHETIC_SEEDS``: "test" never overlaps what
    ``dpde train`` renders) unless ``seed`` is given; ``length`` and ``config`` are passed
    on; any other option overrides that field of the SceneConfig (``close_view_prob=0.5``).
    """
    from dpde_cli.data._common import check_split

    if data_dir is not None:
        raise UsageError("synthetic scenes are rendered, not read from a folder: drop --data-dir")
    check_split(split, dataset_spec("synthetic").splits, "synthetic")
    try:
        from dpde_cli.data.synthetic import SceneConfig, SyntheticScenes
    except ImportError as exc:
        raise DpdeError(f"synthetic scenes are not available in this build ({exc})") from None
    if scene:
        config = dataclasses.replace(config or SceneConfig(), **scene)
    first = SYNTHETIC_SEEDS[split] if seed is None else seed
    scenes = SyntheticScenes(length, config, seed=first)
    scenes.ground_truth = f"rendered depth of synthetic scenes {first}-{first + length - 1}"
    return scenes


def _check_options(name: str, options: dict[str, object]) -> None:
    """Raise UsageError for an option the dataset does not take (its catalogue entry lists
    them), or a value of another type than the option's default in its builder (a string
    for a number, say)."""
    spec = dataset_spec(name)
    target = spec.load_builder()
    params = list(inspect.signature(target).parameters.values())[2:]  # after root, split
    defaults = {p.name: p.default for p in params if p.name in spec.options}
    if name == "synthetic" and importlib.util.find_spec("dpde_cli.data.synthetic"):
        from dpde_cli.data.synthetic import SceneConfig

        defaults |= {f.name: f.default for f in dataclasses.fields(SceneConfig)}  # overrides
    unknown = sorted(set(options) - set(defaults))
    if unknown:
        raise UsageError(
            f"dataset {name} has no option(s) {', '.join(unknown)}; options: "
            f"{', '.join(sorted(defaults)) or 'none'}"
        )
    for key, value in options.items():
        expected, got = _kind_of(defaults[key]), _kind_of(value)
        if expected and got != expected and (expected, got) != ("a number", "an integer"):
            raise UsageError(f"dataset {name} option {key} takes {expected}, got {value!r}")


def _kind_of(value: object) -> str | None:
    """What an option value is, in words, for the types options have (None: any)."""
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (tuple, list)):
        return "a list"
    return None


def build_dataset(
    name: str, data_dir: str | Path | None, split: str | None = None, **options: object
) -> Dataset:
    """Build a dataset by name.

    Args:
        name: one of ``list_datasets()`` (the catalogue, ``dpde_cli.dataset_catalog``).
        data_dir: the dataset's root folder (None for synthetic, which refuses one).
        split: "test", "train", ... as the dataset allows ("all", the only one, for
            folder); None: the dataset's ``eval_split``.
        **options: dataset-specific options (e.g. ``gt="raw"`` for nyuv2, ``size=(H, W)``,
            ``depth_scale=256`` for folder).

    Returns:
        A torch Dataset yielding sample dicts.

    Raises:
        UsageError: unknown name or option, or no data_dir where one is needed.
        InputError: missing or malformed files.
    """
    spec = dataset_spec(name)
    if spec.needs_data_dir and data_dir is None:
        raise UsageError(f"dataset {name} needs a data folder (--data-dir)")
    _check_options(name, options)
    return spec.load_builder()(data_dir, split or spec.eval_split, **options)


class _Prefixed(Dataset):
    """A dataset whose sample names carry a prefix (to keep names unique across folders)."""

    def __init__(self, dataset: Dataset, prefix: str) -> None:
        self.dataset = dataset
        self.prefix = prefix

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict:
        sample = dict(self.dataset[index])
        sample["name"] = f"{self.prefix}/{sample['name']}"
        return sample


def folder_prefixes(data_dirs: list[str | Path]) -> list[str]:
    """The shortest path tails that tell the folders apart: x/data and y/data, not data twice.

    Paths are compared resolved, so one folder typed two ways is caught.

    Raises:
        UsageError: a folder given twice.

    Example:
        >>> folder_prefixes(["x/data", "y/data", "z/other"])
        ['x/data', 'y/data', 'z/other']
    """
    resolved = [Path(d).expanduser().resolve() for d in data_dirs]
    first: dict[Path, str | Path] = {}
    for given, path in zip(data_dirs, resolved, strict=True):
        if path in first:
            raise UsageError(f"{given} is the folder {first[path]} again; give each folder once")
        first[path] = given
    tails = [path.relative_to(path.anchor).parts for path in resolved]
    for count in range(1, max(len(t) for t in tails) + 1):
        prefixes = ["/".join(t[-count:]) or "root" for t in tails]
        if len(set(prefixes)) == len(prefixes):
            return prefixes
    return ["/".join(t) or "root" for t in tails]  # unreachable: resolved paths differ


def build_datasets(
    name: str, data_dirs: list[str | Path | None], split: str | None, options: dict[str, object]
) -> Dataset:
    """One dataset, or several folders of one kind as a single set.

    With more than one folder, each sample's name becomes ``<prefix>/<name>``, the prefix
    being the folder's shortest distinguishing path tail (``folder_prefixes``), so names
    stay unique and predictions saved under them do not overwrite each other.
    """
    if len(data_dirs) == 1:
        return build_dataset(name, data_dirs[0], split, **options)
    if any(d is None for d in data_dirs):
        raise UsageError(f"dataset {name} needs a data folder (--data-dir)")
    prefixes = folder_prefixes([d for d in data_dirs if d is not None])
    parts = [
        _Prefixed(build_dataset(name, d, split, **options), prefix)
        for d, prefix in zip(data_dirs, prefixes, strict=True)
    ]
    return ConcatDataset(parts)


def dataset_parts(dataset: Dataset) -> list[Dataset]:
    """The datasets a ``build_datasets`` result is made of (itself, or one per folder)."""
    if not isinstance(dataset, ConcatDataset):
        return [dataset]
    return [p.dataset if isinstance(p, _Prefixed) else p for p in dataset.datasets]


def ground_truth(dataset: Dataset) -> str | None:
    """What a dataset's ground truth is, where the dataset says (its ``ground_truth``
    attribute, e.g. NYUv2's filled or raw depth), so a report can state it."""
    notes = [getattr(part, "ground_truth", None) for part in dataset_parts(dataset)]
    return "; ".join(dict.fromkeys(n for n in notes if n)) or None


def metric_depth(dataset: Dataset) -> bool:
    """Whether every part's ground truth is in metres (Middlebury without a focal length
    and baseline is relative depth: its ``metric_depth`` attribute is False)."""
    return all(getattr(part, "metric_depth", True) for part in dataset_parts(dataset))


# --------------------------------------------------------------------------- loaders


class DataError(DpdeError):
    """A dataset error raised in a DataLoader worker, re-raised in the main process.

    DataLoader re-creates a worker's exception from its text (traceback included), or
    raises a RuntimeError with that traceback when it cannot (InputError takes two
    arguments); this one takes the text and keeps the one-line message only.
    """

    def __init__(self, message: str) -> None:
        marker = f"{type(self).__name__}: "
        if "Original Traceback" in message and marker in message:
            message = message.rsplit(marker, 1)[1].strip()
        super().__init__(message)


def load_sample(dataset: Dataset, index: int) -> dict:
    """``dataset[index]``, with a DpdeError raised as a DataError so that it crosses a
    DataLoader worker as one line (the message is kept)."""
    try:
        return dataset[index]
    except DpdeError as exc:
        raise DataError(str(exc)) from None


FAILED = "failed"
"""The key of the stand-in ``SkipBad`` returns for a sample it could not read."""


class SkipBad(Dataset):
    """A dataset whose unreadable samples come out as ``{FAILED: one-line message}``, so a
    DataLoader (any number of workers) goes on past them and the caller can report them."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict:
        try:
            return self.dataset[index]
        except DpdeError as exc:
            return {FAILED: str(exc)}


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def default_workers() -> int:
    """DataLoader workers unless told otherwise: min(4, usable CPUs), so that a small
    machine is not oversubscribed (torch warns above its CPU count)."""
    return min(4, usable_cpus())


def worker_init(worker_id: int) -> None:
    """Start of a DataLoader worker: leave Ctrl-C to the main process, which stops the
    workers (a worker killed by the terminal's SIGINT makes torch bury the interrupt under
    "DataLoader worker exited unexpectedly").
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _interrupted(exc: BaseException) -> bool:
    """Whether an exception was raised while a KeyboardInterrupt was being handled."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, KeyboardInterrupt):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


@contextlib.contextmanager
def loader_interrupts() -> Iterator[None]:
    """Keep Ctrl-C a KeyboardInterrupt while DataLoader workers run.

    When a worker dies of the SIGINT sent to the whole process group anyway (before
    ``worker_init`` ran), torch raises "DataLoader worker (pid N) exited unexpectedly"
    while the main process handles its KeyboardInterrupt; that error is turned back into
    the interrupt it hides.
    """
    try:
        yield
    except RuntimeError as exc:
        if _interrupted(exc):
            raise KeyboardInterrupt from None
        raise
