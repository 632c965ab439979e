"""Middlebury loader against generated PNGs + meta.json and the real-dev samples."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from dpde_cli.data import build_dataset
from dpde_cli.data.middlebury import Middlebury, disparity_to_depth
from dpde_cli.errors import InputError


def _write(root: Path, meta: dict) -> np.ndarray:
    from PIL import Image

    (root / "rgb").mkdir(parents=True)
    (root / "disparity").mkdir()
    value = (np.arange(15 * 20).reshape(15, 20) % 200 + 4).astype(np.uint8)
    value[3, 4] = 0  # unknown
    for stem in meta:
        Image.fromarray(np.full((15, 20, 3), 90, dtype=np.uint8)).save(root / "rgb" / f"{stem}.png")
        Image.fromarray(value).save(root / "disparity" / f"{stem}.png")
    (root / "meta.json").write_text(json.dumps(meta))
    return value


def test_relative_depth_round_trip(tmp_path: Path):
    meta = {
        "cones": {"disparity_scale": 4, "unknown": 0},
        "dolls": {"disparity_scale": 1, "unknown": 0, "dmin": 10},
    }
    value = _write(tmp_path, meta)
    ds = Middlebury(tmp_path, size=None)
    assert [ds[i]["name"] for i in range(2)] == ["cones", "dolls"]
    known = value != 0
    cones, dolls = ds[0], ds[1]
    expected = np.where(known, 1.0 / np.maximum(value / 4.0, 1e-9), 0.0).astype(np.float32)
    assert torch.equal(cones["depth"][0], torch.from_numpy(expected))
    assert torch.equal(cones["valid"][0], torch.from_numpy(known))
    expected = np.where(known, 1.0 / (value + 10.0), 0.0).astype(np.float32)
    assert torch.allclose(dolls["depth"][0], torch.from_numpy(expected), rtol=1e-6)
    assert torch.isnan(cones["intrinsics"][:2]).all()
    assert cones["intrinsics"][2:].tolist() == [9.5, 7.0]
    assert not ds.metric_depth and "relative" in ds.ground_truth


def test_resize_to_paper_size_and_metric_option(tmp_path: Path):
    value = _write(
        tmp_path,
        {
            "a": {
                "disparity_scale": 1,
                "unknown": 0,
                "dmin": 100,
                "focal_px": 1870.0,
                "baseline_m": 0.16,
            }
        },
    )
    sample = build_dataset("middlebury", tmp_path, "test")[0]
    assert sample["image"].shape == (3, 380, 430) and sample["depth"].shape == (1, 380, 430)
    doubled = Middlebury(tmp_path, size=(30, 40))[0]  # exact 2x: nearest repeats pixels
    expected = np.where(value != 0, 1870.0 * 0.16 / (value + 100.0), 0.0)
    assert torch.allclose(doubled["depth"][0, ::2, ::2], torch.from_numpy(expected).float())
    assert torch.equal(doubled["valid"][0, 1::2, 1::2], torch.from_numpy(value != 0))
    assert doubled["intrinsics"][0].item() == pytest.approx(1870.0 * 2)
    metric = Middlebury(tmp_path)
    assert metric.metric_depth and "metric" in metric.ground_truth


def test_disparity_to_depth_unknown_and_zero():
    depth, valid = disparity_to_depth(np.array([[0, 8, 255]]), disparity_scale=4, unknown=255)
    assert valid.tolist() == [[False, True, False]]
    assert depth.tolist() == [[0.0, 0.5, 0.0]]


def test_missing_pieces(tmp_path: Path):
    with pytest.raises(InputError, match="meta.json"):
        Middlebury(tmp_path)
    _write(tmp_path, {"a": {"disparity_scale": 1}})
    (tmp_path / "disparity" / "a.png").unlink()
    with pytest.raises(InputError, match="a.png"):
        Middlebury(tmp_path)


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"dmin": "x"}, "a: dmin must be a number, got 'x'"),
        ({"disparity_scale": 0}, "a: disparity_scale must be a positive number, got 0"),
        ({"focal_px": -3, "baseline_m": 0.1}, "a: focal_px must be a positive number, got -3"),
        ({"unknown": True}, "a: unknown must be a number, got True"),
    ],
)
def test_meta_values_that_are_not_numbers_name_the_file_and_key(
    tmp_path: Path, entry: dict, message: str
):
    # "dmin": "x" was a ValueError traceback; disparity_scale 0 skipped every image
    _write(tmp_path, {"a": entry})
    with pytest.raises(InputError) as caught:
        Middlebury(tmp_path)
    assert str(caught.value) == f"{tmp_path / 'meta.json'}: {message}"


def test_real_middlebury(shared_data: Path):
    from PIL import Image

    root = shared_data / "middlebury"
    ds = Middlebury(root)
    assert [ds[i]["name"] for i in range(len(ds))] == ["cones", "dolls", "teddy"]
    for i in range(len(ds)):
        sample = ds[i]
        assert sample["image"].shape == (3, 380, 430)
        assert sample["valid"].float().mean() > 0.9
        assert (sample["depth"][sample["valid"]] > 0).all()
    native = Middlebury(root, size=None)[0]
    raw = np.asarray(Image.open(root / "disparity" / "cones.png"), dtype=np.float64)
    expected = np.where(raw > 0, 4.0 / np.maximum(raw, 1), 0.0).astype(np.float32)
    assert torch.allclose(native["depth"][0], torch.from_numpy(expected))
    assert native["image"].shape == (3, 375, 450)
