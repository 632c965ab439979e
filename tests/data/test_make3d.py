"""Make3D loader against files written in the dataset's on-disk format."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from dpde_cli.data import build_dataset
from dpde_cli.data._common import nearest_indices
from dpde_cli.data.make3d import Make3D, read_make3d_depth
from dpde_cli.errors import InputError

GRID = (55, 305)


def _grid(seed: int) -> np.ndarray:
    """Position3DGrid (55, 305, 4): Y, X, Z and, in channel 4, a distinct depth per cell."""
    rows, cols = np.meshgrid(np.arange(GRID[0]), np.arange(GRID[1]), indexing="ij")
    depth = 1.0 + rows + cols / 1000.0 + seed
    depth[0, 0] = 0.0  # no laser return
    grid = np.zeros((*GRID, 4))
    grid[..., 0], grid[..., 1], grid[..., 2], grid[..., 3] = rows, cols, depth * 0.9, depth
    return grid


def _write(root: Path, image_dir: str, depth_dir: str, stems: list[str]) -> None:
    import scipy.io
    from PIL import Image

    (root / image_dir).mkdir(parents=True)
    (root / depth_dir).mkdir(parents=True)
    for i, stem in enumerate(stems):
        rgb = np.zeros((40, 30, 3), dtype=np.uint8)  # portrait, like the 2272 x 1704 originals
        rgb[:20] = (255, 0, 0)  # red top half: orientation check
        Image.fromarray(rgb).save(root / image_dir / f"img-{stem}.jpg", quality=95)
        scipy.io.savemat(
            root / depth_dir / f"depth_sph_corr-{stem}.mat", {"Position3DGrid": _grid(i)}
        )


def test_make3d_test_split_round_trip(tmp_path: Path):
    _write(tmp_path, "Test134", "Gridlaserdata", ["10.21op2-p-139t000", "manmade-p-5"])
    native = Make3D(tmp_path, "test", depth_resolution="native")
    assert len(native) == 2
    sample = native[0]
    assert sample["name"] == "10.21op2-p-139t000"
    assert sample["image"].shape == (3, 460, 345)  # the paper's 460 x 345 as H x W
    assert torch.equal(sample["depth"][0], torch.from_numpy(_grid(0)[..., 3].astype(np.float32)))
    assert not sample["valid"][0, 0, 0] and sample["valid"].sum() == GRID[0] * GRID[1] - 1
    assert sample["image"][0, 10, 100] > 0.9 and sample["image"][0, 400, 100] < 0.1
    assert torch.isnan(sample["intrinsics"][:2]).all()

    resized = build_dataset("make3d", tmp_path, "test")[1]
    rows, cols = nearest_indices(GRID[0], 460), nearest_indices(GRID[1], 345)
    expected = _grid(1)[..., 3][rows[:, None], cols[None, :]].astype(np.float32)
    assert resized["depth"].shape == (1, 460, 345)
    assert torch.equal(resized["depth"][0], torch.from_numpy(expected))
    assert resized["depth"][0, 0, 0] == 0 and resized["depth"][0, -1, -1] == pytest.approx(
        1.0 + 54 + 304 / 1000 + 1
    )


def test_make3d_train_split_and_missing_depth(tmp_path: Path):
    _write(tmp_path, "Train400Img", "Train400Depth", ["a", "b", "c"])
    assert len(Make3D(tmp_path, "train", size=None)) == 3
    (tmp_path / "Train400Depth" / "depth_sph_corr-b.mat").unlink()
    with pytest.raises(InputError, match="depth_sph_corr-b.mat"):
        Make3D(tmp_path, "train")
    with pytest.raises(InputError, match="Test134"):
        Make3D(tmp_path, "test")


def test_truncated_jpeg(tmp_path: Path):
    from PIL import Image

    _write(tmp_path, "Test134", "Gridlaserdata", ["t"])
    path = tmp_path / "Test134" / "img-t.jpg"
    noise = np.random.default_rng(0).integers(0, 255, (400, 300, 3), dtype=np.uint8)
    Image.fromarray(noise).save(path, quality=95)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])
    assert Make3D(tmp_path, "test")[0]["image"].shape == (3, 460, 345)
    with pytest.raises(InputError, match="truncated"):
        Make3D(tmp_path, "test", allow_truncated=False)[0]


def test_bad_mat(tmp_path: Path):
    import scipy.io

    scipy.io.savemat(tmp_path / "x.mat", {"Position3DGrid": np.zeros((55, 305))})
    with pytest.raises(InputError, match="shape"):
        read_make3d_depth(tmp_path / "x.mat")
