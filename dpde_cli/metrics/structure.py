"""Structure metrics between depth maps, computed on request: SSIM and the gradient
similarity measure GSM."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from dpde_cli.metrics.core import check_depth_batch


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
