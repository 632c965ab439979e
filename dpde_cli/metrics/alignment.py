"""Aligning a prediction to the ground truth per image: median scaling and least-squares
scale and shift."""

from __future__ import annotations

import torch

from dpde_cli.metrics.core import check_depth_batch


def _masked_median(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Median of x over the mask, per image (the mean of the two middle values).

    Args:
        x: (B, 1, H, W).
        mask: (B, 1, H, W) bool.

    Returns:
        (B,) medians, NaN where the mask is empty.
    """
    flat = torch.where(mask, x, torch.full_like(x, float("inf"))).flatten(1)
    ordered, _ = torch.sort(flat, dim=1)  # masked-out values (inf) sort last
    n = mask.flatten(1).sum(1)
    lo = ((n - 1).clamp(min=0) // 2).unsqueeze(1)
    hi = (n // 2).clamp(max=flat.shape[1] - 1).unsqueeze(1)
    median = 0.5 * (ordered.gather(1, lo) + ordered.gather(1, hi)).squeeze(1)
    return torch.where(n > 0, median, torch.full_like(median, float("nan")))


def median_scale(pred: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-image scale median(gt) / median(pred) over the mask (monodepth2's ratio).

    Args:
        pred: (B, 1, H, W) predicted depth.
        gt: (B, 1, H, W) ground-truth depth.
        mask: (B, 1, H, W) bool, pixels used.

    Returns:
        (B,) scale; 1 where the mask is empty or the prediction's median is not positive.
    """
    check_depth_batch(pred, gt, mask)
    scale = _masked_median(gt, mask) / _masked_median(pred, mask)
    ok = torch.isfinite(scale) & (scale > 0)
    return torch.where(ok, scale, torch.ones_like(scale))


def align_median(pred: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Scale each prediction so that its median over the mask equals the ground truth's.

    Args:
        pred: (B, 1, H, W) predicted depth.
        gt: (B, 1, H, W) ground-truth depth.
        mask: (B, 1, H, W) bool, pixels used to fit the scale.

    Returns:
        (B, 1, H, W) pred * median(gt) / median(pred); unchanged where the mask is empty.

    Example:
        >>> aligned = align_median(pred, gt, gt > 0)
    """
    return pred * median_scale(pred, gt, mask).to(pred.dtype).view(-1, 1, 1, 1)


def lstsq_scale_shift(
    pred: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image least-squares fit of gt ~ s * pred + t over the mask, in depth space.

    Solved in closed form in float64. Where the prediction is constant over the mask the
    scale is 1 and only the shift is fitted; where the mask is empty s = 1, t = 0.

    Args:
        pred: (B, 1, H, W) predicted depth.
        gt: (B, 1, H, W) ground-truth depth.
        mask: (B, 1, H, W) bool, pixels used.

    Returns:
        (scale, shift), each (B,) float64.
    """
    check_depth_batch(pred, gt, mask)
    m = mask.flatten(1).double()
    x = torch.where(mask, pred, torch.zeros_like(pred)).flatten(1).double()
    y = torch.where(mask, gt, torch.zeros_like(gt)).flatten(1).double()
    n = m.sum(1)
    sx, sy = x.sum(1), y.sum(1)
    sxx, sxy = (x * x).sum(1), (x * y).sum(1)
    det = n * sxx - sx * sx
    n_safe = n.clamp(min=1.0)
    degenerate = det <= 1e-12 * (n_safe * sxx).clamp(min=1e-300)
    scale = torch.where(degenerate, torch.ones_like(det), (n * sxy - sx * sy) / det)
    shift = (sy - scale * sx) / n_safe
    shift = torch.where(n > 0, shift, torch.zeros_like(shift))
    return scale, shift


def align_lstsq(pred: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Apply the per-image least-squares scale and shift of :func:`lstsq_scale_shift`.

    Args:
        pred: (B, 1, H, W) predicted depth.
        gt: (B, 1, H, W) ground-truth depth.
        mask: (B, 1, H, W) bool, pixels used to fit.

    Returns:
        (B, 1, H, W) s * pred + t, in pred's dtype.

    Example:
        >>> aligned = align_lstsq(pred, gt, gt > 0)
    """
    scale, shift = lstsq_scale_shift(pred, gt, mask)
    aligned = pred.double() * scale.view(-1, 1, 1, 1) + shift.view(-1, 1, 1, 1)
    return aligned.to(pred.dtype)
