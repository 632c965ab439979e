"""Training on several sources at once: real captures and rendered scenes, each weighted.

A *mix* is a list of ``Source``: a dataset (a folder of RGB-D frames, synthetic scenes,
NYUv2, ...) with a sampling weight. Every epoch draws ``epoch_size`` samples: a source is
picked with probability proportional to its weight, then one of its frames uniformly. So a
source's share of the training does not depend on how many frames it has (500 consecutive
frames of one kitchen weigh no more than 15 Middlebury scenes at the same weight), and each
source keeps its own camera (its intrinsics), its own valid-depth mask and, where given, its
own photometric augmentation ("strong" for rendered scenes, "standard" for photos).

A mix comes from ``--data-dir DIR:WEIGHT`` (folders of the run's ``--dataset``) or from a
JSON file (``read_mix``):

    {"sources": [
        {"dataset": "folder", "data_dir": "data/kitchen", "weight": 0.3},
        {"dataset": "folder", "data_dir": "data/renders", "weight": 0.4, "appearance": "strong"},
        {"dataset": "synthetic", "weight": 0.3, "options": {"length": 2000, "random_focal": true}}
    ]}

Example:
    >>> sources = [parse_source("data/kitchen:2"), parse_source("data/lab")]
    >>> mix = build_mix(sources, (240, 320), seed=0)
    >>> len(mix.train), mix.train.weights[:3]
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from dpde_cli.errors import InputError, UsageError

MIX_KEYS = ("dataset", "data_dir", "weight", "options", "appearance")
"""The keys a source of a mix file may have."""


@dataclass(frozen=True)
class Source:
    """One source of a training mix.

    Attributes:
        dataset: a dataset name (``dpde_cli.data.list_datasets``).
        data_dir: its folder (None for synthetic scenes).
        weight: sampling weight, > 0 (normalised over the mix).
        options: the dataset's options (e.g. ``{"depth_scale": 256}``; for synthetic
            scenes ``length``, ``seed`` and any SceneConfig field).
        appearance: photometric augmentation for this source ("standard" or "strong"), or
            None for the run's.
    """

    dataset: str
    data_dir: str | None = None
    weight: float = 1.0
    options: dict[str, Any] = field(default_factory=dict)
    appearance: str | None = None

    def __post_init__(self) -> None:
        if not (isinstance(self.weight, (int, float)) and 0 < self.weight < math.inf):
            raise UsageError(f"a source's weight must be a positive number, got {self.weight!r}")

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (what ``TrainConfig.sources`` holds)."""
        return asdict(self)

    @property
    def label(self) -> str:
        """How the source is named in messages and logs."""
        return self.data_dir if self.data_dir is not None else self.dataset


def parse_source(text: str, dataset: str = "folder") -> Source:
    """A source from ``DIR`` or ``DIR:WEIGHT`` (the form ``--data-dir`` takes).

    The text after the last colon is a weight when it parses as a number and the whole
    text is not an existing path (so a folder with a colon in its name still works).

    Raises:
        UsageError: a weight that is not a positive number.
    """
    folder, sep, tail = text.rpartition(":")
    if sep and folder and not Path(text).expanduser().exists():
        try:
            weight = float(tail)
        except ValueError:
            weight = None
        if weight is not None:
            if not 0 < weight < math.inf:
                raise UsageError(f"--data-dir {text}: the weight must be a positive number")
            return Source(dataset, folder, weight)
    return Source(dataset, text)


def read_mix(path: str | Path) -> list[Source]:
    """The sources of a mix file (JSON, see the module docstring).

    Raises:
        InputError: an unreadable file, or one that is not a mix.
    """
    path = Path(path).expanduser()
    try:
        content = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InputError(path, f"cannot read the mix (JSON): {exc}") from None
    entries = content.get("sources") if isinstance(content, dict) else None
    if not isinstance(entries, list) or not entries:
        raise InputError(path, 'a mix is {"sources": [{"dataset": ..., "weight": ...}, ...]}')
    sources = []
    for number, entry in enumerate(entries, 1):
        if not isinstance(entry, dict) or not isinstance(entry.get("dataset"), str):
            raise InputError(path, f'source {number}: an object with a "dataset" name')
        unknown = sorted(set(entry) - set(MIX_KEYS))
        if unknown:
            raise InputError(
                path,
                f"source {number}: unknown key(s) {', '.join(unknown)}; keys: "
                f"{', '.join(MIX_KEYS)}",
            )
        data_dir = entry.get("data_dir")
        if data_dir is not None:  # relative folders are relative to the mix file
            data_dir = str((path.parent / Path(data_dir).expanduser()).resolve())
        try:
            sources.append(
                Source(
                    entry["dataset"],
                    data_dir,
                    entry.get("weight", 1.0),
                    dict(entry.get("options") or {}),
                    entry.get("appearance"),
                )
            )
        except UsageError as exc:
            raise InputError(path, f"source {number}: {exc}") from None
    return sources


def source_from_json(data: dict[str, Any]) -> Source:
    """Inverse of ``Source.to_json`` (a config read back from a run folder)."""
    return Source(**{key: data[key] for key in MIX_KEYS if key in data})


# --------------------------------------------------------------------------- views


class MixedView(Dataset):
    """The frames of several sources as one dataset of training tensors.

    Item keys are ``(epoch, index, draw)`` from ``WeightedEpochSampler`` (or a bare index):
    the sample's augmentation is drawn from a generator seeded by (seed, epoch, index,
    draw), so a frame drawn twice in an epoch is augmented two ways, and the same way in
    any worker, after any resume.

    Args:
        parts: per source, (dataset, the indices of it to use, transform).
        weights: per source, its sampling weight.
        seed: augmentation seed.
    """

    def __init__(
        self,
        parts: Sequence[tuple[Dataset, Sequence[int], Any]],
        weights: Sequence[float],
        seed: int,
    ) -> None:
        self.parts = [(dataset, list(indices), transform) for dataset, indices, transform in parts]
        self.source_weights = [float(w) for w in weights]
        self.offsets = np.cumsum([0] + [len(indices) for _, indices, _ in self.parts])
        self.seed = seed

    def __len__(self) -> int:
        return int(self.offsets[-1])

    @property
    def weights(self) -> np.ndarray:
        """Per item, its probability of being drawn (sums to 1; sources without items and
        their weight drop out)."""
        per_item = [
            np.full(len(indices), weight / len(indices))
            for (_, indices, _), weight in zip(self.parts, self.source_weights, strict=True)
            if indices
        ]
        weights = np.concatenate(per_item) if per_item else np.zeros(0)
        return weights / weights.sum() if weights.size else weights

    def locate(self, position: int) -> tuple[int, int]:
        """(source number, dataset index) of item ``position``."""
        part = int(np.searchsorted(self.offsets, position, side="right")) - 1
        return part, self.parts[part][1][position - int(self.offsets[part])]

    def __getitem__(self, key: int | tuple[int, ...]) -> dict[str, torch.Tensor]:
        from dpde_cli.data import load_sample
        from dpde_cli.data.transforms import sample_generator

        epoch, position, draw = (*key, 0)[:3] if isinstance(key, tuple) else (0, key, 0)
        part, index = self.locate(int(position))
        dataset, _, transform = self.parts[part]
        sample = load_sample(dataset, index)
        generator = sample_generator(self.seed, epoch, int(position), draw)
        sample = transform(sample, generator)
        return {
            "image": sample["image"].float(),
            "depth": sample["depth"].float(),
            "valid": sample["valid"].bool() & (sample["depth"] > 0),
        }


class WeightedEpochSampler(Sampler):
    """``num_samples`` draws per epoch and process, with replacement, by item weight.

    The draws depend only on (seed, epoch): every process makes the same ``world_size x
    num_samples`` draws and takes every ``world_size``-th from its rank on, so the shares
    are disjoint and a resume redraws the same epoch. Yields ``(epoch, index, draw)`` keys
    (``MixedView``); ``set_position`` skips the first draws of this rank's share. The same
    interface as ``dpde_cli.training.data.EpochSampler``.

    Args:
        weights: per item, its probability (``MixedView.weights``).
        epoch_size: draws per epoch over all processes.
        num_replicas, rank: the process group's size and this process's rank.
        seed: the run's seed.
    """

    def __init__(
        self, weights: np.ndarray, epoch_size: int, num_replicas: int, rank: int, seed: int
    ) -> None:
        if epoch_size < 1:
            raise UsageError(f"epoch_size must be at least 1, got {epoch_size}")
        self.probabilities = np.asarray(weights, dtype=np.float64)
        self.num_replicas = num_replicas
        self.rank = rank
        self.seed = seed
        self.num_samples = epoch_size // num_replicas
        self.epoch = 0
        self.skip = 0

    def set_position(self, epoch: int, skip: int = 0) -> None:
        """Select the epoch and how many of this rank's draws to skip."""
        self.epoch = int(epoch)
        self.skip = int(skip)

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch (DistributedSampler's interface)."""
        self.set_position(epoch)

    def draws(self) -> np.ndarray:
        """This rank's item indices of the current epoch, in order."""
        rng = np.random.default_rng([int(self.seed), int(self.epoch), 0x6D6978])
        total = self.num_samples * self.num_replicas
        picks = rng.choice(len(self.probabilities), size=total, p=self.probabilities)
        return picks[self.rank :: self.num_replicas]

    def __iter__(self) -> Iterator[tuple[int, int, int]]:
        picks = self.draws()
        return iter(
            (self.epoch, int(picks[i]), i * self.num_replicas + self.rank)
            for i in range(self.skip, len(picks))
        )

    def __len__(self) -> int:
        return max(0, self.num_samples - self.skip)


# --------------------------------------------------------------------------- building


@dataclass
class Mix:
    """What ``build_mix`` makes: the training view, the validation view (or None) and
    the frames each source contributes."""

    train: MixedView
    val: MixedView | None
    counts: dict[str, tuple[int, int]]


def build_source(source: Source, split: str | None, input_size: tuple[int, int]) -> Dataset:
    """The dataset of one source (synthetic scenes rendered at the input size)."""
    from dpde_cli.data import build_dataset

    options = dict(source.options)
    if source.dataset == "synthetic":
        from dpde_cli.data.synthetic import SceneConfig

        options.setdefault("seed", 0)
        options.setdefault("length", 1000)
        scene = {k: options.pop(k) for k in list(options) if k not in ("seed", "length")}
        options["config"] = SceneConfig(height=input_size[0], width=input_size[1], **scene)
        return build_dataset("synthetic", source.data_dir, "train", **options)
    return build_dataset(source.dataset, source.data_dir, split, **options)


def build_mix(
    sources: Sequence[Source],
    input_size: tuple[int, int],
    seed: int,
    val_fraction: float = 0.05,
    augment: bool = True,
    appearance: str = "standard",
    zoom_range: tuple[float, float] = (1.0, 1.5),
    canonical_focal: float | None = None,
) -> Mix:
    """The training and validation views of a mix.

    Each source holds out ``val_fraction`` of its frames for validation (a fixed choice,
    as ``holdout_split``); validation scores every held-out frame once.

    Raises:
        UsageError: no source, or a source left without training frames.
        InputError: a source whose files cannot be read.
    """
    from dpde_cli.data.transforms import EvalTransform, TrainTransform
    from dpde_cli.dataset_catalog import training_split
    from dpde_cli.training.data import holdout_split

    if not sources:
        raise UsageError("a training mix needs at least one source")
    evaluate = EvalTransform(input_size, canonical_focal=canonical_focal)
    train_parts, val_parts, counts = [], [], {}
    for source in sources:
        dataset = build_source(source, training_split(source.dataset), input_size)
        train_idx, val_idx = holdout_split(len(dataset), val_fraction)
        if augment:
            transform = TrainTransform(
                input_size,
                scale_range=zoom_range,
                appearance=source.appearance or appearance,
                canonical_focal=canonical_focal,
            )
        else:
            transform = evaluate
        train_parts.append((dataset, train_idx, transform))
        val_parts.append((dataset, val_idx, evaluate))
        counts[source.label] = (len(train_idx), len(val_idx))
    weights = [source.weight for source in sources]
    val = MixedView(val_parts, weights, seed) if any(idx for _, idx, _ in val_parts) else None
    return Mix(MixedView(train_parts, weights, seed), val, counts)
