"""`dpde fuse`: depth + gradient files, photo + depth, masks, units and shape errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from dpde_cli.cli.app import app
from dpde_cli.geometry import spatial_gradients
from dpde_cli.io import read_depth, write_depth

runner = CliRunner()


@pytest.fixture
def scene(tmp_path: Path) -> dict[str, Path]:
    """A step edge between two ramps: noisy depth with a hole, and exact gradients."""
    yy, xx = np.mgrid[0:48, 0:64].astype(np.float32)
    truth = 2.0 + 0.01 * yy + np.where(xx > 30, 1.0, 0.0).astype(np.float32)
    gx, gy = spatial_gradients(truth)
    noisy = truth + np.random.default_rng(0).normal(0, 0.05, truth.shape).astype(np.float32)
    noisy[10:20, 10:20] = 0.0
    paths = {name: tmp_path / f"{name}.npy" for name in ("truth", "gx", "gy")}
    np.save(paths["truth"], truth)
    np.save(paths["gx"], gx)
    np.save(paths["gy"], gy)
    np.save(tmp_path / "both.npy", np.stack([gx, gy]))
    paths["both"] = tmp_path / "both.npy"
    paths["noisy"] = write_depth(tmp_path / "noisy.png", noisy)
    return paths


def run(*args: str):
    return runner.invoke(app, ["--device", "cpu", "fuse", *args])


def test_gradient_files_recover_truth_and_fill_hole(scene: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "fused.npy"
    result = run(
        str(scene["noisy"]),
        "--gx",
        str(scene["gx"]),
        "--gy",
        str(scene["gy"]),
        "-o",
        str(out),
        "--json",
    )
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert record["filled_pixels"] == 100 and record["converged"]
    truth = np.load(scene["truth"])
    fused = read_depth(out)
    noisy = read_depth(scene["noisy"])
    ok = noisy > 0
    assert np.abs(fused - truth).mean() < 0.25 * np.abs(noisy - truth)[ok].mean()
    assert np.abs(fused - truth)[10:20, 10:20].max() < 0.05  # the hole is filled


def test_stacked_gradients_and_mask(scene: dict[str, Path], tmp_path: Path) -> None:
    mask = tmp_path / "mask.png"
    Image.fromarray(np.full((48, 64), 255, np.uint8)).save(mask)
    out = tmp_path / "fused.png"
    result = run(
        str(scene["noisy"]), "--gradients", str(scene["both"]), "--mask", str(mask), "-o", str(out)
    )
    assert result.exit_code == 0, result.output
    assert read_depth(out).shape == (48, 64)


def test_omega_zero_returns_the_input(scene: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "same.npy"
    result = run(
        str(scene["noisy"]), "--gradients", str(scene["both"]), "--omega", "0", "-o", str(out)
    )
    assert result.exit_code == 0, result.output
    noisy = read_depth(scene["noisy"])
    ok = noisy > 0
    np.testing.assert_allclose(read_depth(out)[ok], noisy[ok], atol=1e-3)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p, d: np.save(p["gx"], np.zeros((10, 10), np.float32)), "does not match"),
        (lambda p, d: np.save(p["gx"], np.load(p["gx"]) * 1000.0), "different units"),
        (lambda p, d: np.save(p["gy"], np.full((48, 64), np.nan, np.float32)), "NaN"),
        # these three were read as gradients without a word
        (lambda p, d: np.save(p["gx"], np.ones((48, 64), bool)), "gx.npy: a bool array;"),
        (lambda p, d: np.save(p["gx"], np.ones((48, 64), complex)), "a complex128 array;"),
        (lambda p, d: p["gx"].write_text("0 1 2"), "gx.npy: not a .npy file (no numpy header)"),
        (lambda p, d: np.save(p["gx"], np.ones((2, 48, 64))), "single-channel gradient map"),
    ],
)
def test_bad_gradients_are_one_line_errors(
    scene: dict[str, Path], tmp_path: Path, make, message: str
) -> None:
    make(scene, tmp_path)
    out = tmp_path / "fused.png"
    result = run(
        str(scene["noisy"]), "--gx", str(scene["gx"]), "--gy", str(scene["gy"]), "-o", str(out)
    )
    assert result.exit_code == 1
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_usage_errors(scene: dict[str, Path], tmp_path: Path) -> None:
    only_gx = run(str(scene["noisy"]), "--gx", str(scene["gx"]), "-o", str(tmp_path / "a.png"))
    assert only_gx.exit_code == 2
    neither = run(str(scene["noisy"]), "-o", str(tmp_path / "a.png"))
    assert neither.exit_code == 2
    gx_gy = ["--gx", str(scene["gx"]), "--gy", str(scene["gy"])]
    both = run(str(scene["noisy"]), *gx_gy, "--gradients", str(scene["both"]), "-o", "b.png")
    assert both.exit_code == 2 and "not both" in both.stderr
    folder = run(str(scene["noisy"]), *gx_gy, "-o", str(tmp_path), "--overwrite")
    assert folder.exit_code == 2 and "is a folder" in folder.stderr


def test_existing_output_is_skipped_and_kept(scene: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "fused.npy"
    args = [str(scene["noisy"]), "--gradients", str(scene["both"]), "-o", str(out)]
    assert run(*args).exit_code == 0
    before = out.stat().st_mtime_ns
    again = run(*args)
    assert again.exit_code == 0 and f"skipped: {out} exists" in again.stderr
    assert out.stat().st_mtime_ns == before
    assert run(*args, "-q").stderr == ""


def test_depth_past_what_png16_holds_is_an_error(scene: dict[str, Path], tmp_path: Path) -> None:
    far = tmp_path / "far.npy"
    np.save(far, np.full((48, 64), 90.0, np.float32))
    out = tmp_path / "far.png"
    result = run(str(far), "--gradients", str(scene["both"]), "--omega", "0", "-o", str(out))
    assert result.exit_code == 1 and "past the 65.535 m" in result.stderr
    assert not out.exists() and len(result.stderr.strip().splitlines()) == 1


def test_photo_and_depth_uses_the_gradient_network(
    scene: dict[str, Path], tmp_path: Path, tiny_weights: Path
) -> None:
    photo = tmp_path / "photo.jpg"
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 255, (96, 128, 3), dtype=np.uint8)).save(photo)
    out = tmp_path / "filled.png"
    result = run(
        str(photo),
        "--depth",
        str(scene["noisy"]),
        "-o",
        str(out),
        "--model",
        "dpde-tiny",
        "--weights",
        str(tiny_weights),
    )
    assert result.exit_code == 0, result.output
    filled = read_depth(out)
    assert filled.shape == (48, 64) and (filled[10:20, 10:20] > 0).all()
    wrong = tmp_path / "tall.png"
    write_depth(wrong, np.ones((64, 48), np.float32))
    result = run(
        str(photo),
        "--depth",
        str(wrong),
        "-o",
        str(tmp_path / "b.png"),
        "--model",
        "dpde-tiny",
        "--weights",
        str(tiny_weights),
    )
    assert result.exit_code == 1 and "aspect ratio" in result.stderr


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            lambda p: Image.fromarray(np.full((48, 64), 200, np.uint8)).save(p["noisy"]),
            "an 8-bit image (L); depth must be 16-bit integers or floats",
        ),
        (lambda p: p["noisy"].unlink() or p["noisy"].mkdir(), "noisy.png: a folder, not a file"),
    ],
)
def test_depth_that_is_not_a_measurement_is_refused(
    scene: dict[str, Path], tmp_path: Path, make, message: str
) -> None:
    make(scene)
    gx_gy = ["--gx", str(scene["gx"]), "--gy", str(scene["gy"])]
    result = run(str(scene["noisy"]), *gx_gy, "-o", str(tmp_path / "out.png"))
    assert result.exit_code == 1 and message in result.stderr, result.output
    assert len(result.stderr.strip().splitlines()) == 1


def test_negative_depth_is_named_as_such(scene: dict[str, Path], tmp_path: Path) -> None:
    np.save(tmp_path / "neg.npy", -np.load(scene["truth"]))
    gx_gy = ["--gx", str(scene["gx"]), "--gy", str(scene["gy"])]
    result = run(str(tmp_path / "neg.npy"), *gx_gy, "-o", str(tmp_path / "out.npy"))
    assert result.exit_code == 1 and "every value is 0, negative or NaN" in result.stderr


def test_depth_without_a_valid_pixel_is_refused_before_the_network(tmp_path: Path) -> None:
    photo = tmp_path / "photo.jpg"
    Image.fromarray(np.zeros((48, 64, 3), np.uint8)).save(photo)
    empty = write_depth(tmp_path / "empty.png", np.zeros((48, 64), np.float32))
    absent = tmp_path / "absent.pt"  # loading it would fail: the depth must be refused first
    args = [str(photo), "--depth", str(empty), "--weights", str(absent)]
    result = run(*args, "-o", str(tmp_path / "out.png"))
    assert result.exit_code == 1, result.output
    assert result.stderr.strip() == (
        f"dpde: error: {empty}: no valid depth (every value is 0, negative or NaN)"
    )
    assert not (tmp_path / "out.png").exists()


def test_a_file_in_the_output_folder_s_place_is_a_usage_error_before_work(
    scene: dict[str, Path], tmp_path: Path
) -> None:
    (tmp_path / "afile").write_text("a file")
    gx_gy = ["--gx", str(scene["gx"]), "--gy", str(scene["gy"])]
    result = run(str(scene["noisy"]), *gx_gy, "-o", str(tmp_path / "afile" / "x.png"))
    assert result.exit_code == 2
    assert f"cannot write there ({tmp_path / 'afile'} is a file, not a folder)" in result.stderr


def test_stacked_gradients_and_masks_that_are_not_npy_numbers(
    scene: dict[str, Path], tmp_path: Path
) -> None:
    scene["both"].write_text("not numpy")
    out = str(tmp_path / "out.png")
    text = run(str(scene["noisy"]), "--gradients", str(scene["both"]), "-o", out)
    assert text.exit_code == 1 and "both.npy: not a .npy file (no numpy header)" in text.stderr
    np.save(tmp_path / "mask.npy", np.ones((48, 64), complex))
    gx_gy = ["--gx", str(scene["gx"]), "--gy", str(scene["gy"])]
    mask = run(str(scene["noisy"]), *gx_gy, "--mask", str(tmp_path / "mask.npy"), "-o", out)
    assert mask.exit_code == 1 and "a complex128 array; mask must be real numbers" in mask.stderr
    np.save(tmp_path / "mask.npy", np.ones((48, 64), bool))  # a boolean mask is a fine mask
    assert (
        run(str(scene["noisy"]), *gx_gy, "--mask", str(tmp_path / "mask.npy"), "-o", out).exit_code
        == 0
    )
