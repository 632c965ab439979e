"""The torch IRLS solver: ``(B, 1, H, W)`` batches on any device, each image with its own
CG scalars; the DCT preconditioner by matrix products on a GPU, by scipy on the CPU.
torch is imported lazily, so numpy callers stay light."""

from __future__ import annotations

import functools
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

# torch path on the CPU: DCT by scipy's pocketfft (4x faster there than the matrix-product
# DCT used on GPUs). Tests switch it off to run the GPU code on the CPU.
_SCIPY_DCT_ON_CPU = True


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


@functools.lru_cache(maxsize=8)
def _dct_matrix(n: int, device: str, dtype: str) -> Any:
    """Orthonormal DCT-II matrix C (n, n): C @ x is the DCT of x along its first axis."""
    torch = _torch()
    mat = scipy.fft.dct(np.eye(n), type=2, norm="ortho", axis=0)
    return torch.as_tensor(mat, dtype=getattr(torch, dtype), device=device)


def _full_like(x: Any, value: float) -> Any:
    """A tensor like x filled with value."""
    return x.new_full(x.shape, value)


def _bdot(a: Any, b: Any) -> Any:
    """Per-image dot products of flat (B, n) tensors, shape (B,)."""
    return (a * b).sum(dim=1)
