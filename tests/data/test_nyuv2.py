"""NYUv2 loader against files written in the labelled set's exact on-disk format."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from dpde_cli.data import build_dataset
from dpde_cli.data.nyuv2 import (
    KINECT_INTRINSICS,
    LABELED_URL,
    NYUv2,
    load_official_split,
    read_nyu_list,
)
from dpde_cli.errors import InputError, UsageError

N, H, W = 6, 6, 8  # frames, height, width (H != W catches a missing transpose)


def _frames() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(N, H, W, 3) uint8 images, (N, H, W) filled and raw depth, all distinct values."""
    n, y, x, c = np.meshgrid(np.arange(N), np.arange(H), np.arange(W), np.arange(3), indexing="ij")
    images = ((n * 37 + y * 11 + x * 3 + c * 50) % 256).astype(np.uint8)
    n, y, x = np.meshgrid(np.arange(N), np.arange(H), np.arange(W), indexing="ij")
    depths = (1.0 + n + 0.1 * y + 0.01 * x).astype(np.float32)
    raw = depths.copy()
    raw[:, 0, :] = 0.0  # the Kinect saw nothing on the top row
    return images, depths, raw


def write_labeled_mat(path: Path) -> None:
    """A MATLAB v7.3 file as MATLAB writes it: HDF5 with a 512-byte header, axes reversed."""
    import h5py

    images, depths, raw = _frames()
    with h5py.File(path, "w", userblock_size=512) as handle:
        handle["images"] = images.transpose(0, 3, 2, 1)  # (N, 3, W, H), like (1449, 3, 640, 480)
        handle["depths"] = depths.transpose(0, 2, 1)  # (N, W, H), like (1449, 640, 480)
        handle["rawDepths"] = raw.transpose(0, 2, 1)
    with open(path, "r+b") as handle:
        handle.write(b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: test HDF5 schema 1.00 .")


@pytest.fixture()
def nyu_root(tmp_path: Path) -> Path:
    import scipy.io

    write_labeled_mat(tmp_path / "nyu_depth_v2_labeled.mat")
    scipy.io.savemat(
        tmp_path / "splits.mat",
        {
            "trainNdxs": np.array([[1], [3], [4]], dtype=np.uint16),  # 1-based, column vectors
            "testNdxs": np.array([[2], [5], [6]], dtype=np.uint16),
        },
    )
    return tmp_path


def test_labeled_mat_round_trip(nyu_root: Path):
    images, depths, _ = _frames()
    ds = NYUv2(nyu_root, split="test")
    assert len(ds) == 3
    sample = ds[0]  # testNdxs[0] = 2 (1-based) -> frame 1
    assert sample["name"] == "00001"
    assert sample["image"].shape == (3, H, W) and sample["image"].dtype == torch.float32
    assert torch.equal(sample["image"], torch.from_numpy(images[1]).permute(2, 0, 1) / 255.0)
    assert sample["depth"].shape == (1, H, W)
    assert torch.equal(sample["depth"][0], torch.from_numpy(depths[1]))
    assert bool(sample["valid"].all())
    fx, fy, cx, cy = KINECT_INTRINSICS
    expected = [fx * W / 640, fy * H / 480, (cx + 0.5) * W / 640 - 0.5, (cy + 0.5) * H / 480 - 0.5]
    assert sample["intrinsics"].tolist() == pytest.approx(expected, rel=1e-6)
    assert [ds[i]["name"] for i in range(3)] == ["00001", "00004", "00005"]
    assert ds.gt == "filled" and "filled" in ds.ground_truth


def test_raw_gt_train_and_all_splits(nyu_root: Path):
    _, _, raw = _frames()
    ds = NYUv2(nyu_root / "nyu_depth_v2_labeled.mat", split="train", gt="raw")
    sample = ds[1]  # trainNdxs[1] = 3 -> frame 2
    assert sample["name"] == "00002"
    assert torch.equal(sample["depth"][0], torch.from_numpy(raw[2]))
    assert not sample["valid"][0, 0].any() and sample["valid"][0, 1:].all()
    assert len(NYUv2(nyu_root, split="all")) == N
    assert ds.gt == "raw" and "rawDepths" in ds.ground_truth


def test_resize_and_pickling_reopens_lazily(nyu_root: Path):
    ds = NYUv2(nyu_root, split="test", size=(12, 16))
    first = ds[2]
    assert first["image"].shape == (3, 12, 16) and first["depth"].shape == (1, 12, 16)
    _, depths, _ = _frames()
    assert torch.equal(first["depth"][0, ::2, ::2], torch.from_numpy(depths[5]))
    clone = pickle.loads(pickle.dumps(ds))  # what a spawned DataLoader worker receives
    assert clone._file is None
    assert torch.equal(clone[2]["depth"], first["depth"])
    ds.close()
    clone.close()


def test_dataloader_worker(nyu_root: Path):
    ds = NYUv2(nyu_root, split="test")
    ds[0]  # the parent opens its handle before the fork
    loader = torch.utils.data.DataLoader(ds, batch_size=3, num_workers=1)
    batch = next(iter(loader))
    assert batch["depth"].shape == (3, 1, H, W)
    assert batch["name"] == ["00001", "00004", "00005"]


def test_missing_files_say_where_to_get_them(tmp_path: Path, nyu_root: Path):
    with pytest.raises(InputError) as info:
        NYUv2(tmp_path / "empty")
    message = str(info.value)
    assert LABELED_URL in message and "nyu_depth_v2_labeled.mat" in message
    assert "splits.mat" in message and "nyudepthv2_test_files_with_gt.txt" in message
    (nyu_root / "splits.mat").unlink()
    with pytest.raises(InputError, match="splits.mat"):
        NYUv2(nyu_root, split="test")
    with pytest.raises(UsageError):
        NYUv2(nyu_root, split="val")


def test_list_layout(tmp_path: Path):
    from PIL import Image

    rgb = np.zeros((H, W, 3), dtype=np.uint8)
    rgb[..., 0] = 200
    depth_mm = np.arange(H * W, dtype=np.uint16).reshape(H, W) * 100 + 500
    depth_mm[0, 0] = 0
    (tmp_path / "bathroom").mkdir()
    Image.fromarray(rgb).save(tmp_path / "bathroom" / "rgb_00045.png")
    Image.fromarray(depth_mm).save(tmp_path / "bathroom" / "sync_depth_00045.png")
    Image.fromarray(rgb).save(tmp_path / "bathroom" / "rgb_00046.png")
    (tmp_path / "nyudepthv2_test_files_with_gt.txt").write_text(
        "/bathroom/rgb_00045.png /bathroom/sync_depth_00045.png 518.8579\n"
        "bathroom/rgb_00046.png None 518.8579"  # no trailing newline, no ground truth
    )
    ds = build_dataset("nyuv2", tmp_path, "test")
    assert len(ds) == 2
    sample = ds[0]
    assert sample["name"] == "bathroom/rgb_00045"
    assert torch.equal(sample["depth"][0], torch.from_numpy(depth_mm.astype(np.float32) / 1000))
    assert not sample["valid"][0, 0, 0] and sample["valid"].sum() == H * W - 1
    assert sample["intrinsics"][0].item() == pytest.approx(518.8579 * W / 640)
    assert not ds[1]["valid"].any()
    assert ds.gt == "raw" and "raw" in ds.ground_truth  # BTS's PNGs hold rawDepths
    with pytest.raises(UsageError):
        NYUv2(tmp_path, split="test", gt="raw")
    (tmp_path / "bathroom" / "sync_depth_00045.png").unlink()
    with pytest.raises(InputError, match="sync_depth_00045.png"):
        NYUv2(tmp_path, split="test")


def test_real_split_and_list_files(shared_data: Path):
    splits = shared_data / "nyu-splits"
    train = load_official_split(splits / "splits.mat", "train")
    test = load_official_split(splits / "splits.mat", "test")
    assert (len(train), len(test)) == (795, 654)
    assert np.array_equal(np.sort(np.concatenate([train, test])), np.arange(1449))
    entries = read_nyu_list(splits / "nyudepthv2_test_files_with_gt.txt")
    assert len(entries) == 654
    assert all(e.depth is not None and e.focal == pytest.approx(518.8579) for e in entries)
    # the list's 0-based file numbers are the official test frames
    numbers = sorted(int(e.rgb.rsplit("_", 1)[1].split(".")[0]) for e in entries)
    assert numbers == test.tolist()
