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
