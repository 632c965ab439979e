"""Metric depth from a few measurements: robust alignment, then a network-guided completion.

A network's depth is often off in scale, but a user may hold a few true distances (a
LiDAR's or ToF sensor's sparse points, a phone's depth, a measured wall). Given the
network's depth ``d`` and gradients ``G``, and measurements ``z_i`` at pixels ``i``:

1. **Alignment.** A robust global scale ``s`` in log depth (and, on request, a shift ``t``):
   with ``r_i = log z_i - log d_i``, points with ``|r_i - median(r)| > max(k * 1.4826 *
   MAD(r), floor)`` are outliers to the network's shape, and ``log s`` is the weighted
   median of the others, so one point fixes the scale. For "scale-shift", ``z ~ s d + t``
   is then fitted to those points by IRLS on the relative residuals (an L1 fit), outliers
   found again by the same rule. ``a = s d + t`` is the aligned network depth.
2. **Guide.** A dense depth through the measurements:

       log D = beta log a + I(log z - beta log a)

   where ``I`` interpolates values at the points piecewise-linearly over their Delaunay
   triangulation (extended to the image border by inverse-distance-weighted pseudo-points,
   so it is continuous everywhere), on nodes every few pixels (``grid_step``, or a quarter
   of the points' mean spacing where that is less), upsampled
   bilinearly. ``beta`` in [0, 1] is how much of the network's own detail between the
   points to keep: 1 keeps it all (the network corrected by a smooth scale field), 0 none
   (the measurements interpolated alone). By default it is chosen per image by k-fold
   cross-validation: each fold predicts its held-out points from the others, and the
   L1-best beta has a closed form. Below ``cv_min_points`` points beta is 1 (a single
   point says nothing of the shape). The same held-out residuals judge each point against
   its neighbours: a point is rejected only when it is an outlier both to the network's
   shape (step 1) and to its neighbours (the same rule on ``log z - I(log z)``), so a
   true measurement where the network is wrong is kept.
3. **Fusion** (optional, off by default). The IRLS fusion of
   :func:`dpde_cli.fusion.irls_fuse`, the measurements as the data term, the guide as a
   weak data term elsewhere, and as gradient term a mix of the guide's gradients and the
   network's predicted gradients, scaled: ``d`` minimises

       E(d) = sum_(i in points) c_i phi(d_i - z_i) + lambda sum_(p not a point) phi(d_p - D_p)
            + omega * sum_edges phi(grad d - ((1 - alpha) grad D + alpha s G)),
       phi(r) = sqrt(r^2 + eps),

   with ``c_i`` the confidence of point ``i`` (1 without a confidence map). Without it
   the result is the guide with the measurements written in at their pixels.

The defaults were chosen on the real-train sets (``../shared/data/real-train``), never on
real-dev; the figures are in ``benchmarks/RESULTS.md`` (``benchmarks/completion.py``).

Example:
    >>> result = complete_depth(prediction.depth, prediction.gradients, sparse)
    >>> result.depth.shape, result.scale, result.points_used
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from dpde_cli.errors import DpdeError, UsageError
from dpde_cli.fusion import FusionConfig, FusionResult, irls_fuse
from dpde_cli.scattered import Triangulation, upsample, values_at
from dpde_cli.sparse import ALIGNMENTS, anchor_map, parse_anchor, read_sparse_depth, sparse_points

__all__ = [
    "ALIGNMENTS",
    "Alignment",
    "CompletionConfig",
    "CompletionResult",
    "complete_depth",
    "complete_from_measurements",
    "fit_alignment",
]

Align = Literal["scale", "scale-shift"]
_MAD_TO_SIGMA = 1.4826
_SHIFT_IRLS_STEPS = 10
_MIN_DEPTH_FRACTION = 1e-3
"""Aligned depth is kept above this fraction of the smallest measurement (a shift may
otherwise push far-off parts of the network's depth to or below 0)."""


@dataclass(frozen=True)
class CompletionConfig:
    """Settings of :func:`complete_depth` (see the module docstring for the objective).

    Attributes:
        outlier_k: a point is an outlier beyond this many robust standard deviations
            (1.4826 MAD) of the log-depth residuals from the median.
        outlier_floor: ... but never within this log-depth residual (0.4: a factor of 1.5).
        detail: beta, the share of the network's detail kept between the points, in
            [0, 1]; None chooses it per image by cross-validation.
        cv_folds: folds of that cross-validation.
        cv_min_points: fewest inlier points for it; with fewer, beta is 1.
        cv_max_points: most points the folds are drawn from (a fixed random subset);
            the others are held out from all of that subset at once, so that a dense
            map (a depth sensor's every pixel) is judged as well in a fraction of the
            time.
        grid_step: most pixels between the nodes where the interpolation is evaluated;
            fewer (a quarter of the points' mean spacing, at least 1) for dense points.
        border_points: pseudo-points per image side that extend the interpolation to the
            border.
        weak_weight: lambda, the weight of the guide where there is no point.
        gradient_mix: alpha, the share of the network's predicted gradients in the
            gradient term (the rest: the guide's own).
        fusion: the IRLS settings of step 3 (``omega`` weighs the gradient term), or None
            (the default) to skip it: on the real-train sets it changed REL by 0.0001 at
            best and cost more time than the rest together (benchmarks/RESULTS.md).
    """

    outlier_k: float = 4.0
    outlier_floor: float = 0.4
    detail: float | None = None
    cv_folds: int = 5
    cv_min_points: int = 5
    cv_max_points: int = 4096
    grid_step: int = 8
    border_points: int = 8
    weak_weight: float = 0.1
    gradient_mix: float = 0.5
    fusion: FusionConfig | None = None

    def __post_init__(self) -> None:
        """Reject values the method cannot use."""
        if not (self.outlier_k > 0 and self.outlier_floor >= 0):
            raise UsageError("completion needs outlier_k > 0 and outlier_floor >= 0")
        if self.detail is not None and not 0 <= self.detail <= 1:
            raise UsageError(f"completion detail must lie in [0, 1], got {self.detail}")
        if self.cv_folds < 2 or not self.cv_folds <= self.cv_min_points <= self.cv_max_points:
            raise UsageError(
                "completion needs cv_folds >= 2 and cv_folds <= cv_min_points <= cv_max_points"
            )
        if self.grid_step < 1 or self.border_points < 2:
            raise UsageError("completion needs grid_step >= 1 and border_points >= 2")
        if not (0 < self.weak_weight <= 1 and 0 <= self.gradient_mix <= 1):
            raise UsageError("completion needs 0 < weak_weight <= 1 and 0 <= gradient_mix <= 1")


@dataclass(frozen=True)
class Alignment:
    """A fitted alignment ``z ~ scale * d + shift`` and which points it kept.

    Attributes:
        scale: the factor on the network's depth.
        shift: metres added (0 for a scale-only alignment).
        inliers: (N,) bool, the points kept.
    """

    scale: float
    shift: float
    inliers: np.ndarray


@dataclass(frozen=True)
class Residual:
    """How far a depth map lies from the measurements it used.

    Attributes:
        median_abs: median of |depth - z|, metres.
        rel: mean of |depth - z| / z.
    """

    median_abs: float
    rel: float


@dataclass(frozen=True)
class CompletionResult:
    """Output of :func:`complete_depth`.

    Attributes:
        depth: (H, W) float32 metres, the completed depth.
        scale: the fitted global scale.
        shift: the fitted shift, metres (0 for "scale").
        align: "scale" or "scale-shift".
        points_used: measurements used (inliers).
        points_rejected: measurements rejected as outliers.
        detail: beta, the share of the network's detail kept between the points.
        aligned_residual: the aligned network depth (scale * d + shift) at the used points.
        completed_residual: the completed depth at the used points.
        fusion: IRLS statistics (iterations, objective, converged), or None when skipped.
    """

    depth: np.ndarray
    scale: float
    shift: float
    align: str
    points_used: int
    points_rejected: int
    detail: float
    aligned_residual: Residual
    completed_residual: Residual
    fusion: dict[str, Any] | None

    def summary(self) -> dict[str, Any]:
        """The JSON-friendly record of everything but the depth map."""
        record = asdict(self)
        del record["depth"]
        return record


def complete_depth(
    depth: np.ndarray,
    gradients: np.ndarray | None,
    sparse: np.ndarray,
    confidence: np.ndarray | None = None,
    align: Align = "scale",
    config: CompletionConfig | None = None,
) -> CompletionResult:
    """Dense metric depth from a network's depth and gradients and sparse measurements.

    Args:
        depth: (H, W) network depth, metres, finite and > 0 everywhere.
        gradients: (2, H, W) the network's predicted (G_x, G_y), metres per pixel of this
            grid (``Prediction.gradients``), or None to use the depth's own.
        sparse: (H, W) measurements, metres; 0 or NaN = no measurement (see
            :mod:`dpde_cli.sparse` to read or draw one).
        confidence: optional (H, W) confidence of each measurement in [0, 1]; 0 drops it.
        align: "scale" (default) or "scale-shift".
        config: the method's settings (default: ``CompletionConfig()``).

    Returns:
        A :class:`CompletionResult`.

    Raises:
        DpdeError: mismatched shapes, non-positive network depth, confidence outside
            [0, 1], or no measurement.
        UsageError: an unknown ``align``, or "scale-shift" without two measurements at
            different depths or with a fit that inverts the depth order.

    Example:
        >>> out = complete_depth(pred.depth, pred.gradients, sample_sparse(gt, None, 200))
    """
    config = config or CompletionConfig()
    depth = _check_inputs(depth, gradients, sparse, confidence, align)
    rows, cols, z, weight = sparse_points(sparse, confidence)
    if z.size == 0:
        raise DpdeError("no sparse measurement (every value is 0, NaN or of zero confidence)")
    fit = fit_alignment(depth[rows, cols], z, weight, align, config)
    aligned = depth * fit.scale + fit.shift
    np.maximum(aligned, _MIN_DEPTH_FRACTION * float(z.min()), out=aligned)
    log_aligned = np.log(aligned)
    log_z = np.log(z)
    points = np.column_stack([rows, cols]).astype(np.float64)
    keep, beta = fit.inliers, config.detail
    if z.size >= config.cv_min_points:
        a, q = _held_out(points, log_z, log_aligned[rows, cols], depth.shape, config)
        # an outlier disagrees with both the network's shape and its neighbours
        keep = fit.inliers | _inliers(a, weight, config)
        if beta is None:
            beta = _detail(a[keep], q[keep], weight[keep])
    elif beta is None:
        beta = 1.0
    rows, cols, z, weight = rows[keep], cols[keep], z[keep], weight[keep]
    log_z, points = log_z[keep], points[keep]
    values = log_z - beta * log_aligned[rows, cols]
    offset = _interpolate(points, values, depth.shape, config)
    guide = np.exp(beta * log_aligned + offset)
    completed, stats = _fuse(guide, gradients, fit.scale, rows, cols, z, weight, config)
    return CompletionResult(
        depth=completed,
        scale=fit.scale,
        shift=fit.shift,
        align=align,
        points_used=int(keep.sum()),
        points_rejected=int((~keep).sum()),
        detail=float(beta),
        aligned_residual=_residual(aligned[rows, cols], z),
        completed_residual=_residual(completed[rows, cols], z),
        fusion=stats,
    )


def complete_from_measurements(
    depth: np.ndarray,
    gradients: np.ndarray | None,
    photo_size: tuple[int, int],
    sparse_path: str | Path | None = None,
    anchors: Sequence[str] = (),
    depth_scale: float = 1000.0,
    align: Align = "scale",
    config: CompletionConfig | None = None,
) -> CompletionResult:
    """:func:`complete_depth` from a sparse depth file and/or ``X,Y=METRES`` anchors.

    What ``predict --sparse-depth FILE --anchor X,Y=METRES --align A`` does to a
    prediction: read the file onto the depth grid, add the anchors (which win where both
    measure a pixel), complete.

    Args:
        depth: (H, W) network depth, metres (``Prediction.depth``).
        gradients: (2, H, W) predicted gradients (``Prediction.gradients``) or None.
        photo_size: (height, width) of the photo, EXIF orientation applied: the frame of
            the anchors' pixel coordinates and of the sparse map's aspect ratio.
        sparse_path: a sparse depth map (png16, npy, pfm, tiff; 0 or NaN = none), any
            resolution with the photo's aspect ratio.
        anchors: ``"X,Y=METRES"`` strings in the photo's pixels.
        depth_scale: integer PNG units per metre.
        align: "scale" or "scale-shift".
        config: the method's settings.

    Raises:
        UsageError: neither a file nor an anchor, a malformed anchor or one outside the
            photo (naming ``--anchor``), or an alignment the points cannot support.
        InputError: a sparse map that cannot be used (naming the file).
    """
    if sparse_path is None and not anchors:
        raise UsageError("completion needs --sparse-depth or at least one --anchor")
    shape = tuple(np.shape(depth))
    # the option's errors before the file's
    sparse = anchor_map([parse_anchor(text) for text in anchors], photo_size, shape)
    if sparse_path is not None:
        measured = read_sparse_depth(sparse_path, photo_size, shape, depth_scale)
        sparse = np.where(sparse > 0, sparse, measured)
    return complete_depth(depth, gradients, sparse, align=align, config=config)


# ------------------------------------------------------------------------------ alignment


def fit_alignment(
    predicted: np.ndarray,
    measured: np.ndarray,
    weight: np.ndarray | None = None,
    align: Align = "scale",
    config: CompletionConfig | None = None,
) -> Alignment:
    """Robust ``measured ~ scale * predicted (+ shift)`` with outliers rejected.

    Args:
        predicted: (N,) network depth at the points, metres, > 0.
        measured: (N,) measured depth, metres, > 0.
        weight: (N,) weights (confidence), > 0; default 1.
        align: "scale" or "scale-shift".
        config: supplies ``outlier_k`` and ``outlier_floor``.

    Returns:
        An :class:`Alignment`; a single point gives ``scale = measured / predicted``.

    Raises:
        DpdeError: no point, or sizes that differ.
        UsageError: "scale-shift" with fewer than two inliers at different predicted
            depths, or a fitted scale that is not positive.
    """
    config = config or CompletionConfig()
    d = np.asarray(predicted, np.float64)
    z = np.asarray(measured, np.float64)
    w = np.ones_like(z) if weight is None else np.asarray(weight, np.float64)
    if d.shape != z.shape or w.shape != z.shape or z.ndim != 1 or z.size == 0:
        raise DpdeError("fit_alignment needs equal-length, non-empty predicted and measured")
    r = np.log(z) - np.log(d)
    inliers = _inliers(r, w, config)
    log_scale = _weighted_median(r[inliers], w[inliers])
    if align == "scale":
        return Alignment(float(math.exp(log_scale)), 0.0, inliers)
    if align != "scale-shift":
        raise UsageError(f"unknown alignment {align!r}; use {' or '.join(ALIGNMENTS)}")
    scale, shift = _fit_scale_shift(d[inliers], z[inliers], w[inliers], math.exp(log_scale))
    inliers = _inliers(np.log(z) - np.log(np.maximum(scale * d + shift, 1e-9)), w, config)
    scale, shift = _fit_scale_shift(d[inliers], z[inliers], w[inliers], scale, shift)
    return Alignment(scale, shift, inliers)


def _inliers(residual: np.ndarray, weight: np.ndarray, config: CompletionConfig) -> np.ndarray:
    """Points within max(k robust sigmas, floor) of the weighted median residual."""
    centre = _weighted_median(residual, weight)
    spread = _MAD_TO_SIGMA * _weighted_median(np.abs(residual - centre), weight)
    return np.abs(residual - centre) <= max(config.outlier_k * spread, config.outlier_floor)


def _weighted_median(values: np.ndarray, weight: np.ndarray) -> float:
    """The lower weighted median (the plain lower median for equal weights)."""
    order = np.argsort(values, kind="stable")
    cumulative = np.cumsum(weight[order])
    return float(values[order][np.searchsorted(cumulative, 0.5 * cumulative[-1])])


def _fit_scale_shift(
    d: np.ndarray, z: np.ndarray, w: np.ndarray, scale: float, shift: float = 0.0
) -> tuple[float, float]:
    """L1 fit of z ~ s d + t on relative residuals by IRLS, from (scale, shift)."""
    if d.size < 2 or float(d.max() - d.min()) <= 1e-6 * float(d.max()):
        raise UsageError(
            "scale-shift alignment needs measurements at two or more different depths; "
            "use scale alignment"
        )
    design = np.column_stack([d, np.ones_like(d)]) / z[:, None]
    target = np.ones_like(z)
    params = np.array([scale, shift])
    for _ in range(_SHIFT_IRLS_STEPS):
        res = np.abs(design @ params - target)
        sw = np.sqrt(w / np.maximum(res, 1e-6))
        params = np.linalg.lstsq(design * sw[:, None], target * sw, rcond=None)[0]
    if not params[0] > 0:
        raise UsageError(
            "scale-shift alignment fitted a non-positive scale (the measurements contradict "
            "the predicted depth order); use scale alignment"
        )
    return float(params[0]), float(params[1])


def _residual(depth_at: np.ndarray, z: np.ndarray) -> Residual:
    """Median absolute and mean relative difference at the points."""
    diff = np.abs(np.asarray(depth_at, np.float64) - z)
    return Residual(median_abs=float(np.median(diff)), rel=float(np.mean(diff / z)))


# ------------------------------------------------------------------------------ guide


def _interpolate(
    points: np.ndarray, values: np.ndarray, shape: tuple[int, int], config: CompletionConfig
) -> np.ndarray:
    """The interpolation ``I`` of ``values`` at ``points`` at every pixel (module step 2)."""
    tri = Triangulation(points, shape, _node_step(shape, len(points), config), config.border_points)
    return upsample(tri.grid(values[:, None])[..., 0], tri.gy, tri.gx, shape)


def _node_step(shape: tuple[int, int], n_points: int, config: CompletionConfig) -> int:
    """Pixels between interpolation nodes: grid_step, or a quarter of the mean spacing of
    ``n_points`` points over the image where that is less (at least 1)."""
    spacing = math.sqrt(shape[0] * shape[1] / max(n_points, 1))
    return max(1, min(config.grid_step, int(spacing / 4)))


def _held_out(
    points: np.ndarray,
    log_z: np.ndarray,
    log_aligned: np.ndarray,
    shape: tuple[int, int],
    config: CompletionConfig,
) -> tuple[np.ndarray, np.ndarray]:
    """k-fold held-out residuals of the interpolation: ``A = log z - I(log z)`` and
    ``Q = log a - I(log a)`` at each point, ``I`` built from the other folds' points.

    The folds are a fixed function of the point count (reproducible). Beyond
    ``cv_max_points`` points, the folds split a fixed random subset of that many, and the
    other points are held out from the whole subset.
    """
    n = len(log_z)
    rng = np.random.default_rng(n)
    both = np.column_stack([log_z, log_aligned])
    held = np.empty_like(both)
    subset = np.arange(n)
    if n > config.cv_max_points:
        subset = np.sort(rng.choice(n, config.cv_max_points, replace=False))
        rest = np.setdiff1d(np.arange(n), subset)
        tri = Triangulation(points[subset], shape, _node_step(shape, subset.size, config),
                            config.border_points)  # fmt: skip
        grid = tri.grid(both[subset])
        held[rest] = both[rest] - values_at(grid, tri.gy, tri.gx, points[rest])
    fold = rng.permutation(subset.size) % config.cv_folds
    step = _node_step(shape, subset.size, config)
    for f in range(config.cv_folds):
        train, test = subset[fold != f], subset[fold == f]
        tri = Triangulation(points[train], shape, step, config.border_points)
        held[test] = both[test] - values_at(tri.grid(both[train]), tri.gy, tri.gx, points[test])
    return held[:, 0], held[:, 1]


def _detail(a: np.ndarray, q: np.ndarray, weight: np.ndarray) -> float:
    """The beta in [0, 1] minimising sum w |A - beta Q| (a weighted median of A / Q)."""
    usable = np.abs(q) > 1e-9
    if not usable.any():
        return 1.0
    ratio = a[usable] / q[usable]
    return float(np.clip(_weighted_median(ratio, weight[usable] * np.abs(q[usable])), 0.0, 1.0))


# ------------------------------------------------------------------------------ fusion


def _fuse(
    guide: np.ndarray,
    gradients: np.ndarray | None,
    scale: float,
    rows: np.ndarray,
    cols: np.ndarray,
    z: np.ndarray,
    weight: np.ndarray,
    config: CompletionConfig,
) -> tuple[np.ndarray, dict[str, Any] | None]:
    """Module step 3: IRLS with the points strong, the guide weak, mixed gradients."""
    from dpde_cli.geometry import spatial_gradients

    if config.fusion is None or config.fusion.omega == 0:
        estimate = guide.astype(np.float32)
        estimate[rows, cols] = z
        return estimate, None
    dtype = np.dtype(config.fusion.dtype)
    estimate = guide.astype(dtype)
    estimate[rows, cols] = z
    mask = np.full(guide.shape, config.weak_weight, dtype)
    mask[rows, cols] = np.clip(weight, 0.0, 1.0)
    gx, gy = spatial_gradients(guide.astype(dtype))
    alpha = config.gradient_mix if gradients is not None else 0.0
    if alpha > 0:
        gx = (1 - alpha) * gx + (alpha * scale) * gradients[0]
        gy = (1 - alpha) * gy + (alpha * scale) * gradients[1]
    gx, gy = gx.astype(dtype), gy.astype(dtype)
    result: FusionResult = irls_fuse(estimate, gx, gy, mask, config.fusion)
    stats = {
        "irls_iterations": int(result.irls_iters),
        "cg_iterations": int(result.cg_iters),
        "objective": float(result.objective),
        "converged": bool(result.converged),
    }
    return np.asarray(result.depth, np.float32), stats


def _check_inputs(
    depth: Any, gradients: Any, sparse: Any, confidence: Any, align: str
) -> np.ndarray:
    """Validate shapes and values; return the depth as a float64 array."""
    if align not in ALIGNMENTS:
        raise UsageError(f"unknown alignment {align!r}; use {' or '.join(ALIGNMENTS)}")
    depth = np.asarray(depth, np.float64)
    if depth.ndim != 2 or min(depth.shape) < 2:
        raise DpdeError(f"complete_depth: depth must be (H, W), at least 2x2, got {depth.shape}")
    if not (np.isfinite(depth).all() and (depth > 0).all()):
        raise DpdeError("complete_depth: the network depth must be finite and > 0 everywhere")
    if gradients is not None:
        if np.shape(gradients) != (2, *depth.shape):
            raise DpdeError(
                f"complete_depth: gradients must be (2, {depth.shape[0]}, {depth.shape[1]}), "
                f"got {np.shape(gradients)}"
            )
        if not np.isfinite(gradients).all():
            raise DpdeError("complete_depth: gradients must be finite")
    if np.shape(sparse) != depth.shape:
        raise DpdeError(
            f"complete_depth: sparse map {np.shape(sparse)} and depth {depth.shape} differ"
        )
    if confidence is not None:
        if np.shape(confidence) != depth.shape:
            raise DpdeError(
                f"complete_depth: confidence {np.shape(confidence)} and depth {depth.shape} differ"
            )
        conf = np.asarray(confidence, np.float64)
        if not ((conf >= 0) & (conf <= 1)).all():
            raise DpdeError("complete_depth: confidence values must lie in [0, 1]")
    return depth
