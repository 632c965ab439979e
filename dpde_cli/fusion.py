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
CPU, and torch for ``(B, 1, H, W)`` batches on any device (the DCT by matrix products on a
GPU, by scipy on the CPU).
:func:`reference_irls_fuse` is the naive version (scipy.sparse assembly and ``spsolve`` or
Jacobi CG each step), kept for tests and benchmarks.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import scipy.fft

from dpde_cli.errors import DpdeError, UsageError
from dpde_cli.geometry import spatial_gradients

if TYPE_CHECKING:
    import torch

__all__ = [
    "FusionConfig",
    "FusionResult",
    "fusion_objective",
    "irls_fuse",
    "reference_irls_fuse",
]

Preconditioner = Literal["dct", "jacobi", "none"]
_PRECONDITIONERS = ("dct", "jacobi", "none")
_DTYPES = ("float32", "float64")
# Extrapolation factors tried after each IRLS step, in order, while E keeps falling. One
# trial at 1.7 was among the cheapest settings on four synthetic 480x640 scenes, with 1.5;
# (1.5, 2, 3) or 2 alone cost 5-10 % more, no line search 20 % more (benchmarks/RESULTS.md).
_LINE_SEARCH_STEPS = (1.7,)
# torch path on the CPU: DCT by scipy's pocketfft (4x faster there than the matrix-product
# DCT used on GPUs). Tests switch it off to run the GPU code on the CPU.
_SCIPY_DCT_ON_CPU = True


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


# --------------------------------------------------------------------------------------
# Public functions
# --------------------------------------------------------------------------------------


def irls_fuse(
    depth: np.ndarray | torch.Tensor,
    grad_x: np.ndarray | torch.Tensor,
    grad_y: np.ndarray | torch.Tensor,
    mask: np.ndarray | torch.Tensor | None = None,
    config: FusionConfig = FusionConfig(),
) -> FusionResult:
    """Fuse a depth estimate with depth gradients by IRLS (DPDE Eq. 5-6).

    numpy inputs run on the CPU with numpy/scipy; torch inputs run batched on their own
    device, without autograd (the result carries no graph). Missing depth (0 or NaN) is
    filled from the gradients. On the CPU prefer numpy input: it is the faster path.

    Args:
        depth: estimated depth d_est in metres, numpy ``(H, W)`` or torch ``(H, W)`` /
            ``(B, 1, H, W)``; 0 or NaN marks a missing pixel.
        grad_x: horizontal forward-difference gradient G_x, metres per pixel, same shape
            and kind; the last column is unused.
        grad_y: vertical forward-difference gradient G_y, same shape; the last row is unused.
        mask: optional confidence of each depth pixel, bool or float in [0, 1], same shape.
        config: solver settings.

    Returns:
        A :class:`FusionResult` whose ``depth`` has the input's kind and shape.

    Raises:
        DpdeError: on mismatched shapes or kinds, non-finite gradients, a mask outside
            [0, 1], or an image without a single valid depth pixel.

    Example:
        >>> gx, gy = spatial_gradients(gt)
        >>> fused = irls_fuse(noisy_depth, gx, gy).depth
    """
    if isinstance(depth, np.ndarray):
        return _fuse_numpy(depth, grad_x, grad_y, mask, config)
    if _is_tensor(depth):
        return _fuse_torch(depth, grad_x, grad_y, mask, config)
    raise DpdeError(f"irls_fuse needs a numpy array or torch tensor, got {type(depth).__name__}")


def fusion_objective(
    candidate: np.ndarray | torch.Tensor,
    depth: np.ndarray | torch.Tensor,
    grad_x: np.ndarray | torch.Tensor,
    grad_y: np.ndarray | torch.Tensor,
    mask: np.ndarray | torch.Tensor | None = None,
    config: FusionConfig = FusionConfig(),
) -> float | torch.Tensor:
    """The fusion objective E(candidate) for the inputs of :func:`irls_fuse`.

    Args:
        candidate: depth to score, metres, same shape and kind as ``depth``.
        depth: estimated depth d_est (0 or NaN = missing), ``(H, W)`` or ``(B, 1, H, W)``.
        grad_x: horizontal gradient G_x, same shape.
        grad_y: vertical gradient G_y, same shape.
        mask: optional confidence in [0, 1], same shape.
        config: supplies ``omega`` and ``eps``.

    Returns:
        A float (computed in float64) for numpy input; for torch, a tensor of one objective
        per image, shape ``(B,)`` or ``()`` for an ``(H, W)`` input.

    Example:
        >>> e = fusion_objective(irls_fuse(d, gx, gy).depth, d, gx, gy)
    """
    if isinstance(depth, np.ndarray):
        est, m, gx, gy = _prepare_numpy(depth, grad_x, grad_y, mask, np.dtype(np.float64))
        cand = np.asarray(candidate, dtype=np.float64)
        if cand.shape != est.shape:
            raise DpdeError(f"candidate shape {cand.shape} != depth shape {est.shape}")
        return _objective_array(cand, est, m, gx, gy, config.omega, config.eps)
    if not _is_tensor(depth):
        raise DpdeError(f"fusion_objective needs numpy or torch input, got {type(depth)}")
    torch = _torch()
    batched = depth.dim() == 4
    est, m, gx, gy = _prepare_torch(depth, grad_x, grad_y, mask, torch.float64)
    cand = _as_batch(candidate, "candidate").to(torch.float64)
    if cand.shape != est.shape:
        raise DpdeError(f"candidate shape {tuple(cand.shape)} != depth shape {tuple(est.shape)}")
    value = _objective_array(cand, est, m, gx, gy, config.omega, config.eps)
    return value if batched else value[0]


# --------------------------------------------------------------------------------------
# Shared helpers
# --------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------
# numpy / scipy path
# --------------------------------------------------------------------------------------


def _prepare_numpy(
    depth: np.ndarray, grad_x: Any, grad_y: Any, mask: Any, dtype: np.dtype
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Validate numpy inputs; return (d_est with holes at 0, data weight m, G_x, G_y)."""
    if depth.ndim != 2:
        raise DpdeError(f"irls_fuse: numpy depth must be (H, W), got shape {depth.shape}")
    for name, arr in (("grad_x", grad_x), ("grad_y", grad_y), ("mask", mask)):
        if arr is not None and not isinstance(arr, np.ndarray):
            raise DpdeError(f"irls_fuse: {name} must be a numpy array like depth")
    _check_shapes(depth.shape, {"grad_x": grad_x, "grad_y": grad_y, "mask": mask})
    if min(depth.shape) < 2:
        raise DpdeError(f"irls_fuse: image must be at least 2x2, got {depth.shape}")
    gx = np.asarray(grad_x, dtype=dtype)
    gy = np.asarray(grad_y, dtype=dtype)
    if not (np.isfinite(gx[:, :-1]).all() and np.isfinite(gy[:-1]).all()):
        raise DpdeError("irls_fuse: gradients must be finite")
    est = np.array(depth, dtype=dtype)
    valid = np.isfinite(est) & (est != 0)
    est[~valid] = 0
    m = valid.astype(dtype)
    if mask is not None:
        mk = np.asarray(mask, dtype=dtype)
        if not ((mk >= 0) & (mk <= 1)).all():
            raise DpdeError("irls_fuse: mask values must lie in [0, 1]")
        m *= mk
    return est, m, gx, gy


class _NumpyIrls:
    """Matrix-free IRLS state for one (H, W) image on the CPU.

    Images are held flat (row-major, ``n = H W``) so that every stencil operation is a
    contiguous 1-D numpy operation (a shift by 1 for x edges, by W for y edges), several
    times faster than 2-D slices. The flat x-edge array has ``n - 1`` entries; the
    ``H - 1`` of them that join the end of a row to the start of the next (``wrap``) are
    not edges and keep weight 0.
    """

    def __init__(
        self, est: np.ndarray, m: np.ndarray, gx: np.ndarray, gy: np.ndarray, config: FusionConfig
    ) -> None:
        h, w = est.shape
        n = h * w
        dt = est.dtype
        self.shape = (h, w)
        self.w = w
        self.cfg = config
        self.omega = dt.type(config.omega)
        self.eps = dt.type(config.eps)
        self.est = est.ravel()
        self.m = None if m.min() == 1 else m.ravel()  # None: every pixel fully weighted
        self.wrap = np.arange(w - 1, n - 1, w)
        self.gx = np.ascontiguousarray(gx).ravel()[:-1].copy()  # (n-1,) x edges + wraps
        self.gx[self.wrap] = 0
        self.gy = np.ascontiguousarray(gy).ravel()[: n - w].copy()  # (n-W,) y edges
        self.lap = self.denom = None
        if config.preconditioner == "dct":
            self.lap = _laplacian_eigenvalues(h, w, dt.name)
            self.denom = np.empty_like(self.lap)
        new = functools.partial(np.empty, dtype=dt)
        # phi of the data / x-edge / y-edge residuals at the current iterate and a trial
        self.phi_cur = (new(n), new(n - 1), new(n - w))
        self.phi_try = (new(n), new(n - 1), new(n - w))
        self.wd, self.wx, self.wy = new(n), new(n - 1), new(n - w)
        self.ex, self.ey = new(n - 1), new(n - w)  # edge scratch
        self.r, self.p, self.q, self.tmp = new(n), new(n), new(n), new(n)
        self.prec: Callable[[np.ndarray], np.ndarray] = np.copy
        self.cg_iters = 0

    def evaluate(self, d: np.ndarray, phi: tuple[np.ndarray, ...]) -> float:
        """E(d) for a flat iterate ``d``, filling ``phi`` with phi of each residual."""
        pd, px, py = phi
        w = self.w
        np.subtract(d, self.est, out=pd)
        np.subtract(d[1:], d[:-1], out=px)
        px -= self.gx
        np.subtract(d[w:], d[:-w], out=py)
        py -= self.gy
        for a in phi:
            np.square(a, out=a)
            a += self.eps
            np.sqrt(a, out=a)
        data = pd.sum() if self.m is None else np.multiply(self.m, pd, out=self.tmp).sum()
        edges = px.sum() - px[self.wrap].sum() + py.sum()
        return float(data) + self.cfg.omega * float(edges)

    def set_weights(self, phi: tuple[np.ndarray, ...] | None) -> None:
        """Weights from phi values (IRLS), or uniform ones when ``phi`` is None (init)."""
        if phi is None:
            self.wd[...] = 1 if self.m is None else self.m
            self.wx.fill(self.omega)
            self.wy.fill(self.omega)
        else:
            pd, px, py = phi
            np.divide(1 if self.m is None else self.m, pd, out=self.wd)
            np.divide(self.omega, px, out=self.wx)
            np.divide(self.omega, py, out=self.wy)
        self.wx[self.wrap] = 0
        self._set_preconditioner()

    def _set_preconditioner(self) -> None:
        """Build the preconditioner for the current weights."""
        kind = self.cfg.preconditioner
        if kind == "dct":
            # a I + b L with a = mean data weight, b = mean edge weight; CG is blind to a
            # common scale, so (a/b) I + L serves.
            h, w = self.shape
            b = (self.wx.sum() + self.wy.sum()) / (h * (w - 1) + (h - 1) * w)
            denom = np.add(self.lap, self.wd.mean() / b, out=self.denom)
            self.prec = functools.partial(_dct_solve, denom=denom)
        elif kind == "jacobi":
            diag = self.wd.copy()
            diag[:-1] += self.wx
            diag[1:] += self.wx
            diag[: -self.w] += self.wy
            diag[self.w :] += self.wy
            self.prec = functools.partial(np.multiply, np.reciprocal(diag, out=diag))
        else:
            self.prec = np.copy

    def _add_edges(self, out: np.ndarray, ex: np.ndarray, ey: np.ndarray) -> np.ndarray:
        """out += Dx^T ex + Dy^T ey (edge values scattered to their two pixels)."""
        out[:-1] -= ex
        out[1:] += ex
        out[: -self.w] -= ey
        out[self.w :] += ey
        return out

    def apply(self, x: np.ndarray, out: np.ndarray) -> np.ndarray:
        """out = A x, A = W_d + Dx^T W_x Dx + Dy^T W_y Dy (omega folded into W_x, W_y)."""
        w = self.w
        np.subtract(x[1:], x[:-1], out=self.ex)
        self.ex *= self.wx
        np.subtract(x[w:], x[:-w], out=self.ey)
        self.ey *= self.wy
        np.multiply(x, self.wd, out=out)
        return self._add_edges(out, self.ex, self.ey)

    def rhs(self, out: np.ndarray) -> np.ndarray:
        """out = W_d d_est + Dx^T W_x G_x + Dy^T W_y G_y."""
        np.multiply(self.wd, self.est, out=out)
        np.multiply(self.wx, self.gx, out=self.ex)
        np.multiply(self.wy, self.gy, out=self.ey)
        return self._add_edges(out, self.ex, self.ey)

    def pcg(self, x: np.ndarray, b: np.ndarray) -> None:
        """Improve x in place by preconditioned CG on A x = b (warm start, cg_tol/max)."""
        r, p, q, tmp = self.r, self.p, self.q, self.tmp
        np.subtract(b, self.apply(x, q), out=r)
        rr = _dot(r, r)
        if rr == 0:
            return
        stop = self.cfg.cg_tol**2 * rr
        z = self.prec(r)
        p[...] = z
        rz = _dot(r, z)
        for k in range(1, self.cfg.cg_max_iters + 1):
            self.apply(p, q)
            pq = _dot(p, q)
            if not pq > 0:
                break
            alpha = rz / pq
            x += np.multiply(p, alpha, out=tmp)
            r -= np.multiply(q, alpha, out=tmp)
            self.cg_iters += 1
            if k == self.cfg.cg_max_iters or _dot(r, r) <= stop:
                break  # (no preconditioner on the last iteration: it would go unused)
            z = self.prec(r)
            rz_new = _dot(r, z)
            p *= rz_new / rz
            p += z
            rz = rz_new


def _dot(a: np.ndarray, b: np.ndarray) -> float:
    """Dot product of two flat arrays.

    einsum runs in this thread; BLAS dot products (np.vdot) start threads, which on a busy
    2-core machine made each one up to 50 times slower.
    """
    return float(np.einsum("i,i->", a, b))


def _dct_solve(r: np.ndarray, denom: np.ndarray) -> np.ndarray:
    """(c I + L)^-1 r for flat r by orthonormal DCT-II; ``denom`` = c + lambda, (H, W)."""
    c = scipy.fft.dctn(r.reshape(denom.shape), type=2, norm="ortho", workers=-1)
    c /= denom
    return scipy.fft.idctn(c, type=2, norm="ortho", workers=-1, overwrite_x=True).ravel()


def _fuse_numpy(
    depth: np.ndarray, grad_x: Any, grad_y: Any, mask: Any, config: FusionConfig
) -> FusionResult:
    """irls_fuse for one numpy (H, W) image."""
    est, m, gx, gy = _prepare_numpy(depth, grad_x, grad_y, mask, np.dtype(config.dtype))
    if not m.any():
        raise _no_data_error()
    if config.omega == 0:  # the data term alone: the input is the minimiser
        out = np.array(depth, dtype=config.dtype)
        e = _objective_array(est, est, m, gx, gy, 0.0, config.eps)
        return _result(out, [e], [e], 0, 0, True)
    s = _NumpyIrls(est, m, gx, gy, config)
    # first iterate: the uniform-weight least-squares fusion, from d_est (holes: its mean)
    d = est.ravel().copy()
    d[m.ravel() == 0] = np.average(est, weights=m)
    b = np.empty_like(d)
    s.set_weights(None)
    s.pcg(d, s.rhs(b))
    e = s.evaluate(d, s.phi_cur)
    history = [e]
    x, trial = np.empty_like(d), np.empty_like(d)
    converged = False
    iters = 0
    for iters in range(1, config.max_irls_iters + 1):
        s.set_weights(s.phi_cur)
        x[...] = d
        s.pcg(x, s.rhs(b))
        e_new = s.evaluate(x, s.phi_try)
        if config.line_search and e_new < e:
            e_new, x, trial = _line_search(s, d, x, trial, e_new, step=b)
        if not e_new < e:  # no progress at floating-point level: d is the minimiser
            converged = True
            iters -= 1
            break
        d, x = x, d
        s.phi_cur, s.phi_try = s.phi_try, s.phi_cur
        rel = (e - e_new) / abs(e_new)
        e = e_new
        history.append(e)
        if rel < config.tol:
            converged = True
            break
    return _result(d.reshape(est.shape), history, [e], iters, s.cg_iters, converged)


def _line_search(
    s: _NumpyIrls, d: np.ndarray, x: np.ndarray, trial: np.ndarray, e_x: float, step: np.ndarray
) -> tuple[float, np.ndarray, np.ndarray]:
    """Try d + t (x - d) for t in _LINE_SEARCH_STEPS while E falls.

    On return ``x`` holds the best point, ``e_x`` its objective and ``s.phi_try`` its phi;
    ``trial`` is free scratch. ``step`` is scratch for x - d.
    """
    np.subtract(x, d, out=step)
    for t in _LINE_SEARCH_STEPS:
        np.multiply(step, t, out=trial)
        trial += d
        s.phi_cur, s.phi_try = s.phi_try, s.phi_cur  # phi_cur: best so far; phi_try: free
        e_t = s.evaluate(trial, s.phi_try)
        if not e_t < e_x:
            s.phi_cur, s.phi_try = s.phi_try, s.phi_cur
            break
        e_x, x, trial = e_t, trial, x
    return e_x, x, trial


# --------------------------------------------------------------------------------------
# torch path (batched, any device)
# --------------------------------------------------------------------------------------


def _torch() -> Any:
    """The torch module, imported lazily so numpy callers stay light."""
    import torch

    return torch


def _is_tensor(x: Any) -> bool:
    """True for a torch tensor (without importing torch when it is not loaded)."""
    return type(x).__module__.startswith("torch") and hasattr(x, "dim")


def _as_batch(x: Any, name: str) -> Any:
    """(H, W) or (B, 1, H, W) tensor -> (B, H, W) view; DpdeError otherwise."""
    if not _is_tensor(x):
        raise DpdeError(f"irls_fuse: {name} must be a torch tensor like depth")
    if x.dim() == 2:
        return x.unsqueeze(0)
    if x.dim() == 4 and x.shape[1] == 1:
        return x[:, 0]
    raise DpdeError(f"irls_fuse: {name} must be (H, W) or (B, 1, H, W), got {tuple(x.shape)}")


def _prepare_torch(
    depth: Any, grad_x: Any, grad_y: Any, mask: Any, dtype: Any
) -> tuple[Any, Any, Any, Any]:
    """Validate torch inputs; return (d_est, m, G_x, G_y) as (B, H, W) tensors of dtype."""
    _check_shapes(depth.shape, {"grad_x": grad_x, "grad_y": grad_y, "mask": mask})
    est = _as_batch(depth, "depth").to(dtype=dtype, copy=True)
    if min(est.shape[-2:]) < 2:
        raise DpdeError(f"irls_fuse: image must be at least 2x2, got {tuple(depth.shape)}")
    dev = est.device
    gx = _as_batch(grad_x, "grad_x").to(device=dev, dtype=dtype)
    gy = _as_batch(grad_y, "grad_y").to(device=dev, dtype=dtype)
    if not (gx[..., :-1].isfinite().all() and gy[..., :-1, :].isfinite().all()):
        raise DpdeError("irls_fuse: gradients must be finite")
    valid = est.isfinite() & (est != 0)
    est[~valid] = 0
    m = valid.to(dtype)
    if mask is not None:
        mk = _as_batch(mask, "mask").to(device=dev, dtype=dtype)
        if not ((mk >= 0) & (mk <= 1)).all():
            raise DpdeError("irls_fuse: mask values must lie in [0, 1]")
        m = m * mk
    return est, m, gx, gy


@functools.lru_cache(maxsize=8)
def _dct_matrix(n: int, device: str, dtype: str) -> Any:
    """Orthonormal DCT-II matrix C (n, n): C @ x is the DCT of x along its first axis."""
    torch = _torch()
    mat = scipy.fft.dct(np.eye(n), type=2, norm="ortho", axis=0)
    return torch.as_tensor(mat, dtype=getattr(torch, dtype), device=device)


class _TorchIrls:
    """Matrix-free IRLS state for a batch, flat ``(B, H W)`` like :class:`_NumpyIrls`.

    Every image keeps its own CG scalars, so a batch gives each image the iterates it
    would get alone. The DCT preconditioner uses orthonormal DCT-II matrices on a GPU (two
    batched matrix products per transform) and scipy's pocketfft on the CPU.
    """

    def __init__(self, est: Any, m: Any, gx: Any, gy: Any, config: FusionConfig) -> None:
        torch = _torch()
        self.torch = torch
        self.cfg = config
        bsz, h, w = est.shape
        n = h * w
        self.shape, self.w = (bsz, h, w), w
        self.est, self.m = est.reshape(bsz, n), m.reshape(bsz, n)
        dev = est.device
        self.wrap = torch.arange(w - 1, n - 1, w, device=dev)
        self.gx = gx.reshape(bsz, n)[:, :-1].clone()  # (B, n-1): x edges and row wraps
        self.gx[:, self.wrap] = 0
        self.gy = gy.reshape(bsz, n)[:, : n - w].contiguous()  # (B, n-W): y edges
        self.n_edges = h * (w - 1) + (h - 1) * w
        # DCT by pocketfft on the CPU (zero-copy numpy views), by matrix products elsewhere
        self.dct_on_cpu = dev.type == "cpu" and _SCIPY_DCT_ON_CPU
        if config.preconditioner == "dct":
            dts = str(est.dtype).removeprefix("torch.")
            if not self.dct_on_cpu:
                self.ch = _dct_matrix(h, str(dev), dts)
                self.cw = _dct_matrix(w, str(dev), dts)
            lam = np.array(_laplacian_eigenvalues(h, w))  # a writable copy for torch
            self.lap = torch.as_tensor(lam, dtype=est.dtype, device=dev)
        self.wd = self.wx = self.wy = self.pre = None
        self.cg_iters = 0

    def evaluate(self, d: Any) -> tuple[Any, tuple[Any, Any, Any]]:
        """Per-image E(d) for flat d (B, n), shape (B,), and phi of each residual."""
        eps, w = self.cfg.eps, self.w
        pd = (d - self.est).square_().add_(eps).sqrt_()
        px = (d[:, 1:] - d[:, :-1] - self.gx).square_().add_(eps).sqrt_()
        py = (d[:, w:] - d[:, :-w] - self.gy).square_().add_(eps).sqrt_()
        edges = px.sum(dim=1) - px[:, self.wrap].sum(dim=1) + py.sum(dim=1)
        return (self.m * pd).sum(dim=1) + self.cfg.omega * edges, (pd, px, py)

    def set_weights(self, phi: tuple[Any, Any, Any] | None) -> None:
        """IRLS weights from phi values, or uniform ones when ``phi`` is None."""
        omega = self.cfg.omega
        if phi is None:
            self.wd = self.m.clone()
            self.wx = _full_like(self.gx, omega)
            self.wy = _full_like(self.gy, omega)
        else:
            pd, px, py = phi
            self.wd = self.m / pd
            self.wx = omega / px
            self.wy = omega / py
        self.wx[:, self.wrap] = 0
        kind = self.cfg.preconditioner
        if kind == "dct":  # (a/b) I + L per image, as in the numpy path
            b = (self.wx.sum(dim=1) + self.wy.sum(dim=1)) / self.n_edges
            self.pre = self.lap + (self.wd.mean(dim=1) / b)[:, None, None]
        elif kind == "jacobi":
            diag = self.wd.clone()
            diag[:, :-1] += self.wx
            diag[:, 1:] += self.wx
            diag[:, : -self.w] += self.wy
            diag[:, self.w :] += self.wy
            self.pre = diag.reciprocal_()

    def _add_edges(self, out: Any, ex: Any, ey: Any) -> Any:
        """out += Dx^T ex + Dy^T ey on flat (B, n) images."""
        w = self.w
        out[:, :-1] -= ex
        out[:, 1:] += ex
        out[:, :-w] -= ey
        out[:, w:] += ey
        return out

    def apply(self, x: Any) -> Any:
        """A x for each flat image, (B, n)."""
        w = self.w
        ex = (x[:, 1:] - x[:, :-1]).mul_(self.wx)
        ey = (x[:, w:] - x[:, :-w]).mul_(self.wy)
        return self._add_edges(x * self.wd, ex, ey)

    def rhs(self) -> Any:
        """W_d d_est + Dx^T W_x G_x + Dy^T W_y G_y, (B, n)."""
        return self._add_edges(self.wd * self.est, self.wx * self.gx, self.wy * self.gy)

    def prec(self, r: Any) -> Any:
        """Apply the preconditioner to flat residuals (B, n)."""
        kind = self.cfg.preconditioner
        if kind == "dct":
            if self.dct_on_cpu:
                c = scipy.fft.dctn(
                    r.view(self.shape).numpy(), type=2, norm="ortho", axes=(-2, -1), workers=-1
                )
                c /= self.pre.numpy()
                c = scipy.fft.idctn(
                    c, type=2, norm="ortho", axes=(-2, -1), workers=-1, overwrite_x=True
                )
                return self.torch.from_numpy(c).view(r.shape)
            c = self.ch @ r.view(self.shape) @ self.cw.T
            c /= self.pre
            return (self.ch.T @ c @ self.cw).view(r.shape)
        if kind == "jacobi":
            return r * self.pre
        return r.clone()

    def pcg(self, x: Any, b: Any, active: Any) -> Any:
        """PCG on A x = b for the ``active`` (B,) images, warm-started at x; returns x."""
        torch = self.torch
        x = x.clone()
        r = b - self.apply(x)
        rr = _bdot(r, r)
        stop = self.cfg.cg_tol**2 * rr
        going = active & (rr > stop)
        if not bool(going.any()):
            return x
        z = self.prec(r)
        p = z
        rz = _bdot(r, z)
        for k in range(1, self.cfg.cg_max_iters + 1):
            q = self.apply(p)
            pq = _bdot(p, q)
            going = going & (pq > 0)
            alpha = torch.where(going, rz / torch.where(going, pq, 1), 0)[:, None]
            x.add_(alpha * p)
            r.sub_(alpha * q)
            self.cg_iters += 1
            going = going & (_bdot(r, r) > stop)
            if k == self.cfg.cg_max_iters or not bool(going.any()):
                break  # (no preconditioner on the last iteration: it would go unused)
            z = self.prec(r)
            rz_new = _bdot(r, z)
            beta = torch.where(going, rz_new / torch.where(going, rz, 1), 0)[:, None]
            p = z.add_(beta * p)
            rz = rz_new
        return x


def _full_like(x: Any, value: float) -> Any:
    """A tensor like x filled with value."""
    return x.new_full(x.shape, value)


def _bdot(a: Any, b: Any) -> Any:
    """Per-image dot products of flat (B, n) tensors, shape (B,)."""
    return (a * b).sum(dim=1)


def _fuse_torch(
    depth: Any, grad_x: Any, grad_y: Any, mask: Any, config: FusionConfig
) -> FusionResult:
    """irls_fuse for torch (H, W) or (B, 1, H, W) tensors, batched on their device."""
    torch = _torch()
    dtype = getattr(torch, config.dtype)
    with torch.no_grad():
        est, m, gx, gy = _prepare_torch(depth, grad_x, grad_y, mask, dtype)
        if not bool((m.sum(dim=(1, 2)) > 0).all()):
            raise _no_data_error()
        if config.omega == 0:  # the data term alone: the input is the minimiser
            out = depth.to(dtype=dtype, copy=True)
            e = _objective_array(est, est, m, gx, gy, 0.0, config.eps).cpu().numpy()
            return _result(out, [e], e, 0, 0, True)
        d, history, iters, cg_iters, converged = _torch_irls(est, m, gx, gy, config)
    out = d.view(depth.shape)
    return _result(out, history, history[-1], iters, cg_iters, converged)


def _torch_irls(
    est: Any, m: Any, gx: Any, gy: Any, config: FusionConfig
) -> tuple[Any, list[np.ndarray], int, int, bool]:
    """The IRLS loop on (B, H, W) tensors; images that converge are frozen.

    Returns the flat fused depth (B, n), the per-image objective history, the IRLS steps,
    the CG iterations and whether every image converged.
    """
    torch = _torch()
    s = _TorchIrls(est, m, gx, gy, config)
    est_f, m_f = s.est, s.m
    fill = (est_f * m_f).sum(dim=1) / m_f.sum(dim=1)
    d = torch.where(m_f > 0, est_f, fill[:, None])
    active = torch.ones(est.shape[0], dtype=torch.bool, device=est.device)
    s.set_weights(None)
    d = s.pcg(d, s.rhs(), active)
    e, phi = s.evaluate(d)
    history = [e.cpu().numpy()]
    iters = 0
    improved = active
    for iters in range(1, config.max_irls_iters + 1):  # noqa: B007 (read after the loop)
        s.set_weights(phi)
        x = s.pcg(d, s.rhs(), active)
        e_new, phi_new = s.evaluate(x)
        if config.line_search:
            x, e_new, phi_new = _torch_line_search(s, d, x, e_new, phi_new, active & (e_new < e))
        improved = active & (e_new < e)
        rel = (e - e_new) / e_new.abs()
        d = torch.where(improved[:, None], x, d)
        phi = _select(improved, phi_new, phi)
        e = torch.where(improved, e_new, e)
        history.append(e.cpu().numpy())
        active = improved & (rel >= config.tol)
        if not bool(active.any()):
            break
    converged = not bool(active.any())
    if converged and not bool(improved.any()):  # the last step moved no image
        history.pop()
        iters -= 1
    return d, history, iters, s.cg_iters, converged


def _torch_line_search(
    s: _TorchIrls, d: Any, x: Any, e_x: Any, phi_x: tuple[Any, ...], searching: Any
) -> tuple[Any, Any, tuple[Any, ...]]:
    """Per image, try d + t (x - d) for t in _LINE_SEARCH_STEPS while E falls."""
    torch = _torch()
    step = x - d
    for t in _LINE_SEARCH_STEPS:
        if not bool(searching.any()):
            break
        trial = d + t * step
        e_t, phi_t = s.evaluate(trial)
        better = searching & (e_t < e_x)
        x = torch.where(better[:, None], trial, x)
        e_x = torch.where(better, e_t, e_x)
        phi_x = _select(better, phi_t, phi_x)
        searching = better
    return x, e_x, phi_x


def _select(cond: Any, a: tuple[Any, ...], b: tuple[Any, ...]) -> tuple[Any, ...]:
    """Per-image choice between two tuples of (B, ...) tensors: a where cond, else b."""
    torch = _torch()
    return tuple(torch.where(cond[:, None], x, y) for x, y in zip(a, b, strict=True))


# --------------------------------------------------------------------------------------
# Naive reference (scipy.sparse assembly each step), for tests and benchmarks
# --------------------------------------------------------------------------------------


def _difference_operators(h: int, w: int) -> tuple[Any, Any]:
    """Sparse forward-difference operators Dx (H(W-1), HW) and Dy ((H-1)W, HW), row-major."""
    import scipy.sparse as sp

    def d1(n: int) -> Any:
        return sp.diags([-np.ones(n - 1), np.ones(n - 1)], [0, 1], shape=(n - 1, n))

    dx = sp.kron(sp.eye(h), d1(w), format="csr")
    dy = sp.kron(d1(h), sp.eye(w), format="csr")
    return dx, dy


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
