"""The commands' pipelines as library functions, the same for Python as for the CLI.

    plan_predictions + predict_files     photos -> depth maps (+ unfused, gradients, previews)
    plan_clouds + pointcloud_files       photos or depth maps -> point clouds (+ camera, mesh)
    fuse_file                            a depth map + gradients (files, or a photo's
                                         gradient network) -> the fused depth map

Planning checks the options and names every output before any model is loaded; the batch
pipelines run on ``batch.run_batch`` and return its ``BatchReport``. Nothing prints.

Example:
    >>> from dpde_cli.inputs import expand_inputs
    >>> jobs = plan_predictions(expand_inputs(["photos/"]), Path("depth/"))
    >>> report = predict_files(Predictor(create_model("dpde-lite"), torch.device("cpu")), jobs)
    >>> [outcome.record["output"] for outcome in report.done]
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dpde_cli.batch import (
    BatchOptions,
    BatchReport,
    Job,
    beside,
    output_path,
    run_batch,
    single_output,
)
from dpde_cli.errors import DpdeError, InputError, UsageError

if TYPE_CHECKING:
    from dpde_cli.camera import Camera
    from dpde_cli.fusion import FusionConfig
    from dpde_cli.inputs import InputItem
    from dpde_cli.pointcloud import CloudConfig, CloudResult
    from dpde_cli.predict import Prediction, Predictor
    from dpde_cli.sparse import Measurements

DEPTH_EXTENSIONS = (".png", ".npy", ".pfm", ".tiff", ".tif")
"""The depth maps a folder of them (``pointcloud --depth DIR``) may hold, in this order."""


# ------------------------------------------------------------------------------ predict


@dataclass(frozen=True)
class DepthOutputs:
    """What ``predict_files`` writes for each photo, checked when made.

    Attributes:
        fmt: the depth format (``formats.DEPTH_FORMATS``).
        unfused: also the global network's depth, as <name>_unfused.<ext>.
        gradients: also the (2, H, W) float32 gradients, as <name>_gradients.npy.
        preview: also a colour-mapped preview, as <name>_color.png.
        colormap: the previews' matplotlib colormap.
        depth_range: (near, far) metres of the preview colours; None: the model's range.

    Raises:
        UsageError: an unknown format or colormap, or a depth range that is none.
    """

    fmt: str = "png16"
    unfused: bool = False
    gradients: bool = False
    preview: bool = False
    colormap: str = "turbo"
    depth_range: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        from dpde_cli.formats import depth_format
        from dpde_cli.io import check_colormap, check_depth_range

        depth_format(None, self.fmt)
        if self.preview or self.fmt == "color":
            check_colormap(self.colormap)
        if self.depth_range is not None:
            object.__setattr__(self, "depth_range", check_depth_range(self.depth_range))


def depth_format_for(output: Path | None, count: int, fmt: str | None = None) -> str:
    """The depth format of a run: ``fmt`` (which must agree with a single output file's
    extension), else a single output file's extension, else png16.

    Raises:
        UsageError: a file for several inputs, or a format the extension contradicts.
    """
    from dpde_cli.formats import depth_format

    single = single_output(output, count)
    return depth_format(output, fmt) if single or fmt else "png16"


def plan_predictions(
    items: Sequence[InputItem],
    output: Path | None = None,
    outputs: DepthOutputs = DepthOutputs(),
    measurements: Measurements | None = None,
) -> list[Job]:
    """The outputs of each photo: ``output`` itself for one photo and a file name, else the
    photo's relative name under ``output`` (default ``batch.DEFAULT_OUTPUT``), the extras
    beside the depth map. ``measurements``: their files are the photos' inputs too.

    Raises:
        UsageError: a file for several inputs.
    """
    from dpde_cli.formats import FORMAT_EXTENSIONS

    single = single_output(output, len(items))
    jobs = []
    for item in items:
        depth = output_path(item, output, FORMAT_EXTENSIONS[outputs.fmt], single)
        targets = {"depth": depth}
        if outputs.unfused:
            targets["unfused"] = beside(depth, "_unfused")
        if outputs.gradients:
            targets["gradients"] = beside(depth, "_gradients", ".npy")
        if outputs.preview and outputs.fmt != "color":
            targets["preview"] = beside(depth, "_color", ".png")
        jobs.append(Job(item, targets, measurements.sources(item) if measurements else ()))
    return jobs


def predict_files(
    predictor: Predictor,
    jobs: Sequence[Job],
    outputs: DepthOutputs = DepthOutputs(),
    options: BatchOptions | None = None,
    camera: Camera | None = None,
    measurements: Measurements | None = None,
) -> BatchReport:
    """Predict depth for the photos of ``jobs`` (``plan_predictions``) and write their files.

    Args:
        predictor: the model, on its device, with or without fusion.
        jobs: from ``plan_predictions``.
        outputs: what to write.
        options: as ``run_batch`` (``options.inputs``: the weights file).
        camera: where each photo's intrinsics come from, for a model whose depth follows
            the camera (``camera.uses_camera``); other models ignore it. Default: EXIF,
            else the default camera.
        measurements: known distances to complete each prediction from (``Measurements``).

    Returns:
        The report; each done record holds the paths, the shape, the network size, the
        depth's min/median/max, fusion statistics and seconds; with a camera-following
        model the intrinsics and their source; with measurements, "completion".
    """
    preview_range = outputs.depth_range or predictor.inference.depth_range

    def write(job: Job, paths: dict[str, Path], _image: Any, result: Any):
        prediction, found, extra = measured_prediction(job, result, measurements)
        record = write_prediction(job, paths, prediction, outputs, preview_range)
        if found is not None:
            record |= {"intrinsics": found[0].to_dict(), "intrinsics_source": found[1]}
        return record | extra

    infer = predict_with_cameras(predictor, camera)
    return run_batch(jobs, write, infer=infer, options=options or BatchOptions())


def predict_with_cameras(
    predictor: Predictor, camera: Camera | None = None
) -> Callable[[list[Job], list[Any]], list[tuple[Prediction, Any]]]:
    """The ``infer`` of a batch of photos: per photo (prediction, its camera), the camera
    (intrinsics, source) resolved by ``camera`` and given to the model as the focal length
    where the model's depth follows it (``camera.uses_camera``), else None (the output is
    then that of ``predictor.predict(images)``, bit for bit). A photo whose camera cannot
    be resolved gets the InputError instead, and fails alone when written."""
    from dpde_cli.camera import Camera, uses_camera

    camera = camera or Camera()

    def infer(jobs: list[Job], images: list[Any]) -> list[tuple[Prediction, Any]]:
        if not uses_camera(predictor.inference):
            return [(p, None) for p in predictor.predict(images)]
        found = camera.for_photos([job.item.path for job in jobs], images)
        focals = [None if isinstance(f, DpdeError) else f[0].fx for f in found]
        return list(zip(predictor.predict(images, focals=focals), found, strict=True))

    return infer


def measured_prediction(
    job: Job, result: tuple[Prediction, Any], measurements: Measurements | None
) -> tuple[Prediction, Any, dict[str, Any]]:
    """A result of ``predict_with_cameras`` with the prediction completed from the photo's
    measurements where there are some: (prediction, camera or None, record entries).

    Raises:
        DpdeError: the photo's camera could not be resolved, or its measurements are bad.
    """
    import dataclasses

    prediction, found = result
    if isinstance(found, DpdeError):
        raise found
    if measurements is None or not measurements.given:
        return prediction, found, {}
    start = time.perf_counter()
    depth, record = measurements.complete(job.item, prediction.depth, prediction.gradients)
    seconds = prediction.seconds + time.perf_counter() - start
    prediction = dataclasses.replace(prediction, depth=depth, seconds=seconds)
    return prediction, found, {"completion": record}


def write_prediction(
    job: Job,
    paths: dict[str, Path],
    prediction: Prediction,
    outputs: DepthOutputs,
    depth_range: tuple[float, float],
) -> dict[str, Any]:
    """Write one prediction's files at ``paths`` (by role); its JSON record."""
    import numpy as np

    from dpde_cli import io

    start = time.perf_counter()
    fmt, colormap = outputs.fmt, outputs.colormap
    io.write_depth(paths["depth"], prediction.depth, fmt, colormap, depth_range)
    if "unfused" in paths:
        io.write_depth(paths["unfused"], prediction.depth_unfused, fmt, colormap, depth_range)
    if "gradients" in paths:
        with io.atomic_path(paths["gradients"]) as tmp:
            io.write_npy(tmp, prediction.gradients.astype(np.float32))
    if "preview" in paths:
        io.write_depth(paths["preview"], prediction.depth, "color", colormap, depth_range)
    valid = prediction.depth[np.isfinite(prediction.depth)]
    return {
        "input": str(job.item.path),
        "output": str(job.targets["depth"]),
        "outputs": {k: str(v) for k, v in job.targets.items()},
        "shape": list(prediction.depth.shape),
        "network_size": list(prediction.network_size),
        "depth_min": round(float(valid.min()), 4),
        "depth_median": round(float(np.median(valid)), 4),
        "depth_max": round(float(valid.max()), 4),
        "fusion": prediction.fusion,
        "seconds": round(prediction.seconds + time.perf_counter() - start, 4),
    }


# ------------------------------------------------------------------------------ clouds


def cloud_suffix(output: Path | None, count: int, fmt: str | None = None) -> str:
    """The clouds' extension: a single output file's own, else ``.<fmt>`` (default .ply).

    Raises:
        UsageError: an extension that is no cloud format, or one ``fmt`` contradicts.
    """
    from dpde_cli.pointcloud import POINT_CLOUD_EXTENSIONS

    if not single_output(output, count):
        suffix = f".{fmt or 'ply'}"
        if suffix not in POINT_CLOUD_EXTENSIONS:
            raise UsageError(f"unknown point cloud format {fmt!r}")
        return suffix
    suffix = output.suffix.lower()
    if suffix not in POINT_CLOUD_EXTENSIONS:
        raise UsageError(
            f"{output}: cannot write a point cloud as {suffix!r}; "
            f"use {', '.join(POINT_CLOUD_EXTENSIONS)}"
        )
    if fmt is not None and f".{fmt}" != suffix:
        raise UsageError(f"--format {fmt} does not match the file name {output}")
    return suffix


def plan_clouds(
    items: Sequence[InputItem],
    output: Path | None = None,
    suffix: str = ".ply",
    mesh: Path | None = None,
    depth: Path | None = None,
    measurements: Measurements | None = None,
) -> list[Job]:
    """The outputs of each input: the cloud, its camera as <name>.intrinsics.json beside
    it, and with ``mesh`` a mesh (``mesh`` itself for one input and a file name, else
    <name>_mesh.ply under it). ``depth``: the depth map or folder of them the clouds are
    made of (their files are inputs too); ``measurements``: their files are inputs too.

    Raises:
        UsageError: a file for several inputs, a mesh format Open3D does not write, or a
            mesh in the cloud's own file.
    """
    from dpde_cli.pointcloud import MESH_EXTENSIONS

    single = single_output(output, len(items))
    mesh_file = mesh is not None and bool(mesh.suffix) and not mesh.is_dir()
    if mesh_file and len(items) > 1:
        raise UsageError(f"--mesh {mesh} is a file but there are {len(items)} inputs")
    if mesh_file and mesh.suffix.lower() not in MESH_EXTENSIONS:
        raise UsageError(
            f"--mesh {mesh}: cannot write a mesh as {mesh.suffix!r}; "
            f"use {', '.join(MESH_EXTENSIONS)}"
        )
    jobs = []
    for item in items:
        cloud = output_path(item, output, suffix, single)
        targets = {"cloud": cloud, "intrinsics": beside(cloud, ".intrinsics", ".json")}
        if mesh is not None:
            relative = item.relative
            name = relative.with_name(f"{relative.name}_mesh.ply")
            targets["mesh"] = mesh if mesh_file else mesh / name
            if targets["mesh"].resolve() == cloud.resolve():
                raise UsageError(f"--mesh {targets['mesh']} is the point cloud's own file")
        sources: tuple[Path, ...] = ()
        if depth is not None and depth.is_dir():
            with contextlib.suppress(InputError):  # else it fails when its turn comes
                sources = (depth_file_for(item, depth),)
        elif depth is not None:
            sources = (depth,)
        if measurements is not None:
            sources += measurements.sources(item)
        jobs.append(Job(item, targets, sources))
    return jobs


def depth_file_for(item: InputItem, directory: Path) -> Path:
    """The depth map in ``directory`` named as the input (any of ``DEPTH_EXTENSIONS``).

    Raises:
        InputError: there is none.
    """
    from dpde_cli.inputs import companion_file

    return companion_file(item, directory, DEPTH_EXTENSIONS, "depth map")


def pointcloud_files(
    jobs: Sequence[Job],
    *,
    predictor: Predictor | None = None,
    depth: Path | None = None,
    photos: bool = True,
    depth_scale: float = 1000.0,
    camera: Camera | None = None,
    config: CloudConfig | None = None,
    ascii: bool = False,
    options: BatchOptions | None = None,
    measurements: Measurements | None = None,
) -> BatchReport:
    """Point clouds (and meshes) of the inputs of ``jobs`` (``plan_clouds``), written with
    their cameras.

    Args:
        jobs: from ``plan_clouds``.
        predictor: the model, when there is no ``depth``.
        depth: a depth map (for one photo) or a folder of them named as the photos
            (``depth_file_for``); None: run ``predictor``.
        photos: False when the inputs are depth maps alone (clouds without colours).
        depth_scale: integer depth units per metre; camera, config: see ``photo_to_cloud``.
        ascii: text .ply / .pcd.
        options: as ``run_batch`` (``options.inputs``: weights, camera file).
        measurements: known distances to complete each prediction from (with a
            predictor only).

    Returns:
        The report; each done record holds the paths, the point count, the intrinsics used
        and their source ("default" where they are a guess: warn the user).

    Raises:
        UsageError: no depth and no predictor, or measurements with depth maps.
    """
    from dpde_cli.pointcloud import Camera, CloudConfig, photo_to_cloud

    camera = camera or Camera()
    config = config or CloudConfig()
    if depth is None and (predictor is None or not photos):
        raise UsageError("clouds need depth maps, or photos and a predictor")
    if depth is not None and measurements is not None and measurements.given:
        raise UsageError(
            "--sparse-depth and --anchor complete the model's prediction, not a --depth map"
        )

    def write(job: Job, paths: dict[str, Path], image: Any, result: Any) -> dict[str, Any]:
        start = time.perf_counter()
        prediction, extra = None, {}
        if result is not None:
            prediction, _camera, extra = measured_prediction(job, result, measurements)
        if prediction is not None:
            depth_map = prediction.depth
        elif not photos:
            depth_map = job.item.path
        else:
            depth_map = depth_file_for(job.item, depth) if depth.is_dir() else depth
        cloud = photo_to_cloud(
            job.item.path if photos else None,
            depth_map,
            image=image,
            depth_scale=depth_scale,
            camera=camera,
            config=config,
            mesh="mesh" in paths,
        )
        write_cloud(paths, cloud, config.frame, ascii)
        seconds = (prediction.seconds if prediction is not None else 0.0) + time.perf_counter()
        return _cloud_record(job, cloud) | extra | {"seconds": round(seconds - start, 4)}

    infer = predict_with_cameras(predictor, camera) if depth is None else None
    options = options or BatchOptions()
    return run_batch(jobs, write, infer=infer, decode=photos, options=options)


def write_cloud(paths: dict[str, Path], result: CloudResult, frame: str, ascii: bool) -> None:
    """Write a cloud at paths["cloud"], its camera as JSON at paths["intrinsics"], and its
    mesh at paths["mesh"] where there is one."""
    from dpde_cli.io import write_text
    from dpde_cli.pointcloud import write_mesh, write_point_cloud

    write_point_cloud(paths["cloud"], result.cloud, ascii=ascii)
    sidecar = {
        **result.intrinsics.to_dict(),
        "source": result.intrinsics_source,
        "pixel_convention": "integer coordinates at pixel centres (OpenCV)",
        "frame": frame,
    }
    write_text(paths["intrinsics"], json.dumps(sidecar, indent=1) + "\n")
    if result.mesh is not None:
        write_mesh(paths["mesh"], result.mesh, ascii=ascii, normals=True)


def _cloud_record(job: Job, result: CloudResult) -> dict[str, Any]:
    """The JSON record of a cloud written."""
    record: dict[str, Any] = {
        "input": str(job.item.path),
        "output": str(job.targets["cloud"]),
        "outputs": {k: str(v) for k, v in job.targets.items()},
        "points": len(result.cloud),
        "shape": list(result.shape),
        "intrinsics": result.intrinsics.to_dict(),
        "intrinsics_source": result.intrinsics_source,
    }
    if result.mesh is not None:
        record["triangles"] = len(result.mesh.triangles)
    record["depth"] = result.depth_source
    return record


# ------------------------------------------------------------------------------ fuse


def fuse_file(
    output: Path,
    depth: Path,
    *,
    gx: Path | None = None,
    gy: Path | None = None,
    gradients: Path | None = None,
    photo: Path | None = None,
    load_predictor: Callable[[], Predictor] | None = None,
    mask: Path | None = None,
    depth_scale: float = 1000.0,
    fmt: str | None = None,
    config: FusionConfig | None = None,
    overwrite: bool = False,
    inputs: Iterable[Path] = (),
    camera: Camera | None = None,
) -> dict[str, Any] | None:
    """Fuse a depth map with gradients (IRLS) and write the result atomically.

    Args:
        output: the fused depth map; its extension names the format unless ``fmt``.
        depth: the depth map to refine (0 or NaN: holes to fill).
        gx, gy, gradients: gradient files (``fusion_io.read_gradients``); or
        photo, load_predictor: the photo of the depth map and a function making the Predictor
            whose gradient network runs on it (called only once the inputs are read).
        mask: confidence of the depth (``fusion_io.read_mask``).
        depth_scale: integer PNG depth units per metre.
        config: the fusion's settings (default ``FusionConfig()``).
        overwrite: replace an existing output (else it is kept and None returned).
        inputs: other files the run reads (weights), never to be written.
        camera: where the photo's focal length comes from, for a model whose depth follows
            the camera (``camera.uses_camera``); default: EXIF, else the Kinect's.

    Returns:
        The JSON record (paths, shape, filled pixels, iterations, objective), or None when
        ``output`` exists and is kept.

    Raises:
        UsageError: options that do not go together, an output that is an input or cannot
            be written there. InputError: a bad input, naming it. OutputError: the write.
    """
    from dpde_cli.formats import depth_format
    from dpde_cli.outputs import refuse_inputs_as_outputs, refuse_unwritable, written_in_place

    from_files = gx is not None or gy is not None or gradients is not None
    if from_files == (photo is not None):
        raise UsageError(
            "give either gradients (--gx and --gy, or --gradients) with a depth "
            "map, or --depth with a photo"
        )
    if gradients is not None and (gx is not None or gy is not None):
        raise UsageError("give --gradients or --gx and --gy, not both")
    if from_files and gradients is None and (gx is None or gy is None):
        raise UsageError("--gx and --gy go together")
    if photo is not None and load_predictor is None:
        raise UsageError("fusing with a photo's gradients needs a predictor")
    if output.is_dir():
        raise UsageError(f"-o {output} is a folder; fuse writes one file (e.g. {output}/fused.png)")
    fmt = depth_format(output, fmt)
    refuse_unwritable("-o", output)
    sources = [p for p in (depth, gx, gy, gradients, photo, mask, *inputs) if p is not None]
    refuse_inputs_as_outputs([(f"-o {output}", output)], sources)
    if output.exists() and not written_in_place(output) and not overwrite:  # as in a batch
        return None
    files = (gx, gy, gradients)
    return _fuse(
        output, depth, fmt, files, photo, load_predictor, camera, mask, depth_scale, config
    )


def _fuse(
    output, depth_path, fmt, gradient_files, photo, load_predictor, camera, mask, scale, config
):
    """``fuse_file`` once its options are checked: read, fuse, write, the record."""
    import numpy as np

    from dpde_cli.camera import Camera, uses_camera
    from dpde_cli.fusion import FusionConfig, irls_fuse
    from dpde_cli.fusion_io import check_same_view, check_units, read_gradients, read_mask
    from dpde_cli.io import read_depth, read_image, valid_depth, write_depth
    from dpde_cli.outputs import remove_stale_temporaries

    estimate = read_depth(depth_path, scale)
    valid = valid_depth(depth_path, estimate)  # before any network is loaded
    if photo is None:
        grad_x, grad_y = read_gradients(estimate.shape, *gradient_files)
    else:
        image = read_image(photo)
        check_same_view(photo, image.shape[:2], depth_path, estimate.shape)
        predictor = load_predictor()
        focal = None
        if uses_camera(predictor.inference):  # its gradients follow the photo's focal length
            focal = (camera or Camera()).resolve(image.shape[1], image.shape[0], photo)[0].fx
        grad_x, grad_y = predictor.predict_gradients(image, estimate.shape, focal=focal)
    check_units(depth_path, valid, grad_x, grad_y)
    confidence = read_mask(mask, estimate.shape) if mask is not None else None
    result = irls_fuse(estimate, grad_x, grad_y, mask=confidence, config=config or FusionConfig())
    remove_stale_temporaries([output])
    write_depth(output, np.asarray(result.depth, dtype=np.float32), fmt)
    return {
        "input": str(depth_path),
        "output": str(output),
        "shape": list(estimate.shape),
        "filled_pixels": estimate.size - valid.size,
        "irls_iterations": result.irls_iters,
        "cg_iterations": result.cg_iters,
        "objective": result.objective,
        "converged": result.converged,
    }
