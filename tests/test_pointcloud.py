"""Point clouds and meshes: filters, every file format through Open3D, real planes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from dpde_cli.errors import UsageError
from dpde_cli.geometry import Intrinsics, backproject, read_intrinsics_file
from dpde_cli.io import read_depth
from dpde_cli.pointcloud import (
    POINT_CLOUD_EXTENSIONS,
    CloudConfig,
    PointCloud,
    depth_to_cloud,
    depth_to_mesh,
    point_mask,
    read_point_cloud,
    write_mesh,
    write_point_cloud,
)

K = Intrinsics(fx=40.0, fy=40.0, cx=15.5, cy=11.5, width=32, height=24)


def near_far_depth() -> np.ndarray:
    """A near plane (1 m, columns 0-12) and a far plane (3 m, columns 16-31) with three
    columns of flying pixels smeared between them (1.5, 2.0, 2.5 m)."""
    depth = np.full((24, 32), 3.0)
    depth[:, :13] = 1.0
    depth[:, 13:16] = [1.5, 2.0, 2.5]
    return depth


def image_for(depth: np.ndarray) -> np.ndarray:
    """A colour image whose every pixel differs, to check colours follow their points."""
    h, w = depth.shape
    index = np.arange(h * w).reshape(h, w)
    return np.stack([index % 256, (index // 7) % 256, (index * 3) % 256], axis=-1).astype(np.uint8)


def test_cloud_points_and_colours_follow_pixels() -> None:
    depth = near_far_depth()
    image = image_for(depth)
    cloud = depth_to_cloud(depth, K, image, CloudConfig(edge_threshold=None))
    assert len(cloud) == 24 * 32
    np.testing.assert_array_equal(cloud.points, backproject(depth, K).reshape(-1, 3))
    np.testing.assert_array_equal(cloud.colors, image.reshape(-1, 3))
    assert cloud.normals is None
    gl = depth_to_cloud(depth, K, None, CloudConfig(edge_threshold=None, frame="opengl"))
    np.testing.assert_array_equal(gl.points, cloud.points * [1, -1, -1])
    assert gl.colors is None


def test_edge_filter_removes_flying_pixels_keeps_planes() -> None:
    depth = near_far_depth()
    cloud = depth_to_cloud(depth, K, None)
    z = cloud.points[:, 2]
    assert not ((z > 1.0) & (z < 3.0)).any()  # nothing between the planes
    # each plane loses at most its one boundary column
    assert (z == 1.0).sum() >= 12 * 24 and (z == 3.0).sum() >= 15 * 24
    mask = point_mask(depth)
    assert mask[:, :12].all() and mask[:, 17:].all() and not mask[:, 13:16].any()
    kept = depth_to_cloud(depth, K, None, CloudConfig(edge_threshold=None))
    assert len(kept) == depth.size


def test_depth_range_and_invalid_pixels() -> None:
    depth = near_far_depth()
    depth[0, 0], depth[1, 1] = 0.0, np.nan
    config = CloudConfig(edge_threshold=None, min_depth=0.5, max_depth=2.0)
    z = depth_to_cloud(depth, K, None, config).points[:, 2]
    assert z.min() >= 0.5 and z.max() <= 2.0 and np.isfinite(z).all()
    assert len(z) == 13 * 24 - 2 + 2 * 24  # near plane minus two holes, 1.5 and 2.0 columns
    with pytest.raises(ValueError):
        CloudConfig(min_depth=3.0, max_depth=1.0)


def test_smaller_depth_map_takes_resampled_colours_and_scaled_camera() -> None:
    image = np.zeros((48, 64, 3), dtype=np.uint8)
    image[:, :32] = (255, 0, 0)
    image[:, 32:] = (0, 0, 255)
    depth = np.full((24, 32), 2.0)
    cloud = depth_to_cloud(depth, K.scaled(64, 48), image)  # camera of the image
    np.testing.assert_allclose(cloud.points, backproject(depth, K).reshape(-1, 3))
    colours = cloud.colors.reshape(24, 32, 3)
    assert (colours[:, :15] == (255, 0, 0)).all() and (colours[:, 17:] == (0, 0, 255)).all()
    with pytest.raises(ValueError, match="aspect"):
        depth_to_cloud(depth, K, np.zeros((24, 64, 3), dtype=np.uint8))


def test_matches_open3d_backprojection() -> None:
    """Open3D's own RGB-D back-projection uses the same pixel convention."""
    import open3d as o3d

    depth = near_far_depth().astype(np.float32)
    camera = o3d.camera.PinholeCameraIntrinsic(32, 24, K.fx, K.fy, K.cx, K.cy)
    theirs = o3d.geometry.PointCloud.create_from_depth_image(
        o3d.geometry.Image(depth), camera, depth_scale=1.0, depth_trunc=100.0
    )
    ours = depth_to_cloud(depth, K, None, CloudConfig(edge_threshold=None))
    np.testing.assert_allclose(ours.points, np.asarray(theirs.points), atol=1e-6)


def test_voxels_and_normals() -> None:
    depth = np.full((24, 32), 2.0)
    image = image_for(depth)
    cloud = depth_to_cloud(depth, K, image, CloudConfig(voxel_size=0.2, normals=True))
    assert 0 < len(cloud) < depth.size
    assert cloud.colors.dtype == np.uint8 and cloud.colors.shape == (len(cloud), 3)
    np.testing.assert_allclose(cloud.normals, np.tile([0.0, 0.0, -1.0], (len(cloud), 1)), atol=1e-6)
    gl = depth_to_cloud(depth, K, None, CloudConfig(normals=True, frame="opengl"))
    np.testing.assert_allclose(gl.normals[:, 2], 1.0, atol=1e-6)  # still facing the camera


FORMATS = {  # extension: (has colours, has normals, point tolerance)
    ".ply": (True, True, 0.0),
    ".pcd": (True, True, 1e-6),
    ".xyz": (False, False, 1e-9),
    ".xyzn": (False, True, 1e-9),
    ".xyzrgb": (True, False, 1e-9),
    ".pts": (True, False, 1e-9),
}


@pytest.mark.parametrize("ascii_", [False, True])
@pytest.mark.parametrize("suffix", POINT_CLOUD_EXTENSIONS)
def test_every_format_reads_back(tmp_path: Path, suffix: str, ascii_: bool) -> None:
    rng = np.random.default_rng(1)
    cloud = PointCloud(
        rng.uniform(-2, 2, (50, 3)),
        rng.integers(0, 256, (50, 3)).astype(np.uint8),
        np.tile([0.0, 0.0, -1.0], (50, 1)),
    )
    path = write_point_cloud(tmp_path / f"cloud{suffix}", cloud, ascii=ascii_)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary left over
    back = read_point_cloud(path)
    colours, normals, tolerance = FORMATS[suffix]
    if ascii_:  # Open3D's text PLY keeps 6 significant digits (%g), PCD 8 or more
        tolerance = max(tolerance, 1e-5 if suffix == ".ply" else 1e-6)
    np.testing.assert_allclose(back.points, cloud.points, rtol=0, atol=tolerance)
    if colours:
        np.testing.assert_array_equal(back.colors, cloud.colors)
    else:
        assert back.colors is None
    assert (back.normals is not None) == normals


def test_unknown_extension_is_refused(tmp_path: Path) -> None:
    cloud = PointCloud(np.zeros((1, 3)))
    with pytest.raises(UsageError, match=r"\.las"):
        write_point_cloud(tmp_path / "c.las", cloud)
    assert not any(tmp_path.iterdir())


def test_mesh_has_no_triangle_across_a_jump(tmp_path: Path) -> None:
    depth = near_far_depth()
    depth[5, 5] = 0.0  # a hole: its six triangles go
    image = image_for(depth)
    mesh = depth_to_mesh(depth, K, image)
    z = mesh.vertices[:, 2][mesh.triangles]
    assert (z.max(axis=1) / z.min(axis=1) <= 1.05).all()
    assert np.isfinite(mesh.vertices).all() and (mesh.vertices[:, 2] > 0).all()
    # both planes are there, the cells between them are not
    near_cells, far_cells = 23 * 12, 23 * 15
    assert len(mesh.triangles) == 2 * (near_cells + far_cells) - 6
    # every triangle faces the camera (normal towards -z in the OpenCV frame)
    a, b, c = (mesh.vertices[mesh.triangles[:, i]] for i in range(3))
    assert (np.cross(b - a, c - a)[:, 2] < 0).all()
    stretched = depth_to_mesh(depth, K, image, CloudConfig(edge_threshold=None))
    assert len(stretched.triangles) == 2 * 23 * 31 - 6
    path = write_mesh(tmp_path / "mesh.ply", mesh)
    import open3d as o3d

    back = o3d.io.read_triangle_mesh(str(path))
    assert len(back.triangles) == len(mesh.triangles) and back.has_vertex_colors()
    np.testing.assert_allclose(np.asarray(back.vertices), mesh.vertices)
    with pytest.raises(UsageError):
        write_mesh(tmp_path / "mesh.pcd", mesh)


def test_open3d_camera_json_is_read(tmp_path: Path) -> None:
    import open3d as o3d

    path = tmp_path / "camera.json"
    camera = o3d.camera.PinholeCameraIntrinsic(64, 48, 100.0, 80.0, 32.0, 24.0)
    o3d.io.write_pinhole_camera_intrinsic(str(path), camera)
    k, _ = read_intrinsics_file(path)
    assert k == Intrinsics(100.0, 80.0, 32.0, 24.0, 64, 48)


# ------------------------------------------------------------------------------ real frames


def fit_plane(points: np.ndarray) -> tuple[np.ndarray, float]:
    """(unit normal, RMS distance in metres) of the least-squares plane of (N, 3) points."""
    centred = points - points.mean(axis=0)
    normal = np.linalg.svd(centred, full_matrices=False)[2][-1]
    return normal, float(np.sqrt(np.mean((centred @ normal) ** 2)))


def test_real_floor_is_flat_and_square_to_the_wall(shared_data: Path) -> None:
    """NYUv2 raw frame basement_00000: the floor is a plane (Kinect noise at 2.6 m is about
    1 cm) at a right angle to the wooden wall (see benchmarks/pointcloud_planes.py)."""
    root = shared_data / "nyu-raw"
    values = json.loads((root / "intrinsics.json").read_text())["basement_00000"]
    depth = read_depth(root / "depth" / "basement_00000.png")
    camera = Intrinsics(*values, 640, 480)
    points = backproject(depth.astype(np.float64), camera)
    keep = point_mask(depth)
    regions = {}
    for name, (x0, y0, x1, y1) in {
        "floor": (120, 400, 420, 465),
        "wall": (372, 70, 418, 270),
    }.items():
        region = np.zeros_like(keep)
        region[y0:y1, x0:x1] = True
        regions[name] = fit_plane(points[region & keep])
    (floor, floor_rms), (wall, _) = regions["floor"], regions["wall"]
    assert floor_rms < 0.012
    angle = np.degrees(np.arccos(abs(floor @ wall)))
    assert abs(angle - 90.0) < 2.0


def test_a_file_too_short_for_its_points_is_an_error(tmp_path: Path) -> None:
    # Open3D's PLY writer reports success when the disk fills part way
    from dpde_cli.pointcloud import _check_size

    short = tmp_path / "cut.ply"
    short.write_bytes(b"ply\n" + bytes(100))
    with pytest.raises(OSError, match=r"^only 104 bytes written for 1000 points"):
        _check_size(short, 1000)
    _check_size(short, 10)  # 10 points fit in 104 bytes
