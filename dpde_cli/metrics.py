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

Evaluation protocol (see :class:`EvalProtocol` and :func:`prepare_eval`): the prediction is
resized to the ground truth, the mask is the valid ground truth inside the crop with
``min_depth < g < max_depth``, the prediction is optionally aligned to the ground truth
(median scaling or least-squares scale and shift, per image) and then clamped to
``[min_depth, max_depth]``, as BTS, AdaBins and monodepth2 do.

Example:
    >>> protocol = default_protocol("nyuv2")
    >>> acc = MetricAccumulator(protocol.averaging)
    >>> pred, gt, mask = prepare_eval(pred, batch["depth"], batch["valid"], protocol)
    >>> per_image = acc.update(pred, gt, mask, names=batch["name"])
    >>> acc.compute()["abs_rel"]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

import torch
import torch.nn.functional as F

from dpde_cli.errors import DpdeError, UsageError

BASE_METRICS: tuple[str, ...] = (
    "abs_rel", "sq_rel", "rms", "rms_log", "log10", "silog", "d1", "d2", "d3",
)  # fmt: skip
"""The metrics computed for every image, in reporting order."""

IMAGE_METRICS: tuple[str, ...] = ("ssim", "gsm")
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
}
"""Display names, as in the paper's tables."""

HIGHER_IS_BETTER: frozenset[str] = frozenset({"d1", "d2", "d3", "ssim", "gsm"})
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
_MIN_POSITIVE = 1e-6  # clamp floor that keeps logarithms finite when min_depth is 0


# ------------------------------------------------------------------------------ helpers


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


# ------------------------------------------------------------------------------ alignment


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


# ------------------------------------------------------------------------------ protocol masks


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


_DEFAULT_PROTOCOLS: dict[str, EvalProtocol] = {
    # The common NYUv2 protocol (Eigen crop, 1e-3 < gt < 10 m, per-image mean).
    "nyuv2": EvalProtocol(crop="eigen", min_depth=1e-3, max_depth=10.0),
    # Make3D C1 error: only ground truth below 70 m counts (Liu et al., Laina et al.).
    "make3d": EvalProtocol(crop="none", min_depth=1e-3, max_depth=70.0),
    # Middlebury depth is 1 / (disparity + dmin): relative, so the scale is fitted.
    "middlebury": EvalProtocol(crop="none", min_depth=0.0, max_depth=math.inf, alignment="median"),
    # Indoor RGB-D folders (mm PNGs); KITTI-like data should override max_depth (80 m).
    "folder": EvalProtocol(crop="none", min_depth=1e-3, max_depth=10.0),
    "synthetic": EvalProtocol(crop="none", min_depth=1e-3, max_depth=10.0),
}


def default_protocol(dataset_name: str, **overrides: object) -> EvalProtocol:
    """The default evaluation protocol of a dataset, with optional field overrides.

    Defaults: nyuv2 = Eigen crop, 1e-3 < gt < 10 m; make3d = no crop, gt < 70 m (C1);
    middlebury = no crop, any positive gt, median alignment; folder and synthetic = no
    crop, 1e-3 < gt < 10 m. All: per-image averaging, no flip TTA, bilinear upsampling,
    predictions clamped to the depth range.

    Args:
        dataset_name: a name from ``dpde_cli.data.DATASETS``.
        **overrides: EvalProtocol fields to change (e.g. ``max_depth=80.0``).

    Returns:
        The frozen protocol.

    Raises:
        UsageError: unknown dataset name or bad override.
    """
    try:
        protocol = _DEFAULT_PROTOCOLS[dataset_name]
    except KeyError:
        raise UsageError(
            f"no evaluation protocol for dataset {dataset_name!r}; known: "
            f"{', '.join(sorted(_DEFAULT_PROTOCOLS))}"
        ) from None
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


# ------------------------------------------------------------------------------ metrics


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


def _normalise_pair(
    pred: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Map both depth maps to [0, 1] by the ground truth's min and max over the mask.

    Pixels outside the mask take the prediction's normalised value in both maps. The
    prediction is clamped to [0, 1]. An image whose masked gt is constant uses range 1.

    Returns:
        (x, y) = (normalised pred, normalised gt), (B, 1, H, W) in pred's dtype.
    """
    inf = torch.full_like(gt, float("inf"))
    lo = torch.where(mask, gt, inf).flatten(1).min(1).values
    hi = torch.where(mask, gt, -inf).flatten(1).max(1).values
    lo = torch.where(torch.isfinite(lo), lo, torch.zeros_like(lo)).view(-1, 1, 1, 1)
    span = hi.view(-1, 1, 1, 1) - lo
    span = torch.where(torch.isfinite(span) & (span > 0), span, torch.ones_like(span))
    x = ((pred - lo) / span).clamp(0.0, 1.0)
    y = ((gt - lo) / span).clamp(0.0, 1.0)
    y = torch.where(mask, y, x)
    return x, y


def ssim_depth(
    pred: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor, downsample: bool = True
) -> torch.Tensor:
    """SSIM (Wang et al. 2004) between depth maps, per image, with ``piq.ssim``.

    Normalisation: both maps are mapped to [0, 1] by the ground truth's min and max over
    the mask (the prediction clamped to [0, 1]), so ``data_range=1``. SSIM is computed on
    the bounding box of the mask; pixels in the box but outside the mask take the
    prediction's value in both maps (they add no error, but windows over them count as
    agreeing). piq's defaults: 11x11 Gaussian window, sigma 1.5, k1 = 0.01, k2 = 0.03,
    and (``downsample``) an average-pool by round(min(H, W) / 256) first, as in Wang's
    reference code. One ``piq.ssim`` call per image (bounding boxes differ).

    Args:
        pred: (B, 1, H, W) predicted depth.
        gt: (B, 1, H, W) ground-truth depth.
        mask: (B, 1, H, W) bool.
        downsample: piq's average-pool before SSIM.

    Returns:
        (B,) float64 SSIM in [-1, 1] (1 = identical); NaN for an empty mask or a box
        smaller than the 11x11 window.
    """
    import piq

    check_depth_batch(pred, gt, mask)
    x, y = _normalise_pair(pred.float(), gt.float(), mask)
    values = []
    for i in range(pred.shape[0]):
        rows = torch.nonzero(mask[i, 0].any(1)).flatten()
        cols = torch.nonzero(mask[i, 0].any(0)).flatten()
        if rows.numel() == 0:
            values.append(float("nan"))
            continue
        box = (
            slice(None),
            slice(None),
            slice(int(rows[0]), int(rows[-1]) + 1),
            slice(int(cols[0]), int(cols[-1]) + 1),
        )
        xi, yi = x[i : i + 1][box], y[i : i + 1][box]
        factor = max(1, round(min(xi.shape[-2:]) / 256)) if downsample else 1
        if min(xi.shape[-2:]) // factor < 11:
            values.append(float("nan"))
            continue
        value = piq.ssim(xi, yi, data_range=1.0, reduction="none", downsample=downsample)
        values.append(float(value.reshape(-1)[0]))
    return torch.tensor(values, dtype=torch.float64, device=pred.device)


# fmt: off
_GSM_KERNELS = torch.tensor(
    [
        [[0, 0, 0, 0, 0], [1, 3, 8, 3, 1], [0, 0, 0, 0, 0], [-1, -3, -8, -3, -1], [0, 0, 0, 0, 0]],
        [[0, 0, 1, 0, 0], [0, 0, 3, 8, 0], [-1, -3, 0, 3, 1], [0, -8, -3, 0, 0], [0, 0, -1, 0, 0]],
        [[0, 0, 1, 0, 0], [0, 8, 3, 0, 0], [1, 3, 0, -3, -1], [0, 0, -3, -8, 0], [0, 0, -1, 0, 0]],
        [[0, 1, 0, -1, 0], [0, 3, 0, -3, 0], [0, 8, 0, -8, 0], [0, 3, 0, -3, 0], [0, 1, 0, -1, 0]],
    ],
    dtype=torch.float64,
).unsqueeze(1) / 16.0
# fmt: on
"""The four 5x5 directional high-pass operators of GSM (horizontal edge, two diagonals,
vertical edge), divided by 16 so that a unit step gives a gradient of 1."""


def gsm_sums(
    pred: torch.Tensor,
    gt: torch.Tensor,
    mask: torch.Tensor,
    c: float = 200.0,
    p: float = 0.1,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image sum and count of the GSM quality map over the usable pixels.

    See :func:`gsm_depth` for the definition. A pixel is usable when its whole 5x5
    neighbourhood is inside the mask (so invalid pixels never reach a gradient).

    Returns:
        (sum of q, pixel count), each (B,) float64.
    """
    check_depth_batch(pred, gt, mask)
    if min(pred.shape[-2:]) < 5:  # no pixel has a whole 5x5 neighbourhood
        zeros = torch.zeros(pred.shape[0], dtype=torch.float64, device=pred.device)
        return zeros, zeros.clone()
    x, y = _normalise_pair(pred.double(), gt.double(), mask)
    x, y = x * 255.0, y * 255.0
    kernels = _GSM_KERNELS.to(device=pred.device)
    gx = F.conv2d(x, kernels).abs().amax(1, keepdim=True)  # (B, 1, H-4, W-4)
    gy = F.conv2d(y, kernels).abs().amax(1, keepdim=True)
    grad_sim = (2.0 * gx * gy + c) / (gx * gx + gy * gy + c)
    xc, yc = x[..., 2:-2, 2:-2], y[..., 2:-2, 2:-2]
    lum_sim = 1.0 - ((xc - yc) / 255.0) ** 2
    weight = p * grad_sim
    quality = (1.0 - weight) * grad_sim + weight * lum_sim
    usable = F.max_pool2d((~mask).double(), kernel_size=5, stride=1) == 0
    return (quality * usable).flatten(1).sum(1), usable.flatten(1).double().sum(1)


def gsm_depth(
    pred: torch.Tensor,
    gt: torch.Tensor,
    mask: torch.Tensor,
    c: float = 200.0,
    p: float = 0.1,
) -> torch.Tensor:
    """Gradient similarity measure (GSM) between depth maps, per image.

    Reference: A. Liu, W. Lin, M. Narwaria, "Image quality assessment based on gradient
    similarity", IEEE Trans. Image Processing 21(4):1500-1512, 2012,
    doi:10.1109/TIP.2011.2175935.

    Definition used here (maps normalised as in :func:`ssim_depth`, then scaled to
    [0, 255] so the constant ``c`` has its 8-bit meaning; x = prediction, y = truth):

    1. Gradient: G(p) = max_k |(I * K_k)(p)| / 16 over the four 5x5 directional
       operators K_k of the paper (horizontal, vertical, two diagonals; each has
       positive weights 1, 3, 8, 3, 1 summing to 16).
    2. Gradient (contrast-structure) similarity with masking constant c:
       g = (2 G_x G_y + c) / (G_x^2 + G_y^2 + c), which equals the paper's
       (2(1 - r) + K) / (1 + (1 - r)^2 + K) with r = |G_x - G_y| / max(G_x, G_y) and
       K = c / max(G_x, G_y)^2.
    3. Luminance similarity l = 1 - ((x - y) / 255)^2 per pixel.
    4. Adaptive combination q = (1 - W) g + W l with W = p * g (p = 0.1).
    5. GSM = mean of q over the pixels whose 5x5 neighbourhood is inside the mask.

    The paper's exact value of c is not restated here; c = 200 (on the 0-255 scale) is the
    default of the vIQA implementation and is a parameter. GSM is 1 for identical maps.

    Args:
        pred: (B, 1, H, W) predicted depth.
        gt: (B, 1, H, W) ground-truth depth.
        mask: (B, 1, H, W) bool.
        c: masking constant on the 0-255 scale.
        p: luminance weight factor.

    Returns:
        (B,) float64 GSM in (0, 1]; NaN where no pixel is usable.
    """
    total, count = gsm_sums(pred, gt, mask, c=c, p=p)
    return torch.where(
        count > 0, total / count.clamp(min=1.0), torch.full_like(total, float("nan"))
    )


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
        extra: any of IMAGE_METRICS ("ssim", "gsm").

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
    return out


# ------------------------------------------------------------------------------ accumulator


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
