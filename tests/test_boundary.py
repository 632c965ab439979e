"""The depth-boundary F-score: known answers."""

from __future__ import annotations

import math

import numpy as np
import torch

from dpde_cli.metrics import MetricAccumulator, boundary_f1
from dpde_cli.metrics.boundary import boundary_scores, depth_edges


def _step(width: int = 64, edge: int = 30) -> np.ndarray:
    """A wall at 2 m with a box at 1 m on its left part."""
    depth = np.full((48, width), 2.0)
    depth[:, :edge] = 1.0
    return depth


def test_edges_mark_the_near_side_of_a_jump():
    edges = depth_edges(_step(), np.ones((48, 64), bool), 0.05)
    assert edges[:, 29].all() and edges.sum() == 48  # the box's pixel, not the wall's


def test_perfect_shifted_and_missing_edges():
    gt, mask = _step(), np.ones((48, 64), bool)
    assert boundary_scores(gt * 1.7, gt, mask) == (1.0, 1.0, 1.0)  # scale-invariant
    assert boundary_scores(_step(edge=32), gt, mask)[2] == 1.0  # 2 px off: within 3
    assert boundary_scores(_step(edge=40), gt, mask)[2] == 0.0  # 10 px off
    _, recall, f1 = boundary_scores(np.full((48, 64), 1.5), gt, mask)
    assert recall == 0.0 and f1 == 0.0  # a flat prediction finds no edge
    blurred = np.linspace(1.0, 2.0, 64)[None].repeat(48, 0)
    assert boundary_scores(blurred, gt, mask)[1] == 0.0  # a ramp of 1.6% steps is no edge
    assert all(math.isnan(v) for v in boundary_scores(gt, np.full_like(gt, 3.0), mask))


def test_batched_and_in_the_accumulator():
    gt = torch.from_numpy(_step())[None, None].repeat(2, 1, 1, 1)
    pred = torch.stack([gt[0], torch.full_like(gt[0], 1.5)])
    mask = torch.ones_like(gt, dtype=torch.bool)
    assert boundary_f1(pred, gt, mask).tolist() == [1.0, 0.0]
    acc = MetricAccumulator(extra=("edges",))
    acc.update(pred, gt, mask)
    assert acc.compute()["edges"] == 0.5
