"""The training losses: known answers, masks, gradients."""

from __future__ import annotations

import math

import pytest
import torch

from dpde_cli.geometry import spatial_gradients
from dpde_cli.losses import (
    BerHuLoss,
    FSIMLoss,
    GlobalDepthLoss,
    GradientLogL1Loss,
    berhu,
    berhu_loss,
    fsim_loss,
    gradient_log_l1_loss,
    silog_loss,
)


def _scene(batch: int = 2, height: int = 32, width: int = 48) -> torch.Tensor:
    """(B, 1, H, W) depth: a tilted plane with a box in front, metres."""
    ys = torch.linspace(0, 1, height)[:, None]
    xs = torch.linspace(0, 1, width)[None, :]
    depth = (2.0 + 1.5 * xs + 0.5 * ys).expand(batch, 1, height, width).clone()
    depth[:, :, height // 4 : height // 2, width // 4 : width // 2] = 1.2
    return depth + 0.1 * torch.arange(batch).view(-1, 1, 1, 1)


# ------------------------------------------------------------------------------ BerHu


def test_berhu_is_l1_below_c_and_scaled_l2_above() -> None:
    r = torch.tensor([-0.5, 0.0, 0.3, 1.0, -2.0, 3.0])
    c = 1.0
    expected = torch.tensor([0.5, 0.0, 0.3, 1.0, (4 + 1) / 2, (9 + 1) / 2])
    torch.testing.assert_close(berhu(r, c), expected)


def test_berhu_is_continuous_with_continuous_slope_at_c() -> None:
    c = 0.7
    eps = 1e-6
    below = berhu(torch.tensor(c - eps, dtype=torch.float64), c)
    above = berhu(torch.tensor(c + eps, dtype=torch.float64), c)
    assert abs(float(above - below)) < 1e-5
    r = torch.tensor([c - 1e-4, c + 1e-4], dtype=torch.float64, requires_grad=True)
    berhu(r, c).sum().backward()
    torch.testing.assert_close(r.grad[0], r.grad[1], atol=1e-3, rtol=0)


def test_berhu_loss_known_answer_with_adaptive_threshold() -> None:
    gt = torch.full((1, 1, 1, 2), 2.0)
    pred = gt + torch.tensor([0.1, 1.0]).view(1, 1, 1, 2)
    valid = torch.ones_like(gt, dtype=torch.bool)
    c = 0.2 * 1.0
    expected = (0.1 + (1.0 + c * c) / (2 * c)) / 2
    assert float(berhu_loss(pred, gt, valid)) == pytest.approx(expected)
    assert float(BerHuLoss()(pred, gt, valid)) == pytest.approx(expected)


@pytest.mark.parametrize("batch", [1, 3])
def test_berhu_loss_ignores_invalid_pixels(batch: int) -> None:
    gt = _scene(batch)
    valid = torch.rand(gt.shape, generator=torch.Generator().manual_seed(0)) > 0.3
    pred = gt + 0.05 * torch.randn(gt.shape, generator=torch.Generator().manual_seed(1))
    reference = berhu_loss(pred, gt, valid)
    spoiled = torch.where(valid, pred, torch.full_like(pred, 1e3)).requires_grad_()
    loss = berhu_loss(spoiled, torch.where(valid, gt, torch.zeros_like(gt)), valid)
    torch.testing.assert_close(loss, reference)
    loss.backward()
    assert torch.all(spoiled.grad[~valid] == 0)
    assert torch.any(spoiled.grad[valid] != 0)


def test_berhu_loss_empty_mask_is_zero_with_a_gradient() -> None:
    pred = torch.ones(1, 1, 4, 4, requires_grad=True)
    loss = berhu_loss(pred, torch.ones(1, 1, 4, 4), torch.zeros(1, 1, 4, 4, dtype=torch.bool))
    assert float(loss.detach()) == 0.0
    loss.backward()
    assert torch.all(pred.grad == 0)


def test_berhu_gradcheck_and_loss_slope() -> None:
    r = torch.linspace(-2, 2, 12, dtype=torch.float64).requires_grad_()
    assert torch.autograd.gradcheck(lambda x: berhu(x, 0.55), (r + 0.01,))
    # berhu_loss treats c as a constant: slope sign(r) / N below c, r / (c N) above.
    gt = torch.zeros(1, 1, 1, 4, dtype=torch.float64)
    pred = torch.tensor([0.1, -0.2, 1.0, -2.0], dtype=torch.float64).view(1, 1, 1, 4)
    pred.requires_grad_()
    berhu_loss(pred, gt, gt == 0).backward()
    c = 0.2 * 2.0
    expected = torch.tensor([1.0, -1.0, 1.0 / c, -2.0 / c], dtype=torch.float64) / 4
    torch.testing.assert_close(pred.grad.flatten(), expected)


# ------------------------------------------------------------------------------ FSIM


@pytest.mark.parametrize("batch", [1, 2])
def test_fsim_term_is_zero_for_identical_maps(batch: int) -> None:
    gt = _scene(batch)
    valid = torch.ones_like(gt, dtype=torch.bool)
    assert float(fsim_loss(gt.clone(), gt, valid)) == pytest.approx(0.0, abs=1e-6)


def test_fsim_term_grows_with_difference_and_stays_in_range() -> None:
    gt = _scene(2, 64, 96)
    valid = torch.ones_like(gt, dtype=torch.bool)
    noise = torch.randn(gt.shape, generator=torch.Generator().manual_seed(0))
    small = float(fsim_loss(gt + 0.02 * noise, gt, valid))
    large = float(fsim_loss(gt + 0.5 * noise.abs(), gt, valid))
    assert 0.0 < small < large <= 0.5


def test_fsim_term_ignores_invalid_pixels_and_backpropagates() -> None:
    gt = _scene(2, 40, 56)
    valid = torch.ones_like(gt, dtype=torch.bool)
    valid[:, :, :10] = False
    pred = torch.where(valid, gt, torch.full_like(gt, 9.0)).requires_grad_()
    loss = fsim_loss(pred, torch.where(valid, gt, torch.zeros_like(gt)), valid)
    assert float(loss.detach()) == pytest.approx(0.0, abs=1e-6)
    noisy = gt + 0.1 * torch.rand(gt.shape, generator=torch.Generator().manual_seed(2))
    noisy = noisy.requires_grad_()
    loss = FSIMLoss()(noisy, gt, valid)
    loss.backward()
    assert float(loss.detach()) > 0
    assert torch.all(noisy.grad[~valid] == 0)
    assert torch.isfinite(noisy.grad).all() and torch.any(noisy.grad[valid] != 0)


def test_fsim_term_backpropagates_through_flat_patches() -> None:
    # bf16 autocast quantises depth into plateaus where the image gradient is exactly 0;
    # piq's gradient magnitude is sqrt(gx^2 + gy^2), whose derivative there is 0/0 (NaN)
    gt = _scene(2, 64, 96)
    valid = torch.ones_like(gt, dtype=torch.bool)
    pred = (gt * 1.1).bfloat16().float().requires_grad_()
    loss = fsim_loss(pred, gt, valid)
    loss.backward()
    assert torch.isfinite(loss) and float(loss.detach()) > 0
    assert torch.isfinite(pred.grad).all() and torch.any(pred.grad != 0)


def test_fsim_term_refuses_tiny_maps() -> None:
    depth = torch.ones(1, 1, 4, 40)
    with pytest.raises(ValueError, match="at least"):
        fsim_loss(depth, depth, depth > 0)


def test_global_loss_is_the_weighted_sum() -> None:
    gt = _scene(2)
    valid = gt > 0
    pred = gt * 1.1
    total, parts = GlobalDepthLoss(1.0, 2.0)(pred, gt, valid)
    assert set(parts) == {"berhu", "fsim"}
    torch.testing.assert_close(total, parts["berhu"] + 2.0 * parts["fsim"])
    total, parts = GlobalDepthLoss(1.0, 0.0)(pred, gt, valid)
    assert set(parts) == {"berhu"}
    total, parts = GlobalDepthLoss(1.0, 0.0, 0.5)(pred, gt, valid)
    assert set(parts) == {"berhu", "silog"}
    torch.testing.assert_close(total, parts["berhu"] + 0.5 * parts["silog"])


def test_silog_known_answer_scale_weighting_and_masks() -> None:
    gt = _scene(2)
    valid = gt > 0
    assert float(silog_loss(gt, gt, valid)) < 1e-5
    # a pure scale error s: d = log s everywhere, loss = sqrt(1 - lambda) * |log s|
    scaled = silog_loss(gt * 2.0, gt, valid)
    torch.testing.assert_close(scaled, torch.tensor(math.sqrt(0.15) * math.log(2.0)))
    assert float(silog_loss(gt * 2.0, gt, valid, variance_focus=1.0)) < 1e-5
    # a relative error weighs the same near and far (BerHu on metres does not)
    near = torch.full((1, 1, 8, 8), 1.0)
    far = near * 8.0
    mask = torch.ones_like(near, dtype=torch.bool)
    bumped = torch.ones_like(near)
    bumped[..., :4, :] = 1.5
    torch.testing.assert_close(
        silog_loss(near * bumped, near, mask), silog_loss(far * bumped, far, mask)
    )
    # invalid pixels neither count nor receive a gradient; an image without any is skipped
    pred = (gt * 1.2).requires_grad_()
    wild = torch.where(valid, pred, pred * 50.0)
    torch.testing.assert_close(silog_loss(wild, gt, valid), silog_loss(gt * 1.2, gt, valid))
    silog_loss(wild, gt, valid).backward()
    assert pred.grad is not None and not pred.grad[~valid].any()
    empty = valid.clone()
    empty[1] = False
    torch.testing.assert_close(
        silog_loss(gt * 2.0, gt, empty), silog_loss(gt[:1] * 2.0, gt[:1], valid[:1])
    )


# ------------------------------------------------------------------------------ gradients


@pytest.mark.parametrize("batch", [1, 3])
def test_gradient_loss_is_zero_at_perfect_gradients(batch: int) -> None:
    depth = _scene(batch)
    gx, gy = spatial_gradients(depth)
    loss = gradient_log_l1_loss(torch.cat([gx, gy], 1), depth, depth > 0)
    assert float(loss) == 0.0


def test_gradient_loss_known_answer_and_masks() -> None:
    depth = _scene(1, 8, 10)
    valid = torch.ones_like(depth, dtype=torch.bool)
    valid[..., 3, 4] = False
    gx, gy = spatial_gradients(depth)
    pred = torch.cat([gx, gy], 1) + 1.0  # off by 1 m/pixel everywhere
    # A gradient counts when both its pixels are valid: only those give ln 2.
    assert float(GradientLogL1Loss()(pred, depth, valid)) == pytest.approx(math.log(2.0))
    # Wrong gradients that touch the invalid pixel change nothing.
    spoiled = pred.clone().requires_grad_()
    with torch.no_grad():
        spoiled[0, 0, 3, 3:5] = 50.0  # G_x at (3, 3) and (3, 4) both involve pixel (3, 4)
        spoiled[0, 1, 2:4, 4] = -50.0  # G_y at (2, 4) and (3, 4)
    loss = gradient_log_l1_loss(spoiled, depth, valid)
    assert float(loss.detach()) == pytest.approx(math.log(2.0))
    loss.backward()
    assert spoiled.grad[0, 0, 3, 3] == 0 and spoiled.grad[0, 1, 3, 4] == 0
    assert spoiled.grad[0, 0, 0, 0] != 0


def test_gradient_loss_gradcheck_and_shape_errors() -> None:
    depth = _scene(1, 5, 6).double()
    pred = torch.randn(1, 2, 5, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    pred.requires_grad_()
    valid = depth > 0
    # terms are computed in float32, so compare slopes loosely
    assert torch.autograd.gradcheck(
        lambda g: gradient_log_l1_loss(g, depth, valid), (pred,), eps=1e-3, atol=1e-2
    )
    with pytest.raises(ValueError):
        gradient_log_l1_loss(torch.zeros(1, 1, 5, 6), depth, valid)
