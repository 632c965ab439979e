"""Piecewise-linear interpolation of scattered values onto a pixel grid (numpy + scipy).

:class:`Triangulation` triangulates scattered points (Delaunay), extends the triangulation
to the image border with pseudo-points whose values are inverse-distance-weighted means of
the nearest points, and evaluates the piecewise-linear interpolant on nodes every ``step``
pixels; :func:`upsample` and :func:`values_at` read those node values bilinearly at every
pixel or at any points. Used by :mod:`dpde_cli.completion`.

Example:
    >>> tri = Triangulation(points, (480, 640), step=8, per_side=8)
    >>> dense = upsample(tri.grid(values[:, None])[..., 0], tri.gy, tri.gx, (480, 640))
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["Triangulation", "grid_axis", "upsample", "values_at"]


class Triangulation:
    """Piecewise-linear interpolation from scattered points onto a grid of nodes.

    The nodes lie every ``step`` pixels (and on the last row and column). Pseudo-points on
    the image border take an inverse-distance-weighted mean of the nearest points (linear
    in their values), so the Delaunay triangulation covers the image and the interpolation
    is continuous everywhere. Each node's triangle and barycentric weights are found once
    by rasterising the triangles over the nodes.

    Args:
        points: (N, 2) (row, col) pixel coordinates, distinct.
        shape: (H, W) of the image.
        step: pixels between nodes.
        per_side: pseudo-points per image side.
    """

    def __init__(
        self, points: np.ndarray, shape: tuple[int, int], step: int, per_side: int
    ) -> None:
        from scipy.spatial import Delaunay, cKDTree

        h, w = shape
        self.gy, self.gx = grid_axis(h, step), grid_axis(w, step)
        ty, tx = np.linspace(0, h - 1, per_side), np.linspace(0, w - 1, per_side)
        border = np.unique(
            np.concatenate(
                [
                    np.column_stack([ty, np.zeros_like(ty)]),
                    np.column_stack([ty, np.full_like(ty, w - 1)]),
                    np.column_stack([np.zeros_like(tx), tx]),
                    np.column_stack([np.full_like(tx, h - 1), tx]),
                ]
            ),
            axis=0,
        )
        k = min(4, len(points))
        dist, idx = cKDTree(points).query(border, k=k)
        self.idx = idx.reshape(len(border), k)
        idw = 1.0 / np.maximum(dist.reshape(len(border), k), 1e-9) ** 2
        self.idw = idw / idw.sum(axis=1, keepdims=True)
        nodes, self.first = np.unique(
            np.concatenate([points, border]), axis=0, return_index=True
        )  # a border point on a measured pixel keeps the measurement
        self.vertex, self.bary = _rasterise(Delaunay(nodes), self.gy, self.gx)

    def grid(self, values: np.ndarray) -> np.ndarray:
        """The interpolation of ``values`` (N, k) at the nodes, (len(gy), len(gx), k)."""
        border_values = np.einsum("bj,bjc->bc", self.idw, values[self.idx])
        node_values = np.concatenate([values, border_values])[self.first]
        out = np.einsum("gi,gic->gc", self.bary, node_values[self.vertex])
        return out.reshape(len(self.gy), len(self.gx), values.shape[1])


def _rasterise(tri: Any, gy: np.ndarray, gx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each node of the grid gy x gx, its triangle's vertices (G, 3) and barycentric
    weights (G, 3); a node no triangle covers (none should) takes its nearest vertex."""
    corners = tri.points[tri.simplices]  # (S, 3, 2) as (row, col)
    lo, hi = corners.min(axis=1), corners.max(axis=1)
    i0, i1 = np.searchsorted(gy, lo[:, 0]), np.searchsorted(gy, hi[:, 0], side="right")
    j0, j1 = np.searchsorted(gx, lo[:, 1]), np.searchsorted(gx, hi[:, 1], side="right")
    ni, nj = np.maximum(i1 - i0, 0), np.maximum(j1 - j0, 0)
    count = ni * nj
    owner = np.repeat(np.arange(len(count)), count)
    offset = np.arange(int(count.sum())) - np.repeat(np.cumsum(count) - count, count)
    ii = i0[owner] + offset // np.maximum(nj[owner], 1)
    jj = j0[owner] + offset % np.maximum(nj[owner], 1)
    origin = corners[:, 0]
    e1, e2 = corners[:, 1] - origin, corners[:, 2] - origin
    det = e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]
    py = gy[ii] - origin[owner, 0]
    px = gx[jj] - origin[owner, 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        l1 = (py * e2[owner, 1] - px * e2[owner, 0]) / det[owner]
        l2 = (px * e1[owner, 0] - py * e1[owner, 1]) / det[owner]
    weights = np.column_stack([1.0 - l1 - l2, l1, l2])
    inside = (weights.min(axis=1) >= -1e-9) & (np.abs(det[owner]) > 1e-12)
    node = (ii * len(gx) + jj)[inside]
    n_nodes = len(gy) * len(gx)
    vertex = np.zeros((n_nodes, 3), np.int64)
    bary = np.zeros((n_nodes, 3))
    vertex[node] = tri.simplices[owner[inside]]
    bary[node] = weights[inside]
    covered = np.zeros(n_nodes, bool)
    covered[node] = True
    if not covered.all():
        from scipy.spatial import cKDTree

        qy, qx = np.divmod(np.flatnonzero(~covered), len(gx))
        used = np.unique(tri.simplices)
        nearest = used[cKDTree(tri.points[used]).query(np.column_stack([gy[qy], gx[qx]]))[1]]
        vertex[~covered] = nearest[:, None]
        bary[~covered] = (1.0, 0.0, 0.0)
    return vertex, bary


def grid_axis(n: int, step: int) -> np.ndarray:
    """Node coordinates 0, step, 2 step, ... and always n - 1."""
    nodes = np.arange(0, n, step)
    return nodes if nodes[-1] == n - 1 else np.append(nodes, n - 1)


def _lerp(nodes: np.ndarray, coords: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each coordinate, the node at or before it and the fraction to the next one."""
    if len(nodes) == 1:
        return np.zeros(len(coords), np.int64), np.zeros(len(coords))
    i0 = np.clip(np.searchsorted(nodes, coords, side="right") - 1, 0, len(nodes) - 2)
    return i0, (coords - nodes[i0]) / (nodes[i0 + 1] - nodes[i0])


def upsample(
    coarse: np.ndarray, gy: np.ndarray, gx: np.ndarray, shape: tuple[int, int]
) -> np.ndarray:
    """Bilinear upsampling of node values (len(gy), len(gx)) to every pixel (H, W)."""
    if len(gy) == 1 or len(gx) == 1:
        return np.broadcast_to(coarse.mean(), shape).copy()
    iy, fy = _lerp(gy, np.arange(shape[0]))
    ix, fx = _lerp(gx, np.arange(shape[1]))
    rows = coarse[iy] * (1 - fy)[:, None] + coarse[iy + 1] * fy[:, None]
    return rows[:, ix] * (1 - fx) + rows[:, ix + 1] * fx


def values_at(coarse: np.ndarray, gy: np.ndarray, gx: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Bilinear values of node values (len(gy), len(gx), k) at points (N, 2): (N, k)."""
    iy, fy = _lerp(gy, points[:, 0])
    ix, fx = _lerp(gx, points[:, 1])
    if len(gy) == 1 or len(gx) == 1:
        return np.broadcast_to(coarse.mean(axis=(0, 1)), (len(points), coarse.shape[2]))
    fy, fx = fy[:, None], fx[:, None]
    top = coarse[iy, ix] * (1 - fx) + coarse[iy, ix + 1] * fx
    bottom = coarse[iy + 1, ix] * (1 - fx) + coarse[iy + 1, ix + 1] * fx
    return top * (1 - fy) + bottom * fy
