"""`dpde pointcloud`: photos (or depth maps) in, coloured 3D point clouds out
(``pipelines.pointcloud_files``)."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from dpde_cli.cli.common import (
    Align,
    AlignOption,
    AnchorOption,
    BatchJsonOption,
    BatchSizeOption,
    CxOption,
    CyOption,
    DepthScaleOption,
    DeviceOption,
    ExifOption,
    FovOption,
    FuseOption,
    FxOption,
    FyOption,
    InputSizeOption,
    IntrinsicsOption,
    MaxPixelsOption,
    ModelOption,
    OmegaOption,
    OutputOption,
    OverwriteOption,
    PrecisionOption,
    QuietOption,
    RecursiveOption,
    ShardOption,
    SparseDepthOption,
    WeightsOption,
    batch_printer,
    build_predictor,
    global_options,
    handle_errors,
    measurements,
    report_batch,
    warn_default_camera,
)
from dpde_cli.errors import UsageError
from dpde_cli.inputs import InputItem


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


InputsArgument = Annotated[
    list[str] | None,
    typer.Argument(
        help="Images, directories, glob patterns, or - to read paths from stdin "
        "(none with --depth FILE: an uncoloured cloud of that depth map).",
        show_default=False,
    ),
]
PlyOption = Annotated[
    Path | None, typer.Option("--ply", help="Output .ply file for one input (as -o FILE).")
]
FormatOption = Annotated[
    CloudFormat | None,
    typer.Option(
        "--format",
        "-f",
        case_sensitive=False,
        help="Format of the files in an output directory (default ply); a file's "
        "extension names its own.",
    ),
]
AsciiOption = Annotated[
    bool, typer.Option("--ascii", help="Text .ply / .pcd (.ply then keeps 6 digits) over binary.")
]
MeshOption = Annotated[
    Path | None,
    typer.Option(
        help="Also write a triangle mesh over the pixel grid (no triangles across depth "
        "jumps): a .ply/.obj/.off/.gltf file for one input, or a directory for "
        "<name>_mesh.ply files."
    ),
]
DepthOption = Annotated[
    Path | None,
    typer.Option(
        "--depth",
        help="Use this depth map instead of running the model (integer .png/.tiff in "
        "units of --depth-scale, float .npy/.pfm/.tiff in metres); a directory: the map "
        "named as each input image.",
    ),
]
MinDepthOption = Annotated[float, typer.Option(min=0.0, help="Drop points nearer (m).")]
MaxDepthOption = Annotated[float | None, typer.Option(help="Drop points farther (m).")]
EdgeThresholdOption = Annotated[
    float,
    typer.Option(
        min=1e-6, help="Drop flying pixels: relative depth jump to a neighbour above this."
    ),
]
KeepEdgesOption = Annotated[
    bool, typer.Option("--keep-edges", help="Keep points (and triangles) at depth jumps.")
]
VoxelSizeOption = Annotated[
    float | None, typer.Option(min=1e-9, help="Downsample to one point per voxel (m).")
]
NormalsOption = Annotated[
    bool, typer.Option("--normals", help="Estimate normals, oriented towards the camera.")
]
FrameOption = Annotated[
    Frame,
    typer.Option(
        case_sensitive=False,
        help="opencv: x right, y down, z forward; opengl: x right, y up, z backward.",
    ),
]


@handle_errors
def pointcloud(
    ctx: typer.Context,
    inputs: InputsArgument = None,
    output: OutputOption = None,
    ply: PlyOption = None,
    fmt: FormatOption = None,
    ascii_: AsciiOption = False,
    mesh: MeshOption = None,
    depth: DepthOption = None,
    depth_scale: DepthScaleOption = 1000.0,
    intrinsics: IntrinsicsOption = None,
    fx: FxOption = None,
    fy: FyOption = None,
    cx: CxOption = None,
    cy: CyOption = None,
    fov: FovOption = None,
    exif: ExifOption = True,
    sparse_depth: SparseDepthOption = None,
    anchor: AnchorOption = None,
    align: AlignOption = Align.scale,
    min_depth: MinDepthOption = 0.0,
    max_depth: MaxDepthOption = None,
    edge_threshold: EdgeThresholdOption = 0.05,
    keep_edges: KeepEdgesOption = False,
    voxel_size: VoxelSizeOption = None,
    normals: NormalsOption = False,
    frame: FrameOption = Frame.opencv,
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
    shard: ShardOption = None,
) -> None:
    """Coloured 3D point clouds from photos, with the camera's real intrinsics.

    Intrinsics, the first found: --fx/--fy/--cx/--cy; --intrinsics FILE;
    the photo's EXIF focal length; --fov; else the NYUv2 Kinect camera
    scaled to the image (with a warning). The values used are written
    beside each cloud as <name>.intrinsics.json.

    With --sparse-depth or --anchor the predicted depth is first made
    metric by the measurements (as in `dpde predict`).

    Examples:

    \b
        dpde pointcloud photo.jpg --ply room.ply
        dpde pointcloud photos/ -o clouds/ --fov 70 --voxel-size 0.01 --json
        dpde pointcloud photo.jpg --depth depth.png --intrinsics cam.json --mesh mesh.ply
        dpde pointcloud scans/ -o clouds/ --sparse-depth lidar/ --fx 520
    """
    from dpde_cli.batch import BatchOptions, check_outputs, share_of
    from dpde_cli.camera import Camera
    from dpde_cli.distributed import inference_run
    from dpde_cli.pipelines import cloud_suffix, plan_clouds, pointcloud_files

    opts = global_options(ctx, quiet)
    output = _output(output, ply)
    items = _items(inputs, depth, recursive)
    suffix = cloud_suffix(output, len(items), fmt.value if fmt else None)
    normals = normals or suffix == ".xyzn"  # the format is points and normals
    config = _config(min_depth, max_depth, keep_edges, edge_threshold, voxel_size, normals, frame)
    camera = Camera(fx, fy, cx, cy, intrinsics, fov, exif)
    camera.check()
    measured = measurements(sparse_depth, anchor, depth_scale, align)
    measured.check(items)
    jobs = plan_clouds(items, output, suffix, mesh, depth, measured)
    extra = [p for p in (intrinsics, Path(weights) if weights else None) if p is not None]
    check_outputs(jobs, extra)  # every usage error before the model loads
    run = inference_run(shard, device or opts.device)  # --shard K/N, torchrun's rank
    jobs = share_of(jobs, run.share)
    predictor = None
    if depth is None:
        predictor, _spec = build_predictor(
            model, weights, run.device, precision, omega if fuse else None, input_size
        )
    with batch_printer(
        "pointcloud", len(jobs), quiet=run.quiet(opts.quiet), as_json=as_json
    ) as printer:
        printer = warn_default_camera(printer, len(items) > 1, "the cloud's proportions may be off")
        report = pointcloud_files(
            jobs,
            predictor=predictor,
            depth=depth,
            photos=bool(inputs),
            depth_scale=depth_scale,
            camera=camera,
            config=config,
            ascii=ascii_,
            options=BatchOptions(overwrite, batch_size, max_pixels, tuple(extra), printer),
            measurements=measured,
        )
    report_batch(report, opts.quiet, run)


def _output(output: Path | None, ply: Path | None) -> Path | None:
    """-o, or --ply (a .ply file for one input)."""
    if ply is None:
        return output
    if output is not None:
        raise UsageError("give -o or --ply, not both")
    if ply.suffix.lower() != ".ply":
        raise UsageError(f"--ply {ply}: the file must end in .ply (use -o for other formats)")
    return ply


def _items(inputs: list[str] | None, depth: Path | None, recursive: bool) -> list[InputItem]:
    """The photos, or the --depth file alone."""
    from dpde_cli.inputs import expand_inputs

    if depth is not None and not depth.exists():
        raise UsageError(f"--depth {depth}: no such file or directory")
    depth_file = depth is not None and not depth.is_dir()
    if inputs:
        items = expand_inputs(inputs, recursive=recursive)
    elif depth_file:
        items = [InputItem(depth, Path(depth.stem))]
    else:
        raise UsageError("no input: give images, or --depth FILE for a depth map alone")
    if depth_file and len(items) > 1:
        raise UsageError(
            f"--depth {depth} is one depth map but there are {len(items)} images; "
            "give a directory of depth maps"
        )
    return items


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
