"""Datasets: one module per dataset, all yielding the same sample dict.

Sample keys: ``image`` (3, H, W) float32 in [0, 1], ``depth`` (1, H, W) float32 metres
(0 = invalid), ``valid`` (1, H, W) bool, ``intrinsics`` (4,) float32 [fx, fy, cx, cy] for
that image size, ``name`` str. See ``dpde_cli.data._common``.

The CLI builds datasets by name:

    >>> from dpde_cli.data import build_dataset
    >>> ds = build_dataset("nyuv2", "~/data/nyu", split="test")
"""

from __future__ import annotations

import dataclasses
import importlib.util
import inspect
from collections.abc import Callable
from pathlib import Path

from torch.utils.data import Dataset

from dpde_cli.errors import DpdeError, UsageError


def _nyuv2(data_dir: str | Path, split: str = "test", **options: object) -> Dataset:
    """NYU Depth v2 labelled set, official split (see dpde_cli.data.nyuv2.NYUv2)."""
    from dpde_cli.data.nyuv2 import NYUv2

    return NYUv2(data_dir, split, **options)


def _make3d(data_dir: str | Path, split: str = "test", **options: object) -> Dataset:
    """Make3D Test134 / Train400 (see dpde_cli.data.make3d.Make3D)."""
    from dpde_cli.data.make3d import Make3D

    return Make3D(data_dir, split, **options)


def _middlebury(data_dir: str | Path, split: str = "test", **options: object) -> Dataset:
    """Middlebury colour + disparity (see dpde_cli.data.middlebury.Middlebury)."""
    from dpde_cli.data.middlebury import Middlebury

    return Middlebury(data_dir, split, **options)


def _folder(data_dir: str | Path, split: str = "all", **options: object) -> Dataset:
    """DIR/rgb + DIR/depth folder (see dpde_cli.data.folder.FolderDataset)."""
    from dpde_cli.data.folder import FolderDataset

    return FolderDataset(data_dir, split, **options)


def _synthetic(
    data_dir: str | Path | None = None,
    split: str = "test",
    length: int = 100,
    config: object = None,
    seed: int = 0,
    **scene: object,
) -> Dataset:
    """Procedural synthetic scenes (dpde_cli.data.synthetic.SyntheticScenes); no files.

    ``data_dir`` and ``split`` are ignored; ``length``, ``config`` and ``seed`` are passed on;
    any other option overrides that field of the SceneConfig (``close_view_prob=0.5``).
    """
    try:
        from dpde_cli.data.synthetic import SceneConfig, SyntheticScenes
    except ImportError as exc:
        raise DpdeError(f"synthetic scenes are not available in this build ({exc})") from None
    if scene:
        config = dataclasses.replace(config or SceneConfig(), **scene)
    return SyntheticScenes(length, config, seed=seed)


_BUILDERS: dict[str, Callable[..., Dataset]] = {
    "nyuv2": _nyuv2,
    "make3d": _make3d,
    "middlebury": _middlebury,
    "folder": _folder,
    "synthetic": _synthetic,
}
DATASETS = _BUILDERS
"""Dataset name -> builder(data_dir, split, **options)."""

_TARGETS = {
    "nyuv2": ("dpde_cli.data.nyuv2", "NYUv2"),
    "make3d": ("dpde_cli.data.make3d", "Make3D"),
    "middlebury": ("dpde_cli.data.middlebury", "Middlebury"),
    "folder": ("dpde_cli.data.folder", "FolderDataset"),
}


def list_datasets() -> list[str]:
    """The dataset names build_dataset accepts, sorted."""
    return sorted(DATASETS)


def _check_options(name: str, options: dict[str, object]) -> None:
    """Raise UsageError for an option the dataset's constructor does not take."""
    if name in _TARGETS:
        module, attr = _TARGETS[name]
        target = getattr(importlib.import_module(module), attr)
    else:
        target = DATASETS[name]
    params = list(inspect.signature(target).parameters.values())[2:]  # after root, split
    accepted = {p.name for p in params if p.kind is not inspect.Parameter.VAR_KEYWORD}
    if name == "synthetic" and importlib.util.find_spec("dpde_cli.data.synthetic"):
        from dpde_cli.data.synthetic import SceneConfig

        accepted |= {f.name for f in dataclasses.fields(SceneConfig)}  # scene overrides
    unknown = sorted(set(options) - accepted)
    if unknown:
        raise UsageError(
            f"dataset {name} has no option(s) {', '.join(unknown)}; options: "
            f"{', '.join(sorted(accepted)) or 'none'}"
        )


def build_dataset(
    name: str, data_dir: str | Path | None, split: str = "test", **options: object
) -> Dataset:
    """Build a dataset by name.

    Args:
        name: one of ``list_datasets()``: nyuv2, make3d, middlebury, folder, synthetic.
        data_dir: the dataset's root folder (ignored by synthetic).
        split: "test", "train", ... as the dataset allows ("all" for folder).
        **options: dataset-specific options (e.g. ``gt="raw"`` for nyuv2, ``size=(H, W)``,
            ``depth_scale=256`` for folder).

    Returns:
        A torch Dataset yielding sample dicts.

    Raises:
        UsageError: unknown name or option, or no data_dir where one is needed.
        InputError: missing or malformed files.
    """
    if name not in DATASETS:
        raise UsageError(f"unknown dataset {name!r}; known: {', '.join(list_datasets())}")
    if name != "synthetic" and data_dir is None:
        raise UsageError(f"dataset {name} needs a data folder")
    _check_options(name, options)
    return DATASETS[name](data_dir, split, **options)


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


def build_datasets(
    name: str, data_dirs: list[str | Path | None], split: str, options: dict[str, object]
) -> Dataset:
    """One dataset, or several folders of one kind as a single set.

    With more than one folder, each sample's name becomes ``<folder name>/<name>``.
    """
    if len(data_dirs) == 1:
        return build_dataset(name, data_dirs[0], split, **options)
    from torch.utils.data import ConcatDataset

    parts = [
        _Prefixed(build_dataset(name, d, split, **options), Path(str(d)).name) for d in data_dirs
    ]
    return ConcatDataset(parts)
