"""Tests for dpde_cli.fusion: IRLS fusion of depth with gradients (known answers)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from dpde_cli.errors import DpdeError, UsageError
from dpde_cli.fusion import (
    FusionConfig,
    FusionResult,
    fusion_objective,
    irls_fuse,
    reference_irls_fuse,
    torch_irls,
)
from dpde_cli.geometry import spatial_gradients

# Tight settings: exact inner solves, convergence to the minimiser (float64).
EXACT = FusionConfig(dtype="float64", tol=1e-13, cg_tol=1e-11, cg_max_iters=400, max_irls_iters=300)


def piecewise_scene(
    h: int = 24, w: int = 32, seed: int = 0, noise: float = 0.05
) -> tuple[np.ndarray, np.ndarray]:
    """(ground truth, noisy estimate), metres: a tilted wall, a floor and a nearer box."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / np.array([h, w])[:, None, None]
    gt = 4.0 + 1.0 * xx + 0.5 * yy
    gt = np.where(yy > 0.6, 5.5 - 3.0 * (yy - 0.6), gt)
    box = (xx > 0.2) & (xx < 0.55) & (yy > 0.15) & (yy < 0.5)
    gt = np.where(box, 2.0 + 0.8 * xx, gt)
    return gt, gt + noise * rng.standard_normal((h, w))


def scene_inputs(h: int = 24, w: int = 32, seed: int = 0) -> tuple[np.ndarray, ...]:
    """(gt, d_est, G_x, G_y) with G the exact forward differences of gt."""
    gt, est = piecewise_scene(h, w, seed)
    gx, gy = spatial_gradients(gt)
    return gt, est, gx, gy


def test_omega_zero_returns_input() -> None:
    _, est, gx, gy = scene_inputs()
    res = irls_fuse(est, gx, gy, config=FusionConfig(omega=0.0, dtype="float64"))
    np.testing.assert_array_equal(res.depth, est)
    assert res.irls_iters == 0 and res.converged


def test_exact_gradients_recover_ground_truth() -> None:
    gt, est, gx, gy = scene_inputs()
    res = irls_fuse(est, gx, gy)
    assert isinstance(res, FusionResult)
    assert res.depth.shape == gt.shape and res.depth.dtype == np.float32
    assert res.converged
    err_in = np.abs(est - gt).mean()
    err_out = np.abs(res.depth - gt).mean()
    assert err_out < err_in / 10, (err_in, err_out)


@pytest.mark.parametrize("missing", [0.0, np.nan])
def test_hole_is_filled_from_gradients(missing: float) -> None:
    gt, _ = piecewise_scene(noise=0.0)
    gx, gy = spatial_gradients(gt)
    est = gt.copy()
    est[5:15, 8:20] = missing  # a 10x12 hole across the box edge
    res = irls_fuse(est, gx, gy, config=dataclasses.replace(EXACT, dtype="float32"))
    assert np.isfinite(res.depth).all()
    np.testing.assert_allclose(res.depth[5:15, 8:20], gt[5:15, 8:20], atol=1e-3)


def test_mask_weights_the_data_term() -> None:
    gt, est, gx, gy = scene_inputs()
    est_bad = est.copy()
    est_bad[:, :10] += 3.0  # a wrong band, masked out
    mask = np.ones_like(est, dtype=bool)
    mask[:, :10] = False
    masked = irls_fuse(est_bad, gx, gy, mask=mask, config=EXACT).depth
    holes = irls_fuse(np.where(mask, est_bad, 0.0), gx, gy, config=EXACT).depth
    np.testing.assert_allclose(masked, holes, atol=1e-9)
    assert np.abs(masked - gt)[:, :10].mean() < 0.05


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("line_search", [True, False])
@pytest.mark.parametrize("preconditioner", ["dct", "jacobi", "none"])
def test_objective_never_rises(dtype: str, line_search: bool, preconditioner: str) -> None:
    _, est, gx, gy = scene_inputs(seed=3)
    cfg = FusionConfig(
        dtype=dtype,
        line_search=line_search,
        preconditioner=preconditioner,
        tol=0.0,
        max_irls_iters=25,
    )
    res = irls_fuse(est, gx, gy, config=cfg)
    hist = np.array(res.objective_history)
    assert len(hist) == res.irls_iters + 1
    assert (np.diff(hist) <= 0).all(), hist
    assert hist[-1] == pytest.approx(res.objective)
    assert fusion_objective(res.depth, est, gx, gy, config=cfg) == pytest.approx(
        res.objective, rel=1e-5
    )


def test_steps_match_sparse_direct_reference() -> None:
    """Plain IRLS with exact CG solves takes the same steps as spsolve of the same systems."""
    _, est, gx, gy = scene_inputs(20, 28, seed=1)
    cfg = dataclasses.replace(EXACT, line_search=False, tol=0.0, max_irls_iters=6)
    ours = irls_fuse(est, gx, gy, config=cfg)
    ref = reference_irls_fuse(est, gx, gy, config=cfg, solver="direct")
    np.testing.assert_allclose(ours.objective_history, ref.objective_history, rtol=1e-10)
    np.testing.assert_allclose(ours.depth, ref.depth, atol=1e-8)


@pytest.mark.parametrize("holes", [False, True])
def test_minimiser_matches_sparse_direct_reference(holes: bool) -> None:
    _, est, gx, gy = scene_inputs(20, 28, seed=2)
    mask = None
    if holes:
        est[3:8, 4:9] = 0.0
        mask = np.random.default_rng(0).uniform(0.5, 1.0, est.shape)
    ref = reference_irls_fuse(est, gx, gy, mask=mask, config=EXACT, solver="direct")
    assert ref.converged
    ours = irls_fuse(est, gx, gy, mask=mask, config=EXACT)
    assert ours.converged
    np.testing.assert_allclose(ours.depth, ref.depth, atol=1e-5)
    assert ours.objective <= ref.objective * (1 + 1e-12)


def test_default_config_reaches_reference_objective() -> None:
    """The fast defaults (float32, 3 CG steps) land within 1e-4 of the exact minimum."""
    _, est, gx, gy = scene_inputs(48, 64, seed=4)
    best = irls_fuse(est, gx, gy, config=EXACT).objective
    ref = reference_irls_fuse(est, gx, gy, solver="jacobi-cg")
    fast = irls_fuse(est, gx, gy)
    e_fast = fusion_objective(fast.depth, est, gx, gy)
    assert e_fast <= best * (1 + 1e-4)
    assert e_fast <= ref.objective * (1 + 1e-4)


def test_no_valid_depth_raises() -> None:
    _, est, gx, gy = scene_inputs()
    with pytest.raises(DpdeError, match="no valid depth"):
        irls_fuse(np.zeros_like(est), gx, gy)
    with pytest.raises(DpdeError, match="no valid depth"):
        irls_fuse(est, gx, gy, mask=np.zeros_like(est, dtype=bool))


@pytest.mark.parametrize(
    "bad",
    [
        {"grad_x": np.zeros((24, 31))},
        {"grad_y": np.zeros((23, 32))},
        {"mask": np.ones((24, 30))},
        {"depth": np.zeros((2, 24, 32))},
    ],
)
def test_shape_mismatch_raises(bad: dict[str, np.ndarray]) -> None:
    _, est, gx, gy = scene_inputs()
    args = {"depth": est, "grad_x": gx, "grad_y": gy, "mask": None} | bad
    with pytest.raises(DpdeError, match="shape"):
        irls_fuse(**args)


def test_bad_values_raise() -> None:
    _, est, gx, gy = scene_inputs()
    with pytest.raises(DpdeError, match="mask"):
        irls_fuse(est, gx, gy, mask=np.full(est.shape, 2.0))
    gx_nan = gx.copy()
    gx_nan[3, 4] = np.nan
    with pytest.raises(DpdeError, match="finite"):
        irls_fuse(est, gx_nan, gy)
    with pytest.raises(DpdeError):
        irls_fuse(est.tolist(), gx, gy)


@pytest.mark.parametrize(
    "field",
    [
        {"omega": -1.0},
        {"eps": 0.0},
        {"dtype": "float16"},
        {"preconditioner": "ilu"},
        {"cg_max_iters": 0},
        {"cg_tol": 1.5},
    ],
)
def test_bad_config_raises(field: dict[str, object]) -> None:
    with pytest.raises(UsageError):
        FusionConfig(**field)


def test_cg_tol_zero_runs_every_cg_iteration() -> None:
    _, est, gx, gy = scene_inputs()
    res = irls_fuse(est, gx, gy, config=FusionConfig(cg_tol=0.0, cg_max_iters=4))
    assert res.converged
    assert res.cg_iters == 4 * (res.irls_iters + 1)


def test_unused_gradient_entries_are_ignored() -> None:
    _, est, gx, gy = scene_inputs()
    a = irls_fuse(est, gx, gy, config=EXACT).depth
    gx2, gy2 = gx.copy(), gy.copy()
    gx2[:, -1] = 7.0
    gy2[-1, :] = -7.0
    b = irls_fuse(est, gx2, gy2, config=EXACT).depth
    np.testing.assert_array_equal(a, b)


# ---- torch path ---------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_torch_matches_numpy(device: str, dtype: str) -> None:
    torch = pytest.importorskip("torch")
    _, est, gx, gy = scene_inputs(seed=5)
    est[2:6, 3:7] = np.nan
    cfg = FusionConfig(dtype=dtype)
    ref = irls_fuse(est, gx, gy, config=cfg)
    res = irls_fuse(*(torch.as_tensor(a, device=device) for a in (est, gx, gy)), config=cfg)
    assert res.depth.shape == est.shape and res.depth.device.type == torch.device(device).type
    atol = 1e-4 if dtype == "float32" else 1e-10
    np.testing.assert_allclose(res.depth.cpu().numpy(), ref.depth, atol=atol)
    assert res.objective == pytest.approx(ref.objective, rel=1e-5)
    assert (res.irls_iters, res.cg_iters) == (ref.irls_iters, ref.cg_iters)


def test_torch_matrix_dct_matches_fft_dct(monkeypatch: pytest.MonkeyPatch) -> None:
    """The matrix-product DCT (the GPU code) gives the CPU's pocketfft answer."""
    torch = pytest.importorskip("torch")
    _, est, gx, gy = scene_inputs(seed=6)
    args = [torch.as_tensor(a)[None, None] for a in (est, gx, gy)]
    cfg = FusionConfig(dtype="float64")
    fft = irls_fuse(*args, config=cfg)
    monkeypatch.setattr(torch_irls, "_SCIPY_DCT_ON_CPU", False)
    mat = irls_fuse(*args, config=cfg)
    torch.testing.assert_close(mat.depth, fft.depth, atol=1e-10, rtol=0)
    assert (mat.irls_iters, mat.cg_iters) == (fft.irls_iters, fft.cg_iters)


@pytest.mark.parametrize("batch", [1, 3])
def test_torch_batch_equals_single_images(device: str, batch: int) -> None:
    torch = pytest.importorskip("torch")
    scenes = [scene_inputs(seed=10 + i) for i in range(batch)]
    stack = [
        torch.as_tensor(np.stack([s[j] for s in scenes])[:, None], device=device) for j in (1, 2, 3)
    ]
    mask = torch.ones_like(stack[0])
    mask[-1, 0, :4] = 0.3
    cfg = FusionConfig(dtype="float64")
    res = irls_fuse(*stack, mask=mask, config=cfg)
    assert res.depth.shape == (batch, 1, 24, 32)
    assert len(res.objectives) == batch
    for i in range(batch):
        one = irls_fuse(stack[0][i, 0], stack[1][i, 0], stack[2][i, 0], mask=mask[i, 0], config=cfg)
        torch.testing.assert_close(res.depth[i, 0], one.depth, atol=1e-10, rtol=0)
        assert res.objectives[i] == pytest.approx(one.objective, rel=1e-12)
        obj = fusion_objective(
            one.depth, stack[0][i, 0], stack[1][i, 0], stack[2][i, 0], mask=mask[i, 0]
        )
        assert float(obj) == pytest.approx(one.objective, rel=1e-9)


def test_torch_errors(device: str) -> None:
    torch = pytest.importorskip("torch")
    d = torch.ones(2, 1, 8, 9, device=device)
    g = torch.zeros(2, 1, 8, 9, device=device)
    with pytest.raises(DpdeError, match="shape"):
        irls_fuse(d, g[:, :, :, :8], g)
    with pytest.raises(DpdeError):
        irls_fuse(d[:, 0], g[:, 0], g[:, 0])  # (B, H, W) is not a supported layout
    empty = d.clone()
    empty[1] = 0
    with pytest.raises(DpdeError, match="no valid depth"):
        irls_fuse(empty, g, g)
