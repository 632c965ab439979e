"""The DPDE training losses: BerHu, the FSIM term, and the gradient network's log-L1.

Every loss takes the ground-truth validity mask and lets only valid ground-truth pixels
count: an invalid pixel adds nothing to the value and sends no gradient to the prediction.
Gradients follow the convention of :mod:`dpde_cli.geometry` (forward differences, metres
per pixel, zero on the last column / row).

Global network (stage 1): ``lambda_B * berhu_loss + lambda_F * fsim_loss``, optionally
``+ lambda_S * silog_loss`` (not in the paper; off by default).
Gradient network (stage 2): ``gradient_log_l1_loss``.

Example:
    >>> loss = berhu_loss(pred, gt, valid) + fsim_loss(pred, gt, valid)
"""

from __future__ import annotations

import torch
from torch import nn

from dpde_cli.geometry import spatial_gradients, valid_gradient_masks
from dpde_cli.metrics import check_depth_batch

BERHU_THRESHOLD = 0.2
"""c = BERHU_THRESHOLD * max |residual| over the batch's valid pixels (Laina et al.)."""

SILOG_VARIANCE_FOCUS = 0.85
"""lambda of the scale-invariant log loss (Eigen et al. 2014; 0.85 as in BTS)."""

FSIM_MIN_SIZE = 8
"""Smallest side (pixels, after piq's internal average pooling) the FSIM term accepts."""
FSIM_RAMP = 4e-6
"""Step per pixel of the ramp added to both FSIM images (1e-3 grey levels; fsim_inputs)."""


def berhu(residual: torch.Tensor, c: torch.Tensor | float) -> torch.Tensor:
    """The reverse Huber function, elementwise.

    ``|r|`` where ``|r| <= c``, else ``(r^2 + c^2) / (2c)``: L1 near zero, a scaled L2 for
    large residuals, continuous (value and slope) at ``|r| = c``.

    Args:
        residual: any shape.
        c: threshold > 0 (a scalar or a tensor broadcastable to ``residual``).

    Returns:
        Same shape as ``residual``.

    Example:
        >>> berhu(torch.tensor([0.1, 2.0]), 1.0)
        tensor([0.1000, 2.5000])
    """
    c = torch.as_tensor(c, dtype=residual.dtype, device=residual.device)
    c_safe = c.clamp(min=torch.finfo(residual.dtype).tiny)
    absolute = residual.abs()
    return torch.where(absolute <= c, absolute, (residual * residual + c * c) / (2 * c_safe))


def berhu_loss(
    pred: torch.Tensor,
    gt: torch.Tensor,
    valid: torch.Tensor,
    threshold: float = BERHU_THRESHOLD,
) -> torch.Tensor:
    """Mean BerHu over the valid pixels of a batch, with the adaptive threshold.

    ``c = threshold * max |pred - gt|`` over all valid pixels of the batch, treated as a
    constant (no gradient flows through it).

    Args:
        pred: (B, 1, H, W) predicted depth, metres.
        gt: (B, 1, H, W) ground-truth depth, metres.
        valid: (B, 1, H, W) bool, pixels with ground truth.
        threshold: the factor of c (0.2 in the paper).

    Returns:
        Scalar tensor, metres; 0 (with a gradient of zeros) when no pixel is valid.

    Example:
        >>> berhu_loss(torch.ones(1, 1, 4, 4), torch.ones(1, 1, 4, 4), torch.ones(1, 1, 4, 4) > 0)
        tensor(0.)
    """
    check_depth_batch(pred, gt, valid)
    residual = (pred - gt)[valid]
    if residual.numel() == 0:
        return pred.sum() * 0.0
    c = threshold * residual.detach().abs().max()
    return berhu(residual, c).mean()


def silog_loss(
    pred: torch.Tensor,
    gt: torch.Tensor,
    valid: torch.Tensor,
    variance_focus: float = SILOG_VARIANCE_FOCUS,
) -> torch.Tensor:
    """Scale-invariant log loss, per image, averaged over the batch.

    ``sqrt(mean(d^2) - lambda * mean(d)^2)`` with ``d = log pred - log gt`` over an
    image's valid pixels (Eigen et al. 2014, the form BTS and AdaBins train with, without
    their x10). lambda = 1 is fully scale-invariant; 0.85 keeps 15 % of the scale error, so
    the prediction stays metric. Unlike BerHu on metres, every depth counts equally, which
    is what AbsRel and delta1 measure. Not part of the paper's recipe.

    Args:
        pred, gt: (B, 1, H, W) depth, metres (pred is clamped to 1e-3 before the log).
        valid: (B, 1, H, W) bool.
        variance_focus: lambda in [0, 1].

    Returns:
        Scalar tensor; images without valid pixels add nothing (0 when none has any).

    Example:
        >>> silog_loss(torch.ones(1, 1, 4, 4), torch.ones(1, 1, 4, 4), torch.ones(1, 1, 4, 4) > 0)
        tensor(0.)
    """
    check_depth_batch(pred, gt, valid)
    weight = valid.flatten(1).float()
    count = weight.sum(dim=1)
    log_gt = torch.where(valid, gt, torch.ones_like(gt)).clamp_min(1e-3).log()
    d = (pred.float().clamp_min(1e-3).log() - log_gt).flatten(1) * weight
    mean_d = d.sum(dim=1) / count.clamp_min(1)
    mean_d2 = (d * d).sum(dim=1) / count.clamp_min(1)
    # the clamp keeps sqrt's gradient finite where the prediction is exact
    per_image = (mean_d2 - variance_focus * mean_d * mean_d).clamp_min(1e-12).sqrt()
    has_pixels = count > 0
    if not bool(has_pixels.any()):
        return pred.sum() * 0.0
    return per_image[has_pixels].mean()


def fsim_inputs(
    pred: torch.Tensor, gt: torch.Tensor, valid: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Map a depth pair to the [0, 1] images piq's FSIM wants, with invalid pixels neutral.

    Scale: per image, both maps are divided by the largest of the valid ground truth and
    the (detached) prediction, so neither needs clamping and no gradient is cut off.
    Invalid pixels: both maps take the detached prediction's value there, so the two images
    agree on them exactly and the prediction receives no gradient at those pixels.
    Non-finite predictions (a diverged network) become 0 so piq does not fail; the caller
    sees the divergence in the BerHu term.
    Flat patches: piq's gradient magnitude sqrt(gx^2 + gy^2) has a 0/0 (NaN) derivative
    where the image gradient is exactly 0, which bf16 autocast makes common (depth falls into
    plateaus) and any flat patch makes possible. Both images get the same faint ramp
    (FSIM_RAMP per pixel along rows and columns, ~1e-3 grey levels), so no gradient is ever
    exactly 0; identical maps stay identical, and the score moves by about 2e-4 (rendered
    240x320 scenes).

    Args:
        pred, gt: (B, 1, H, W) depth, metres; valid: (B, 1, H, W) bool.

    Returns:
        (x, y): (B, 1, H, W) float32 in [0, 1], x from the prediction, y from the ground truth.
    """
    pred = torch.nan_to_num(pred.float(), nan=0.0, posinf=0.0, neginf=0.0)  # a diverged net
    gt = gt.float()
    held = pred.detach()
    gt_valid = torch.where(valid, gt, torch.zeros_like(gt))
    scale = torch.maximum(gt_valid.flatten(1).amax(1), held.clamp(min=0).flatten(1).amax(1))
    scale = scale.clamp(min=1e-6).view(-1, 1, 1, 1)
    x = torch.where(valid, pred, held).clamp(min=0) / scale
    y = torch.where(valid, gt_valid, held.clamp(min=0)) / scale
    height, width = x.shape[-2:]
    rows = torch.arange(height, device=x.device, dtype=x.dtype).view(-1, 1)
    cols = torch.arange(width, device=x.device, dtype=x.dtype).view(1, -1)
    ramp = FSIM_RAMP * (rows + cols)
    keep = 1.0 - FSIM_RAMP * (height + width - 2)  # so that x, y stay in [0, 1]
    return x.clamp(max=1.0) * keep + ramp, y.clamp(max=1.0) * keep + ramp


def fsim_loss(pred: torch.Tensor, gt: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """The paper's FSIM term ``(1 - FSIM(d, d_gt)) / 2``, averaged over the batch.

    FSIM (Zhang et al. 2011) through ``piq.fsim`` on single-channel maps (no chromatic
    part), computed in float32 outside autocast (it uses FFTs). The maps are prepared by
    :func:`fsim_inputs`. Images with no valid pixel contribute 0.

    Args:
        pred: (B, 1, H, W) predicted depth, metres.
        gt: (B, 1, H, W) ground-truth depth, metres.
        valid: (B, 1, H, W) bool.

    Returns:
        Scalar tensor in about [0, 0.5]; 0 for identical maps.

    Raises:
        ValueError: a side shorter than FSIM_MIN_SIZE pixels.

    Example:
        >>> fsim_loss(depth, depth, depth > 0)
        tensor(0.)
    """
    import piq

    check_depth_batch(pred, gt, valid)
    if min(pred.shape[-2:]) < FSIM_MIN_SIZE:
        raise ValueError(
            f"the FSIM term needs maps of at least {FSIM_MIN_SIZE}x{FSIM_MIN_SIZE} pixels, "
            f"got {tuple(pred.shape[-2:])}"
        )
    with torch.autocast(device_type=pred.device.type, enabled=False):
        x, y = fsim_inputs(pred, gt, valid)
        score = piq.fsim(x, y, reduction="none", data_range=1.0, chromatic=False)
    has_valid = valid.flatten(1).any(1)
    per_image = torch.where(has_valid, (1.0 - score) / 2.0, torch.zeros_like(score))
    return per_image.mean()


def gradient_terms(
    pred_gradients: torch.Tensor, gt_depth: torch.Tensor, valid: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-gradient log-L1 terms ``ln(|G - grad d_gt| + 1)`` and the mask of those that count.

    Args:
        pred_gradients: (B, 2, H, W) predicted (G_x, G_y), metres per pixel.
        gt_depth: (B, 1, H, W) ground-truth depth, metres.
        valid: (B, 1, H, W) bool.

    Returns:
        (terms, mask): (B, 2, H, W) float32 terms and bool mask; a gradient counts when
        both of its pixels are valid.
    """
    if pred_gradients.dim() != 4 or pred_gradients.shape[1] != 2:
        raise ValueError(
            f"expected gradients of shape (B, 2, H, W), got {tuple(pred_gradients.shape)}"
        )
    check_depth_batch(gt_depth, gt_depth, valid)
    if pred_gradients.shape[-2:] != gt_depth.shape[-2:] or len(pred_gradients) != len(gt_depth):
        raise ValueError(
            f"gradients {tuple(pred_gradients.shape)} and depth {tuple(gt_depth.shape)} differ"
        )
    gt = torch.where(valid, gt_depth, torch.zeros_like(gt_depth)).float()
    gx, gy = spatial_gradients(gt)
    vx, vy = valid_gradient_masks(valid)
    target = torch.cat([gx, gy], dim=1)
    mask = torch.cat([vx, vy], dim=1)
    terms = torch.log1p((pred_gradients.float() - target).abs())
    return terms, mask


def gradient_log_l1_loss(
    pred_gradients: torch.Tensor, gt_depth: torch.Tensor, valid: torch.Tensor
) -> torch.Tensor:
    """The gradient network's loss: mean of ``ln(|G - grad d_gt| + 1)`` over valid gradients.

    Each horizontal and each vertical gradient whose two pixels are valid is one term (the
    L1 norm of the paper's ``||G_p - grad d_gt_p||_1`` taken per component, so a pixel with
    only one valid gradient still counts for that one).

    Args:
        pred_gradients: (B, 2, H, W) predicted (G_x, G_y), metres per pixel.
        gt_depth: (B, 1, H, W) ground-truth depth, metres.
        valid: (B, 1, H, W) bool.

    Returns:
        Scalar tensor; 0 at perfect gradients or when no gradient is valid.

    Example:
        >>> gx, gy = spatial_gradients(depth)
        >>> gradient_log_l1_loss(torch.cat([gx, gy], 1), depth, depth > 0)
        tensor(0.)
    """
    terms, mask = gradient_terms(pred_gradients, gt_depth, valid)
    if not bool(mask.any()):
        return pred_gradients.sum() * 0.0
    return terms[mask].mean()


class BerHuLoss(nn.Module):
    """Module form of :func:`berhu_loss`."""

    def __init__(self, threshold: float = BERHU_THRESHOLD) -> None:
        super().__init__()
        self.threshold = threshold

    def forward(self, pred: torch.Tensor, gt: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        return berhu_loss(pred, gt, valid, self.threshold)


class FSIMLoss(nn.Module):
    """Module form of :func:`fsim_loss`."""

    def forward(self, pred: torch.Tensor, gt: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        return fsim_loss(pred, gt, valid)


class GlobalDepthLoss(nn.Module):
    """Stage-1 loss ``lambda_B * BerHu + lambda_F * FSIM + lambda_S * SILog``.

    Returns (total, parts).

    Args:
        lambda_berhu, lambda_fsim: the paper's weights (1 and 1); a zero weight skips
            that term's computation.
        lambda_silog: weight of :func:`silog_loss` (0: the paper's loss).
    """

    def __init__(
        self, lambda_berhu: float = 1.0, lambda_fsim: float = 1.0, lambda_silog: float = 0.0
    ) -> None:
        super().__init__()
        self.lambda_berhu = lambda_berhu
        self.lambda_fsim = lambda_fsim
        self.lambda_silog = lambda_silog

    def forward(
        self, pred: torch.Tensor, gt: torch.Tensor, valid: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        parts: dict[str, torch.Tensor] = {}
        total = pred.new_zeros((), dtype=torch.float32)
        if self.lambda_berhu:
            parts["berhu"] = berhu_loss(pred.float(), gt, valid)
            total = total + self.lambda_berhu * parts["berhu"]
        if self.lambda_fsim:
            parts["fsim"] = fsim_loss(pred, gt, valid)
            total = total + self.lambda_fsim * parts["fsim"]
        if self.lambda_silog:
            parts["silog"] = silog_loss(pred, gt, valid)
            total = total + self.lambda_silog * parts["silog"]
        return total, parts


class GradientLogL1Loss(nn.Module):
    """Module form of :func:`gradient_log_l1_loss`."""

    def forward(
        self, pred_gradients: torch.Tensor, gt_depth: torch.Tensor, valid: torch.Tensor
    ) -> torch.Tensor:
        return gradient_log_l1_loss(pred_gradients, gt_depth, valid)
