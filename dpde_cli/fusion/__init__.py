"""IRLS fusion of a depth estimate with predicted depth gradients (DPDE Eq. 5-6).

The fused depth ``d`` minimises

    E(d) = sum_p m_p phi(d_p - d_est_p)
         + omega * [sum_(x edges) phi(dx d - G_x) + sum_(y edges) phi(dy d - G_y)],
    phi(r) = sqrt(r^2 + eps),

with forward differences (the convention of :mod:`dpde_cli.geometry`: ``dx d[y, x] =
d[y, x + 1] - d[y, x]``), so only the ``W - 1`` horizontal and ``H - 1`` vertical edges of
each row / column enter; the last column of ``G_x`` and the last row of ``G_y`` are unused.
``m`` is a confidence mask in [0, 1]; pixels whose input depth is missing (0 or NaN) get
``m = 0`` and are filled from the gradients.

Solver: iteratively re-weighted least squares. Each step fixes ``w = 1 / phi(residual)``
and solves the sparse SPD system

    (W_d + omega (Dx^T W_x Dx + Dy^T W_y Dy)) d = W_d d_est + omega (Dx^T W_x G_x + Dy^T W_y G_y)

matrix-free (a 5-point stencil with per-edge weights) by preconditioned conjugate gradients
warm-started from the previous iterate. The default preconditioner is the constant-weight
operator ``a I + b L`` (``L`` the Neumann grid Laplacian, ``a``, ``b`` the mean current
weights), which the orthonormal DCT-II diagonalises exactly. The first iterate is the
uniform-weight (least-squares) solution, and each IRLS step is followed by a short
extrapolation line search along the step, accepted only when it lowers ``E``: the objective
never rises (each step minimises a quadratic majoriser of ``E`` from a warm start).

Two paths give the same answer within tolerance: numpy/scipy for one ``(H, W)`` image on the
CPU (``numpy_irls``), and torch for ``(B, 1, H, W)`` batches on any device (``torch_irls``;
the DCT by matrix products on a GPU, by scipy on the CPU). :func:`reference_irls_fuse`
(``reference``) is the naive version (scipy.sparse assembly and ``spsolve`` or Jacobi CG
each step), kept for tests and benchmarks. ``config`` holds :class:`FusionConfig` and
:class:`FusionResult`, ``fuse`` the public functions, ``_common`` what the solvers share.
"""

from dpde_cli.fusion.config import FusionConfig, FusionResult
from dpde_cli.fusion.fuse import fusion_objective, irls_fuse
from dpde_cli.fusion.reference import reference_irls_fuse

__all__ = [
    "FusionConfig",
    "FusionResult",
    "fusion_objective",
    "irls_fuse",
    "reference_irls_fuse",
]
