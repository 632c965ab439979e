"""Tests for dpde_cli.scattered: piecewise-linear interpolation of scattered values."""

from __future__ import annotations

import numpy as np
import pytest

from dpde_cli.scattered import Triangulation, grid_axis, upsample, values_at


def test_grid_axis_ends_on_the_last_pixel() -> None:
    assert grid_axis(20, 8).tolist() == [0, 8, 16, 19]
    assert grid_axis(17, 8).tolist() == [0, 8, 16]
    assert grid_axis(1, 8).tolist() == [0]


def test_vertices_keep_their_values_and_a_constant_stays_constant() -> None:
    rng = np.random.default_rng(0)
    shape = (30, 40)
    flat = rng.choice(shape[0] * shape[1], 25, replace=False)
    points = np.column_stack(np.divmod(flat, shape[1])).astype(float)
    values = rng.random((25, 2))
    tri = Triangulation(points, shape, step=1, per_side=4)
    nodes = tri.grid(values)
    assert nodes.shape == (30, 40, 2)
    np.testing.assert_allclose(values_at(nodes, tri.gy, tri.gx, points), values, atol=1e-12)
    constant = Triangulation(points, shape, step=8, per_side=4).grid(np.full((25, 1), 3.5))
    np.testing.assert_allclose(constant, 3.5)


def test_a_plane_is_reproduced_inside_the_points() -> None:
    """Exact inside the outer ring of points (the border pseudo-points are IDW means)."""
    shape = (33, 49)
    yy, xx = np.mgrid[0:33:4, 0:49:4]
    points = np.column_stack([yy.ravel(), xx.ravel()]).astype(float)
    values = (0.3 * points[:, 0] - 0.1 * points[:, 1] + 2.0)[:, None]
    tri = Triangulation(points, shape, step=2, per_side=8)
    dense = upsample(tri.grid(values)[..., 0], tri.gy, tri.gx, shape)
    py, px = np.mgrid[0:33, 0:49]
    plane = 0.3 * py - 0.1 * px + 2.0
    np.testing.assert_allclose(dense[4:29, 4:45], plane[4:29, 4:45], atol=1e-9)
    assert np.abs(dense - plane).max() < 1.0


@pytest.mark.parametrize("count", [1, 2, 3])
def test_few_points(count: int) -> None:
    points = np.array([[3.0, 4.0], [10.0, 2.0], [7.0, 15.0]])[:count]
    values = np.arange(1.0, count + 1.0)[:, None]
    tri = Triangulation(points, (12, 16), step=4, per_side=4)
    dense = upsample(tri.grid(values)[..., 0], tri.gy, tri.gx, (12, 16))
    assert dense.shape == (12, 16) and np.isfinite(dense).all()
    assert dense.min() >= values.min() - 1e-9 and dense.max() <= values.max() + 1e-9
