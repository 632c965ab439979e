"""Depth-boundary accuracy: are the depth discontinuities where the ground truth has them?

REL and RMS barely notice a blurred object outline; the boundary F-score does. A depth
discontinuity (an occluding edge) is a pair of 4-neighbour pixels whose depths differ by
more than a ratio ``1 + threshold``; the edge map marks the nearer pixel of each such pair.
Predicted edges are matched to ground-truth edges within ``tolerance`` pixels (Euclidean
distance transform): precision is the share of predicted edge pixels near a true edge,
recall the share of true edge pixels near a predicted edge, F1 their harmonic mean. This
is the precision/recall form of the depth boundary errors of iBims-1 (Koch et al. 2018),
with edges taken from the ground truth's own discontinuities instead of hand-drawn ones,
so any RGB-D set can be scored. Ratios make it scale-invariant: no alignment is needed.

Example:
    >>> f1 = boundary_f1(pred, gt, mask)  # (B,) float64, NaN where gt has no edge
"""

from __future__ import annotations

import math

import numpy as np
import torch

DEFAULT_THRESHOLD = 0.05
"""Relative depth jump between neighbours that counts as a discontinuity (5%)."""
DEFAULT_TOLERANCE = 3.0
"""Distance in pixels within which a predicted edge matches a true one."""


def depth_edges(depth: np.ndarray, mask: np.ndarray, threshold: float) -> np.ndarray:
    """(H, W) bool: pixels on the near side of a jump of more than ``1 + threshold``
    to a 4-neighbour, both pixels in ``mask``."""
    log = np.log(np.where(mask, np.maximum(depth, 1e-6), 1.0))
    limit = math.log1p(threshold)
    edges = np.zeros(depth.shape, dtype=bool)
    for axis in (0, 1):
        a = [slice(None)] * 2
        b = [slice(None)] * 2
        a[axis], b[axis] = slice(None, -1), slice(1, None)
        both = mask[tuple(a)] & mask[tuple(b)]
        step = log[tuple(b)] - log[tuple(a)]
        jump = both & (np.abs(step) > limit)
        edges[tuple(a)] |= jump & (step > 0)  # a is nearer
        edges[tuple(b)] |= jump & (step < 0)  # b is nearer
    return edges


def boundary_scores(
    pred: np.ndarray,
    gt: np.ndarray,
    mask: np.ndarray,
    threshold: float = DEFAULT_THRESHOLD,
    tolerance: float = DEFAULT_TOLERANCE,
) -> tuple[float, float, float]:
    """(precision, recall, F1) of one image's predicted depth edges; NaN where the
    ground truth has no edge (and precision NaN where the prediction has none)."""
    from scipy.ndimage import distance_transform_edt

    true = depth_edges(gt, mask, threshold)
    found = depth_edges(pred, mask, threshold)
    if not true.any():
        return math.nan, math.nan, math.nan
    if not found.any():
        return math.nan, 0.0, 0.0
    near_true = distance_transform_edt(~true) <= tolerance
    near_found = distance_transform_edt(~found) <= tolerance
    precision = float(near_true[found].mean())
    recall = float(near_found[true].mean())
    f1 = 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)
    return precision, recall, f1


def boundary_f1(
    pred: torch.Tensor,
    gt: torch.Tensor,
    mask: torch.Tensor,
    threshold: float = DEFAULT_THRESHOLD,
    tolerance: float = DEFAULT_TOLERANCE,
) -> torch.Tensor:
    """Per image, the depth-boundary F-score (see the module docstring).

    Args:
        pred: (B, 1, H, W) predicted depth, > 0 on the mask (any scale).
        gt: (B, 1, H, W) ground-truth depth.
        mask: (B, 1, H, W) bool, the pixels that count.
        threshold: relative jump that makes an edge.
        tolerance: match distance in pixels.

    Returns:
        (B,) float64; NaN for an image whose ground truth has no edge.
    """
    values = [
        boundary_scores(p[0], g[0], m[0], threshold, tolerance)[2]
        for p, g, m in zip(
            pred.detach().cpu().double().numpy(),
            gt.detach().cpu().double().numpy(),
            mask.detach().cpu().numpy().astype(bool),
            strict=True,
        )
    ]
    return torch.tensor(values, dtype=torch.float64)
