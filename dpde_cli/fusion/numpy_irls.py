"""The numpy/scipy IRLS solver: one ``(H, W)`` image on the CPU, matrix-free, flat
arrays, preconditioned CG with a DCT-II preconditioner."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.fft

from dpde_cli.errors import DpdeError
from dpde_cli.fusion._common import (
    _LINE_SEARCH_STEPS,
    _check_shapes,
    _laplacian_eigenvalues,
    _no_data_error,
    _objective_array,
    _result,
)
from dpde_cli.fusion.config import FusionConfig, FusionResult


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
