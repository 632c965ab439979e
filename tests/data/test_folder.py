"""Folder loader (DIR/rgb + DIR/depth + intrinsics.json) on generated and real files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from dpde_cli.data import build_dataset
from dpde_cli.data.folder import FolderDataset
from dpde_cli.errors import InputError, UsageError


def _write(root: Path, stems: list[str], size: tuple[int, int] = (6, 9)) -> dict:
    from PIL import Image

    (root / "rgb").mkdir(parents=True)
    (root / "depth").mkdir()
    out = {}
    for i, stem in enumerate(stems):
        rgb = np.random.default_rng(i).integers(0, 256, (*size, 3), dtype=np.uint8)
        depth = (np.arange(size[0] * size[1]).reshape(size) * 37 + 400 + i).astype(np.uint16)
        depth[0, :2] = 0
        Image.fromarray(rgb).save(root / "rgb" / f"{stem}.png")
        Image.fromarray(depth).save(root / "depth" / f"{stem}.png")
        out[stem] = (rgb, depth)
    return out


def test_folder_round_trip(tmp_path: Path):
    data = _write(tmp_path, ["b", "a"])
    (tmp_path / "intrinsics.json").write_text(
        json.dumps({"a": [500, 501, 4, 3], "b": [600, 601, 4.5, 2.5]})
    )
    ds = build_dataset("folder", tmp_path)
    assert ds.split == "all"
    assert [ds[i]["name"] for i in range(2)] == ["a", "b"]
    sample = ds[0]
    rgb, depth = data["a"]
    assert torch.equal(sample["image"], torch.from_numpy(rgb).permute(2, 0, 1) / 255.0)
    assert torch.equal(sample["depth"][0], torch.from_numpy(depth.astype(np.float32) / 1000))
    assert sample["valid"].sum() == depth.size - 2 and not sample["valid"][0, 0, :2].any()
    assert sample["intrinsics"].tolist() == [500, 501, 4, 3]
    scaled = FolderDataset(tmp_path, depth_scale=256, size=(12, 18))[1]
    assert scaled["depth"].shape == (1, 12, 18)
    assert torch.equal(
        scaled["depth"][0, ::2, ::2], torch.from_numpy(data["b"][1].astype(np.float32) / 256)
    )
    assert scaled["intrinsics"].tolist() == pytest.approx([1200, 1202, 9.5, 5.5])


def test_missing_depth_is_named(tmp_path: Path):
    _write(tmp_path, ["x", "y"])
    (tmp_path / "depth" / "y.png").unlink()
    with pytest.raises(InputError) as info:
        FolderDataset(tmp_path)
    assert info.value.path.endswith("depth/y.png") and "y.png" in str(info.value)


def test_bad_inputs(tmp_path: Path):
    from PIL import Image

    _write(tmp_path, ["x"])
    Image.fromarray(np.zeros((6, 9), dtype=np.uint8)).save(tmp_path / "depth" / "x.png")
    with pytest.raises(InputError, match="16-bit"):
        FolderDataset(tmp_path)[0]
    (tmp_path / "intrinsics.json").write_text(json.dumps({"other": [1, 1, 1, 1]}))
    with pytest.raises(InputError, match="'x'"):
        FolderDataset(tmp_path)
    with pytest.raises(UsageError):
        build_dataset("folder", tmp_path, "all", colour="no")
    with pytest.raises(InputError):
        FolderDataset(tmp_path / "nowhere")


@pytest.mark.parametrize("entry", [[float("nan"), 1, 1, 1], [-500, 500, 4, 3], [True, 1, 1, 1]])
def test_intrinsics_that_make_no_camera_are_refused(tmp_path: Path, entry: list):
    _write(tmp_path, ["x"])
    (tmp_path / "intrinsics.json").write_text(json.dumps({"x": entry}))
    with pytest.raises(InputError, match=r"x: \[fx, fy, cx, cy\] must be finite with fx, fy > 0"):
        FolderDataset(tmp_path)


def test_a_file_or_a_missing_subfolder_is_named(tmp_path: Path):
    (tmp_path / "afile").write_text("x")
    with pytest.raises(InputError, match="afile: a file, not a folder"):
        FolderDataset(tmp_path / "afile")
    _write(tmp_path / "d", ["x"])
    for path in (tmp_path / "d" / "depth").iterdir():
        path.unlink()
    (tmp_path / "d" / "depth").rmdir()
    with pytest.raises(InputError, match="d/depth: no such folder"):
        FolderDataset(tmp_path / "d")


@pytest.mark.parametrize("split", ["test", "train", "val"])
def test_a_folder_has_one_split(tmp_path: Path, split: str):
    """A "test" split of a folder would be every pair under a name that says otherwise."""
    _write(tmp_path, ["x"])
    with pytest.raises(UsageError, match="'all'"):
        build_dataset("folder", tmp_path, split)


def test_exif_orientation_is_applied(tmp_path: Path):
    from PIL import Image

    _write(tmp_path, ["p"], size=(9, 6))  # depth is 9 rows x 6 columns
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    Image.new("RGB", (9, 6), (10, 200, 30)).save(tmp_path / "rgb" / "p.jpg", exif=exif)
    (tmp_path / "rgb" / "p.png").unlink()
    sample = FolderDataset(tmp_path)[0]
    assert sample["image"].shape == (3, 9, 6)


def test_real_nyu_raw_folder(shared_data: Path):
    root = shared_data / "nyu-raw"
    ds = build_dataset("folder", root, "all")
    assert len(ds) == 3
    intrinsics = json.loads((root / "intrinsics.json").read_text())
    for i in range(3):
        sample = ds[i]
        assert sample["image"].shape == (3, 480, 640)
        assert sample["intrinsics"].tolist() == pytest.approx(intrinsics[sample["name"]])
        fraction = sample["valid"].float().mean().item()
        assert 0.6 < fraction < 0.8  # the README: 67-75 % valid
        depth = sample["depth"][sample["valid"]]
        assert depth.min() > 0.5 and depth.max() < 9.0  # 0.7-8.3 m
