"""`dpde pointcloud`: photos (or depth maps) in, coloured 3D point clouds out."""

from __future__ import annotations

import json
import time
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from dpde_cli.cli.common import (
    DEFAULT_OUTPUT,
    BatchJsonOption,
    BatchSizeOption,
    DeviceOption,
    FuseOption,
    InputSizeOption,
    MaxPixelsOption,
    ModelOption,
    OmegaOption,
    OutputOption,
    OverwriteOption,
    PrecisionOption,
    QuietOption,
    RecursiveOption,
    WeightsOption,
    build_predictor,
    err_console,
    global_options,
    handle_errors,
    run_batches,
    single_output,
)
from dpde_cli.errors import InputError, UsageError
from dpde_cli.inputs import InputItem

DEPTH_EXTENSIONS = (".png", ".npy", ".pfm", ".tiff", ".tif")


class CloudFormat(str, Enum):
    """Point cloud file formats (Open3D's, by extension)."""

    ply = "ply"
    pcd = "pcd"
    xyz = "xyz"
    xyzn = "xyzn"
    xyzrgb = "xyzrgb"
    pts = "pts"


class Frame(str, Enum):
    """Axes of the written coordinates."""

    opencv = "opencv"
    opengl = "opengl"


@handle_errors
def pointcloud(
    ctx: typer.Context,
    inputs: Annotated[
        list[str] | None,
        typer.Argument(
            help="Images, directories, glob patterns, or - to read paths from stdin "
            "(none with --depth FILE: an uncoloured cloud of that depth map).",
            show_default=False,
        ),
    ] = None,
    output: OutputOption = None,
    ply: Annotated[
        Path | None, typer.Option("--ply", help="Output .ply file for one input (as -o FILE).")
    ] = None,
    fmt: Annotated[
        CloudFormat | None,
        typer.Option(
            "--format",
            "-f",
            case_sensitive=False,
            help="Format of the files in an output directory (default ply); a file's "
            "extension names its own.",
        ),
    ] = None,
    ascii_: Annotated[
        bool,
        typer.Option("--ascii", help="Text .ply / .pcd (.ply then keeps 6 digits) over binary."),
    ] = False,
    mesh: Annotated[
        Path | None,
        typer.Option(
            help="Also write a triangle mesh over the pixel grid (no triangles across depth "
            "jumps): a .ply/.obj/.off/.gltf file for one input, or a directory for "
            "<name>_mesh.ply files."
        ),
    ] = None,
    depth: Annotated[
        Path | None,
        typer.Option(
            "--depth",
            help="Use this depth map instead of running the model (integer .png/.tiff in "
            "units of --depth-scale, float .npy/.pfm/.tiff in metres); a directory: the map "
            "named as each input image.",
        ),
    ] = None,
    depth_scale: Annotated[
        float, typer.Option(min=1e-9, help="PNG depth units per metre (1000: millimetres).")
    ] = 1000.0,
    intrinsics: Annotated[
        Path | None,
        typer.Option(
            "--intrinsics",
            help="Camera file: JSON {fx, fy, cx, cy[, width, height]} (or K, or Open3D's), "
            "or a 3x3 matrix as text.",
        ),
    ] = None,
    fx: Annotated[float | None, typer.Option(help="Focal length x, pixels (full image).")] = None,
    fy: Annotated[float | None, typer.Option(help="Focal length y, pixels (default fx).")] = None,
    cx: Annotated[float | None, typer.Option(help="Principal point x, pixels.")] = None,
    cy: Annotated[float | None, typer.Option(help="Principal point y, pixels.")] = None,
    fov: Annotated[
        float | None,
        typer.Option(
            help="Horizontal field of view, degrees, for photos without an EXIF focal length."
        ),
    ] = None,
    exif: Annotated[
        bool, typer.Option("--exif/--no-exif", help="Read the focal length from EXIF.")
    ] = True,
    min_depth: Annotated[float, typer.Option(min=0.0, help="Drop points nearer (m).")] = 0.0,
    max_depth: Annotated[float | None, typer.Option(help="Drop points farther (m).")] = None,
    edge_threshold: Annotated[
        float,
        typer.Option(
            min=1e-6,
            help="Drop flying pixels: relative depth jump to a neighbour above this.",
        ),
    ] = 0.05,
    keep_edges: Annotated[
        bool, typer.Option("--keep-edges", help="Keep points (and triangles) at depth jumps.")
    ] = False,
    voxel_size: Annotated[
        float | None, typer.Option(min=1e-9, help="Downsample to one point per voxel (m).")
    ] = None,
    normals: Annotated[
        bool, typer.Option("--normals", help="Estimate normals, oriented towards the camera.")
    ] = False,
    frame: Annotated[
        Frame,
        typer.Option(
            case_sensitive=False,
            help="opencv: x right, y down, z forward; opengl: x right, y up, z backward.",
        ),
    ] = Frame.opencv,
    model: ModelOption = "dpde-lite",
    weights: WeightsOption = None,
    device: DeviceOption = None,
    precision: PrecisionOption = "auto",
    quiet: QuietOption = False,
    input_size: InputSizeOption = None,
    batch_size: BatchSizeOption = 4,
    fuse: FuseOption = True,
    omega: OmegaOption = 10.0,
    recursive: RecursiveOption = False,
    overwrite: OverwriteOption = False,
    as_json: BatchJsonOption = False,
    max_pixels: MaxPixelsOption = None,
) -> None:
    """Coloured 3D point clouds from photos, with the camera's real intrinsics.

    Intrinsics, the first found: --fx/--fy/--cx/--cy; --intrinsics FILE;
    the photo's EXIF focal length; --fov; else the NYUv2 Kinect camera
    scaled to the image (with a warning). The values used are written
    beside each cloud as <name>.intrinsics.json.

    Examples:

    \b
        dpde pointcloud photo.jpg --ply room.ply
        dpde pointcloud photos/ -o clouds/ --fov 70 --voxel-size 0.01 --json
        dpde pointcloud photo.jpg --depth depth.png --intrinsics cam.json --mesh mesh.ply
    """
    from dpde_cli.geometry import read_intrinsics_file, resolve_intrinsics
    from dpde_cli.inputs import expand_inputs

    opts = global_options(ctx, quiet)
    if ply is not None:
        if output is not None:
            raise UsageError("give -o or --ply, not both")
        if ply.suffix.lower() != ".ply":
            raise UsageError(f"--ply {ply}: the file must end in .ply (use -o for other formats)")
        output = ply
    if depth is not None and not depth.exists():
        raise UsageError(f"--depth {depth}: no such file or directory")
    depth_dir = depth is not None and depth.is_dir()
    if inputs:
        items = expand_inputs(inputs, recursive=recursive)
    elif depth is not None and not depth_dir:
        items = [InputItem(depth, Path(depth.stem))]
    else:
        raise UsageError("no input: give images, or --depth FILE for a depth map alone")
    colour = bool(inputs)
    if depth is not None and not depth_dir and len(items) > 1:
        raise UsageError(
            f"--depth {depth} is one depth map but there are {len(items)} images; "
            "give a directory of depth maps"
        )
    single = single_output(output, len(items))
    suffix = _cloud_suffix(output, fmt, single)
    normals = normals or suffix == ".xyzn"  # the format is points and normals
    config = _config(min_depth, max_depth, keep_edges, edge_threshold, voxel_size, normals, frame)
    options = {"fx": fx, "fy": fy, "cx": cx, "cy": cy, "file": intrinsics, "fov": fov}
    try:  # check the options and file once, before any work
        if intrinsics is not None:
            read_intrinsics_file(intrinsics)
        resolve_intrinsics(640, 480, **{**options, "file": None})
    except (InputError, ValueError) as exc:
        raise UsageError(str(exc)) from None
    plans = [_plan(item, output, single, suffix, mesh, len(items)) for item in items]

    predictor = None
    if depth is None:
        predictor, _spec = build_predictor(
            model, weights, device or opts.device, precision, omega if fuse else None, input_size
        )
    warned: list[str] = []

    def write(item: InputItem, targets: dict[str, Path], image, prediction) -> dict[str, Any]:
        start = time.perf_counter()
        if depth is None:
            depth_map, depth_source = prediction.depth, "model"
        else:
            depth_path = _depth_file(item, depth) if depth_dir else depth
            depth_map, depth_source = _read_depth(depth_path, depth_scale), str(depth_path)
        height, width = depth_map.shape
        size = (image.shape[1], image.shape[0]) if image is not None else (width, height)
        if abs((size[0] / size[1]) / (width / height) - 1.0) > 0.01:
            raise InputError(
                depth_source,
                f"a {width}x{height} depth map does not fit the {size[0]}x{size[1]} image "
                f"{item.path} (another aspect ratio)",
            )
        exif_path = item.path if exif and image is not None else None
        try:
            camera, source = resolve_intrinsics(*size, **options, image=exif_path)
        except ValueError as exc:
            raise InputError(item.path, str(exc)) from None
        camera = camera.scaled(width, height)
        if source.startswith("default") and not warned:
            warned.append(str(item.path))
            _warn_default(item.path, camera, len(items) > 1)
        try:
            record = _build_and_write(
                item, targets, depth_map, image, camera, source, config, ascii_
            )
        except ValueError as exc:
            raise InputError(item.path, str(exc)) from None
        record["depth"] = depth_source
        record["seconds"] = round(
            (prediction.seconds if prediction is not None else 0.0) + time.perf_counter() - start,
            4,
        )
        return record

    run_batches(
        items,
        plans,
        write,
        infer=predictor.predict if predictor is not None else None,
        label="pointcloud",
        quiet=opts.quiet,
        as_json=as_json,
        overwrite=overwrite,
        batch_size=batch_size,
        max_pixels=max_pixels,
        decode=colour,
    )


def _cloud_suffix(output: Path | None, fmt: CloudFormat | None, single: bool) -> str:
    """The cloud files' extension: a single file's own, else --format's (default .ply)."""
    from dpde_cli.pointcloud import POINT_CLOUD_EXTENSIONS

    if not single:
        return f".{(fmt or CloudFormat.ply).value}"
    suffix = output.suffix.lower()
    if suffix not in POINT_CLOUD_EXTENSIONS:
        raise UsageError(
            f"{output}: cannot write a point cloud as {suffix!r}; "
            f"use {', '.join(POINT_CLOUD_EXTENSIONS)}"
        )
    if fmt is not None and f".{fmt.value}" != suffix:
        raise UsageError(f"--format {fmt.value} does not match the file name {output}")
    return suffix


def _config(min_depth, max_depth, keep_edges, edge_threshold, voxel_size, normals, frame):
    """The CloudConfig of the options; bad combinations are usage errors."""
    from dpde_cli.pointcloud import CloudConfig

    try:
        return CloudConfig(
            min_depth=min_depth,
            max_depth=max_depth,
            edge_threshold=None if keep_edges else edge_threshold,
            voxel_size=voxel_size,
            normals=normals,
            frame=frame.value,
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _plan(
    item: InputItem,
    output: Path | None,
    single: bool,
    suffix: str,
    mesh: Path | None,
    count: int,
) -> dict[str, Path]:
    """Output paths of one input: the cloud, its intrinsics beside it, the optional mesh."""
    from dpde_cli.pointcloud import MESH_EXTENSIONS

    cloud = output if single else (output or DEFAULT_OUTPUT) / item.relative.with_suffix(suffix)
    base = cloud.with_suffix("")
    targets = {"cloud": cloud, "intrinsics": base.with_name(base.name + ".intrinsics.json")}
    if mesh is not None:
        if mesh.suffix and not mesh.is_dir():
            if count > 1:
                raise UsageError(f"--mesh {mesh} is a file but there are {count} inputs")
            if mesh.suffix.lower() not in MESH_EXTENSIONS:
                raise UsageError(
                    f"--mesh {mesh}: cannot write a mesh as {mesh.suffix!r}; "
                    f"use {', '.join(MESH_EXTENSIONS)}"
                )
            targets["mesh"] = mesh
        else:
            relative = item.relative
            targets["mesh"] = mesh / relative.with_name(relative.name + "_mesh.ply")
        if targets["mesh"].resolve() == cloud.resolve():
            raise UsageError(f"--mesh {targets['mesh']} is the point cloud's own file")
    return targets


def _depth_file(item: InputItem, directory: Path) -> Path:
    """The depth map in ``directory`` named as the input image (any depth extension)."""
    for suffix in DEPTH_EXTENSIONS:
        candidate = directory / item.relative.with_suffix(suffix)
        if candidate.is_file():
            return candidate
    raise InputError(
        item.path,
        f"no depth map for it in {directory} (looked for {item.relative}"
        f"{{{','.join(DEPTH_EXTENSIONS)}}})",
    )


def _read_depth(path: Path, scale: float):
    """A depth map in metres (io.read_depth), refusing one with no valid pixel."""
    from dpde_cli.io import read_depth, valid_depth

    depth = read_depth(path, scale=scale)
    valid_depth(path, depth)
    return depth


def _build_and_write(item, targets, depth, image, camera, source, config, ascii_):
    """Build the cloud (and mesh), then write every file atomically; the JSON record."""
    from dpde_cli.io import write_text
    from dpde_cli.pointcloud import depth_to_cloud, depth_to_mesh, write_mesh, write_point_cloud

    cloud = depth_to_cloud(depth, camera, image, config)
    if len(cloud) == 0:
        raise InputError(item.path, "no points left (no valid depth in the depth range)")
    surface = depth_to_mesh(depth, camera, image, config) if "mesh" in targets else None
    if surface is not None and len(surface.triangles) == 0:
        raise InputError(item.path, "no triangles left for the mesh")
    write_point_cloud(targets["cloud"], cloud, ascii=ascii_)
    sidecar = {
        **camera.to_dict(),
        "source": source,
        "pixel_convention": "integer coordinates at pixel centres (OpenCV)",
        "frame": config.frame,
    }
    write_text(targets["intrinsics"], json.dumps(sidecar, indent=1) + "\n")
    record: dict[str, Any] = {
        "input": str(item.path),
        "output": str(targets["cloud"]),
        "outputs": {k: str(v) for k, v in targets.items()},
        "points": len(cloud),
        "shape": list(depth.shape),
        "intrinsics": camera.to_dict(),
        "intrinsics_source": source,
    }
    if surface is not None:
        write_mesh(targets["mesh"], surface, ascii=ascii_, normals=True)
        record["triangles"] = len(surface.triangles)
    return record


def _warn_default(path: Path, camera, more: bool) -> None:
    """Say on stderr that the intrinsics are a guess (once per run)."""
    hfov = camera.fov_degrees()[0]
    err_console.print(
        f"dpde: warning: {path}: no camera intrinsics (no --fx/--intrinsics, no EXIF focal "
        f"length in 35 mm terms or with the sensor's resolution, no --fov); assuming the "
        f"NYUv2 Kinect camera scaled to the image (fx "
        f"{camera.fx:.1f} px at {camera.width}x{camera.height}, {hfov:.0f} degrees across): "
        "the cloud's proportions may be off"
        + (" (other inputs without intrinsics are not named)" if more else ""),
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
