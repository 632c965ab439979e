"""Evaluating a model on a dataset under a stated protocol (the library behind `dpde eval`).

Example:
    >>> result = evaluate(predictor, build_dataset("nyuv2", "~/data/nyu"),
    ...                   default_protocol("nyuv2"), ablation=True)
    >>> result.variants["DPDE"]["rms"]
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dpde_cli.errors import UsageError
from dpde_cli.metrics import MetricAccumulator, prepare_eval

if TYPE_CHECKING:
    import torch
    from torch.utils.data import Dataset

    from dpde_cli.distributed import Share
    from dpde_cli.metrics import EvalProtocol
    from dpde_cli.predict import Predictor

FUSED = "DPDE"
UNFUSED = "DPDE without gradient stream"


@dataclass(frozen=True)
class Baseline:
    """A constant-depth reference evaluated beside the model.

    Attributes:
        name: row label.
        depth: the constant, metres.
        oracle_scale: scale the constant by each image's ground-truth median (an oracle
            that knows the scene's scale but nothing of its shape).
    """

    name: str
    depth: float
    oracle_scale: bool = False


@dataclass(frozen=True)
class SparseSamples:
    """Completion from ground-truth samples: the sparse-to-dense protocol of Ma & Karaman
    (2018), so that any dataset measures ``completion.complete_depth``.

    Image ``i`` of the dataset (its index, whichever share runs it) gets ``count`` pixels drawn
    uniformly from those the protocol scores (``EvalProtocol.eval_mask``) with seed
    ``seed + i`` (``sparse.sample_sparse``), put on the prediction's grid where the
    ground truth's differs; the model's depth is completed from them with ``align``.

    Attributes:
        count: samples per image (all the valid pixels where there are fewer).
        seed: seed of the first image's draw.
        align: "scale" or "scale-shift".
    """

    count: int
    seed: int = 0
    align: str = "scale"

    def __post_init__(self) -> None:
        from dpde_cli.sparse import ALIGNMENTS

        if self.count < 1:
            raise UsageError(f"--sparse-samples must be >= 1, got {self.count}")
        if self.align not in ALIGNMENTS:
            raise UsageError(f"unknown alignment {self.align!r}; use {' or '.join(ALIGNMENTS)}")

    @property
    def row(self) -> str:
        """The label of the completed row."""
        return f"DPDE completed from {self.count} samples"

    def describe(self) -> str:
        """The protocol's words for it."""
        return (
            f"completed from {self.count} ground-truth samples per image, drawn uniformly "
            f"from the valid pixels (Ma & Karaman 2018 sparse-to-dense protocol; seed "
            f"{self.seed} + image index; {self.align} alignment)"
        )

    def complete(
        self, out: Any, gt: torch.Tensor, mask: torch.Tensor, indices: Sequence[int]
    ) -> torch.Tensor:
        """(B, 1, h, w) depth of a BatchPrediction ``out`` completed from samples of the
        (B, 1, H, W) ground truth ``gt`` at ``mask``; ``indices``: the images' dataset
        indices (their seeds' offsets)."""
        import numpy as np
        import torch

        from dpde_cli.completion import complete_depth
        from dpde_cli.sparse import rasterize_points, sample_sparse, sparse_points

        depth = out.depth.float().cpu().numpy()[:, 0]
        gradients = out.gradients.float().cpu().numpy()
        truth, scored = gt.cpu().numpy()[:, 0], mask.cpu().numpy()[:, 0]
        completed = []
        for i, network in enumerate(depth):
            samples = sample_sparse(truth[i], scored[i], self.count, seed=self.seed + indices[i])
            if samples.shape != network.shape:
                rows, cols, z, _ = sparse_points(samples)
                samples = rasterize_points(rows, cols, z, samples.shape, network.shape)
            if not samples.any():  # no valid pixel: the image is skipped by the metrics
                completed.append(network)
                continue
            result = complete_depth(network, gradients[i], samples, align=self.align)
            completed.append(result.depth)
        return torch.from_numpy(np.stack(completed)[:, None]).to(out.depth.device)


def constant_baselines(depth: float, alignment: str) -> list[Baseline]:
    """The constant-depth rows for a protocol: the constant and its GT-median oracle.

    Under an alignment both come out as the same aligned constant (the GT's median or
    mean per image), so there is one row, labelled as aligned rather than by a depth it
    no longer has.
    """
    if not 0 < depth < math.inf:
        raise UsageError(f"a constant baseline is a positive depth in metres, got {depth:g}")
    if alignment != "none":
        return [Baseline(f"constant depth, {alignment}-aligned", depth)]
    return [
        Baseline(f"constant {depth:g} m", depth),
        Baseline("constant x GT median (oracle)", depth, oracle_scale=True),
    ]


def check_protocol(dataset: Dataset, protocol: EvalProtocol) -> None:
    """Refuse metric scoring (no alignment) of a dataset whose ground truth has no scale.

    Raises:
        UsageError: alignment "none" on relative ground truth (e.g. Middlebury's
            1 / disparity without a focal length and baseline).
    """
    from dpde_cli.data import ground_truth, metric_depth

    if protocol.alignment == "none" and not metric_depth(dataset):
        raise UsageError(
            f"--align none scores metric depth, but the ground truth is "
            f"{ground_truth(dataset) or 'relative depth'}; use --align median or lstsq"
        )


@dataclass
class EvalResult:
    """What `evaluate` measured.

    Attributes:
        variants: row label -> metric name -> value (see dpde_cli.metrics.BASE_METRICS).
        records: row label -> per-image metric dicts.
        n_images: images evaluated (with at least one valid pixel).
        skipped: names of images without a valid ground-truth pixel.
        failed: one line per sample that could not be read (the file and the problem);
            those samples are left out of every row.
        protocol: the protocol's one-line description, starting with the ground truth
            where the dataset names it.
        seconds_per_image: wall time per image for the model (network + fusion).
        ground_truth: what the ground truth is (e.g. NYUv2 filled or raw depth), where the
            dataset says; None where it does not.
    """

    variants: dict[str, dict[str, float]]
    records: dict[str, list[dict[str, Any]]]
    n_images: int
    skipped: list[str]
    protocol: str
    seconds_per_image: float
    ground_truth: str | None = None
    failed: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class EvalPartial:
    """What one process measured of an evaluation (or several, added up by ``combine``):
    the sums ``result_of`` turns into the table.

    Attributes:
        rows: row label -> ``MetricAccumulator.state()``, in the table's order.
        averaging: the protocol's averaging ("image" or "pixel").
        extra: the extra metrics asked for.
        order: image name -> its place in the dataset (merged images keep that order).
        done: images read and predicted.
        failed: one line per sample that could not be read.
        model_seconds: the model's wall time over ``done``.
        covered: images the whole run covers (all shares, ``limit`` applied).
        dataset_length: images in the dataset.
        truth: the dataset's ground-truth note (``data.ground_truth``), or None.
        described: the protocol's one-line description.
    """

    rows: dict[str, dict[str, Any]]
    averaging: str
    extra: tuple[str, ...]
    order: dict[str, int]
    done: int
    failed: list[str]
    model_seconds: float
    covered: int
    dataset_length: int
    truth: str | None
    described: str

    @property
    def ground_truth(self) -> str | None:
        """What the ground truth is, and how many of the dataset's images the run covers
        when not all; None where the dataset does not say."""
        if self.truth and self.covered < self.dataset_length:
            return f"{self.truth}, the first {self.covered} of {self.dataset_length} images"
        return self.truth

    @property
    def protocol(self) -> str:
        """The protocol's line, starting with the ground truth where the dataset names it."""
        truth = self.ground_truth
        return f"ground truth {truth}; {self.described}" if truth else self.described


def evaluate(
    predictor: Predictor,
    dataset: Dataset,
    protocol: EvalProtocol,
    batch_size: int = 4,
    workers: int = 0,
    limit: int | None = None,
    extra_metrics: Sequence[str] = (),
    ablation: bool = False,
    baselines: Sequence[Baseline] = (),
    save_predictions: Path | None = None,
    on_progress: Callable[[int], None] | None = None,
    sparse: SparseSamples | None = None,
) -> EvalResult:
    """Run a model over a dataset and compute the metrics of every variant.

    Args:
        predictor: the model (with fusion, or without for the global network alone).
        dataset: yields sample dicts (image, depth, valid, name).
        protocol: crop, caps, alignment, averaging, flip TTA, upsampling.
        batch_size: images per forward pass (images of one size are batched together).
        workers: DataLoader worker processes for decoding.
        limit: evaluate only the first N images.
        extra_metrics: any of "ssim", "gsm".
        ablation: also report the same run without the gradient stream (the unfused
            global depth), as the paper's Tables 2 and 4; needs a predictor with fusion.
        baselines: constant-depth references evaluated on the same images.
        save_predictions: write each image's depth (that of the first row: completed,
            else fused) as a 16-bit PNG (mm) here.
        on_progress: called with the number of images done after each batch.
        sparse: complete the model's depth from ground-truth samples (``SparseSamples``):
            its row comes first, the model's own depth beside it; the protocol says so.

    Returns:
        An EvalResult with one row per variant.

    A sample that cannot be read (a truncated file, depth of another size) is left out and
    its one-line message kept in ``EvalResult.failed``; the run goes on.

    Raises:
        UsageError: a protocol the data cannot support (``check_protocol``).
        DataError: no sample could be read (the first one's message).
    """
    return result_of(
        evaluate_share(
            predictor,
            dataset,
            protocol,
            batch_size=batch_size,
            workers=workers,
            limit=limit,
            extra_metrics=extra_metrics,
            ablation=ablation,
            baselines=baselines,
            save_predictions=save_predictions,
            on_progress=on_progress,
            sparse=sparse,
        )
    )


def evaluate_share(
    predictor: Predictor,
    dataset: Dataset,
    protocol: EvalProtocol,
    batch_size: int = 4,
    workers: int = 0,
    limit: int | None = None,
    extra_metrics: Sequence[str] = (),
    ablation: bool = False,
    baselines: Sequence[Baseline] = (),
    save_predictions: Path | None = None,
    on_progress: Callable[[int], None] | None = None,
    share: Share | None = None,
    sparse: SparseSamples | None = None,
) -> EvalPartial:
    """``evaluate`` on one share of the images (``distributed.Share`` of the first
    ``limit``), returning its sums, for ``combine`` with the other shares' and
    ``result_of``; the arguments are ``evaluate``'s."""
    from dpde_cli.data import ground_truth, loader_interrupts, metric_depth
    from dpde_cli.distributed import Share

    check_protocol(dataset, protocol)
    fused_on = predictor.fusion is not None
    rows = [FUSED if fused_on else UNFUSED]
    if sparse is not None:
        rows.insert(0, sparse.row)
    if ablation and fused_on:
        rows.append(UNFUSED)
    rows += [b.name for b in baselines]
    accumulators = {row: MetricAccumulator(protocol.averaging, extra=extra_metrics) for row in rows}
    covered = min(limit or len(dataset), len(dataset))
    indices = (share or Share()).indices(covered)
    model_seconds = 0.0
    done = 0  # read and predicted
    failed: list[str] = []
    order: dict[str, int] = {}
    with loader_interrupts():
        for batch in _batches(dataset, batch_size, workers, indices, failed):
            if batch is not None:
                model_seconds += _evaluate_batch(
                    predictor,
                    batch,
                    protocol,
                    rows,
                    accumulators,
                    baselines,
                    save_predictions,
                    sparse,
                )
                done += len(batch["name"])
                order.update(zip(batch["name"], batch["index"], strict=True))
            if on_progress is not None:
                on_progress(done + len(failed))
    return EvalPartial(
        rows={row: acc.state() for row, acc in accumulators.items()},
        averaging=protocol.averaging,
        extra=tuple(extra_metrics),
        order=order,
        done=done,
        failed=failed,
        model_seconds=model_seconds,
        covered=covered,
        dataset_length=len(dataset),
        truth=ground_truth(dataset),
        described=protocol.describe(units="m" if metric_depth(dataset) else "")
        + (f"; {sparse.describe()}" if sparse is not None else ""),
    )


def combine(partials: Sequence[EvalPartial]) -> EvalPartial:
    """The sums of disjoint shares of one evaluation, added up: ``result_of`` of it is the
    table of one process over all of them (per-image averages exactly, pooled sums to
    rounding). Every partial must come from the same run's settings (the caller checks)."""
    first = partials[0]
    order = {name: index for part in partials for name, index in part.order.items()}
    rank = order.__getitem__
    rows = {
        row: MetricAccumulator.merged(
            first.averaging, first.extra, [part.rows[row] for part in partials], rank
        ).state()
        for row in first.rows
    }
    return dataclasses.replace(
        first,
        rows=rows,
        order=order,
        done=sum(part.done for part in partials),
        failed=[line for part in partials for line in part.failed],
        model_seconds=sum(part.model_seconds for part in partials),
    )


def result_of(partial: EvalPartial) -> EvalResult:
    """The table of an evaluation's sums.

    Raises:
        DataError: no sample could be read (the first one's message).
        DpdeError: no image had valid ground truth.
    """
    from dpde_cli.data import DataError

    if partial.failed and not partial.done:
        raise DataError(f"no image could be read; the first: {partial.failed[0]}")
    accumulators = {
        row: MetricAccumulator.merged(partial.averaging, partial.extra, [state], lambda _: 0)
        for row, state in partial.rows.items()
    }
    first = next(iter(accumulators.values()))
    return EvalResult(
        variants={row: acc.compute() for row, acc in accumulators.items()},
        records={row: acc.records for row, acc in accumulators.items()},
        n_images=first.n_images,
        skipped=first.skipped,
        protocol=partial.protocol,
        seconds_per_image=partial.model_seconds / max(partial.done, 1),
        ground_truth=partial.ground_truth,
        failed=partial.failed,
    )


def _evaluate_batch(
    predictor: Predictor,
    batch: dict[str, Any],
    protocol: EvalProtocol,
    rows: list[str],
    accumulators: dict[str, MetricAccumulator],
    baselines: Sequence[Baseline],
    save_predictions: Path | None,
    sparse: SparseSamples | None = None,
) -> float:
    """Predict one batch and add every row's metrics; returns the model's seconds."""
    import torch

    start = time.perf_counter()
    out = predictor.predict_tensor(batch["image"], flip=protocol.flip_tta, focal=batch["focal"])
    if predictor.device.type == "cuda":
        torch.cuda.synchronize()
    gt = batch["depth"].to(out.depth.device)
    valid = batch["valid"].to(out.depth.device)
    predictions = {}
    if sparse is not None:
        mask = protocol.eval_mask(gt, valid)
        predictions[sparse.row] = sparse.complete(out, gt, mask, batch["index"])
    seconds = time.perf_counter() - start
    predictions[FUSED if predictor.fusion is not None else UNFUSED] = out.depth
    if UNFUSED in rows and predictor.fusion is not None:
        predictions[UNFUSED] = out.depth_unfused
    for baseline in baselines:
        predictions[baseline.name] = _baseline_depth(baseline, gt, valid, protocol)
    for row, pred in predictions.items():
        pred, target, mask = prepare_eval(pred, gt, valid, protocol)
        accumulators[row].update(pred.cpu(), target.cpu(), mask.cpu(), batch["name"])
    if save_predictions is not None:
        _save(save_predictions, batch["name"], predictions[rows[0]])  # completed, if so
    return seconds


def _baseline_depth(
    baseline: Baseline, gt: torch.Tensor, valid: torch.Tensor, protocol: EvalProtocol
) -> torch.Tensor:
    """A constant map, optionally scaled by each image's ground-truth median (oracle)."""
    import torch

    from dpde_cli.metrics import align_median

    pred = torch.full_like(gt, baseline.depth)
    if baseline.oracle_scale:
        pred = align_median(pred, gt, protocol.eval_mask(gt, valid))
    return pred


def _batches(
    dataset: Dataset, batch_size: int, workers: int, indices: Sequence[int], failed: list[str]
) -> Iterator[dict[str, Any] | None]:
    """The samples at ``indices`` grouped into batches of one image size, in that order;
    each batch lists its samples' indices under "index".

    A sample that cannot be read is appended to ``failed`` as its one-line message, however
    many workers read (``SkipBad``); a loader batch of nothing but such samples yields None,
    so that progress still moves. The workers leave Ctrl-C to this process
    (``worker_init``).
    """
    import torch
    from torch.utils.data import DataLoader, Subset

    from dpde_cli.batch import group_by_size
    from dpde_cli.data import FAILED, SkipBad, worker_init

    loader = DataLoader(
        Subset(SkipBad(dataset), indices),
        batch_size=batch_size,
        num_workers=workers,
        collate_fn=list,
        worker_init_fn=worker_init if workers else None,
    )
    position = 0
    for samples in loader:
        for sample, index in zip(samples, indices[position : position + len(samples)], strict=True):
            sample["index"] = index
        position += len(samples)
        failed += [sample[FAILED] for sample in samples if FAILED in sample]
        good = [sample for sample in samples if FAILED not in sample]
        groups = list(group_by_size(good, lambda sample: sample["image"].shape))
        if not groups:
            yield None
        for group in groups:
            yield stack_samples(group, torch)


def stack_samples(samples: list[dict[str, Any]], torch: Any) -> dict[str, Any]:
    """Collate samples of one size: tensors stacked, names listed."""
    return {
        "image": torch.stack([s["image"] for s in samples]),
        "depth": torch.stack([s["depth"] for s in samples]),
        "valid": torch.stack([s["valid"] for s in samples]),
        "focal": [_focal(s) for s in samples],
        "name": [str(s["name"]) for s in samples],
        "index": [s.get("index", -1) for s in samples],
    }


def _focal(sample: dict[str, Any]) -> float:
    """A sample's fx in pixels, NaN where the dataset does not know its camera."""
    intrinsics = sample.get("intrinsics")
    return float("nan") if intrinsics is None else float(intrinsics[0])


def _save(directory: Path, names: list[str], depth: torch.Tensor) -> None:
    """Write predictions as 16-bit PNGs in millimetres, named after the samples."""
    from dpde_cli.io import write_depth

    for name, d in zip(names, depth.cpu().numpy()[:, 0], strict=True):
        write_depth(directory / f"{name}.png", d, "png16")
