"""The public functions: :func:`irls_fuse` (numpy or torch input, dispatched to its
solver) and :func:`fusion_objective`."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from dpde_cli.errors import DpdeError
from dpde_cli.fusion._common import _objective_array
from dpde_cli.fusion.config import FusionConfig, FusionResult
from dpde_cli.fusion.numpy_irls import _fuse_numpy, _prepare_numpy
from dpde_cli.fusion.torch_irls import _as_batch, _fuse_torch, _is_tensor, _prepare_torch, _torch

if TYPE_CHECKING:
    import torch


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
