"""Coloured point clouds and grid meshes from depth maps, written and read through Open3D.

The only module of dpde that imports open3d, and only inside the functions that need it
(``import dpde_cli.pointcloud`` stays light). Building the points is numpy
(``dpde_cli.geometry.backproject``); Open3D does voxel downsampling, normals and file I/O.

Points are in the camera frame of ``backproject``: x right, y down, z forward, metres
(OpenCV); ``CloudConfig(frame="opengl")`` gives x right, y up, z backward instead.

Example:
    >>> from dpde_cli.geometry import resolve_intrinsics
    >>> k, source = resolve_intrinsics(640, 480, image="photo.jpg", fov=60.0)
    >>> cloud = depth_to_cloud(depth, k, image)  # depth (480, 640) metres, image uint8
    >>> write_point_cloud("room.ply", cloud)
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dpde_cli.camera import Camera
from dpde_cli.errors import InputError, UsageError
from dpde_cli.geometry import Intrinsics, backproject, depth_discontinuities, same_aspect

POINT_CLOUD_EXTENSIONS = (".ply", ".pcd", ".xyz", ".xyzn", ".xyzrgb", ".pts")
"""What ``write_point_cloud`` writes, by extension (Open3D's own formats).

.ply (binary unless ascii, colours, normals), .pcd (binary unless ascii, colours, normals),
.xyz (text x y z, no colours), .xyzn (x y z nx ny nz), .xyzrgb (x y z r g b in [0, 1]),
.pts (text: a count line, then x y z intensity r g b with 8-bit colours).
"""
MESH_EXTENSIONS = (".ply", ".obj", ".off", ".gltf")
"""What ``write_mesh`` writes, by extension."""
FRAMES = ("opencv", "opengl")
_TO_OPENGL = np.array([1.0, -1.0, -1.0])  # a 180-degree turn about x: keeps handedness


@dataclass(frozen=True)
class CloudConfig:
    """How a depth map becomes points.

    Attributes:
        min_depth, max_depth: keep depth in [min_depth, max_depth] metres (max None: no
            limit); depth <= 0 or not finite is always dropped.
        edge_threshold: drop pixels whose relative depth jump to a neighbour exceeds this
            (``geometry.depth_discontinuities``): the "flying pixels" smeared between a
            foreground and its background. None keeps them. For meshes: drop triangles
            with such a jump along an edge.
        edge_neighbours: 4 or 8 neighbours for the jump test.
        voxel_size: metres; average the points in each voxel (Open3D), None for no
            downsampling. Clouds only.
        normals: estimate normals (Open3D, from ``normal_neighbours`` nearest points),
            oriented towards the camera.
        normal_neighbours: neighbours for the normal estimate.
        frame: "opencv" (x right, y down, z forward) or "opengl" (x right, y up, z back).
    """

    min_depth: float = 0.0
    max_depth: float | None = None
    edge_threshold: float | None = 0.05
    edge_neighbours: int = 8
    voxel_size: float | None = None
    normals: bool = False
    normal_neighbours: int = 30
    frame: str = "opencv"

    def __post_init__(self) -> None:
        if self.frame not in FRAMES:
            raise ValueError(f"frame must be one of {FRAMES}, got {self.frame!r}")
        if self.max_depth is not None and self.max_depth <= self.min_depth:
            raise ValueError(f"max_depth {self.max_depth} <= min_depth {self.min_depth}")
        if self.edge_threshold is not None and self.edge_threshold <= 0:
            raise ValueError(f"edge_threshold must be > 0, got {self.edge_threshold}")
        if self.voxel_size is not None and self.voxel_size <= 0:
            raise ValueError(f"voxel_size must be > 0, got {self.voxel_size}")


@dataclass
class PointCloud:
    """Points with optional colours and normals, as plain arrays.

    Attributes:
        points: (N, 3) float64 metres.
        colors: (N, 3) uint8 RGB, or None.
        normals: (N, 3) float64 unit vectors, or None.
    """

    points: np.ndarray
    colors: np.ndarray | None = None
    normals: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.points)


@dataclass
class Mesh:
    """A triangle mesh as plain arrays.

    Attributes:
        vertices: (N, 3) float64 metres.
        triangles: (M, 3) int64 vertex indices, counter-clockwise seen from the camera.
        colors: (N, 3) uint8 RGB per vertex, or None.
    """

    vertices: np.ndarray
    triangles: np.ndarray
    colors: np.ndarray | None = None


# ------------------------------------------------------------------------------ building


def valid_depth(depth: np.ndarray, config: CloudConfig = CloudConfig()) -> np.ndarray:
    """(H, W) bool: finite depth > 0 inside [min_depth, max_depth]."""
    depth = np.asarray(depth)
    with np.errstate(invalid="ignore"):
        valid = np.isfinite(depth) & (depth > 0) & (depth >= config.min_depth)
        if config.max_depth is not None:
            valid &= depth <= config.max_depth
    return valid


def point_mask(depth: np.ndarray, config: CloudConfig = CloudConfig()) -> np.ndarray:
    """(H, W) bool of the pixels that become points: valid depth, not at a depth jump."""
    valid = valid_depth(depth, config)
    if config.edge_threshold is not None:
        valid &= ~depth_discontinuities(
            depth, config.edge_threshold, config.edge_neighbours, valid=valid
        )
    return valid


def colors_for(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """An (h, w, 3) uint8 image resampled to the depth map's (height, width) grid.

    Bilinear (antialiased when shrinking, as PIL does), edges onto edges: the same
    pixel convention as ``Intrinsics.scaled``.

    Raises:
        ValueError: the aspect ratios differ by more than 1% (not the same view).
    """
    h, w = image.shape[:2]
    if (h, w) == (height, width):
        return image
    if not same_aspect((h, w), (height, width)):
        raise ValueError(f"image {w}x{h} and depth {width}x{height} differ in aspect ratio")
    from PIL import Image

    resized = Image.fromarray(np.ascontiguousarray(image)).resize((width, height), Image.BILINEAR)
    return np.asarray(resized, dtype=np.uint8)


def depth_to_cloud(
    depth: np.ndarray,
    intrinsics: Intrinsics,
    image: np.ndarray | None = None,
    config: CloudConfig = CloudConfig(),
) -> PointCloud:
    """Back-project a depth map into a (coloured) point cloud.

    Args:
        depth: (H, W) metres (z-depth); <= 0 or NaN is no depth.
        intrinsics: the camera, rescaled to (W, H) when it refers to another size.
        image: (h, w, 3) uint8 RGB of the same view, any size of the same aspect ratio
            (resampled to (H, W)), or None for no colours.
        config: filters, downsampling, normals, frame.

    Returns:
        A PointCloud, points in row-major pixel order unless downsampled.

    Example:
        >>> cloud = depth_to_cloud(np.full((4, 4), 2.0), Intrinsics.from_fov(90, 4, 4))
        >>> cloud.points.shape  # (16, 3)
    """
    depth = np.asarray(depth, dtype=np.float64)
    if depth.ndim != 2:
        raise ValueError(f"depth must be (H, W), got shape {depth.shape}")
    mask = point_mask(depth, config)
    cloud = PointCloud(backproject(depth, intrinsics)[mask])
    if image is not None:
        cloud.colors = colors_for(image, *depth.shape)[mask]
    if len(cloud) and (config.voxel_size is not None or config.normals):
        cloud = _open3d_steps(cloud, config)
    if config.frame == "opengl":
        cloud.points = cloud.points * _TO_OPENGL
        if cloud.normals is not None:
            cloud.normals = cloud.normals * _TO_OPENGL
    return cloud


def _open3d_steps(cloud: PointCloud, config: CloudConfig) -> PointCloud:
    """Voxel downsampling and normals (oriented towards the camera at the origin)."""
    import open3d as o3d

    pcd = _to_open3d(cloud)
    with _quiet_open3d():
        if config.voxel_size is not None:
            pcd = pcd.voxel_down_sample(config.voxel_size)
        if config.normals:
            search = o3d.geometry.KDTreeSearchParamKNN(knn=config.normal_neighbours)
            if config.voxel_size is not None:
                search = o3d.geometry.KDTreeSearchParamHybrid(
                    radius=3.0 * config.voxel_size, max_nn=config.normal_neighbours
                )
            pcd.estimate_normals(search)
            pcd.orient_normals_towards_camera_location(np.zeros(3))
    return _from_open3d(pcd)


def depth_to_mesh(
    depth: np.ndarray,
    intrinsics: Intrinsics,
    image: np.ndarray | None = None,
    config: CloudConfig = CloudConfig(),
) -> Mesh:
    """A triangle mesh over the pixel grid: two triangles per 2x2 cell of valid pixels.

    Each cell (tl, tr, bl, br) gives triangles (tl, bl, tr) and (tr, bl, br), facing the
    camera. A triangle is dropped when a vertex has no valid depth (``valid_depth``) or,
    unless ``config.edge_threshold`` is None, when the relative depth jump along one of its
    three edges exceeds it: no skin is stretched across a depth discontinuity. Vertices
    that no triangle uses are left out.

    Args:
        depth, intrinsics, image: as ``depth_to_cloud``.
        config: the depth range, edge threshold and frame (voxels and normals do not apply).

    Returns:
        A Mesh.
    """
    depth = np.asarray(depth, dtype=np.float64)
    if depth.ndim != 2:
        raise ValueError(f"depth must be (H, W), got shape {depth.shape}")
    height, width = depth.shape
    valid = valid_depth(depth, config)
    index = np.arange(height * width).reshape(height, width)
    corners = {
        "tl": (slice(0, -1), slice(0, -1)),
        "tr": (slice(0, -1), slice(1, None)),
        "bl": (slice(1, None), slice(0, -1)),
        "br": (slice(1, None), slice(1, None)),
    }
    faces = []
    for a, b, c in (("tl", "bl", "tr"), ("tr", "bl", "br")):
        keep = valid[corners[a]] & valid[corners[b]] & valid[corners[c]]
        if config.edge_threshold is not None:
            for p, q in ((a, b), (b, c), (c, a)):
                dp, dq = depth[corners[p]], depth[corners[q]]
                with np.errstate(invalid="ignore"):
                    keep &= np.abs(dp - dq) <= config.edge_threshold * np.minimum(dp, dq)
        faces.append(np.stack([index[corners[k]][keep] for k in (a, b, c)], axis=-1))
    triangles = np.concatenate(faces).reshape(-1, 3)
    used, triangles = np.unique(triangles, return_inverse=True)
    triangles = triangles.reshape(-1, 3).astype(np.int64)
    vertices = backproject(depth, intrinsics).reshape(-1, 3)[used]
    if config.frame == "opengl":
        vertices = vertices * _TO_OPENGL
    colors = None
    if image is not None:
        colors = colors_for(image, height, width).reshape(-1, 3)[used]
    return Mesh(vertices, triangles, colors)


# ------------------------------------------------------------------------------ photo to cloud


@dataclass
class CloudResult:
    """A cloud made by ``photo_to_cloud``, with what it was made from.

    Attributes:
        cloud: the points; mesh: the grid mesh, or None when none was asked for.
        intrinsics: the camera for the depth map's grid; intrinsics_source: where it came
            from (``resolve_intrinsics``: "exif-35mm", "default"...).
        depth_source: "model", the depth file, or "array".
        shape: (H, W) of the depth map.
    """

    cloud: PointCloud
    mesh: Mesh | None
    intrinsics: Intrinsics
    intrinsics_source: str
    depth_source: str
    shape: tuple[int, int]


def photo_to_cloud(
    photo: str | Path | None = None,
    depth: np.ndarray | str | Path | None = None,
    *,
    predictor=None,
    image: np.ndarray | None = None,
    depth_scale: float = 1000.0,
    camera: Camera | None = None,
    config: CloudConfig = CloudConfig(),
    mesh: bool = False,
) -> CloudResult:
    """A coloured point cloud (and mesh) of a photo, in metres, with its camera's intrinsics.

    Args:
        photo: the photo file (colours, EXIF focal length), or None for an uncoloured
            cloud of ``depth`` alone.
        depth: (H, W) metres; a depth file (integer .png/.tiff in ``depth_scale`` units per
            metre, float .npy/.pfm/.tiff in metres); or None to run ``predictor``. Any size
            of the photo's aspect ratio (the camera is rescaled to it).
        predictor: a ``predict.Predictor``, when ``depth`` is None.
        image: the photo decoded already ((h, w, 3) uint8); else read from ``photo``.
        camera: where the intrinsics come from (default: EXIF, else a guess).
        config: filters, voxels, normals, frame.
        mesh: also build the grid mesh (``depth_to_mesh``).

    Raises:
        InputError: an unreadable file, depth without a valid pixel, depth of another
            aspect ratio than the photo, or nothing left to write.
        UsageError: no depth and no predictor.

    Example:
        >>> result = photo_to_cloud("room.jpg", predictor=predictor, camera=Camera(fov=60))
        >>> write_point_cloud("room.ply", result.cloud)
    """
    from dpde_cli.io import read_depth, read_image
    from dpde_cli.io import valid_depth as some_valid_depth

    camera = camera or Camera()
    if image is None and photo is not None:
        image = read_image(photo)
    if depth is None:
        if predictor is None or image is None:
            raise UsageError("photo_to_cloud needs a depth map, or a photo and a predictor")
        depth, depth_source = predictor.predict([image])[0].depth, "model"
    elif isinstance(depth, (str, Path)):
        depth_source = str(depth)
        depth = read_depth(depth, scale=depth_scale)
        some_valid_depth(depth_source, depth)
    else:
        depth_source = "array"
    height, width = depth.shape
    size = image.shape[:2] if image is not None else (height, width)
    if not same_aspect(size, (height, width)):
        raise InputError(
            depth_source,
            f"a {width}x{height} depth map does not fit the {size[1]}x{size[0]} image "
            f"{photo} (another aspect ratio)",
        )
    name = photo if photo is not None else depth_source
    try:
        found, source = camera.resolve(size[1], size[0], photo if image is not None else None)
        intrinsics = found.scaled(width, height)
        cloud = depth_to_cloud(depth, intrinsics, image, config)
        surface = depth_to_mesh(depth, intrinsics, image, config) if mesh else None
    except ValueError as exc:
        raise InputError(name, str(exc)) from None
    if len(cloud) == 0:
        raise InputError(name, "no points left (no valid depth in the depth range)")
    if surface is not None and len(surface.triangles) == 0:
        raise InputError(name, "no triangles left for the mesh")
    return CloudResult(cloud, surface, intrinsics, source, depth_source, (height, width))


# ------------------------------------------------------------------------------ files


def write_point_cloud(path: str | Path, cloud: PointCloud, ascii: bool = False) -> Path:
    """Write a point cloud atomically; Open3D picks the format from the extension.

    Args:
        path: a file ending in one of POINT_CLOUD_EXTENSIONS.
        cloud: the points (at least one).
        ascii: text instead of binary for .ply and .pcd (the others are always text).
            Open3D's text .ply keeps 6 significant digits (0.1 mm at 10 m); binary .ply
            keeps float64, binary .pcd float32.

    Returns:
        The path written.

    Raises:
        UsageError: an extension Open3D does not write point clouds in.
        OutputError: Open3D could not write the file (``outputs.writing``).
    """
    import open3d as o3d

    path = Path(path)
    _check_extension(path, POINT_CLOUD_EXTENSIONS, "point cloud")
    pcd = _to_open3d(cloud)
    from dpde_cli.io import atomic_path

    with atomic_path(path) as tmp, _quiet_open3d(), _a_file_for(tmp) as file:
        if not o3d.io.write_point_cloud(str(file), pcd, write_ascii=ascii):
            raise OSError("Open3D could not write the file")
        _check_size(file, len(cloud.points))
    return path


@contextlib.contextmanager
def _a_file_for(tmp: Path) -> Iterator[Path]:
    """A plain file for Open3D to write (it keeps the extension): ``tmp`` itself, or for a
    device or pipe written in place, a file copied into it afterwards by Python, whose
    writes report a full disk (Open3D's do not)."""
    from dpde_cli.io import written_in_place

    if not written_in_place(tmp):
        yield tmp
        return
    with tempfile.TemporaryDirectory(prefix="dpde-") as folder:
        file = Path(folder) / f"out{tmp.suffix}"
        yield file
        with open(file, "rb") as source, open(tmp, "wb") as target:
            shutil.copyfileobj(source, target)


def _check_size(written: Path, vertices: int) -> None:
    """Raise an OSError for a file too short to hold its vertices (``atomic_path`` names the
    output in the message).

    Open3D reports success when its PLY writer fails part way (a full disk: "RPly: Error
    closing up"), which would leave a truncated file under the final name. Every format
    takes at least 6 bytes a vertex as text ("0 0 0\n") and 12 as binary (3 float32).
    """
    least = vertices * 6
    size = written.stat().st_size
    if size < least:
        raise OSError(f"only {size} bytes written for {vertices} points (disk full?)")


def write_mesh(path: str | Path, mesh: Mesh, ascii: bool = False, normals: bool = True) -> Path:
    """Write a triangle mesh atomically; Open3D picks the format from the extension.

    Args:
        path: a file ending in one of MESH_EXTENSIONS.
        mesh: the mesh (at least one triangle).
        ascii: text instead of binary where the format has both (.ply).
        normals: also write vertex normals (from the triangles, facing the camera).

    Returns:
        The path written.
    """
    import open3d as o3d

    path = Path(path)
    _check_extension(path, MESH_EXTENSIONS, "mesh")
    out = o3d.geometry.TriangleMesh(
        o3d.utility.Vector3dVector(np.ascontiguousarray(mesh.vertices, dtype=np.float64)),
        o3d.utility.Vector3iVector(np.ascontiguousarray(mesh.triangles, dtype=np.int32)),
    )
    if mesh.colors is not None:
        out.vertex_colors = o3d.utility.Vector3dVector(mesh.colors.astype(np.float64) / 255.0)
    if normals:
        out.compute_vertex_normals()
    from dpde_cli.io import atomic_path

    with atomic_path(path) as tmp, _quiet_open3d(), _a_file_for(tmp) as file:
        written = o3d.io.write_triangle_mesh(
            str(file),
            out,
            write_ascii=ascii,
            write_vertex_normals=normals,
            write_vertex_colors=mesh.colors is not None,
        )
        if not written:
            raise OSError("Open3D could not write the file")
        _check_size(file, len(mesh.vertices))
    return path


def read_point_cloud(path: str | Path) -> PointCloud:
    """Read a point cloud file Open3D reads (by extension); colours back to uint8.

    Raises:
        InputError: missing file, or nothing Open3D could read.
    """
    import open3d as o3d

    path = Path(path)
    if not path.is_file():
        raise InputError(path, "no such file")
    with _quiet_open3d():
        pcd = o3d.io.read_point_cloud(str(path))
    if not pcd.has_points():
        raise InputError(path, "no points (empty, or not a point cloud Open3D reads)")
    return _from_open3d(pcd)


def _check_extension(path: Path, allowed: tuple[str, ...], what: str) -> None:
    """UsageError unless the path ends in one of the allowed extensions."""
    if path.suffix.lower() not in allowed:
        raise UsageError(
            f"{path}: cannot write a {what} as {path.suffix or 'a file without extension'!r}; "
            f"use {', '.join(allowed)}"
        )


def _to_open3d(cloud: PointCloud):  # -> o3d.geometry.PointCloud
    """The arrays as an Open3D point cloud (colours as floats in [0, 1])."""
    import open3d as o3d

    pcd = o3d.geometry.PointCloud(
        o3d.utility.Vector3dVector(np.ascontiguousarray(cloud.points, dtype=np.float64))
    )
    if cloud.colors is not None:
        pcd.colors = o3d.utility.Vector3dVector(cloud.colors.astype(np.float64) / 255.0)
    if cloud.normals is not None:
        pcd.normals = o3d.utility.Vector3dVector(
            np.ascontiguousarray(cloud.normals, dtype=np.float64)
        )
    return pcd


def _from_open3d(pcd) -> PointCloud:
    """An Open3D point cloud as arrays (colours rounded to uint8)."""
    colors = None
    if pcd.has_colors():
        colors = np.clip(np.rint(np.asarray(pcd.colors) * 255.0), 0, 255).astype(np.uint8)
    normals = np.asarray(pcd.normals).copy() if pcd.has_normals() else None
    return PointCloud(np.asarray(pcd.points).copy(), colors, normals)


@contextlib.contextmanager
def _quiet_open3d() -> Iterator[None]:
    """Silence Open3D's console messages (it prints them on stdout, which carries results),
    and the C library RPly's on stderr: on a full disk it prints a line a vertex, thousands,
    before the one-line error the caller raises."""
    import open3d as o3d

    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        with o3d.utility.VerbosityContextManager(o3d.utility.VerbosityLevel.Error):
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
