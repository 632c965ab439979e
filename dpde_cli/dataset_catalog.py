"""The dataset catalogue: each dataset dpde reads, described once by a frozen ``DatasetSpec``.

Everything that depends on which datasets exist comes from here: ``dpde_cli.data.build_dataset``
(builder, splits, options), the split ``dpde eval`` scores and the protocol it scores with
(``dpde_cli.metrics.default_protocol``), the split and input size ``dpde train`` uses, and
the ``--dataset`` choices of both commands. This module imports no torch, so `dpde --help`
can list the choices without it.

Adding a dataset is one ``register_dataset(DatasetSpec(...))`` entry at the end of this
module plus its module under ``dpde_cli/data/``, whose builder (a class or function called
as ``builder(data_dir, split, **options)``) yields the sample dicts of ``dpde_cli.data``;
nothing else is edited.

Example:
    >>> from dpde_cli.dataset_catalog import dataset_spec, list_datasets
    >>> list_datasets()
    ['folder', 'make3d', 'middlebury', 'nyuv2', 'synthetic']
    >>> dataset_spec("make3d").protocol["max_depth"]
    70.0
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from dpde_cli.errors import UsageError


@dataclass(frozen=True)
class DatasetSpec:
    """What dpde knows of one dataset.

    Attributes:
        name: the name ``--dataset`` takes.
        builder: "module:attr" of ``builder(data_dir, split, **options) -> Dataset``
            (imported only when a dataset is built, so the catalogue stays torch-free).
        description: one line on what it is.
        splits: the splits it has.
        eval_split: the split ``dpde eval`` scores unless told otherwise.
        train_split: the split ``dpde train`` trains on; None: evaluation only.
        protocol: the ``dpde_cli.metrics.EvalProtocol`` fields of its default protocol
            (those not given keep EvalProtocol's defaults).
        options: the builder's keyword options, name -> one line on what each does.
        input_size: (H, W) training input size where the model's own would distort its
            images; None: the model's.
        needs_data_dir: whether it is read from a folder (synthetic scenes are rendered).
    """

    name: str
    builder: str
    description: str
    splits: tuple[str, ...]
    eval_split: str
    train_split: str | None
    protocol: Mapping[str, Any]
    options: Mapping[str, str]
    input_size: tuple[int, int] | None = None
    needs_data_dir: bool = True

    def __post_init__(self) -> None:
        module, _, attr = self.builder.partition(":")
        if not module or not attr:
            raise ValueError(f"dataset {self.name}: builder must be 'module:attr'")
        for split in (self.eval_split, self.train_split):
            if split is not None and split not in self.splits:
                raise ValueError(f"dataset {self.name}: split {split!r} not in {self.splits}")
        object.__setattr__(self, "protocol", MappingProxyType(dict(self.protocol)))
        object.__setattr__(self, "options", MappingProxyType(dict(self.options)))

    def load_builder(self) -> Callable[..., Any]:
        """The builder itself (imports its module, and with it torch)."""
        module, _, attr = self.builder.partition(":")
        return getattr(importlib.import_module(module), attr)


_CATALOG: dict[str, DatasetSpec] = {}


def register_dataset(spec: DatasetSpec) -> DatasetSpec:
    """Add a dataset to the catalogue; returns the spec.

    Raises:
        ValueError: the name is taken.
    """
    if spec.name in _CATALOG:
        raise ValueError(f"dataset {spec.name!r} is already registered")
    _CATALOG[spec.name] = spec
    return spec


def list_datasets(trainable: bool = False) -> list[str]:
    """The registered dataset names, sorted; with ``trainable``, those with a train split."""
    return sorted(n for n, s in _CATALOG.items() if not trainable or s.train_split is not None)


def dataset_spec(name: str) -> DatasetSpec:
    """The spec of ``name``; a UsageError lists the known names."""
    try:
        return _CATALOG[name]
    except KeyError:
        raise UsageError(f"unknown dataset {name!r}; known: {', '.join(list_datasets())}") from None


def training_split(name: str) -> str:
    """The split a dataset trains on; a UsageError for one that is for evaluation only."""
    split = dataset_spec(name).train_split
    if split is None:
        trainable = ", ".join(list_datasets(trainable=True))
        raise UsageError(f"dataset {name} is for evaluation only; train on one of {trainable}")
    return split


# ------------------------------------------------------------------------------ the datasets

register_dataset(
    DatasetSpec(
        name="nyuv2",
        builder="dpde_cli.data.nyuv2:NYUv2",
        description="NYU Depth v2 labelled set (Kinect, indoor), official 795/654 split",
        splits=("train", "test", "all"),
        eval_split="test",
        train_split="train",
        # The common NYUv2 protocol (Eigen crop, 1e-3 < gt < 10 m, per-image mean).
        protocol={"crop": "eigen", "min_depth": 1e-3, "max_depth": 10.0},
        options={
            "gt": "ground truth of the .mat: filled (depths, the default) or raw (rawDepths)",
            "size": "(H, W) to resize images and depth to",
            "splits_file": "splits.mat, if not beside the .mat",
            "list_file": "the list file of the extracted layout (default: the split's)",
        },
    )
)
register_dataset(
    DatasetSpec(
        name="make3d",
        builder="dpde_cli.data.make3d:Make3D",
        description="Make3D Train400 / Test134 (outdoor, laser depth to 80 m)",
        splits=("train", "test"),
        eval_split="test",
        train_split="train",
        # Make3D C1 error: only ground truth below 70 m counts (Liu et al., Laina et al.).
        protocol={"crop": "none", "min_depth": 1e-3, "max_depth": 70.0},
        options={
            "size": "(H, W) to resize to (default the paper's 460 x 345; None: 2272 x 1704)",
            "depth_resolution": "image (depth resized to the image) or native (55 x 305)",
            "allow_truncated": "decode truncated JPEGs as far as they go",
        },
        # The paper's portrait 460 x 345, rounded to multiples of 32.
        input_size=(448, 352),
    )
)
register_dataset(
    DatasetSpec(
        name="middlebury",
        builder="dpde_cli.data.middlebury:Middlebury",
        description="Middlebury stereo colour + disparity (relative depth unless calibrated)",
        splits=("test", "all"),
        eval_split="test",
        train_split=None,
        # Middlebury depth is 1 / (disparity + dmin): relative, so the scale is fitted.
        protocol={"crop": "none", "min_depth": 0.0, "max_depth": math.inf, "alignment": "median"},
        options={"size": "(H, W) to resize to (default the paper's)"},
    )
)
register_dataset(
    DatasetSpec(
        name="folder",
        builder="dpde_cli.data.folder:FolderDataset",
        description="A folder of RGB-D frames: DIR/rgb/*.png|jpg + DIR/depth/*.png (16-bit)",
        splits=("all",),
        eval_split="all",
        train_split="all",
        # Indoor RGB-D folders (mm PNGs); KITTI-like data should override max_depth (80 m).
        protocol={"crop": "none", "min_depth": 1e-3, "max_depth": 10.0},
        options={
            "depth_scale": "depth PNG units per metre (default 1000: millimetres)",
            "size": "(H, W) to resize to",
            "intrinsics": "fx, fy, cx, cy of every frame, overriding DIR/intrinsics.json",
        },
    )
)
register_dataset(
    DatasetSpec(
        name="synthetic",
        builder="dpde_cli.data:synthetic_scenes",
        description="Procedural indoor scenes rendered on the fly (no files)",
        splits=("train", "test"),
        eval_split="test",
        train_split="train",
        protocol={"crop": "none", "min_depth": 1e-3, "max_depth": 10.0},
        options={
            "length": "number of scenes",
            "config": "a dpde_cli.data.synthetic.SceneConfig (any of its fields is an option too)",
            "seed": "first scene seed (default: the split's)",
        },
        needs_data_dir=False,
    )
)
