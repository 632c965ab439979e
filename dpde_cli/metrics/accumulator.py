"""All metrics of a batch (:func:`compute_metrics`) and their average over batches
(:class:`MetricAccumulator`, per image or pooled)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import torch

from dpde_cli.errors import DpdeError, UsageError
from dpde_cli.metrics.boundary import boundary_f1
from dpde_cli.metrics.core import (
    _SUM_KEYS,
    BASE_METRICS,
    IMAGE_METRICS,
    metric_sums,
    metrics_from_sums,
)
from dpde_cli.metrics.structure import gsm_depth, gsm_sums, ssim_depth

if TYPE_CHECKING:
    from dpde_cli.metrics.protocol import Averaging


def compute_metrics(
    pred: torch.Tensor,
    gt: torch.Tensor,
    mask: torch.Tensor,
    extra: Sequence[str] = (),
) -> dict[str, torch.Tensor]:
    """All base metrics, plus the requested structure metrics, per image.

    Args:
        pred: (B, 1, H, W) predicted depth in metres, > 0 on the mask (see
            :func:`prepare_eval`).
        gt: (B, 1, H, W) ground-truth depth in metres.
        mask: (B, 1, H, W) bool, pixels that count.
        extra: any of IMAGE_METRICS ("ssim", "gsm", "edges").

    Returns:
        dict of metric name -> (B,) float64; NaN for an image with an empty mask.

    Example:
        >>> values = compute_metrics(pred, gt, gt > 0)
        >>> values["abs_rel"].shape
        torch.Size([B])
    """
    unknown = [name for name in extra if name not in IMAGE_METRICS]
    if unknown:
        raise UsageError(
            f"unknown metric(s) {', '.join(unknown)}; extra metrics are {', '.join(IMAGE_METRICS)}"
        )
    out = metrics_from_sums(metric_sums(pred, gt, mask))
    if "ssim" in extra:
        out["ssim"] = ssim_depth(pred, gt, mask)
    if "gsm" in extra:
        out["gsm"] = gsm_depth(pred, gt, mask)
    if "edges" in extra:
        out["edges"] = boundary_f1(pred, gt, mask)
    return out


class MetricAccumulator:
    """Accumulates metrics over batches; averages per image (default) or pooled.

    ``averaging="image"``: every metric is computed per image and the result is the mean
    over images. ``"pixel"``: the base metrics and GSM come from sums over all pixels of
    all images (SSIM, a windowed image score, is still the mean over images). Images with
    no pixel in the mask are skipped and their names kept in ``skipped``.

    Args:
        averaging: "image" or "pixel".
        extra: structure metrics to add, any of IMAGE_METRICS.

    Attributes:
        skipped: names of the images with an empty mask, in order.
        records: one dict per counted image: "name" and every metric (floats), for
            per-image reports.

    Example:
        >>> acc = MetricAccumulator("image", extra=("ssim", "gsm"))
        >>> acc.update(pred, gt, mask, names=["a", "b"])
        >>> acc.compute(), acc.skipped
    """

    def __init__(self, averaging: Averaging = "image", extra: Sequence[str] = ()) -> None:
        if averaging not in ("image", "pixel"):
            raise UsageError(f"averaging must be 'image' or 'pixel', got {averaging!r}")
        unknown = [name for name in extra if name not in IMAGE_METRICS]
        if unknown:
            raise UsageError(f"unknown metric(s) {', '.join(unknown)}")
        self.averaging = averaging
        self.extra = tuple(extra)
        self.reset()

    def reset(self) -> None:
        """Forget everything accumulated."""
        self.skipped: list[str] = []
        self.records: list[dict[str, float | str]] = []
        self._sums = {key: 0.0 for key in _SUM_KEYS}
        self._gsm_sum = 0.0
        self._gsm_count = 0.0
        self._seen = 0

    @property
    def n_images(self) -> int:
        """Images counted (not skipped)."""
        return len(self.records)

    def update(
        self,
        pred: torch.Tensor,
        gt: torch.Tensor,
        mask: torch.Tensor,
        names: Sequence[str] | None = None,
    ) -> dict[str, torch.Tensor]:
        """Add one batch.

        Args:
            pred: (B, 1, H, W) predicted depth, prepared (see :func:`prepare_eval`).
            gt: (B, 1, H, W) ground-truth depth.
            mask: (B, 1, H, W) bool.
            names: B image names (default: running indices "0", "1", ...).

        Returns:
            Per-image metrics of this batch: name -> (B,) float64 (NaN for skipped images).
        """
        batch = pred.shape[0]
        if names is None:
            names = [str(self._seen + i) for i in range(batch)]
        if len(names) != batch:
            raise ValueError(f"{len(names)} names for a batch of {batch}")
        self._seen += batch
        sums = metric_sums(pred, gt, mask)
        values = metrics_from_sums(sums)
        if "ssim" in self.extra:
            values["ssim"] = ssim_depth(pred, gt, mask)
        if "edges" in self.extra:
            values["edges"] = boundary_f1(pred, gt, mask)
        if "gsm" in self.extra:
            gsm_total, gsm_count = gsm_sums(pred, gt, mask)
            values["gsm"] = torch.where(
                gsm_count > 0,
                gsm_total / gsm_count.clamp(min=1.0),
                torch.full_like(gsm_total, float("nan")),
            )
            self._gsm_sum += float(gsm_total.sum())
            self._gsm_count += float(gsm_count.sum())
        counted = sums["n"] > 0
        for key in _SUM_KEYS:
            self._sums[key] += float(sums[key][counted].sum())
        for i, name in enumerate(names):
            if not bool(counted[i]):
                self.skipped.append(str(name))
                continue
            record: dict[str, float | str] = {"name": str(name)}
            record.update({key: float(v[i]) for key, v in values.items()})
            self.records.append(record)
        return values

    def state(self) -> dict[str, Any]:
        """Everything accumulated, as JSON-ready values (``merged`` adds states up)."""
        return {
            "records": self.records,
            "skipped": self.skipped,
            "sums": dict(self._sums),
            "gsm": [self._gsm_sum, self._gsm_count],
        }

    @classmethod
    def merged(
        cls,
        averaging: Averaging,
        extra: Sequence[str],
        states: Sequence[dict[str, Any]],
        rank: Callable[[str], int],
    ) -> MetricAccumulator:
        """One accumulator holding the ``state()`` of several, over disjoint images.

        Images are put in the order of ``rank(name)`` (their place in the dataset), so
        that per-image averages equal, bit for bit, one accumulator that saw them all;
        pooled sums are added in float64 (equal to rounding).
        """
        merged = cls(averaging, extra)
        for state in states:
            merged.records += state["records"]
            merged.skipped += state["skipped"]
            for key, value in state["sums"].items():
                merged._sums[key] += value
            merged._gsm_sum += state["gsm"][0]
            merged._gsm_count += state["gsm"][1]
        merged.records.sort(key=lambda record: rank(str(record["name"])))
        merged.skipped.sort(key=rank)
        merged._seen = len(merged.records) + len(merged.skipped)
        return merged

    def compute(self) -> dict[str, float]:
        """The averaged metrics over everything added.

        Returns:
            dict of metric name -> float (BASE_METRICS, then the extra ones). A structure
            metric that is NaN for some image (e.g. an SSIM box smaller than its window) is
            averaged over the images where it is defined.

        Raises:
            DpdeError: no image had a pixel in its mask.
        """
        if not self.records:
            raise DpdeError(
                f"no image with valid ground truth to evaluate ({len(self.skipped)} skipped)"
            )
        names = list(BASE_METRICS) + list(self.extra)
        per_image = {
            key: torch.tensor([float(r[key]) for r in self.records], dtype=torch.float64)
            for key in names
        }
        result = {key: float(torch.nanmean(v)) for key, v in per_image.items()}
        if self.averaging == "pixel":
            pooled = metrics_from_sums(
                {key: torch.tensor(v, dtype=torch.float64) for key, v in self._sums.items()}
            )
            result.update({key: float(v) for key, v in pooled.items()})
            if "gsm" in self.extra and self._gsm_count > 0:
                result["gsm"] = self._gsm_sum / self._gsm_count
        return result
