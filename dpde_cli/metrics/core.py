"""The base depth metrics: their names, the shape check every metric and loss shares, and
the per-image sums every base metric follows from (so that images can be pooled)."""

from __future__ import annotations

import math

import torch

BASE_METRICS: tuple[str, ...] = (
    "abs_rel", "sq_rel", "rms", "rms_log", "log10", "silog", "d1", "d2", "d3",
)  # fmt: skip
"""The metrics computed for every image, in reporting order."""

IMAGE_METRICS: tuple[str, ...] = ("ssim", "gsm", "edges")
"""Structure metrics computed only on request (``extra=``)."""

METRIC_LABELS: dict[str, str] = {
    "abs_rel": "REL",
    "sq_rel": "SqRel",
    "rms": "RMS",
    "rms_log": "RMS(log)",
    "log10": "log10",
    "silog": "SILog",
    "d1": "d<1.25",
    "d2": "d<1.25^2",
    "d3": "d<1.25^3",
    "ssim": "SSIM",
    "gsm": "GSM",
    "edges": "edge F1",
}
"""Display names, as in the paper's tables."""

HIGHER_IS_BETTER: frozenset[str] = frozenset({"d1", "d2", "d3", "ssim", "gsm", "edges"})
"""Metrics where a larger value is better; lower is better for the rest."""

_SUM_KEYS = (
    "n",
    "abs_rel",
    "sq_rel",
    "sq_err",
    "log_err",
    "log_err_sq",
    "abs_log_err",
    "d1",
    "d2",
    "d3",
)
_LN10 = math.log(10.0)


def check_depth_batch(pred: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor) -> None:
    """Raise ValueError unless pred, gt and mask are (B, 1, H, W) of one shape.

    Shared by the metrics and the training losses (where the mask is the validity mask).
    """
    if pred.dim() != 4 or pred.shape[1] != 1:
        raise ValueError(f"expected pred of shape (B, 1, H, W), got {tuple(pred.shape)}")
    if gt.shape != pred.shape or mask.shape != pred.shape:
        raise ValueError(
            f"pred {tuple(pred.shape)}, gt {tuple(gt.shape)} and mask {tuple(mask.shape)} "
            "must have the same shape"
        )


def metric_sums(
    pred: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor
) -> dict[str, torch.Tensor]:
    """Per-image sums from which every base metric follows (float64).

    Keys: n (pixel count), abs_rel, sq_rel, sq_err, log_err (sum of e = log d - log g),
    log_err_sq, abs_log_err, d1, d2, d3 (pixel counts under the thresholds). Summing these
    over images and passing them to :func:`metrics_from_sums` gives pooled metrics.

    Args:
        pred: (B, 1, H, W) predicted depth, > 0 on the mask.
        gt: (B, 1, H, W) ground-truth depth, > 0 on the mask.
        mask: (B, 1, H, W) bool.

    Returns:
        dict of name -> (B,) float64.
    """
    check_depth_batch(pred, gt, mask)
    m = mask.flatten(1)
    one = torch.ones((), dtype=torch.float64, device=pred.device)
    d = torch.where(m, pred.flatten(1).double(), one)
    g = torch.where(m, gt.flatten(1).double(), one)
    w = m.double()
    err = d - g
    log_err = torch.log(d) - torch.log(g)
    ratio = torch.maximum(d / g, g / d)
    return {
        "n": w.sum(1),
        "abs_rel": (w * err.abs() / g).sum(1),
        "sq_rel": (w * err * err / g).sum(1),
        "sq_err": (w * err * err).sum(1),
        "log_err": (w * log_err).sum(1),
        "log_err_sq": (w * log_err * log_err).sum(1),
        "abs_log_err": (w * log_err.abs()).sum(1),
        "d1": (w * (ratio < 1.25)).sum(1),
        "d2": (w * (ratio < 1.25**2)).sum(1),
        "d3": (w * (ratio < 1.25**3)).sum(1),
    }


def metrics_from_sums(sums: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Turn :func:`metric_sums` output (per image or summed) into the base metrics.

    Args:
        sums: dict of name -> tensor (any shape, e.g. (B,) or scalar).

    Returns:
        dict of BASE_METRICS name -> tensor of the same shape; NaN where n == 0.
    """
    n = sums["n"]
    empty = n <= 0
    n_safe = torch.where(empty, torch.ones_like(n), n)
    mean_log = sums["log_err"] / n_safe
    mean_log_sq = sums["log_err_sq"] / n_safe
    out = {
        "abs_rel": sums["abs_rel"] / n_safe,
        "sq_rel": sums["sq_rel"] / n_safe,
        "rms": torch.sqrt(sums["sq_err"] / n_safe),
        "rms_log": torch.sqrt(mean_log_sq),
        "log10": sums["abs_log_err"] / n_safe / _LN10,
        "silog": 100.0 * torch.sqrt((mean_log_sq - mean_log**2).clamp(min=0.0)),
        "d1": sums["d1"] / n_safe,
        "d2": sums["d2"] / n_safe,
        "d3": sums["d3"] / n_safe,
    }
    nan = torch.full_like(n_safe, float("nan"))
    return {k: torch.where(empty, nan, v) for k, v in out.items()}
