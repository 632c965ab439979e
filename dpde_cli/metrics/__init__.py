"""Depth metrics with the standard names, alignment helpers and evaluation protocols.

Every function works on batches: ``pred`` and ``gt`` are (B, 1, H, W) depth tensors and
``mask`` is a (B, 1, H, W) bool tensor of the pixels that count. A pixel outside the mask
never enters any value; an image with no pixel in the mask gets NaN for every metric and is
reported as skipped by :class:`MetricAccumulator`, never divided by zero.

Definitions, with d the prediction and g the ground truth over the N pixels in the mask
(all sums are per image; ``log`` is the natural logarithm):

    abs_rel  REL      mean |d - g| / g
    sq_rel   SqRel    mean (d - g)^2 / g
    rms      RMS      sqrt(mean (d - g)^2)                         metres
    rms_log  RMS(log) sqrt(mean (log d - log g)^2)
    log10    log10    mean |log10 d - log10 g|
    silog    SILog    100 * sqrt(mean e^2 - (mean e)^2), e = log d - log g
                      (the form of BTS / AdaBins: lambda = 1, times 100)
    d1/d2/d3 delta    fraction of pixels with max(d / g, g / d) < 1.25, 1.25^2, 1.25^3
    ssim     SSIM     see :func:`ssim_depth` (on request)
    gsm      GSM      see :func:`gsm_depth` (on request)
    edges    edge F1  depth-boundary F-score, see :func:`boundary_f1` (on request)

Evaluation protocol (see :class:`EvalProtocol` and :func:`prepare_eval`): the prediction is
resized to the ground truth, the mask is the valid ground truth inside the crop with
``min_depth < g < max_depth``, the prediction is optionally aligned to the ground truth
(median scaling or least-squares scale and shift, per image) and then clamped to
``[min_depth, max_depth]``, as BTS, AdaBins and monodepth2 do.

Modules: ``core`` (names, sums, base metrics), ``alignment`` (median, least squares),
``structure`` (SSIM, GSM), ``boundary`` (depth-boundary F1), ``protocol``
(:class:`EvalProtocol`, defaults, :func:`prepare_eval`), ``accumulator`` (:func:`compute_metrics`,
:class:`MetricAccumulator`); every public name is importable from here.

Example:
    >>> protocol = default_protocol("nyuv2")
    >>> acc = MetricAccumulator(protocol.averaging)
    >>> pred, gt, mask = prepare_eval(pred, batch["depth"], batch["valid"], protocol)
    >>> per_image = acc.update(pred, gt, mask, names=batch["name"])
    >>> acc.compute()["abs_rel"]
"""

from dpde_cli.metrics.accumulator import MetricAccumulator, compute_metrics
from dpde_cli.metrics.alignment import align_lstsq, align_median, lstsq_scale_shift, median_scale
from dpde_cli.metrics.boundary import boundary_f1
from dpde_cli.metrics.core import (
    BASE_METRICS,
    HIGHER_IS_BETTER,
    IMAGE_METRICS,
    METRIC_LABELS,
    check_depth_batch,
    metric_sums,
    metrics_from_sums,
)
from dpde_cli.metrics.protocol import _CHOICES as _CHOICES  # the CLI enums' test reads it
from dpde_cli.metrics.protocol import (
    Alignment,
    Averaging,
    CropName,
    EvalProtocol,
    Upsample,
    default_protocol,
    depth_range_mask,
    eigen_crop_mask,
    prepare_eval,
)
from dpde_cli.metrics.structure import gsm_depth, gsm_sums, ssim_depth

__all__ = [
    "BASE_METRICS",
    "HIGHER_IS_BETTER",
    "IMAGE_METRICS",
    "METRIC_LABELS",
    "Alignment",
    "Averaging",
    "CropName",
    "EvalProtocol",
    "MetricAccumulator",
    "Upsample",
    "align_lstsq",
    "align_median",
    "boundary_f1",
    "check_depth_batch",
    "compute_metrics",
    "default_protocol",
    "depth_range_mask",
    "eigen_crop_mask",
    "gsm_depth",
    "gsm_sums",
    "lstsq_scale_shift",
    "median_scale",
    "metric_sums",
    "metrics_from_sums",
    "prepare_eval",
    "ssim_depth",
]
