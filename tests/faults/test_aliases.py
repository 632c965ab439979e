"""Outputs that are inputs, by every name a file can have: refused before any work with one
line (exit 2), whatever --overwrite says, and every input left as it was."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from tests.faults.conftest import assert_one_line_error, dpde, snapshot


def test_predict_never_replaces_its_photo(photos: Path, tmp_path: Path, tiny) -> None:
    before = snapshot(photos)
    os.link(photos / "a.png", tmp_path / "hard.png")
    (tmp_path / "soft.png").symlink_to(photos / "a.png")
    for output in (photos / "a.png", tmp_path / "hard.png", tmp_path / "soft.png"):
        result = dpde("predict", photos / "a.png", "-o", output, "--overwrite", *tiny)
        assert_one_line_error(result.exit_code, result.stderr, 2, output, photos / "a.png")
    folder = dpde("predict", photos, "-o", photos, "--overwrite", *tiny)  # a.png, c.png
    assert_one_line_error(folder.exit_code, folder.stderr, 2, "1 more outputs clash")
    assert snapshot(photos) == before and sorted(p.name for p in photos.iterdir()) == [
        "a.png",
        "b.jpg",
        "c.png",
    ]


def test_an_extra_output_that_is_another_photo_is_refused(photos: Path, tiny) -> None:
    (photos / "b_color.png").write_bytes((photos / "a.png").read_bytes())  # a photo's name
    before = snapshot(photos)
    same = dpde("predict", photos, "-o", photos, "-f", "npy", "--preview", "--overwrite", *tiny)
    assert_one_line_error(same.exit_code, same.stderr, 2, photos / "b_color.png")
    assert snapshot(photos) == before  # not one output written before the refusal


def test_the_weights_and_the_camera_file_are_inputs_too(
    photos: Path, tmp_path: Path, tiny_weights: Path, tiny
) -> None:
    copy = tmp_path / "w.npy"  # weights saved under a depth format's name
    copy.write_bytes(tiny_weights.read_bytes())
    before = snapshot(copy)
    args = ["--model", "dpde-tiny", "--weights", copy, "--no-fuse"]
    result = dpde("predict", photos / "a.png", "-o", copy, "--overwrite", *args)
    assert_one_line_error(result.exit_code, result.stderr, 2, copy)
    camera = tmp_path / "room.intrinsics.json"  # an earlier run's camera, given again
    camera.write_text('{"fx": 30, "fy": 30, "cx": 15.5, "cy": 11.5}')
    cloud = dpde(
        "pointcloud", photos / "a.png", "--ply", tmp_path / "room.ply", "--intrinsics", camera,
        "--overwrite", *tiny,
    )  # fmt: skip
    assert_one_line_error(cloud.exit_code, cloud.stderr, 2, camera)
    assert snapshot(copy) == before and camera.read_text().startswith('{"fx": 30')


def test_fuse_never_replaces_its_depth_or_gradients(tmp_path: Path) -> None:
    depth = tmp_path / "d.npy"
    np.save(depth, np.full((24, 32), 2.0, np.float32))
    np.save(tmp_path / "g.npy", np.zeros((2, 24, 32), np.float32))
    before = snapshot(tmp_path)
    for output in (depth, tmp_path / "g.npy"):
        fused = dpde("fuse", depth, "--gradients", tmp_path / "g.npy", "-o", output, "--overwrite")
        assert_one_line_error(fused.exit_code, fused.stderr, 2, output)
    assert snapshot(tmp_path) == before


@pytest.mark.slow
def test_eval_never_writes_into_its_data_or_over_its_weights(
    rgbd: Path, tmp_path: Path, tiny_weights: Path
) -> None:
    before = snapshot(rgbd, tiny_weights)
    base = ["eval", "--dataset", "folder", "--data-dir", rgbd, "--workers", "0", "--no-fuse"]
    base += ["--model", "dpde-tiny", "--weights", tiny_weights]
    for option, value in (
        ("--save-predictions", rgbd / "depth"),
        ("--json", rgbd / "depth" / "f0.png"),
        ("--csv", rgbd / "rgb" / "f1.png"),
        ("--json", tiny_weights),
    ):
        result = dpde(*base, option, value)
        assert_one_line_error(result.exit_code, result.stderr, 2, value)
    report = rgbd / "scores.json"  # a new report beside the data, then the same again
    for _ in range(2):
        assert dpde(*base, "--json", report).exit_code == 0
    report.unlink()
    assert snapshot(rgbd, tiny_weights) == before
