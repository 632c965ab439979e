from __future__ import annotations

import warnings

import numpy as np
import pytest

from dpde_cli.predict import to_tensor


def test_to_tensor_takes_a_read_only_photo_without_a_warning() -> None:
    image = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    image.flags.writeable = False  # as np.asarray(PIL.Image.open(...)) returns it
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tensor = to_tensor(image)
    assert tuple(tensor.shape) == (1, 3, 2, 3)
    assert float(tensor[0, 2, 1, 2]) == pytest.approx(image[1, 2, 2] / 255.0, rel=1e-6)


@pytest.mark.parametrize(
    ("trained", "image", "expected"),
    [
        ((240, 320), (480, 640), (240, 320)),  # same aspect ratio: the trained size
        ((240, 320), (483, 640), (240, 320)),  # within 1%
        ((240, 320), (640, 480), (320, 256)),  # portrait: sqrt(76800 * 3 / 4) = 240 -> 256
        ((240, 320), (100, 1000), (96, 864)),  # a panorama: 87.6 x 876.4, to multiples of 32
        ((32, 32), (10, 1000), (32, 320)),  # never below 32
    ],
)
def test_inference_size(trained, image, expected) -> None:
    from dpde_cli.predict import inference_size

    size = inference_size(trained, image)
    assert size == expected and all(side % 32 == 0 or size == trained for side in size)


def test_resize_gradients_rescales_to_the_new_pixel_size() -> None:
    import torch

    from dpde_cli.predict import resize_gradients

    gradients = torch.stack([torch.full((8, 8), 1.0), torch.full((8, 8), 2.0)])[None]
    out = resize_gradients(gradients, (16, 32))  # pixels 4x narrower, 2x shorter
    assert tuple(out.shape) == (1, 2, 16, 32)
    torch.testing.assert_close(out[0, 0], torch.full((16, 32), 0.25))
    torch.testing.assert_close(out[0, 1], torch.full((16, 32), 1.0))
    torch.testing.assert_close(resize_gradients(gradients, (8, 8)), gradients)


@pytest.fixture
def tiny_predictor(tiny_weights, device, one_thread):
    import torch

    from dpde_cli.predict import Predictor
    from dpde_cli.registry import create_model

    return Predictor(create_model("dpde-tiny", weights=tiny_weights), torch.device(device))


def test_create_predictor_resolves_how_the_model_runs_once(tiny_weights, one_thread) -> None:
    from dpde_cli.predict import create_predictor
    from dpde_cli.registry import InferenceSpec, get_entry

    predictor = create_predictor(
        "dpde-tiny", tiny_weights, device="cpu", input_size=(96, 128), max_depth=80.0
    )
    assert predictor.inference == InferenceSpec((96, 128), (0.1, 80.0), None)
    assert predictor.spec is get_entry("dpde-tiny").weights  # the spec stays as registered
    photo = np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    assert predictor.predict([photo])[0].network_size == (96, 128)
    own = create_predictor("dpde-tiny", tiny_weights, device="cpu")
    assert own.inference.input_size == (64, 96)


@pytest.mark.parametrize("batch", [1, 3])
def test_predictor_answers_at_the_photo_s_resolution(tiny_predictor, batch: int) -> None:
    rng = np.random.default_rng(batch)
    images = [rng.integers(0, 255, (48, 64, 3), dtype=np.uint8) for _ in range(batch)]
    predictions = tiny_predictor.predict(images)
    assert len(predictions) == batch
    low, high = tiny_predictor.inference.depth_range
    for p in predictions:
        assert p.depth.shape == p.depth_unfused.shape == (48, 64) and p.depth.dtype == np.float32
        assert p.gradients.shape == (2, 48, 64)
        assert low <= p.depth.min() and p.depth.max() <= high
        assert p.network_size == (64, 96) and p.fusion is None  # tiny's 64x96, 4:3 photo
        np.testing.assert_array_equal(p.depth, p.depth_unfused)  # no fusion
    alone = tiny_predictor.predict(images[:1])[0]  # a batch answers as each image alone
    np.testing.assert_allclose(alone.depth, predictions[0].depth, rtol=1e-4, atol=1e-4)


def test_predictor_refuses_images_of_two_sizes(tiny_predictor) -> None:
    images = [np.zeros((48, 64, 3), np.uint8), np.zeros((64, 48, 3), np.uint8)]
    with pytest.raises(ValueError, match="one size"):
        tiny_predictor.predict(images)


def test_predictor_with_fusion_reports_its_statistics(tiny_predictor) -> None:
    from dpde_cli.fusion import FusionConfig

    tiny_predictor.fusion = FusionConfig(omega=10.0)
    image = np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    [prediction] = tiny_predictor.predict([image])
    assert prediction.fusion["irls_iterations"] >= 1
    assert set(prediction.fusion) == {"irls_iterations", "cg_iterations", "objective", "converged"}
    assert not np.array_equal(prediction.depth, prediction.depth_unfused)


def test_predict_gradients_on_another_grid(tiny_predictor) -> None:
    image = np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    full = tiny_predictor.predict([image])[0].gradients
    half = tiny_predictor.predict_gradients(image, (24, 32))
    assert half.shape == (2, 24, 32) and half.dtype == np.float32
    # half as many pixels across: each step twice as large, on average
    assert abs(half).mean() == pytest.approx(2 * abs(full).mean(), rel=0.3)
