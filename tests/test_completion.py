"""Tests for dpde_cli.completion and dpde_cli.sparse: metric depth from a few measurements."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from dpde_cli.completion import (
    CompletionConfig,
    CompletionResult,
    complete_depth,
    complete_from_measurements,
    fit_alignment,
)
from dpde_cli.errors import DpdeError, InputError, UsageError
from dpde_cli.fusion import FusionConfig
from dpde_cli.geometry import spatial_gradients
from dpde_cli.io import write_depth
from dpde_cli.sparse import (
    Anchor,
    anchor_map,
    parse_anchor,
    rasterize_points,
    read_sparse_depth,
    sample_sparse,
)

SCALE_ERROR = 1.7


def scene(h: int = 48, w: int = 64) -> np.ndarray:
    """Ground-truth depth, metres: a tilted wall, a floor and a nearer box."""
    yy, xx = np.mgrid[0:h, 0:w] / np.array([h, w])[:, None, None]
    gt = 4.0 + 1.0 * xx + 0.5 * yy
    gt = np.where(yy > 0.6, 5.5 - 3.0 * (yy - 0.6), gt)
    box = (xx > 0.2) & (xx < 0.55) & (yy > 0.15) & (yy < 0.5)
    return np.where(box, 2.0 + 0.8 * xx, gt)


def network(gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A network with the right shape and the wrong scale: (depth, exact gradients)."""
    depth = gt / SCALE_ERROR
    return depth, np.stack(spatial_gradients(depth))


def rel(pred: np.ndarray, gt: np.ndarray) -> float:
    return float(np.mean(np.abs(pred - gt) / gt))


def test_one_point_recovers_the_scale() -> None:
    gt = scene()
    depth, grads = network(gt)
    sparse = np.zeros_like(gt)
    sparse[30, 10] = gt[30, 10]
    out = complete_depth(depth, grads, sparse)
    assert isinstance(out, CompletionResult)
    assert out.scale == pytest.approx(SCALE_ERROR, rel=1e-9)
    assert (out.shift, out.points_used, out.points_rejected, out.detail) == (0.0, 1, 0, 1.0)
    assert out.depth.shape == gt.shape and out.depth.dtype == np.float32
    assert rel(out.depth, gt) < 1e-3
    assert out.aligned_residual.rel < 1e-9


def test_many_points_complete_a_wrong_shape() -> None:
    """The network's shape is off by a smooth 30 % bump: the points correct it."""
    gt = scene()
    h, w = gt.shape
    yy, xx = np.mgrid[0:h, 0:w]
    bump = 1.0 + 0.3 * np.exp(-((yy - 20) ** 2 + (xx - 40) ** 2) / 200.0)
    depth, grads = network(gt * bump)
    sparse = sample_sparse(gt, None, 300, seed=3)
    out = complete_depth(depth, grads, sparse)
    scale_only = rel(depth * out.scale, gt)
    assert rel(out.depth, gt) < scale_only / 4, (rel(out.depth, gt), scale_only)
    measured = sparse > 0
    np.testing.assert_allclose(out.depth[measured], sparse[measured], rtol=1e-6)


def test_exact_network_and_many_points_give_the_ground_truth() -> None:
    gt = scene()
    depth, grads = network(gt)
    out = complete_depth(depth, grads, sample_sparse(gt, None, 200, seed=0))
    assert out.points_used == 200 and out.points_rejected == 0
    assert out.detail == pytest.approx(1.0)
    assert rel(out.depth, gt) < 1e-3
    assert out.completed_residual.median_abs < 1e-3


def test_outliers_are_rejected() -> None:
    gt = scene()
    depth, grads = network(gt)
    sparse = sample_sparse(gt, None, 100, seed=1)
    rows, cols = np.nonzero(sparse)
    bad = np.random.default_rng(0).choice(rows.size, 8, replace=False)
    sparse[rows[bad[:4]], cols[bad[:4]]] *= 3.0
    sparse[rows[bad[4:]], cols[bad[4:]]] /= 3.0
    out = complete_depth(depth, grads, sparse)
    assert (out.points_used, out.points_rejected) == (92, 8)
    assert out.scale == pytest.approx(SCALE_ERROR, rel=1e-6)
    assert rel(out.depth, gt) < 2e-3


def test_true_points_where_the_network_is_wrong_are_kept() -> None:
    """The network puts the box twice as far: its points are outliers to the network's
    shape but agree with their neighbours, so they stay and fix the box."""
    gt = scene()
    h, w = gt.shape
    yy, xx = np.mgrid[0:h, 0:w] / np.array([h, w])[:, None, None]
    box = (xx > 0.2) & (xx < 0.55) & (yy > 0.15) & (yy < 0.5)
    depth, grads = network(np.where(box, 2.0 * gt, gt))
    sparse = sample_sparse(gt, None, 400, seed=6)
    out = complete_depth(depth, grads, sparse)
    in_box = int((box & (sparse > 0)).sum())
    assert in_box > 40 and out.points_rejected < in_box // 4
    assert out.scale == pytest.approx(SCALE_ERROR, rel=1e-6)
    inner = (xx > 0.3) & (xx < 0.45) & (yy > 0.25) & (yy < 0.4)  # away from the box's edges
    assert rel(out.depth[inner], gt[inner]) < 0.01
    assert rel(out.depth, gt) < rel(depth * out.scale, gt) / 2


def test_dense_points_are_judged_from_a_subset() -> None:
    """Beyond cv_max_points the folds split a subset and the other points are held out
    from all of it: outliers still go, true points where the network is wrong still stay."""
    config = CompletionConfig(cv_max_points=48)
    gt = scene()
    depth, grads = network(gt)
    sparse = sample_sparse(gt, None, 100, seed=1)
    rows, cols = np.nonzero(sparse)
    bad = np.random.default_rng(0).choice(rows.size, 8, replace=False)
    sparse[rows[bad], cols[bad]] *= 3.0
    out = complete_depth(depth, grads, sparse, config=config)
    assert (out.points_used, out.points_rejected) == (92, 8)
    assert rel(out.depth, gt) < 2e-3
    h, w = gt.shape
    yy, xx = np.mgrid[0:h, 0:w] / np.array([h, w])[:, None, None]
    box = (xx > 0.2) & (xx < 0.55) & (yy > 0.15) & (yy < 0.5)
    depth, grads = network(np.where(box, 2.0 * gt, gt))
    sparse = sample_sparse(gt, None, 400, seed=6)
    out = complete_depth(depth, grads, sparse, config=config)
    assert out.points_rejected < int((box & (sparse > 0)).sum()) // 4
    inner = (xx > 0.3) & (xx < 0.45) & (yy > 0.25) & (yy < 0.4)
    assert rel(out.depth[inner], gt[inner]) < 0.01


def test_scale_shift_alignment() -> None:
    gt = scene()
    depth = (gt - 0.5) / 1.3
    grads = np.stack(spatial_gradients(depth))
    sparse = sample_sparse(gt, None, 20, seed=2)
    out = complete_depth(depth, grads, sparse, align="scale-shift")
    assert out.align == "scale-shift"
    assert out.scale == pytest.approx(1.3, rel=1e-4)
    assert out.shift == pytest.approx(0.5, abs=1e-3)
    assert rel(out.depth, gt) < 1e-3
    only_scale = complete_depth(depth, grads, sparse, config=CompletionConfig(detail=1.0))
    assert only_scale.aligned_residual.rel > 10 * out.aligned_residual.rel


def test_fit_alignment_known_answers() -> None:
    d = np.array([1.0, 2.0, 4.0])
    fit = fit_alignment(d, 2.0 * d + 1.0, align="scale-shift")
    assert (fit.scale, fit.shift) == (pytest.approx(2.0, rel=1e-6), pytest.approx(1.0, abs=1e-6))
    single = fit_alignment(np.array([2.0]), np.array([5.0]))
    assert single.scale == pytest.approx(2.5) and single.inliers.tolist() == [True]
    with pytest.raises(UsageError, match="two or more different depths"):
        fit_alignment(np.array([2.0]), np.array([5.0]), align="scale-shift")
    with pytest.raises(UsageError, match="non-positive scale"):
        fit_alignment(d, np.array([4.0, 2.0, 1.0]), align="scale-shift")


def test_confidence_zero_drops_a_point_and_weights_the_rest() -> None:
    gt = scene()
    depth, grads = network(gt)
    sparse = np.zeros_like(gt)
    sparse[5, 5], sparse[40, 60] = gt[5, 5], 10.0 * gt[40, 60]
    confidence = np.ones_like(gt)
    confidence[40, 60] = 0.0
    out = complete_depth(depth, grads, sparse, confidence=confidence)
    assert out.points_used == 1 and out.scale == pytest.approx(SCALE_ERROR)


def test_the_points_are_written_in_and_summarised() -> None:
    gt = scene()
    depth, _ = network(gt * (1 + 0.1 * np.sin(np.arange(gt.shape[1]) / 5.0)))
    sparse = sample_sparse(gt, None, 30, seed=4)
    out = complete_depth(depth, None, sparse)
    assert out.fusion is None
    measured = sparse > 0
    np.testing.assert_allclose(out.depth[measured], sparse[measured], rtol=1e-6)
    assert out.completed_residual.median_abs == pytest.approx(0.0, abs=1e-5)
    assert set(out.summary()) >= {"scale", "points_used", "points_rejected", "aligned_residual"}
    assert "depth" not in out.summary()


def test_fusion_stage_keeps_an_exact_answer_and_reports() -> None:
    gt = scene()
    depth, grads = network(gt)
    config = CompletionConfig(fusion=FusionConfig(omega=1.0))
    out = complete_depth(depth, grads, sample_sparse(gt, None, 40, seed=5), config=config)
    assert out.fusion is not None and out.fusion["converged"]
    assert set(out.fusion) == {"irls_iterations", "cg_iterations", "objective", "converged"}
    assert rel(out.depth, gt) < 1e-3


@pytest.mark.parametrize("shape", [(2, 2), (5, 7), (31, 17)])
def test_shapes(shape: tuple[int, int]) -> None:
    gt = 2.0 + np.random.default_rng(0).random(shape)
    depth, grads = network(gt)
    out = complete_depth(depth, grads, sample_sparse(gt, None, 3, seed=0))
    assert out.depth.shape == shape


def test_bad_inputs() -> None:
    gt = scene()
    depth, grads = network(gt)
    sparse = sample_sparse(gt, None, 5, seed=0)
    with pytest.raises(DpdeError, match="gradients must be"):
        complete_depth(depth, grads[:, :-1], sparse)
    with pytest.raises(DpdeError, match="sparse map"):
        complete_depth(depth, grads, sparse[:-1])
    with pytest.raises(DpdeError, match="confidence values"):
        complete_depth(depth, grads, sparse, confidence=np.full_like(gt, 2.0))
    with pytest.raises(DpdeError, match="no sparse measurement"):
        complete_depth(depth, grads, np.full_like(gt, np.nan))
    with pytest.raises(DpdeError, match="finite and > 0"):
        complete_depth(np.where(gt > 5, 0.0, depth), grads, sparse)
    with pytest.raises(UsageError, match="unknown alignment"):
        complete_depth(depth, grads, sparse, align="affine")
    with pytest.raises(UsageError, match="detail"):
        CompletionConfig(detail=1.5)


# ------------------------------------------------------------------------------ sparse input


def test_sample_sparse_is_deterministic_and_draws_valid_pixels() -> None:
    gt = scene()
    valid = np.zeros(gt.shape, bool)
    valid[:, :32] = True
    a = sample_sparse(gt, valid, 50, seed=7)
    b = sample_sparse(gt, valid, 50, seed=7)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, sample_sparse(gt, valid, 50, seed=8))
    assert (a > 0).sum() == 50 and not a[:, 32:].any()
    np.testing.assert_array_equal(a[a > 0], gt.astype(np.float32)[a > 0])
    assert (sample_sparse(gt, valid, 10**6, seed=0) > 0).sum() == valid.sum()
    with pytest.raises(UsageError):
        sample_sparse(gt, None, 0)


def test_rasterize_takes_the_lower_median_of_a_pixel() -> None:
    out = rasterize_points(
        np.array([0.0, 0.0, 1.0, 3.0]),
        np.array([0.0, 1.0, 0.0, 3.0]),
        np.array([5.0, 1.0, 3.0, 2.0]),
        source_size=(4, 4),
        shape=(2, 2),
    )
    np.testing.assert_array_equal(out, [[3.0, 0.0], [0.0, 2.0]])


def test_read_sparse_map_at_another_resolution(tmp_path: Path) -> None:
    small = np.zeros((24, 32), np.float32)
    small[0, 0], small[23, 31], small[12, 16] = 1.5, 2.5, 3.0
    path = write_depth(tmp_path / "s.png", small)
    out = read_sparse_depth(path, photo_size=(480, 640), shape=(48, 64))
    assert out.shape == (48, 64)
    # (u + 0.5) * 2 - 0.5 = 2u + 0.5, rounded half to even
    assert (out[0, 0], out[46, 62], out[24, 32]) == (1.5, 2.5, 3.0)
    assert (out > 0).sum() == 3


def test_read_sparse_npy_with_nan(tmp_path: Path) -> None:
    values = np.full((48, 64), np.nan, np.float32)
    values[3, 4] = 2.0
    path = tmp_path / "s.npy"
    np.save(path, values)
    out = read_sparse_depth(path, photo_size=(48, 64))
    assert (out > 0).sum() == 1 and out[3, 4] == 2.0


def test_read_sparse_refusals(tmp_path: Path) -> None:
    from PIL import Image

    eight = tmp_path / "eight.png"
    Image.fromarray(np.full((48, 64), 9, np.uint8)).save(eight)
    with pytest.raises(InputError, match="8-bit") as info:
        read_sparse_depth(eight, (48, 64))
    assert str(eight) in str(info.value)
    empty = write_depth(tmp_path / "empty.png", np.zeros((48, 64), np.float32))
    with pytest.raises(InputError, match="no measurement"):
        read_sparse_depth(empty, (48, 64))
    wide = write_depth(tmp_path / "wide.npy", np.ones((48, 96), np.float32))
    with pytest.raises(InputError, match="aspect ratio"):
        read_sparse_depth(wide, (48, 64))
    negative = write_depth(tmp_path / "neg.npy", -np.ones((48, 64), np.float32))
    with pytest.raises(InputError, match="negative"):
        read_sparse_depth(negative, (48, 64))
    mm = write_depth(tmp_path / "mm.npy", np.full((48, 64), 2500.0, np.float32))
    with pytest.raises(InputError, match="millimetres"):
        read_sparse_depth(mm, (48, 64))


def test_parse_anchor() -> None:
    assert parse_anchor("320,240=2.5") == Anchor(320.0, 240.0, 2.5)
    assert parse_anchor(" 1.5, 2 =0.3") == Anchor(1.5, 2.0, 0.3)
    for bad, words in [
        ("320,240", "X,Y=METRES"),
        ("320=2", "X,Y=METRES"),
        ("a,b=2", "numbers"),
        ("nan,3=2", "finite"),
        ("3,4=0", "positive"),
        ("3,4=-1", "positive"),
        ("3,4=nan", "positive"),
    ]:
        with pytest.raises(UsageError, match=words) as info:
            parse_anchor(bad)
        assert info.value.args[0].startswith("--anchor")


def test_anchor_map_rescales_and_refuses_outside() -> None:
    anchors = [Anchor(639, 479, 2.0), Anchor(0, 0, 1.0)]
    out = anchor_map(anchors, photo_size=(480, 640), shape=(240, 320))
    assert out[239, 319] == 2.0 and out[0, 0] == 1.0 and (out > 0).sum() == 2
    base = np.zeros((240, 320), np.float32)
    base[0, 0], base[5, 5] = 7.0, 3.0
    merged = anchor_map(anchors, (480, 640), (240, 320), sparse=base)
    assert (merged[0, 0], merged[5, 5], base[0, 0]) == (1.0, 3.0, 7.0)
    for x, y in [(640, 10), (-1, 10), (10, 480), (10, -0.5)]:
        with pytest.raises(UsageError, match="outside the 640x480 photo"):
            anchor_map([Anchor(x, y, 1.0)], (480, 640), (240, 320))
    assert math.isclose(float(anchor_map([], (480, 640), (240, 320)).sum()), 0.0)


def test_complete_from_measurements(tmp_path: Path) -> None:
    gt = scene()
    depth, grads = network(gt)
    photo = (96, 128)  # the photo is twice the depth grid
    out = complete_from_measurements(depth, grads, photo, anchors=[f"20,60={float(gt[30, 10])!r}"])
    assert out.points_used == 1 and out.scale == pytest.approx(SCALE_ERROR, rel=1e-6)
    half = np.zeros((24, 32), np.float32)
    half[5, 5] = gt[10, 10] * 3  # an outlier the anchors outvote
    path = write_depth(tmp_path / "lidar.npy", half)
    anchors = [f"{2 * x},{2 * y}={float(gt[y, x])!r}" for y, x in [(30, 10), (40, 60), (2, 3)]]
    both = complete_from_measurements(depth, grads, photo, path, anchors)
    assert (both.points_used, both.points_rejected) == (3, 1)
    assert both.scale == pytest.approx(SCALE_ERROR, rel=1e-6)
    with pytest.raises(UsageError, match="--sparse-depth or at least one --anchor"):
        complete_from_measurements(depth, grads, photo)
    with pytest.raises(UsageError, match="--anchor 999,1=2: the pixel lies outside"):
        complete_from_measurements(depth, grads, photo, tmp_path / "missing.png", ["999,1=2"])
    with pytest.raises(InputError, match="no such file"):
        complete_from_measurements(depth, grads, photo, tmp_path / "missing.png", ["9,1=2"])
