"""pipelines.py and pointcloud.photo_to_cloud: the commands' work from Python."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dpde_cli.batch import BatchOptions, Job
from dpde_cli.errors import InputError, UsageError
from dpde_cli.inputs import expand_inputs
from dpde_cli.io import read_depth, write_depth
from dpde_cli.pipelines import (
    DepthOutputs,
    cloud_suffix,
    depth_format_for,
    fuse_file,
    plan_clouds,
    plan_predictions,
    pointcloud_files,
    predict_files,
)
from dpde_cli.pointcloud import Camera, CloudConfig, photo_to_cloud, read_point_cloud


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    root = tmp_path / "photos"
    (root / "sub").mkdir(parents=True)
    for name in ("a.jpg", "sub/b.png"):
        Image.fromarray(rng.integers(0, 255, (24, 32, 3), dtype=np.uint8)).save(root / name)
    return root


@pytest.fixture
def tiny(tiny_weights, one_thread):
    import torch

    from dpde_cli.predict import Predictor
    from dpde_cli.registry import create_model

    return Predictor(create_model("dpde-tiny", weights=tiny_weights), torch.device("cpu"))


def test_depth_outputs_are_checked_when_made() -> None:
    assert depth_format_for(Path("d.npy"), 1) == "npy"
    assert depth_format_for(Path("out"), 3) == "png16"
    assert depth_format_for(None, 2, "tiff") == "tiff"
    with pytest.raises(UsageError, match="means npy, not --format png16"):
        depth_format_for(Path("d.npy"), 1, "png16")
    bad_ones = ({"fmt": "jpeg2000"}, {"preview": True, "colormap": "nope"}, {"depth_range": (5, 1)})
    for bad in bad_ones:
        with pytest.raises(UsageError):
            DepthOutputs(**bad)


def test_plan_predictions_puts_the_extras_beside_the_depth(photos: Path, tmp_path: Path) -> None:
    items = expand_inputs([str(photos)], recursive=True)
    outputs = DepthOutputs("npy", unfused=True, gradients=True, preview=True)
    jobs = plan_predictions(items, tmp_path / "out", outputs)
    assert {k: v.relative_to(tmp_path / "out").as_posix() for k, v in jobs[1].targets.items()} == {
        "depth": "sub/b.npy",
        "unfused": "sub/b_unfused.npy",
        "gradients": "sub/b_gradients.npy",
        "preview": "sub/b_color.png",
    }
    with pytest.raises(UsageError, match="give a directory"):
        plan_predictions(items, tmp_path / "one.png")


def test_predict_files_writes_and_reports(photos: Path, tmp_path: Path, tiny) -> None:
    items = expand_inputs([str(photos)], recursive=True)
    outputs = DepthOutputs("png16", preview=True)
    jobs = plan_predictions(items, tmp_path / "out", outputs)
    report = predict_files(tiny, jobs, outputs, BatchOptions(batch_size=2))
    assert len(report.done) == 2 and not report.failed and not report.skipped
    record = report.done[0].record
    assert record["shape"] == [24, 32] and record["fusion"] is None
    assert read_depth(record["output"]).shape == (24, 32)
    assert Path(record["outputs"]["preview"]).is_file()
    again = predict_files(tiny, jobs, outputs)
    assert len(again.skipped) == 2
    before = items[0].path.read_bytes()
    with pytest.raises(UsageError, match=f"the output {items[0].path} is the input"):
        predict_files(tiny, [Job(items[0], {"depth": items[0].path})], options=BatchOptions(True))
    assert items[0].path.read_bytes() == before


@pytest.fixture
def planes(tmp_path: Path) -> tuple[Path, Path]:
    depth = np.full((12, 16), 2.0, np.float32)
    depth[:, 8:] = 4.0
    write_depth(tmp_path / "depth.npy", depth)
    colour = np.zeros((24, 32, 3), np.uint8)
    colour[:, :16] = (255, 0, 0)
    Image.fromarray(colour).save(tmp_path / "photo.png")
    return tmp_path / "photo.png", tmp_path / "depth.npy"


def test_photo_to_cloud_from_a_depth_file(planes) -> None:
    photo, depth = planes
    result = photo_to_cloud(photo, depth, camera=Camera(fx=20.0))  # fx for the 32-wide photo
    assert result.shape == (12, 16) and result.depth_source == str(depth)
    assert result.intrinsics.fx == pytest.approx(10.0) and result.intrinsics_source == "options"
    near = result.cloud.points[:, 2] < 3.0
    assert (result.cloud.colors[near] == (255, 0, 0)).all()  # the left half is near and red
    assert result.mesh is None


def test_photo_to_cloud_with_a_predictor_and_a_mesh(planes, tiny) -> None:
    photo, _ = planes
    result = photo_to_cloud(photo, predictor=tiny, camera=Camera(fov=60), mesh=True)
    assert result.depth_source == "model" and result.intrinsics_source == "fov"
    assert len(result.cloud) > 0 and len(result.mesh.triangles) > 0
    assert result.shape == (24, 32)


def test_photo_to_cloud_refuses_what_makes_no_cloud(planes, tmp_path: Path) -> None:
    photo, depth = planes
    with pytest.raises(UsageError, match="needs a depth map"):
        photo_to_cloud(photo)
    with pytest.raises(InputError, match="another aspect ratio"):
        photo_to_cloud(photo, np.ones((16, 16), np.float32))
    with pytest.raises(InputError, match="no points left"):
        photo_to_cloud(None, depth, config=CloudConfig(min_depth=10.0))
    with pytest.raises(UsageError, match="field of view must be in"):
        Camera(fov=200).check()


def test_pointcloud_files_from_depth_maps(planes, tmp_path: Path) -> None:
    photo, depth = planes
    items = expand_inputs([str(photo)])
    assert cloud_suffix(tmp_path / "c.pcd", 1) == ".pcd"
    jobs = plan_clouds(items, tmp_path / "c.ply", ".ply", mesh=tmp_path / "m.ply", depth=depth)
    assert jobs[0].sources == (depth,)
    report = pointcloud_files(jobs, depth=depth, camera=Camera(fov=60))
    record = report.done[0].record
    assert (
        record["points"] == len(read_point_cloud(tmp_path / "c.ply")) == 12 * 16 - 2 * 12
    )  # both sides of the jump
    assert record["triangles"] > 0 and (tmp_path / "c.intrinsics.json").is_file()
    camera = tmp_path / "room.intrinsics.json"  # an earlier run's camera, given as input
    camera.write_text('{"fx": 20, "fy": 20, "cx": 15.5, "cy": 11.5}')
    again = plan_clouds(items, tmp_path / "room.ply", depth=depth)  # its sidecar: that file
    with pytest.raises(UsageError, match=f"the output {camera} is the input"):
        options = BatchOptions(inputs=(camera,))
        pointcloud_files(again, depth=depth, camera=Camera(file=camera), options=options)
    assert camera.read_text().startswith('{"fx": 20')
    with pytest.raises(UsageError, match="depth maps, or photos and a predictor"):
        pointcloud_files(jobs)


def test_fuse_file_fills_a_hole_and_keeps_an_existing_output(tmp_path: Path) -> None:
    depth = np.full((16, 16), 2.0, np.float32)
    depth[4:8, 4:8] = 0.0
    write_depth(tmp_path / "d.npy", depth)
    np.save(tmp_path / "g.npy", np.zeros((2, 16, 16), np.float32))
    out = tmp_path / "f.npy"
    record = fuse_file(out, tmp_path / "d.npy", gradients=tmp_path / "g.npy")
    assert record["filled_pixels"] == 16 and np.allclose(np.load(out), 2.0, atol=1e-3)
    assert fuse_file(out, tmp_path / "d.npy", gradients=tmp_path / "g.npy") is None
    with pytest.raises(UsageError, match="is the input"):
        fuse_file(tmp_path / "g.npy", tmp_path / "d.npy", gradients=tmp_path / "g.npy")
    with pytest.raises(UsageError, match="not both"):
        fuse_file(out, tmp_path / "d.npy", gradients=out, gx=out, gy=out)
