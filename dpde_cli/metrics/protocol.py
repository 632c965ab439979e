"""Evaluation protocols: every choice that changes a reported number (crop, depth range,
alignment, averaging, upsampling, clamping), each dataset's default (from the dataset
catalogue), and :func:`prepare_eval`, which applies one to a batch."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Literal

import torch
import torch.nn.functional as F

from dpde_cli.dataset_catalog import dataset_spec
from dpde_cli.errors import UsageError
from dpde_cli.metrics.alignment import align_lstsq, align_median

_MIN_POSITIVE = 1e-6  # clamp floor that keeps logarithms finite when min_depth is 0

CropName = Literal["eigen", "none"]
Averaging = Literal["image", "pixel"]
Alignment = Literal["none", "median", "lstsq"]
Upsample = Literal["bilinear", "nearest"]

_CHOICES = {
    "crop": ("eigen", "none"),
    "averaging": ("image", "pixel"),
    "alignment": ("none", "median", "lstsq"),
    "upsample": ("bilinear", "nearest"),
}


@dataclass(frozen=True)
class EvalProtocol:
    """Every choice that changes a reported number. ``describe()`` names them in one line.

    Attributes:
        crop: "eigen" (:func:`eigen_crop_mask`) or "none".
        min_depth: ground truth must exceed this (metres); predictions are clamped to it.
        max_depth: ground truth must be below this (metres; ``math.inf`` for no cap);
            predictions are clamped to it.
        averaging: "image" = each metric per image, then the mean over images (the
            BTS / AdaBins convention); "pixel" = pooled over all pixels of all images.
        alignment: "none" (metric depth), "median" (scale by median(gt)/median(pred)) or
            "lstsq" (least-squares scale and shift in depth), fitted per image on the mask.
        flip_tta: average the prediction with the flipped prediction of the flipped image
            (applied by the caller that runs the model; recorded here).
        upsample: how the prediction is resized to the ground truth's size (bilinear,
            align_corners=False; or nearest).
        clamp_pred: clamp predictions to [min_depth, max_depth] after alignment.
    """

    crop: CropName = "none"
    min_depth: float = 1e-3
    max_depth: float = 10.0
    averaging: Averaging = "image"
    alignment: Alignment = "none"
    flip_tta: bool = False
    upsample: Upsample = "bilinear"
    clamp_pred: bool = True

    def __post_init__(self) -> None:
        for field, allowed in _CHOICES.items():
            value = getattr(self, field)
            if value not in allowed:
                raise UsageError(f"{field} must be one of {', '.join(allowed)}, got {value!r}")
        if not (self.min_depth >= 0 and self.max_depth > self.min_depth):
            raise UsageError(
                f"need 0 <= min_depth < max_depth, got {self.min_depth} and {self.max_depth}"
            )

    def describe(self, units: str = "m") -> str:
        """One line naming every choice, e.g. for the header of an evaluation report.

        ``units``: the ground truth's ("m"; "" for relative depth, which has none)."""
        crop = (
            "Eigen crop (rows 45:471, cols 41:601 at 480x640, scaled)"
            if self.crop == "eigen"
            else "no crop"
        )
        cap = "inf" if math.isinf(self.max_depth) else f"{self.max_depth:g}"
        floor = max(self.min_depth, _MIN_POSITIVE)
        clamp = f"pred clamped to [{floor:g}, {cap}]" if self.clamp_pred else "pred not clamped"
        averaging = (
            "mean of per-image metrics" if self.averaging == "image" else "pooled over all pixels"
        )
        alignment = {
            "none": "no alignment (metric)",
            "median": "median scaling per image",
            "lstsq": "least-squares scale+shift per image",
        }[self.alignment]
        return (
            f"{crop}; valid {self.min_depth:g} < gt < {cap}{' ' + units if units else ''}; "
            f"{clamp}; {alignment}; "
            f"{averaging}; flip TTA {'on' if self.flip_tta else 'off'}; "
            f"{self.upsample} upsampling to GT size"
        )

    def eval_mask(self, gt: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """The pixels that count: valid ground truth in the depth range and the crop.

        Args:
            gt: (B, 1, H, W) ground-truth depth, metres.
            valid: (B, 1, H, W) bool validity from the dataset.

        Returns:
            (B, 1, H, W) bool.
        """
        mask = valid.bool() & depth_range_mask(gt, self.min_depth, self.max_depth)
        if self.crop == "eigen":
            mask = mask & eigen_crop_mask(gt.shape[-2], gt.shape[-1], device=gt.device)
        return mask


def default_protocol(dataset_name: str, **overrides: object) -> EvalProtocol:
    """The default evaluation protocol of a dataset, with optional field overrides.

    Each dataset's is in its catalogue entry (``dpde_cli.dataset_catalog``): nyuv2 = Eigen
    crop, 1e-3 < gt < 10 m; make3d = no crop, gt < 70 m (C1); middlebury = no crop, any
    positive gt, median alignment; folder and synthetic = no crop, 1e-3 < gt < 10 m. All:
    per-image averaging, no flip TTA, bilinear upsampling, predictions clamped to the depth
    range.

    Args:
        dataset_name: a name from ``dpde_cli.dataset_catalog.list_datasets()``.
        **overrides: EvalProtocol fields to change (e.g. ``max_depth=80.0``).

    Returns:
        The frozen protocol.

    Raises:
        UsageError: unknown dataset name or bad override.
    """
    protocol = EvalProtocol(**dataset_spec(dataset_name).protocol)
    try:
        return replace(protocol, **overrides)  # type: ignore[arg-type]
    except TypeError as exc:
        raise UsageError(f"bad protocol override: {exc}") from None


def prepare_eval(
    pred: torch.Tensor, gt: torch.Tensor, valid: torch.Tensor, protocol: EvalProtocol
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Apply a protocol: resize, mask, align and clamp, ready for the metrics.

    Order: (1) resize the prediction to the ground truth's (H, W) with
    ``protocol.upsample``; (2) mask = valid & crop & min_depth < gt < max_depth;
    (3) alignment fitted on the mask; (4) clamp to [min_depth, max_depth] (floor 1e-6 so
    logarithms stay finite).

    Args:
        pred: (B, 1, h, w) predicted depth in metres (any h, w).
        gt: (B, 1, H, W) ground-truth depth in metres.
        valid: (B, 1, H, W) bool validity of gt.
        protocol: the protocol.

    Returns:
        (pred, gt, mask), each (B, 1, H, W); pred float32 or gt's dtype.
    """
    if pred.dim() != 4 or gt.dim() != 4 or pred.shape[:2] != gt.shape[:2]:
        raise ValueError(
            f"expected (B, 1, h, w) pred and gt, got {tuple(pred.shape)} and {tuple(gt.shape)}"
        )
    pred = pred.to(gt.dtype) if gt.is_floating_point() else pred.float()
    if pred.shape[-2:] != gt.shape[-2:]:
        if protocol.upsample == "bilinear":
            pred = F.interpolate(pred, size=gt.shape[-2:], mode="bilinear", align_corners=False)
        else:
            pred = F.interpolate(pred, size=gt.shape[-2:], mode="nearest-exact")
    mask = protocol.eval_mask(gt, valid)
    if protocol.alignment == "median":
        pred = align_median(pred, gt, mask)
    elif protocol.alignment == "lstsq":
        pred = align_lstsq(pred, gt, mask)
    if protocol.clamp_pred:
        pred = pred.clamp(min=max(protocol.min_depth, _MIN_POSITIVE), max=protocol.max_depth)
    return pred, gt, mask


def eigen_crop_mask(
    height: int, width: int, device: torch.device | str | None = None
) -> torch.Tensor:
    """The Eigen et al. (NIPS 2014) NYUv2 evaluation crop as a boolean mask.

    At 480x640 it keeps rows 45:471 and columns 41:601 (the crop of BTS / AdaBins'
    ``eigen_crop``). At another size the bounds scale proportionally and are rounded down:
    ``rows (45*H)//480 : (471*H)//480``, ``cols (41*W)//640 : (601*W)//640`` (so 240x320
    keeps rows 22:235 and columns 20:300).

    Args:
        height: image height H in pixels.
        width: image width W in pixels.
        device: torch device of the result.

    Returns:
        (H, W) bool tensor, True inside the crop.
    """
    top, bottom = (45 * height) // 480, (471 * height) // 480
    left, right = (41 * width) // 640, (601 * width) // 640
    mask = torch.zeros(height, width, dtype=torch.bool, device=device)
    mask[top:bottom, left:right] = True
    return mask


def depth_range_mask(gt: torch.Tensor, min_depth: float, max_depth: float) -> torch.Tensor:
    """Pixels whose ground truth lies strictly inside (min_depth, max_depth) metres.

    Args:
        gt: (...) ground-truth depth in metres; NaN and inf are outside.
        min_depth: lower cap, exclusive.
        max_depth: upper cap, exclusive (``math.inf`` for none).

    Returns:
        Bool tensor of gt's shape.
    """
    return torch.isfinite(gt) & (gt > min_depth) & (gt < max_depth)
