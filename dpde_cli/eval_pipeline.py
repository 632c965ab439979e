"""The `dpde eval` pipeline: options -> dataset, protocol and model -> a report, in one
process, as one share of a job array (``--shard K/N``) or under torchrun; and the merge of
the shares' reports (``--merge``) into the table of one process.

Nothing prints: ``run_evaluation`` and ``merge_reports`` return an ``EvalReport`` whose
``header`` and ``result`` the CLI shows and whose ``json()`` it writes.

Example:
    >>> config = EvalConfig("synthetic", limit=8)
    >>> load = lambda device, far: create_predictor("dpde-lite", device=device, max_depth=far)
    >>> report = run_evaluation(config, load, "cpu")
    >>> report.result.variants["DPDE"]["rms"]
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dpde_cli.errors import InputError, UsageError
from dpde_cli.evaluate import EvalPartial, EvalResult, combine, result_of

if TYPE_CHECKING:
    from dpde_cli.predict import Predictor

PARTIAL_KEY = "partial"
"""The key of a shard's sums in its JSON report (what ``--merge`` reads)."""
SAME_RUN = ("dataset", "split", "data_dir", "model", "weights", "input_size", "fusion", "protocol")
"""Header fields that the reports of one run's shards share (``merge_reports`` checks)."""


@dataclass(frozen=True)
class EvalConfig:
    """Everything `dpde eval` evaluates, but the model's loading (device, precision).

    Attributes:
        dataset: a name from ``data.DATASETS``.
        data_dirs: its folders (several: one set, names prefixed); () for none.
        split: test | train | all (None: the dataset's default).
        crop, min_depth, max_depth, averaging, alignment, flip_tta: protocol overrides
            (None: the dataset's default protocol, ``metrics.default_protocol``).
        gt: nyuv2 ground truth, "filled" or "raw". depth_scale: folder PNG units per metre.
        model, weights: for the report (the loader builds the model).
        fuse: whether the loaded predictor fuses (the ablation needs it).
        ablation: also the row without the gradient stream.
        metrics: extra metrics (ssim, gsm, edges).
        constant_baseline: also constant-depth rows at this depth (metres).
        limit: only the first N images. batch_size, workers: as ``evaluate``'s.
        save_predictions: a folder for each prediction as a 16-bit PNG (mm).
        sparse_samples, sparse_seed: also the row completed from that many ground-truth
            samples per image (``evaluate.SparseSamples``), drawn with that seed.
    """

    dataset: str
    data_dirs: tuple[Path, ...] = ()
    split: str | None = None
    crop: str | None = None
    min_depth: float | None = None
    max_depth: float | None = None
    averaging: str | None = None
    alignment: str | None = None
    flip_tta: bool = False
    gt: str | None = None
    depth_scale: float | None = None
    model: str = "dpde-lite"
    weights: str | None = None
    fuse: bool = True
    ablation: bool = False
    metrics: tuple[str, ...] = ()
    constant_baseline: float | None = None
    limit: int | None = None
    batch_size: int = 4
    workers: int | None = None
    save_predictions: Path | None = None
    sparse_samples: int | None = None
    sparse_seed: int | None = None


@dataclass
class EvalReport:
    """What an evaluation (or a merge of shards) measured, ready to show.

    Attributes:
        header: the report's fields before its results (dataset, model, protocol...).
        partial: the sums (a shard's, or all of them added up).
        result: the table; None for one shard of several (its sums go to ``--merge``).
        shard: ``K/N`` when this is one share of a job array, else None.
        is_main: whether this process shows the report (rank 0 under torchrun).
        extra: the extra metric names, for the table's columns.
    """

    header: dict[str, Any]
    partial: EvalPartial
    result: EvalResult | None
    shard: str | None = None
    is_main: bool = True
    extra: tuple[str, ...] = field(default_factory=tuple)

    @property
    def failed(self) -> list[str]:
        """One line per sample that could not be read (every rank's, every shard's)."""
        return self.partial.failed

    def json(self) -> dict[str, Any]:
        """The JSON report: the header, then the table and per-image metrics, or a shard's
        sums under ``PARTIAL_KEY``."""
        if self.result is None:
            return {**self.header, PARTIAL_KEY: dataclasses.asdict(self.partial)}
        return {**self.header, "results": self.result.variants, "per_image": self.result.records}


def run_evaluation(
    config: EvalConfig,
    load_predictor: Callable[[str, float], Predictor],
    device: str,
    shard: str | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> EvalReport:
    """Evaluate a model as ``config`` says; every usage error before the model loads.

    Args:
        config: the data, protocol and rows.
        load_predictor: (device name, the protocol's far limit) -> the model wrapped in a
            Predictor whose predictions are clipped there where it is past the model's
            (``predict.create_predictor``'s ``max_depth``).
        device: the device name (under torchrun: each rank's own, ``inference_run``).
        shard: ``K/N`` to evaluate one share (the report then holds sums, no table).
        on_progress: (images done, images of this share), on the main rank.

    Raises:
        UsageError: options the dataset or protocol cannot take, a bad ``shard``.
        DataError, DpdeError: no image could be read, or none had valid ground truth.
    """
    from dpde_cli.data import build_datasets, default_workers
    from dpde_cli.distributed import inference_run
    from dpde_cli.evaluate import (
        SparseSamples,
        check_protocol,
        constant_baselines,
        evaluate_share,
    )

    protocol = _protocol(config)
    data = build_datasets(
        config.dataset, list(config.data_dirs) or [None], _split(config), _options(config)
    )
    check_protocol(data, protocol)
    if config.ablation and not config.fuse:
        raise UsageError("--ablation compares fusion on and off; drop --no-fuse")
    if config.sparse_seed is not None and config.sparse_samples is None:
        raise UsageError("--sparse-seed seeds the draws of --sparse-samples; give that too")
    sparse = None
    if config.sparse_samples:
        sparse = SparseSamples(config.sparse_samples, config.sparse_seed or 0)
    baselines = []
    if config.constant_baseline is not None:
        baselines = constant_baselines(config.constant_baseline, protocol.alignment)
    run = inference_run(shard, device)
    # the protocol's far limit where past the model's, which would clip what --max-depth 80
    # asks to score (weights trained on KITTI-like folders)
    predictor = load_predictor(run.device, protocol.max_depth)
    total = len(run.share.indices(min(config.limit or len(data), len(data))))
    progress = on_progress if run.is_main and on_progress is not None else None
    partial = evaluate_share(
        predictor,
        data,
        protocol,
        batch_size=config.batch_size,
        workers=default_workers() if config.workers is None else config.workers,
        limit=config.limit,
        extra_metrics=config.metrics,
        ablation=config.ablation,
        baselines=baselines,
        save_predictions=config.save_predictions,
        on_progress=None if progress is None else lambda done: progress(done, total),
        share=run.share,
        sparse=sparse,
    )
    partial = combine(run.gather(partial))  # torchrun: every rank's share, else itself
    header = _header(config, predictor, partial)
    label = None if run.share.whole or not run.sharded else _shard_label(shard)
    if label is not None:
        header["shard"] = label
    result = None if label is not None else result_of(partial)
    return EvalReport(header, partial, result, label, run.is_main, config.metrics)


def merge_reports(paths: Sequence[Path]) -> EvalReport:
    """The report of one process from the JSON reports of every shard of a run.

    Raises:
        UsageError: no file; reports of another run (model, weights, protocol, dataset...)
            than the first, named; two reports of one shard; a shard missing.
        InputError: a file that cannot be read or is no shard report, named.
    """
    if not paths:
        raise UsageError("--merge needs the JSON reports of every shard (dpde eval --shard K/N)")
    reports = [_read_report(path) for path in paths]
    first, first_path = reports[0], paths[0]
    for path, report in zip(paths, reports, strict=True):
        for key in (*SAME_RUN, "shard_count", "metrics"):
            if report.get(key) != first.get(key):
                raise UsageError(
                    f"--merge {path}: a shard of another run than {first_path} ({key} "
                    f"{report.get(key)!r}, not {first.get(key)!r})"
                )
    _check_shards(paths, reports)
    partial = combine([_partial(report[PARTIAL_KEY]) for report in reports])
    header = {key: value for key, value in first.items() if key in _HEADER_KEYS}
    header.update(_counts(partial))
    header["device"] = ", ".join(dict.fromkeys(str(report["device"]) for report in reports))
    extra = tuple(first.get("metrics", ()))
    return EvalReport(header, partial, result_of(partial), None, True, extra)


# ------------------------------------------------------------------------------ helpers

_HEADER_KEYS = (*SAME_RUN, "metrics", "ground_truth", "images", "skipped", "failed")


def _protocol(config: EvalConfig):  # -> EvalProtocol
    """The dataset's default protocol with the config's overrides."""
    from dpde_cli.metrics import default_protocol

    overrides = {
        key: value
        for key, value in (
            ("crop", config.crop),
            ("min_depth", config.min_depth),
            ("max_depth", config.max_depth),
            ("averaging", config.averaging),
            ("alignment", config.alignment),
        )
        if value is not None
    }
    return default_protocol(config.dataset, flip_tta=config.flip_tta, **overrides)


def _split(config: EvalConfig) -> str:
    """The split asked for, else the dataset's default."""
    from dpde_cli.dataset_catalog import dataset_spec

    return config.split or dataset_spec(config.dataset).eval_split


def _options(config: EvalConfig) -> dict[str, Any]:
    """The dataset options (--gt, --depth-scale), refused where the dataset has none."""
    options: dict[str, Any] = {}
    if config.gt is not None:
        if config.dataset != "nyuv2":
            raise UsageError(
                f"--gt is for --dataset nyuv2 (filled or raw depth), not {config.dataset}"
            )
        options["gt"] = config.gt
    if config.depth_scale is not None:
        if config.dataset != "folder":
            raise UsageError(f"--depth-scale is for --dataset folder, not {config.dataset}")
        options["depth_scale"] = config.depth_scale
    return options


def _header(config: EvalConfig, predictor: Predictor, partial: EvalPartial) -> dict[str, Any]:
    """The report's fields before its results."""
    return {
        "dataset": config.dataset,
        "split": _split(config),
        "data_dir": [str(d) for d in config.data_dirs],
        "model": config.model,
        "weights": config.weights or "shipped",
        "input_size": list(predictor.inference.input_size),
        "fusion": config.fuse,
        "metrics": list(config.metrics),
        "ground_truth": partial.ground_truth,
        "protocol": partial.protocol,
        **_counts(partial),
        "device": str(predictor.device),
    }


def _counts(partial: EvalPartial) -> dict[str, Any]:
    """The header's counts: images scored, skipped (no valid ground truth), failed, time."""
    first = next(iter(partial.rows.values()))
    return {
        "images": len(first["records"]),
        "skipped": sorted(first["skipped"], key=partial.order.__getitem__),
        "failed": partial.failed,
        "seconds_per_image": round(partial.model_seconds / max(partial.done, 1), 4),
    }


def _shard_label(shard: str | None) -> str:
    """``K/N`` as given to --shard, normalised."""
    from dpde_cli.distributed import parse_shard

    return parse_shard(shard or "1/1").label


def _read_report(path: Path) -> dict[str, Any]:
    """A shard's JSON report, with its shard's number and count.

    Raises:
        InputError: unreadable, not JSON, or without partial sums.
    """
    try:
        report = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(path, f"cannot read it ({exc.strerror or exc})") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(path, f"not a JSON report of dpde eval ({exc})") from None
    if not isinstance(report, dict) or not isinstance(report.get(PARTIAL_KEY), dict):
        raise InputError(
            path, "no partial sums: write shard reports with dpde eval --shard K/N --json FILE"
        )
    try:
        number, count = (int(n) for n in str(report["shard"]).split("/"))
        _partial(report[PARTIAL_KEY])
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(path, f"a damaged shard report ({type(exc).__name__}: {exc})") from None
    report["shard_number"], report["shard_count"] = number, count
    return report


def _partial(data: dict[str, Any]) -> EvalPartial:
    """An EvalPartial from its JSON form (``dataclasses.asdict``)."""
    values = dict(data)
    values["extra"] = tuple(values["extra"])
    return EvalPartial(**values)


def _check_shards(paths: Sequence[Path], reports: Sequence[dict[str, Any]]) -> None:
    """Refuse a shard given twice or missing: the table would count images twice or not.

    Raises:
        UsageError: naming the files, or the missing shards.
    """
    seen: dict[int, Path] = {}
    for path, report in zip(paths, reports, strict=True):
        number = report["shard_number"]
        if number in seen:
            raise UsageError(f"--merge: {seen[number]} and {path} are both shard {report['shard']}")
        seen[number] = path
    count = reports[0]["shard_count"]
    missing = [f"{n}/{count}" for n in range(1, count + 1) if n not in seen]
    if missing:
        raise UsageError(
            f"--merge: shard(s) {', '.join(missing)} missing; the table needs every shard"
        )
