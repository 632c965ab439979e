"""Training transforms: geometry of each operation, determinism of the random pipeline."""

from __future__ import annotations

import pytest
import torch

from dpde_cli.data.transforms import (
    EvalTransform,
    TrainTransform,
    color_jitter,
    hflip,
    random_crop,
    randomise_appearance,
    resize,
    rotate,
    sample_generator,
)


def _sample(height: int = 48, width: int = 64) -> dict:
    """A sample whose depth is a ramp and whose image encodes the pixel position."""
    ys, xs = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    depth = (1.0 + xs / width + ys / height).float()[None]
    valid = torch.ones(1, height, width, dtype=torch.bool)
    valid[:, 0, 0] = False
    depth = torch.where(valid, depth, torch.zeros_like(depth))
    image = torch.stack([xs / width, ys / height, torch.full_like(xs, 0.5, dtype=torch.float)])
    return {
        "image": image.float(),
        "depth": depth,
        "valid": valid,
        "intrinsics": torch.tensor([50.0, 50.0, (width - 1) / 2, (height - 1) / 2]),
        "name": "s",
    }


def test_resize_scales_depth_and_intrinsics() -> None:
    out = resize(_sample(), (96, 128), depth_scale=2.0)
    assert out["image"].shape == (3, 96, 128) and out["depth"].shape == (1, 96, 128)
    assert out["valid"].dtype == torch.bool
    fx, fy, cx, cy = out["intrinsics"].tolist()
    assert (fx, fy) == (100.0, 100.0) and cx == pytest.approx(63.5) and cy == pytest.approx(47.5)
    valid = out["valid"]
    assert out["depth"][valid].max() <= 3.0 / 2.0 + 1e-6  # depth divided by the scale


def test_hflip_and_crop_move_the_principal_point() -> None:
    sample = _sample()
    flipped = hflip(sample)
    torch.testing.assert_close(flipped["depth"][..., 0], sample["depth"][..., -1])
    assert flipped["intrinsics"][2] == pytest.approx(63 - sample["intrinsics"][2])
    cropped = random_crop(sample, (32, 40), torch.Generator().manual_seed(0))
    assert cropped["image"].shape == (3, 32, 40)
    top = round(float(cropped["image"][1, 0, 0] * 48))
    left = round(float(cropped["image"][0, 0, 0] * 64))
    assert cropped["intrinsics"][2] == pytest.approx(sample["intrinsics"][2] - left)
    assert cropped["intrinsics"][3] == pytest.approx(sample["intrinsics"][3] - top)


def test_rotation_keeps_depth_values_and_invalidates_the_corners() -> None:
    sample = _sample()
    out = rotate(sample, 5.0)
    assert not out["valid"][0, 0, -1] and not out["valid"][0, -1, 0]  # corners left the image
    values = set(sample["depth"].unique().tolist())
    assert set(out["depth"][out["valid"]].unique().tolist()) <= values  # nearest: no new depth
    assert (out["depth"][~out["valid"]] == 0).all()
    torch.testing.assert_close(rotate(sample, 0.0)["depth"], sample["depth"])


def test_color_jitter_stays_in_range() -> None:
    image = torch.rand(3, 16, 16, generator=torch.Generator().manual_seed(0))
    out = color_jitter(image, torch.Generator().manual_seed(1))
    assert out.shape == image.shape and out.min() >= 0 and out.max() <= 1
    assert not torch.equal(out, image)


def test_train_transform_is_a_function_of_its_generator() -> None:
    augment = TrainTransform(size=(32, 48))
    sample = _sample()
    a = augment(sample, sample_generator(0, 3, 7))
    b = augment(sample, sample_generator(0, 3, 7))
    c = augment(sample, sample_generator(0, 4, 7))
    for key in ("image", "depth", "valid"):
        assert torch.equal(a[key], b[key])
    assert not torch.equal(a["image"], c["image"])
    assert a["image"].shape == (3, 32, 48) and a["depth"].shape == (1, 32, 48)
    assert (a["depth"][~a["valid"]] == 0).all()


def test_strong_appearance_changes_only_the_image() -> None:
    sample = _sample()
    standard = TrainTransform(size=(32, 48))
    strong = TrainTransform(size=(32, 48), appearance="strong")
    for index in range(5):
        a = standard(sample, sample_generator(0, 0, index))
        b = strong(sample, sample_generator(0, 0, index))
        again = strong(sample, sample_generator(0, 0, index))
        assert torch.equal(a["depth"], b["depth"]) and torch.equal(a["valid"], b["valid"])
        assert torch.equal(b["image"], again["image"])
        assert b["image"].min() >= 0 and b["image"].max() <= 1
    with pytest.raises(ValueError, match="appearance"):
        TrainTransform(size=(32, 48), appearance="wild")


def test_randomise_appearance_covers_greyscale_blur_and_noise() -> None:
    # On a smooth colour ramp: greyscale brings the channels together (noise and JPEG
    # after it leave them close), noise raises the step between neighbours well above
    # the ramp's own, blur or lower contrast brings it below.
    image = _sample()["image"]
    ramp_step = (image[:, :, 1:] - image[:, :, :-1]).abs().mean()
    grey = rough = smooth = 0
    for seed in range(60):
        out = randomise_appearance(image, torch.Generator().manual_seed(seed))
        assert out.shape == image.shape and out.min() >= 0 and out.max() <= 1
        grey += bool((out[0] - out[1]).abs().mean() + (out[1] - out[2]).abs().mean() < 0.1)
        step = (out[:, :, 1:] - out[:, :, :-1]).abs().mean() / ramp_step
        rough += bool(step > 2)
        smooth += bool(step < 0.7)
    # p(grey) = 0.15, p(noise) = 0.5, p(blur) = 0.3 over 60 draws; the colour ramp
    # itself is far from grey (its channel difference is about 0.5)
    assert 3 <= grey <= 20 and rough >= 5 and smooth >= 2


def test_eval_transform_only_resizes() -> None:
    out = EvalTransform((24, 32))(_sample())
    assert out["image"].shape == (3, 24, 32)
    assert out["depth"][out["valid"]].min() >= 1.0
