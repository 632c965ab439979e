"""Depth metrics, alignment and protocol helpers against hand-computed values."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from dpde_cli.errors import DpdeError, UsageError
from dpde_cli.metrics import (
    BASE_METRICS,
    EvalProtocol,
    MetricAccumulator,
    align_lstsq,
    align_median,
    compute_metrics,
    default_protocol,
    depth_range_mask,
    eigen_crop_mask,
    gsm_depth,
    lstsq_scale_shift,
    median_scale,
    prepare_eval,
    ssim_depth,
)


def _img(values: list[float], shape: tuple[int, int] = (2, 3)) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32).view(1, 1, *shape)


# Five valid pixels (d, g) = (2, 1), (2, 2), (2, 4), (1.5, 1), (1.9, 1) and one invalid
# pixel (gt 0) whose prediction (100) must never count.
PRED = _img([2.0, 2.0, 2.0, 1.5, 1.9, 100.0])
GT = _img([1.0, 2.0, 4.0, 1.0, 1.0, 0.0])
MASK = GT > 0
LOG_ERR = [math.log(2), 0.0, -math.log(2), math.log(1.5), math.log(1.9)]


def test_base_metrics_known_answer():
    values = compute_metrics(PRED, GT, MASK)
    mean_sq_log = sum(e * e for e in LOG_ERR) / 5
    mean_log = sum(LOG_ERR) / 5
    expected = {
        "abs_rel": (1.0 + 0.0 + 0.5 + 0.5 + 0.9) / 5,
        "sq_rel": (1.0 + 0.0 + 1.0 + 0.25 + 0.81) / 5,
        "rms": math.sqrt((1.0 + 0.0 + 4.0 + 0.25 + 0.81) / 5),
        "rms_log": math.sqrt(mean_sq_log),
        "log10": sum(abs(e) for e in LOG_ERR) / 5 / math.log(10),
        "silog": 100 * math.sqrt(mean_sq_log - mean_log**2),
        "d1": 1 / 5,  # ratios 2, 1, 2, 1.5, 1.9: only 1 < 1.25
        "d2": 2 / 5,  # 1.5 < 1.5625
        "d3": 3 / 5,  # 1.9 < 1.953125
    }
    assert set(values) == set(BASE_METRICS)
    for key, value in expected.items():
        assert values[key].shape == (1,)
        assert values[key].item() == pytest.approx(value, rel=1e-6), key


def test_perfect_prediction():
    gt = torch.rand(2, 1, 5, 7) * 5 + 0.5
    values = compute_metrics(gt.clone(), gt, torch.ones_like(gt, dtype=torch.bool))
    for key in ("abs_rel", "sq_rel", "rms", "rms_log", "log10", "silog"):
        assert torch.allclose(values[key], torch.zeros(2, dtype=torch.float64), atol=1e-6)
    for key in ("d1", "d2", "d3"):
        assert torch.equal(values[key], torch.ones(2, dtype=torch.float64))


def test_silog_is_scale_invariant():
    gt = torch.rand(1, 1, 6, 6) + 0.5
    values = compute_metrics(gt * 3.0, gt, torch.ones_like(gt, dtype=torch.bool))
    assert values["silog"].item() == pytest.approx(0.0, abs=1e-3)
    assert values["rms_log"].item() == pytest.approx(math.log(3.0), rel=1e-5)


def test_invalid_pixels_never_count():
    torch.manual_seed(4)
    gt = torch.rand(2, 1, 12, 14) * 3 + 1
    pred = gt * (1 + 0.1 * torch.randn_like(gt))
    mask = torch.ones_like(gt, dtype=torch.bool)
    mask[..., 3:5, 2:9] = False
    other, bad_gt = pred.clone(), gt.clone()
    other[~mask] = 1e6
    bad_gt[~mask] = float("nan")
    a = compute_metrics(pred, gt, mask, extra=("gsm",))
    b = compute_metrics(other, bad_gt, mask, extra=("gsm",))
    for key in a:
        assert torch.isfinite(a[key]).all(), key
        assert torch.equal(a[key], b[key]), key


def test_empty_image_is_nan_and_reported():
    gt = torch.rand(2, 1, 8, 8) + 1
    mask = torch.ones_like(gt, dtype=torch.bool)
    mask[1] = False
    values = compute_metrics(gt * 1.1, gt, mask, extra=("ssim", "gsm"))
    for key, value in values.items():
        assert torch.isfinite(value[0]) or key == "ssim", key  # 8x8 is below SSIM's window
        assert torch.isnan(value[1]), key
    acc = MetricAccumulator()
    acc.update(gt * 1.1, gt, mask, names=["kept", "empty"])
    assert acc.skipped == ["empty"]
    assert acc.n_images == 1
    assert acc.compute()["abs_rel"] == pytest.approx(0.1, rel=1e-5)


def test_accumulator_with_nothing_valid_raises():
    gt = torch.ones(1, 1, 3, 3)
    acc = MetricAccumulator()
    acc.update(gt, gt, torch.zeros_like(gt, dtype=torch.bool), names=["blank"])
    assert acc.skipped == ["blank"]
    with pytest.raises(DpdeError):
        acc.compute()


def test_image_versus_pixel_averaging():
    # image A: one pixel, d = 2, g = 1 -> abs_rel 1, rms 1; image B: three exact pixels.
    pred = torch.tensor([[2.0, 0.0, 0.0, 0.0], [1.0, 1.0, 1.0, 0.0]]).view(2, 1, 1, 4)
    gt = torch.tensor([[1.0, 0.0, 0.0, 0.0], [1.0, 1.0, 1.0, 0.0]]).view(2, 1, 1, 4)
    mask = gt > 0
    per_image = MetricAccumulator("image")
    pooled = MetricAccumulator("pixel")
    for acc in (per_image, pooled):
        acc.update(pred[:1], gt[:1], mask[:1])  # batches of any size add up
        acc.update(pred[1:], gt[1:], mask[1:])
    image, pixel = per_image.compute(), pooled.compute()
    assert image["abs_rel"] == pytest.approx(0.5)
    assert pixel["abs_rel"] == pytest.approx(0.25)
    assert image["rms"] == pytest.approx(0.5)
    assert pixel["rms"] == pytest.approx(math.sqrt(1 / 4))
    assert image["d1"] == pytest.approx(0.5)
    assert pixel["d1"] == pytest.approx(0.75)
    assert [r["name"] for r in per_image.records] == ["0", "1"]


@pytest.mark.parametrize("batch", [1, 2, 5])
def test_batched_equals_one_by_one(batch):
    torch.manual_seed(batch)
    gt = torch.rand(batch, 1, 16, 20) * 4 + 0.5
    pred = gt * (1 + 0.2 * torch.randn_like(gt)).clamp(min=0.2)
    mask = torch.rand_like(gt) > 0.3
    together = compute_metrics(pred, gt, mask, extra=("ssim", "gsm"))
    for i in range(batch):
        alone = compute_metrics(
            pred[i : i + 1], gt[i : i + 1], mask[i : i + 1], extra=("ssim", "gsm")
        )
        for key in together:
            assert together[key][i].item() == pytest.approx(
                alone[key].item(), rel=1e-9, nan_ok=True
            ), key


def test_unknown_extra_metric():
    with pytest.raises(UsageError):
        compute_metrics(PRED, GT, MASK, extra=("psnr",))
    with pytest.raises(UsageError):
        MetricAccumulator("mean")


# ------------------------------------------------------------------------------ alignment


def test_median_scale_even_count_averages_middle_values():
    pred = _img([1.0, 2.0, 3.0, 4.0, 50.0, 50.0])
    gt = _img([2.0, 4.0, 6.0, 100.0, 0.0, 0.0])
    mask = gt > 0
    # median(pred) = (2 + 3) / 2 = 2.5 over the mask; median(gt) = (4 + 6) / 2 = 5
    assert median_scale(pred, gt, mask).item() == pytest.approx(2.0)
    aligned = align_median(pred, gt, mask)
    assert torch.allclose(aligned, pred * 2.0)


def test_align_median_per_image_and_empty_mask():
    gt = torch.rand(3, 1, 5, 5) + 1
    pred = gt * torch.tensor([0.5, 2.0, 3.0]).view(3, 1, 1, 1)
    mask = torch.ones_like(gt, dtype=torch.bool)
    mask[2] = False
    aligned = align_median(pred, gt, mask)
    assert torch.allclose(aligned[:2], gt[:2], rtol=1e-6)
    assert torch.equal(aligned[2], pred[2])  # nothing to fit: unchanged


def test_align_lstsq_recovers_scale_and_shift():
    gt = torch.rand(2, 1, 6, 7) * 5 + 1
    pred = torch.stack([(gt[0] - 1.0) / 3.0, gt[1] * 0.5 + 2.0])
    mask = torch.ones_like(gt, dtype=torch.bool)
    mask[0, 0, 0, :3] = False
    pred[0, 0, 0, :3] = 1e3  # outliers outside the mask are ignored
    scale, shift = lstsq_scale_shift(pred, gt, mask)
    assert scale.tolist() == pytest.approx([3.0, 2.0], rel=1e-5)
    assert shift.tolist() == pytest.approx([1.0, -4.0], rel=1e-5, abs=1e-5)
    aligned = align_lstsq(pred, gt, mask)
    assert torch.allclose(aligned[mask], gt[mask], atol=1e-4)


def test_align_lstsq_degenerate_cases():
    gt = _img([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    flat = torch.full_like(gt, 2.0)
    scale, shift = lstsq_scale_shift(flat, gt, gt > 0)
    assert scale.item() == 1.0
    assert shift.item() == pytest.approx(3.5 - 2.0)
    empty = torch.zeros_like(gt, dtype=torch.bool)
    assert torch.equal(align_lstsq(flat, gt, empty), flat)


# ------------------------------------------------------------------------------ protocol


def test_eigen_crop_indices():
    mask = eigen_crop_mask(480, 640)
    rows = torch.nonzero(mask.any(1)).flatten()
    cols = torch.nonzero(mask.any(0)).flatten()
    assert (rows.min().item(), rows.max().item()) == (45, 470)
    assert (cols.min().item(), cols.max().item()) == (41, 600)
    assert mask.sum().item() == (471 - 45) * (601 - 41)
    half = eigen_crop_mask(240, 320)
    rows = torch.nonzero(half.any(1)).flatten()
    cols = torch.nonzero(half.any(0)).flatten()
    assert (rows.min().item(), rows.max().item() + 1) == (22, 235)
    assert (cols.min().item(), cols.max().item() + 1) == (20, 300)


def test_depth_range_mask_is_strict_and_rejects_nan():
    gt = torch.tensor([0.0, 1e-3, 0.5, 10.0, 9.99, float("nan"), float("inf")])
    expected = [False, False, True, False, True, False, False]
    assert depth_range_mask(gt, 1e-3, 10.0).tolist() == expected


def test_default_protocols_and_describe():
    nyu = default_protocol("nyuv2")
    assert (nyu.crop, nyu.min_depth, nyu.max_depth, nyu.averaging, nyu.alignment) == (
        "eigen",
        1e-3,
        10.0,
        "image",
        "none",
    )
    assert default_protocol("make3d").max_depth == 70.0
    assert default_protocol("make3d").crop == "none"
    assert default_protocol("middlebury").alignment == "median"
    assert default_protocol("folder", max_depth=80.0).max_depth == 80.0
    line = nyu.describe()
    assert "\n" not in line
    for word in ("Eigen", "0.001", "10", "per-image", "flip TTA off", "bilinear", "clamped"):
        assert word in line
    assert "median" in default_protocol("middlebury").describe()
    with pytest.raises(dataclasses.FrozenInstanceError):
        nyu.crop = "none"  # type: ignore[misc]
    with pytest.raises(UsageError):
        default_protocol("kitti")
    with pytest.raises(UsageError):
        default_protocol("nyuv2", alignment="mean")
    with pytest.raises(UsageError):
        EvalProtocol(min_depth=5.0, max_depth=1.0)


def test_prepare_eval_upsamples_masks_aligns_and_clamps():
    protocol = EvalProtocol(crop="none", min_depth=1.0, max_depth=5.0, alignment="median")
    gt = torch.full((1, 1, 4, 4), 2.0)
    gt[0, 0, 0, 0] = 7.0  # above the cap: excluded
    valid = torch.ones_like(gt, dtype=torch.bool)
    pred = torch.full((1, 1, 2, 2), 1.0)
    pred_out, _, mask = prepare_eval(pred, gt, valid, protocol)
    assert pred_out.shape == gt.shape
    assert not mask[0, 0, 0, 0] and mask.sum() == 15
    assert torch.allclose(pred_out, torch.full_like(gt, 2.0))  # scaled by 2 / 1
    clamp = EvalProtocol(min_depth=1.0, max_depth=5.0)
    low, _, _ = prepare_eval(torch.full((1, 1, 4, 4), 0.1), gt, valid, clamp)
    assert torch.equal(low, torch.ones_like(gt))


def test_prepare_eval_eigen_crop():
    gt = torch.full((1, 1, 480, 640), 3.0)
    _, _, mask = prepare_eval(
        gt.clone(), gt, torch.ones_like(gt, dtype=torch.bool), default_protocol("nyuv2")
    )
    assert torch.equal(mask[0, 0], eigen_crop_mask(480, 640))


# ------------------------------------------------------------------------------ SSIM / GSM


def test_ssim_identical_and_matches_piq_on_full_masks():
    import piq

    torch.manual_seed(0)
    gt = torch.rand(2, 1, 32, 40) * 3 + 1
    full = torch.ones_like(gt, dtype=torch.bool)
    assert ssim_depth(gt, gt, full).tolist() == pytest.approx([1.0, 1.0], abs=1e-6)
    pred = gt + 0.3 * torch.randn_like(gt)
    lo = gt.flatten(1).min(1).values.view(-1, 1, 1, 1)
    hi = gt.flatten(1).max(1).values.view(-1, 1, 1, 1)
    x = ((pred - lo) / (hi - lo)).clamp(0, 1)
    y = (gt - lo) / (hi - lo)
    expected = piq.ssim(x, y, data_range=1.0, reduction="none")
    assert ssim_depth(pred, gt, full).tolist() == pytest.approx(expected.tolist(), rel=1e-5)


def test_ssim_ignores_everything_outside_the_mask_box():
    torch.manual_seed(1)
    gt = torch.rand(1, 1, 30, 30) + 1
    pred = gt * 1.2
    mask = torch.zeros_like(gt, dtype=torch.bool)
    mask[..., 5:25, 3:27] = True
    other = pred.clone()
    other[~mask] = 100.0
    assert ssim_depth(pred, gt, mask).item() == pytest.approx(ssim_depth(other, gt, mask).item())
    tiny = torch.zeros_like(mask)
    tiny[..., :5, :5] = True
    assert math.isnan(ssim_depth(pred, gt, tiny).item())


def _gsm_reference(pred: np.ndarray, gt: np.ndarray, c: float = 200.0, p: float = 0.1) -> float:
    """Independent numpy / scipy GSM over a fully valid map (no border pixels)."""
    from scipy.ndimage import correlate

    # fmt: off
    kernels = [
        np.array([[0, 0, 0, 0, 0], [1, 3, 8, 3, 1], [0] * 5, [-1, -3, -8, -3, -1], [0] * 5]),
        np.array([[0, 0, 1, 0, 0], [0, 0, 3, 8, 0], [-1, -3, 0, 3, 1], [0, -8, -3, 0, 0],
                  [0, 0, -1, 0, 0]]),
        np.array([[0, 0, 1, 0, 0], [0, 8, 3, 0, 0], [1, 3, 0, -3, -1], [0, 0, -3, -8, 0],
                  [0, 0, -1, 0, 0]]),
    ]
    # fmt: on
    kernels.append(kernels[0].T)
    lo, hi = gt.min(), gt.max()
    x = np.clip((pred - lo) / (hi - lo), 0, 1) * 255
    y = (gt - lo) / (hi - lo) * 255

    def grad(image: np.ndarray) -> np.ndarray:
        return np.max([np.abs(correlate(image, k.astype(float))) / 16 for k in kernels], 0)

    gx, gy = grad(x)[2:-2, 2:-2], grad(y)[2:-2, 2:-2]
    g = (2 * gx * gy + c) / (gx**2 + gy**2 + c)
    lum = 1 - ((x[2:-2, 2:-2] - y[2:-2, 2:-2]) / 255) ** 2
    w = p * g
    return float(((1 - w) * g + w * lum).mean())


def test_gsm_known_answer_and_identity():
    rng = np.random.default_rng(3)
    gt = rng.uniform(1, 4, size=(12, 15))
    pred = gt + rng.normal(0, 0.4, size=gt.shape)
    to_t = lambda a: torch.tensor(a, dtype=torch.float64).view(1, 1, *a.shape)  # noqa: E731
    full = torch.ones(1, 1, 12, 15, dtype=torch.bool)
    assert gsm_depth(to_t(pred), to_t(gt), full).item() == pytest.approx(
        _gsm_reference(pred, gt), rel=1e-9
    )
    assert gsm_depth(to_t(gt), to_t(gt), full).item() == pytest.approx(1.0)
    # a 1-pixel hole removes its 5x5 neighbourhood from the average
    holed = full.clone()
    holed[..., 6, 7] = False
    gt_h = to_t(gt)
    gt_h[..., 6, 7] = 0.0
    assert 0 < gsm_depth(to_t(pred), gt_h, holed).item() <= 1


def test_accumulator_extra_metrics_pooled():
    torch.manual_seed(2)
    gt = torch.rand(3, 1, 24, 24) + 1
    pred = gt * 1.1
    mask = torch.ones_like(gt, dtype=torch.bool)
    acc = MetricAccumulator("pixel", extra=("ssim", "gsm"))
    per_image = acc.update(pred, gt, mask, names=["a", "b", "c"])
    result = acc.compute()
    assert set(result) == set(BASE_METRICS) | {"ssim", "gsm"}
    assert result["ssim"] == pytest.approx(per_image["ssim"].mean().item())
    assert result["gsm"] == pytest.approx(per_image["gsm"].mean().item())  # equal counts


def test_the_protocol_gives_units_only_for_metric_ground_truth() -> None:
    protocol = default_protocol("middlebury")
    assert "valid 0 < gt < inf m;" in protocol.describe()
    assert "valid 0 < gt < inf;" in protocol.describe(units="")  # relative depth has none
