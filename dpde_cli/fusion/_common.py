"""What both IRLS solvers share: the objective, input checks, the Laplacian's DCT
eigenvalues, the line-search steps and the assembly of a result."""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from dpde_cli.errors import DpdeError
from dpde_cli.fusion.config import FusionResult
from dpde_cli.geometry import spatial_gradients

# Extrapolation factors tried after each IRLS step, in order, while E keeps falling. One
# trial at 1.7 was among the cheapest settings on four synthetic 480x640 scenes, with 1.5;
# (1.5, 2, 3) or 2 alone cost 5-10 % more, no line search 20 % more (benchmarks/RESULTS.md).
_LINE_SEARCH_STEPS = (1.7,)


def _objective_array(
    cand: Any, est: Any, m: Any, gx: Any, gy: Any, omega: float, eps: float
) -> Any:
    """E for numpy ``(H, W)`` (a float) or torch ``(B, H, W)`` (a ``(B,)`` tensor)."""
    dx, dy = spatial_gradients(cand)
    rx = dx[..., :, :-1] - gx[..., :, :-1]
    ry = dy[..., :-1, :] - gy[..., :-1, :]
    terms = [
        m * ((cand - est) ** 2 + eps) ** 0.5,
        omega * (rx**2 + eps) ** 0.5,
        omega * (ry**2 + eps) ** 0.5,
    ]
    if isinstance(cand, np.ndarray):
        return float(sum(t.sum(dtype=np.float64) for t in terms))
    return sum(t.sum(dim=(-2, -1)) for t in terms)


def _check_shapes(depth_shape: tuple[int, ...], named: dict[str, Any]) -> None:
    """Raise DpdeError unless every present array has ``depth_shape``."""
    for name, arr in named.items():
        if arr is not None and tuple(arr.shape) != tuple(depth_shape):
            raise DpdeError(
                f"irls_fuse: {name} has shape {tuple(arr.shape)}, depth has {tuple(depth_shape)}"
            )


def _no_data_error() -> DpdeError:
    """The error for an image without one valid depth pixel (the system would be singular)."""
    return DpdeError(
        "irls_fuse: no valid depth pixel (all missing or masked out); gradients alone fix "
        "depth only up to a constant"
    )


@functools.lru_cache(maxsize=8)
def _laplacian_eigenvalues(h: int, w: int, dtype: str = "float64") -> np.ndarray:
    """Eigenvalues (H, W) of the Neumann grid Laplacian Dx^T Dx + Dy^T Dy in the DCT-II basis.

    Cached; the array returned is read-only.
    """
    ly = 2.0 - 2.0 * np.cos(np.pi * np.arange(h) / h)
    lx = 2.0 - 2.0 * np.cos(np.pi * np.arange(w) / w)
    lam = (ly[:, None] + lx[None, :]).astype(dtype)
    lam.flags.writeable = False
    return lam


def _result(
    depth: Any, history: list[Any], per_image: Any, irls_iters: int, cg_iters: int, converged: bool
) -> FusionResult:
    """Assemble a FusionResult from per-image objective histories (lists of (B,) arrays)."""
    per_image = tuple(float(v) for v in per_image)
    return FusionResult(
        depth=depth,
        objective=float(sum(per_image)),
        objectives=per_image,
        objective_history=tuple(float(np.sum(h)) for h in history),
        irls_iters=irls_iters,
        cg_iters=cg_iters,
        converged=converged,
    )
