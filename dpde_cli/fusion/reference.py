"""The naive IRLS (scipy.sparse assembly and a direct or Jacobi-CG solve each step), kept
as the reference for tests and benchmarks."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from dpde_cli.errors import UsageError
from dpde_cli.fusion._common import _no_data_error, _objective_array, _result
from dpde_cli.fusion.config import FusionConfig, FusionResult
from dpde_cli.fusion.numpy_irls import _prepare_numpy


def reference_irls_fuse(
    depth: np.ndarray,
    grad_x: np.ndarray,
    grad_y: np.ndarray,
    mask: np.ndarray | None = None,
    config: FusionConfig = FusionConfig(),
    solver: Literal["direct", "jacobi-cg"] = "direct",
    cg_rtol: float = 1e-8,
) -> FusionResult:
    """Plain IRLS in float64 with an explicit scipy.sparse matrix each step (slow, simple).

    The same first iterate (uniform-weight least squares) and stopping rule as
    :func:`irls_fuse`, no line search; each system is assembled with scipy.sparse and solved
    by ``spsolve`` (``solver="direct"``) or by ``scipy.sparse.linalg.cg`` with a Jacobi
    preconditioner to relative residual ``cg_rtol``, warm-started.

    Args:
        depth: d_est ``(H, W)``, metres, 0 or NaN = missing.
        grad_x: G_x ``(H, W)``.
        grad_y: G_y ``(H, W)``.
        mask: optional confidence ``(H, W)`` in [0, 1].
        config: omega, eps, tol and max_irls_iters are used.
        solver: "direct" or "jacobi-cg".
        cg_rtol: CG tolerance (relative to the right-hand side) for "jacobi-cg".

    Returns:
        A :class:`FusionResult` (float64 depth, ``cg_iters`` counts CG iterations or solves).
    """
    import scipy.sparse as sp
    import scipy.sparse.linalg as spla

    est, m, gx, gy = _prepare_numpy(depth, grad_x, grad_y, mask, np.dtype(np.float64))
    if not m.any():
        raise _no_data_error()
    h, w = est.shape
    dx, dy = _difference_operators(h, w)
    bx, by, e_vec, m_vec = gx[:, :-1].ravel(), gy[:-1].ravel(), est.ravel(), m.ravel()
    omega, eps = config.omega, config.eps
    solves = 0

    def solve(wd: np.ndarray, wx: np.ndarray, wy: np.ndarray, x0: np.ndarray) -> np.ndarray:
        nonlocal solves
        a = (
            sp.diags(wd) + dx.T @ sp.diags(omega * wx) @ dx + dy.T @ sp.diags(omega * wy) @ dy
        ).tocsr()
        b = wd * e_vec + omega * (dx.T @ (wx * bx) + dy.T @ (wy * by))
        if solver == "direct":
            solves += 1
            return spla.spsolve(a.tocsc(), b)
        if solver != "jacobi-cg":
            raise UsageError(f"unknown reference solver {solver!r}")
        count = [0]
        jacobi = sp.diags(1.0 / a.diagonal())
        x, _ = spla.cg(
            a,
            b,
            x0=x0,
            rtol=cg_rtol,
            maxiter=20 * a.shape[0],
            M=jacobi,
            callback=lambda _x: count.__setitem__(0, count[0] + 1),
        )
        solves += count[0]
        return x

    def objective(d: np.ndarray) -> float:
        return _objective_array(d.reshape(h, w), est, m, gx, gy, omega, eps)

    fill = np.where(m_vec > 0, e_vec, np.average(e_vec, weights=m_vec))
    d = solve(m_vec, np.ones(bx.size), np.ones(by.size), fill)
    e = objective(d)
    history, converged, iters = [e], False, 0
    for iters in range(1, config.max_irls_iters + 1):  # noqa: B007 (read after the loop)
        wd = m_vec / np.sqrt((d - e_vec) ** 2 + eps)
        wx = 1 / np.sqrt((dx @ d - bx) ** 2 + eps)
        wy = 1 / np.sqrt((dy @ d - by) ** 2 + eps)
        d = solve(wd, wx, wy, d)
        e_new = objective(d)
        rel = (e - e_new) / abs(e_new)
        e = e_new
        history.append(e)
        if rel < config.tol:
            converged = True
            break
    return _result(d.reshape(h, w), history, [e], iters, solves, converged)


def _difference_operators(h: int, w: int) -> tuple[Any, Any]:
    """Sparse forward-difference operators Dx (H(W-1), HW) and Dy ((H-1)W, HW), row-major."""
    import scipy.sparse as sp

    def d1(n: int) -> Any:
        return sp.diags([-np.ones(n - 1), np.ones(n - 1)], [0, 1], shape=(n - 1, n))

    dx = sp.kron(sp.eye(h), d1(w), format="csr")
    dy = sp.kron(d1(h), sp.eye(w), format="csr")
    return dx, dy
