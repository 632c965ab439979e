"""What a training run reads: its datasets, the held-out split, the transforms, the
resumable sampler and the loaders.

Four pieces, each in one place: ``training_sets`` builds the datasets of a config,
``transforms`` the augmentation and evaluation transforms, ``EpochSampler`` the order of
an epoch (seeded, sharded, resumable mid-epoch), and ``TrainingView`` a dataset's items as
the tensors a train step needs. ``training_data`` puts them together into loaders.

Example:
    >>> train_set, val_set = training_sets(config, (240, 320))
    >>> data = training_data(config, (240, 320), DistInfo(), train_set, val_set, cuda=False)
    >>> data.start_epoch(epoch=0, batch=0)
    >>> batch = next(iter(data.train_loader))  # {"image", "depth", "valid"}
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Subset

from dpde_cli.data import load_sample, worker_init
from dpde_cli.dataset_catalog import dataset_spec, training_split
from dpde_cli.distributed import DistInfo
from dpde_cli.errors import UsageError
from dpde_cli.training.config import TrainConfig

_HOLDOUT_SEED = 20210893  # fixed: the held-out images do not change with --seed


def seed_of(*parts: int) -> int:
    """A 63-bit seed mixed from integers."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1, np.uint64)[0] >> 1)


# --------------------------------------------------------------------------- datasets


def resolve_input_size(config: TrainConfig, spec_size: tuple[int, int]) -> tuple[int, int]:
    """The training (H, W): the config's, else the dataset's (its catalogue entry's), else
    the model's."""
    if config.input_size is not None:
        return (int(config.input_size[0]), int(config.input_size[1]))
    return dataset_spec(config.dataset).input_size or tuple(spec_size)


def training_sets(
    config: TrainConfig, input_size: tuple[int, int]
) -> tuple[Dataset, Dataset | None]:
    """The base training set of a config and, with ``val_split``, a separate validation set.

    Several data folders are one set (``dpde_cli.data.build_datasets``), as eval has them.

    Returns:
        (train, val): val is None when the validation images are held out of ``train``.

    Raises:
        UsageError: a ``val_split`` that would validate on the training images.
    """
    from dpde_cli.data import build_dataset, build_datasets

    options = dict(config.dataset_options)
    if config.dataset == "synthetic":
        # Rendered at the input size; with val_split, validation uses other scenes.
        from dpde_cli.data.synthetic import SceneConfig

        options.setdefault("length", config.synthetic_size)
        options.setdefault("config", SceneConfig(height=input_size[0], width=input_size[1]))
        options.setdefault("seed", 0)
        # config.data_dir goes through so that the builder refuses one, not ignores it
        train_set = build_dataset("synthetic", config.data_dir, "train", **options)
        if config.val_split is None:
            return train_set, None
        count = max(1, round(options["length"] * (config.val_fraction or 0.05)))
        val_options = {**options, "length": count, "seed": options["seed"] + options["length"]}
        return train_set, build_dataset("synthetic", None, config.val_split, **val_options)
    split = training_split(config.dataset)
    _check_val_split(config, split)
    train_set = build_datasets(config.dataset, config.data_dirs(), split, options)
    val_set = None
    if config.val_split is not None:
        val_set = build_datasets(config.dataset, config.data_dirs(), config.val_split, options)
    return train_set, val_set


def _check_val_split(config: TrainConfig, train_split: str) -> None:
    """Refuse a validation split that holds the training images (a folder's only one)."""
    if config.val_split is None:
        return
    if config.dataset == "folder":
        raise UsageError(
            f"--val-split {config.val_split}: a folder has no splits, validation would "
            "score the training images; hold images out with --val-fraction instead"
        )
    if config.val_split == train_split:
        raise UsageError(
            f"--val-split {config.val_split} is the split {config.dataset} trains on; "
            "validate on another split or hold images out with --val-fraction"
        )


def holdout_split(length: int, fraction: float) -> tuple[list[int], list[int]]:
    """Split range(length) into (train, val) indices; val is a fixed random ``fraction``.

    The held-out images depend only on ``length`` and ``fraction``, not on the run's seed.
    """
    if fraction <= 0:
        return list(range(length)), []
    n_val = max(1, round(length * fraction))
    if n_val >= length:
        raise UsageError(
            f"val_fraction {fraction} leaves no training image out of {length}; lower it"
        )
    order = np.random.default_rng(_HOLDOUT_SEED).permutation(length)
    return sorted(int(i) for i in order[n_val:]), sorted(int(i) for i in order[:n_val])


def transforms(config: TrainConfig, input_size: tuple[int, int]) -> tuple[Any, Any]:
    """(training transform, validation transform) of a config at the training size."""
    from dpde_cli.data.transforms import EvalTransform, TrainTransform

    focal = config.canonical_focal(input_size)
    evaluate = EvalTransform(input_size, canonical_focal=focal)
    if not config.augment:
        return evaluate, evaluate
    augment = TrainTransform(
        input_size,
        scale_range=tuple(config.zoom_range),
        appearance=config.appearance,
        canonical_focal=focal,
    )
    return augment, evaluate


# --------------------------------------------------------------------------- sampling


class EpochSampler(DistributedSampler):
    """A DistributedSampler whose order depends only on (seed, epoch), resumable mid-epoch.

    Yields ``(epoch, index)`` keys (the dataset seeds its augmentation from them), and can
    skip the first ``skip`` samples of this rank's share (``set_position``). Works without
    a process group (``num_replicas=1, rank=0``).
    """

    def __init__(
        self, dataset: Dataset, num_replicas: int, rank: int, seed: int, shuffle: bool = True
    ) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed)
        self.skip = 0

    def set_position(self, epoch: int, skip: int = 0) -> None:
        """Select the epoch and how many of this rank's samples to skip."""
        self.set_epoch(epoch)
        self.skip = int(skip)

    def __iter__(self) -> Iterator[tuple[int, int]]:  # type: ignore[override]
        indices = list(super().__iter__())[self.skip :]
        return iter([(self.epoch, int(i)) for i in indices])

    def __len__(self) -> int:
        return max(0, self.num_samples - self.skip)


class TrainingView(Dataset):
    """Selected items of a dataset with a transform, as the tensors a train step needs.

    Keys are an index, or ``(epoch, index)`` from EpochSampler; a random transform draws
    from a generator seeded by (seed, epoch, dataset index), so a sample is augmented the
    same way in any worker, after any resume. A bad item is a one-line DataError in any
    worker (``dpde_cli.data.load_sample``).

    Args:
        base: a dataset yielding dpde sample dicts.
        indices: the base items to use.
        transform: a TrainTransform or EvalTransform.
        seed: augmentation seed.
    """

    def __init__(self, base: Dataset, indices: Sequence[int], transform: Any, seed: int) -> None:
        self.base = base
        self.indices = list(indices)
        self.transform = transform
        self.seed = seed

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, torch.Tensor]:
        from dpde_cli.data.transforms import sample_generator

        epoch, position = key if isinstance(key, tuple) else (0, key)
        index = self.indices[position]
        sample = load_sample(self.base, index)
        sample = self.transform(sample, sample_generator(self.seed, epoch, index))
        return {
            "image": sample["image"].float(),
            "depth": sample["depth"].float(),
            "valid": sample["valid"].bool() & (sample["depth"] > 0),
        }


def seed_worker(worker_id: int) -> None:
    """Seed python and numpy in a DataLoader worker from its torch seed; Ctrl-C is left to
    the main process (``dpde_cli.data.worker_init``)."""
    worker_init(worker_id)
    seed = torch.initial_seed() % 2**32
    random.seed(seed)
    np.random.seed(seed)


# --------------------------------------------------------------------------- loaders


@dataclass
class TrainingData:
    """The loaders of one process (its shard of the data) and what sets them up.

    Attributes:
        train_view, val_view: the training images (augmented) and validation images.
        sampler: the training order; ``start_epoch`` positions it.
        train_loader, val_loader: the loaders (val_loader None without validation).
        steps_per_epoch: full batches of this process per epoch.
        batch_size: images per batch.
        generator: the training loader's generator (seeded anew each epoch).
        seed, rank: the run's seed and this process's rank.
    """

    train_view: TrainingView
    val_view: TrainingView | None
    sampler: EpochSampler
    train_loader: DataLoader | None
    val_loader: DataLoader | None
    steps_per_epoch: int
    batch_size: int
    generator: torch.Generator
    seed: int
    rank: int

    def start_epoch(self, epoch: int, batch: int) -> None:
        """Position the training loader at ``batch`` batches into ``epoch``."""
        self.sampler.set_position(epoch, batch * self.batch_size)
        self.generator.manual_seed(seed_of(self.seed, self.rank, epoch))

    def close(self) -> None:
        """Drop the loaders (persistent workers would idle until garbage collection)."""
        self.train_loader = self.val_loader = None


def _views(
    config: TrainConfig, input_size: tuple[int, int], train_set: Dataset, val_set: Dataset | None
) -> tuple[TrainingView, TrainingView | None]:
    """The training and validation views of one dataset (a share held out without
    ``val_set``)."""
    train_indices, val_indices = list(range(len(train_set))), []
    if val_set is None:
        train_indices, val_indices = holdout_split(len(train_set), config.val_fraction)
    augment, evaluate = transforms(config, input_size)
    train_view = TrainingView(train_set, train_indices, augment, config.seed)
    val_view = None
    if val_set is not None:
        val_view = TrainingView(val_set, range(len(val_set)), evaluate, config.seed)
    elif val_indices:
        val_view = TrainingView(train_set, val_indices, evaluate, config.seed)
    return train_view, val_view


def _mix_views(config: TrainConfig, input_size: tuple[int, int], info: DistInfo) -> tuple:
    """The views of a training mix and its weighted sampler."""
    from dpde_cli.data.mix import WeightedEpochSampler, build_mix, source_from_json

    mix = build_mix(
        [source_from_json(s) for s in config.sources or []],
        input_size,
        config.seed,
        val_fraction=config.val_fraction,
        augment=config.augment,
        appearance=config.appearance,
        zoom_range=tuple(config.zoom_range),
        canonical_focal=config.canonical_focal(input_size),
    )
    size = config.epoch_size or len(mix.train)
    sampler = WeightedEpochSampler(mix.train.weights, size, info.world_size, info.rank, config.seed)
    return mix.train, mix.val, sampler


def training_data(
    config: TrainConfig,
    input_size: tuple[int, int],
    info: DistInfo,
    train_set: Dataset | None,
    val_set: Dataset | None,
    cuda: bool,
) -> TrainingData:
    """The training and validation loaders of this process (sharded across ranks).

    Without ``val_set``, ``config.val_fraction`` of ``train_set`` is held out. With
    ``config.sources`` and no ``train_set``, the views and the weighted sampler of the mix
    (``dpde_cli.data.mix``).

    Raises:
        UsageError: fewer training images than one batch per process.
    """
    if config.sources is not None and train_set is None:
        train_view, val_view, sampler = _mix_views(config, input_size, info)
    else:
        train_view, val_view = _views(config, input_size, train_set, val_set)
        sampler = EpochSampler(train_view, info.world_size, info.rank, config.seed, shuffle=True)
    steps_per_epoch = sampler.num_samples // config.batch_size
    if steps_per_epoch < 1:
        raise UsageError(
            f"the training set has {len(train_view)} images, fewer than one batch of "
            f"{config.batch_size} per process ({info.world_size} process(es)); "
            "lower --batch-size"
        )
    generator = torch.Generator()
    common: dict[str, Any] = {
        "num_workers": config.workers,
        "pin_memory": cuda,
        "worker_init_fn": seed_worker if config.workers else None,
        "persistent_workers": config.workers > 0,
    }
    train_loader = DataLoader(
        train_view,
        batch_size=config.batch_size,
        sampler=sampler,
        drop_last=True,
        generator=generator,
        **common,
    )
    val_loader = None
    if val_view is not None:
        shard = list(range(info.rank, len(val_view), info.world_size))
        val_loader = DataLoader(
            Subset(val_view, shard),
            batch_size=config.batch_size,
            shuffle=False,
            generator=torch.Generator().manual_seed(config.seed),
            **common,
        )
    return TrainingData(
        train_view, val_view, sampler, train_loader, val_loader, steps_per_epoch,
        config.batch_size, generator, config.seed, info.rank,
    )  # fmt: skip
