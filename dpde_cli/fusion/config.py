"""The settings and the result of the IRLS fusion (:func:`dpde_cli.fusion.irls_fuse`)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from dpde_cli.errors import UsageError

Preconditioner = Literal["dct", "jacobi", "none"]


_PRECONDITIONERS = ("dct", "jacobi", "none")


_DTYPES = ("float32", "float64")


@dataclass(frozen=True)
class FusionConfig:
    """Settings of :func:`irls_fuse`.

    Attributes:
        omega: weight of the gradient term (paper: 10). 0 returns the input depth as it
            is (missing pixels stay missing).
        eps: smoothing of phi(r) = sqrt(r^2 + eps), metres^2 (paper: 1e-4).
        max_irls_iters: most re-weighting steps.
        tol: stop once an IRLS step lowers the objective by less than ``tol`` times its
            value (relative objective change).
        cg_tol: each IRLS step's CG stops once the residual norm falls below ``cg_tol``
            times its value at the warm start.
        cg_max_iters: most CG iterations per IRLS step (also for the initial solve).
        dtype: "float32" (default) or "float64", the arithmetic of the solver and the
            dtype of the result.
        preconditioner: "dct" (constant-weight Poisson operator solved by DCT-II, the
            default), "jacobi" (diagonal) or "none".
        line_search: after each IRLS step also try the point 1.7 times as far along it and
            keep it when it lowers the objective. Off gives plain IRLS.
    """

    omega: float = 10.0
    eps: float = 1e-4
    max_irls_iters: int = 50
    tol: float = 1e-4
    cg_tol: float = 0.1
    cg_max_iters: int = 3
    dtype: Literal["float32", "float64"] = "float32"
    preconditioner: Preconditioner = "dct"
    line_search: bool = True

    def __post_init__(self) -> None:
        """Reject values the solver cannot use."""
        if not (math.isfinite(self.omega) and self.omega >= 0):
            raise UsageError(f"fusion omega must be >= 0, got {self.omega}")
        if not (math.isfinite(self.eps) and self.eps > 0):
            raise UsageError(f"fusion eps must be > 0, got {self.eps}")
        if self.max_irls_iters < 1 or self.cg_max_iters < 1:
            raise UsageError("fusion max_irls_iters and cg_max_iters must be >= 1")
        if not self.tol >= 0 or not 0 <= self.cg_tol < 1:
            raise UsageError(
                f"fusion needs tol >= 0 and 0 <= cg_tol < 1, got {self.tol}, {self.cg_tol}"
            )
        if self.dtype not in _DTYPES:
            raise UsageError(f"fusion dtype must be one of {_DTYPES}, got {self.dtype!r}")
        if self.preconditioner not in _PRECONDITIONERS:
            raise UsageError(
                f"fusion preconditioner must be one of {_PRECONDITIONERS}, "
                f"got {self.preconditioner!r}"
            )


@dataclass(frozen=True)
class FusionResult:
    """Output of :func:`irls_fuse`.

    Attributes:
        depth: fused depth in metres, same kind and shape as the input depth
            (numpy ``(H, W)``, torch ``(H, W)`` or ``(B, 1, H, W)``), dtype ``config.dtype``.
        objective: final objective E (summed over the batch for a batch).
        objectives: final objective of each image, ``(B,)`` (one entry for one image).
        objective_history: E after the initial solve and after each IRLS step (summed over
            the batch); never increasing.
        irls_iters: IRLS steps taken (the most of any image in a batch).
        cg_iters: CG iterations in all, initial solve included (batched iterations count
            once for the whole batch).
        converged: True when every image met ``tol`` before ``max_irls_iters``.
    """

    depth: Any
    objective: float
    objectives: tuple[float, ...]
    objective_history: tuple[float, ...]
    irls_iters: int
    cg_iters: int
    converged: bool
