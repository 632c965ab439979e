"""fusion_io.py: gradients and masks read and checked against the depth map they refine."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dpde_cli.errors import InputError
from dpde_cli.fusion_io import check_same_view, check_units, read_gradients, read_mask
from dpde_cli.io import write_depth


@pytest.fixture
def grads(tmp_path: Path) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    gx, gy = (rng.normal(0, 0.01, (6, 8)).astype(np.float32) for _ in range(2))
    np.save(tmp_path / "both.npy", np.stack([gx, gy]))
    np.save(tmp_path / "gx.npy", gx)
    write_depth(tmp_path / "gy.pfm", gy)
    return gx, gy


def test_gradients_from_one_stack_or_two_files(grads, tmp_path: Path) -> None:
    gx, gy = grads
    for found in (
        read_gradients((6, 8), both=tmp_path / "both.npy"),
        read_gradients((6, 8), gx=tmp_path / "gx.npy", gy=tmp_path / "gy.pfm"),
    ):
        np.testing.assert_array_equal(found[0], gx)
        np.testing.assert_array_equal(found[1], gy)
        assert found[0].dtype == np.float32


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: np.save(d / "g.npy", np.zeros((3, 6, 8))), r"expected shape \(2, H, W\)"),
        (lambda d: np.save(d / "g.npy", np.zeros((2, 6, 9))), "does not match the depth map's"),
        (lambda d: np.save(d / "g.npy", np.full((2, 6, 8), np.nan)), "NaN or infinity"),
        (lambda d: (d / "g.npy").write_bytes(b"\x80\x04pickle"), "not a .npy file"),
    ],
    ids=["three channels", "another shape", "nan", "pickle"],
)
def test_bad_gradient_stacks_name_the_file(tmp_path: Path, make, message: str) -> None:
    make(tmp_path)
    with pytest.raises(InputError, match=message) as caught:
        read_gradients((6, 8), both=tmp_path / "g.npy")
    assert caught.value.path == str(tmp_path / "g.npy")


def test_gradients_in_png_or_not_npy_are_refused(grads, tmp_path: Path) -> None:
    Image.fromarray(np.zeros((6, 8), np.uint16)).save(tmp_path / "gx.png")
    with pytest.raises(InputError, match="gradients are signed"):
        read_gradients((6, 8), gx=tmp_path / "gx.png", gy=tmp_path / "gy.pfm")
    with pytest.raises(InputError, match="takes a \\(2, H, W\\) .npy"):
        read_gradients((6, 8), both=tmp_path / "gy.pfm")


def test_units_that_disagree_are_caught() -> None:
    valid = np.linspace(1.0, 3.0, 20, dtype=np.float32)
    small = np.full((4, 5), 0.01, np.float32)
    check_units("d.png", valid, small, small)  # metres against metres
    with pytest.raises(InputError, match="different units"):
        check_units("d.png", valid, small * 1000, small)
    with pytest.raises(InputError, match="looks like millimetres"):
        check_units("d.png", valid * 1000, small, small)


def test_masks_from_png_or_npy(tmp_path: Path) -> None:
    mask = np.zeros((6, 8), np.uint8)
    mask[2:4] = 255
    Image.fromarray(mask).save(tmp_path / "m.png")
    np.testing.assert_array_equal(read_mask(tmp_path / "m.png", (6, 8)), mask > 0)
    np.save(tmp_path / "m.npy", np.full((6, 8), 0.5))
    assert read_mask(tmp_path / "m.npy", (6, 8)).mean() == pytest.approx(0.5)
    for bad, message in ((2.0, r"lie in \[0, 1\]"), (np.nan, r"lie in \[0, 1\]")):
        np.save(tmp_path / "bad.npy", np.full((6, 8), bad))
        with pytest.raises(InputError, match=message):
            read_mask(tmp_path / "bad.npy", (6, 8))
    with pytest.raises(InputError, match="does not match"):
        read_mask(tmp_path / "m.png", (6, 9))
    (tmp_path / "junk.png").write_bytes(b"junk")
    with pytest.raises(InputError, match="cannot read mask"):
        read_mask(tmp_path / "junk.png", (6, 8))


def test_a_photo_and_a_depth_map_must_show_one_view() -> None:
    check_same_view("p.jpg", (480, 640), "d.png", (240, 320))
    with pytest.raises(InputError, match="d.png: depth map 240x320 does not have the aspect"):
        check_same_view("p.jpg", (480, 640), "d.png", (320, 240))
