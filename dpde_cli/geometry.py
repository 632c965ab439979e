"""Camera geometry and finite differences. No open3d here.

Gradient convention used everywhere in dpde (network targets, fusion, losses):
forward differences in metres per pixel,

    grad_x[..., y, x] = d[..., y, x + 1] - d[..., y, x]   (last column is 0)
    grad_y[..., y, x] = d[..., y + 1, x] - d[..., y, x]   (last row is 0)
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np

ArrayT = TypeVar("ArrayT")


def spatial_gradients(depth: ArrayT) -> tuple[ArrayT, ArrayT]:
    """Forward-difference gradients of a depth map, zero on the last column / row.

    Args:
        depth: numpy array or torch tensor of shape (..., H, W), metres.

    Returns:
        (grad_x, grad_y), each of the same shape and type as ``depth``.

    Example:
        >>> gx, gy = spatial_gradients(np.arange(6.0).reshape(2, 3))
    """
    if isinstance(depth, np.ndarray):
        gx = np.zeros_like(depth)
        gy = np.zeros_like(depth)
    else:  # torch tensor; imported lazily so numpy-only callers stay light
        gx = depth.new_zeros(depth.shape)
        gy = depth.new_zeros(depth.shape)
    gx[..., :, :-1] = depth[..., :, 1:] - depth[..., :, :-1]
    gy[..., :-1, :] = depth[..., 1:, :] - depth[..., :-1, :]
    return gx, gy


def valid_gradient_masks(valid: ArrayT) -> tuple[ArrayT, ArrayT]:
    """Masks of the gradients whose two pixels are both valid (same convention as above).

    Args:
        valid: boolean array or tensor (..., H, W).

    Returns:
        (valid_x, valid_y) boolean, same shape; False on the last column / row.
    """
    if isinstance(valid, np.ndarray):
        vx = np.zeros_like(valid, dtype=bool)
        vy = np.zeros_like(valid, dtype=bool)
    else:
        vx = valid.new_zeros(valid.shape, dtype=valid.dtype).bool()
        vy = valid.new_zeros(valid.shape, dtype=valid.dtype).bool()
    vx[..., :, :-1] = valid[..., :, 1:] & valid[..., :, :-1]
    vy[..., :-1, :] = valid[..., 1:, :] & valid[..., :-1, :]
    return vx, vy
