"""The camera at prediction: `predict` and `pointcloud` give each photo's focal length to a
model whose depth follows the camera (a canonical focal length), and to no other."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from dpde_cli.cli.app import app
from dpde_cli.io import read_depth

runner = CliRunner()
CANONICAL = 50.0  # pixels at the network's 64x96


def run(*args: str):
    return runner.invoke(app, ["--device", "cpu", *args])


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    """Two 64x96 photos (the network's own size: no resampling of the focal length)."""
    rng = np.random.default_rng(1)
    root = tmp_path / "photos"
    root.mkdir()
    for name in ("one.png", "two.png"):
        Image.fromarray(rng.integers(0, 255, (64, 96, 3), dtype=np.uint8)).save(root / name)
    return root


@pytest.fixture
def canonical_weights(tiny_weights: Path, tmp_path: Path) -> Path:
    """The tiny weights as `dpde train` exports them for a canonical-camera run."""
    path = tmp_path / "canonical.pt"
    run_facts = {"model": "dpde-tiny", "input_size": [64, 96], "canonical_focal": CANONICAL}
    torch.save({"model": torch.load(tiny_weights), "run": run_facts}, path)
    return path


def predict(photo: Path, weights: Path, out: Path, *extra: str):
    result = run("predict", str(photo), "-o", str(out), "--no-fuse", "--json",
                 "--model", "dpde-tiny", "--weights", str(weights), *extra)  # fmt: skip
    assert result.exit_code == 0, result.output
    return read_depth(out), result


def test_shipped_kind_of_weights_ignore_the_camera(
    photos: Path, tiny_weights: Path, tmp_path: Path
) -> None:
    plain, result = predict(photos / "one.png", tiny_weights, tmp_path / "plain.npy")
    with_fx, other = predict(photos / "one.png", tiny_weights, tmp_path / "fx.npy", "--fx", "30")
    assert np.array_equal(plain, with_fx)  # bit for bit
    _, fov = predict(photos / "one.png", tiny_weights, tmp_path / "fov.npy", "--fov", "20")
    assert "intrinsics_source" not in json.loads(other.stdout)
    assert "warning" not in result.stderr + fov.stderr  # the camera does not matter here


def test_canonical_weights_scale_depth_by_the_focal_length(
    photos: Path, tiny_weights: Path, canonical_weights: Path, tmp_path: Path
) -> None:
    plain, _ = predict(photos / "one.png", tiny_weights, tmp_path / "plain.npy")
    low, high = 0.1, 10.0  # dpde-tiny's depth range: the prediction is clipped to it
    for fx in (50.0, 80.0):
        depth, result = predict(
            photos / "one.png", canonical_weights, tmp_path / f"{fx}.npy", "--fx", str(fx)
        )
        expected = plain * (fx / CANONICAL)
        inside = (plain > low) & (plain < high) & (expected < high)
        assert inside.mean() > 0.5
        np.testing.assert_allclose(depth[inside], expected[inside], rtol=1e-4)
        record = json.loads(result.stdout)
        assert record["intrinsics_source"] == "options" and record["intrinsics"]["fx"] == fx
        assert "warning" not in result.stderr


def test_canonical_weights_warn_once_per_batch_without_a_camera(
    photos: Path, canonical_weights: Path, tmp_path: Path
) -> None:
    result = run("predict", str(photos), "-o", str(tmp_path / "out"), "--no-fuse", "--json",
                 "--model", "dpde-tiny", "--weights", str(canonical_weights))  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.stderr.count("warning") == 1 and "metric scale" in result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["intrinsics_source"] for r in records] == ["default", "default"]


def test_a_camera_file_of_another_aspect_ratio_fails_that_photo_alone(
    photos: Path, canonical_weights: Path, tmp_path: Path
) -> None:
    camera = tmp_path / "cam.json"
    camera.write_text(json.dumps({"fx": 50, "fy": 50, "cx": 40, "cy": 40, "width": 80,
                                  "height": 80}))  # fmt: skip
    out = tmp_path / "d.png"
    result = run("predict", str(photos / "one.png"), "-o", str(out), "--no-fuse",
                 "--intrinsics", str(camera),
                 "--model", "dpde-tiny", "--weights", str(canonical_weights))  # fmt: skip
    assert result.exit_code == 1
    assert str(camera) in result.stderr and not out.exists()


def test_fuse_gives_the_focal_length_only_to_canonical_weights(
    photos: Path, tiny_weights: Path, canonical_weights: Path, tmp_path: Path
) -> None:
    sensor = tmp_path / "sensor.npy"
    depth = np.full((64, 96), 2.0, np.float32)
    depth[20:40, 30:60] = 0.0  # a hole the gradients fill
    np.save(sensor, depth)

    def fuse(weights: Path, fx: str) -> np.ndarray:
        out = tmp_path / f"{weights.stem}-{fx}.npy"
        result = run("fuse", str(photos / "one.png"), "--depth", str(sensor), "-o", str(out),
                     "--model", "dpde-tiny", "--weights", str(weights), "--fx", fx)  # fmt: skip
        assert result.exit_code == 0, result.output
        return read_depth(out)

    assert np.array_equal(fuse(tiny_weights, "40"), fuse(tiny_weights, "90"))  # ignored
    assert not np.allclose(fuse(canonical_weights, "40"), fuse(canonical_weights, "90"))
