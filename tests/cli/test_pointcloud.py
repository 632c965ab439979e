"""`dpde pointcloud` through the CLI: model and depth-file inputs, intrinsics, formats, errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, TiffImagePlugin
from typer.testing import CliRunner

from dpde_cli.cli.app import app
from dpde_cli.geometry import Intrinsics, backproject
from dpde_cli.pointcloud import read_point_cloud

runner = CliRunner()


def run(*args: str, stdin: str | None = None):
    return runner.invoke(app, ["--device", "cpu", "pointcloud", *args], input=stdin)


def model_args(weights: Path) -> list[str]:
    return ["--model", "dpde-tiny", "--weights", str(weights), "--no-fuse"]


def records(result) -> list[dict]:
    return [json.loads(line) for line in result.stdout.splitlines()]


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    """Photos in two folders: one.jpg carries an EXIF 35 mm focal length of 28 mm."""
    rng = np.random.default_rng(0)
    root = tmp_path / "photos"
    (root / "a").mkdir(parents=True)
    (root / "b").mkdir()
    image = Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8))
    exif = image.getexif()
    exif.get_ifd(0x8769)[0xA405] = 28  # FocalLengthIn35mmFilm
    exif.get_ifd(0x8769)[0x920A] = TiffImagePlugin.IFDRational(4.2)  # FocalLength
    image.save(root / "a" / "one.jpg", exif=exif)
    Image.fromarray(rng.integers(0, 255, (60, 45, 3), dtype=np.uint8)).save(root / "b/two.png")
    return root


@pytest.fixture
def planes(tmp_path: Path) -> tuple[Path, Path]:
    """A 16-bit PNG depth map (mm) of a near and a far plane, and a photo of its size."""
    depth = np.full((24, 32), 3000, dtype=np.uint16)
    depth[:, :16] = 1000
    depth[0, 0] = 0
    Image.fromarray(depth).save(tmp_path / "depth.png")
    colour = np.zeros((24, 32, 3), dtype=np.uint8)
    colour[:, :16] = (255, 0, 0)
    colour[:, 16:] = (0, 255, 0)
    Image.fromarray(colour).save(tmp_path / "photo.png")
    return tmp_path / "photo.png", tmp_path / "depth.png"


def test_photo_to_ply_with_exif_intrinsics(photos: Path, tiny_weights: Path, tmp_path: Path):
    out = tmp_path / "out.ply"
    result = run(str(photos / "a/one.jpg"), "--ply", str(out), "--json", *model_args(tiny_weights))
    assert result.exit_code == 0, result.output
    [record] = records(result)
    assert record["output"] == str(out) and record["intrinsics_source"] == "exif-35mm"
    assert record["intrinsics"]["fx"] == pytest.approx(28 / 36 * 64, abs=1e-5)
    assert (record["intrinsics"]["width"], record["intrinsics"]["height"]) == (64, 48)
    cloud = read_point_cloud(out)
    assert len(cloud) == record["points"] > 0 and cloud.colors is not None
    sidecar = json.loads((tmp_path / "out.intrinsics.json").read_text())
    assert sidecar["source"] == "exif-35mm" and sidecar["fx"] == record["intrinsics"]["fx"]
    assert "warning" not in result.stderr


def test_directory_batch_formats_stdin_and_default_warning(
    photos: Path, tiny_weights: Path, tmp_path: Path
) -> None:
    out = tmp_path / "clouds"
    result = run(
        str(photos), "-r", "-o", str(out), "-f", "pcd", "--json", "--no-exif",
        "--batch-size", "2", *model_args(tiny_weights),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    got = {Path(r["output"]).relative_to(out).as_posix(): r for r in records(result)}
    assert set(got) == {"a/one.pcd", "b/two.pcd"}
    assert {r["intrinsics_source"] for r in got.values()} == {"default"}
    assert got["b/two.pcd"]["intrinsics"]["width"] == 45  # each image its own camera
    assert (out / "a" / "one.intrinsics.json").is_file()
    assert "warning" in result.stderr and "NYUv2 Kinect" in result.stderr
    result = run(
        "-", "-o", str(tmp_path / "s"), "--fov", "60", *model_args(tiny_weights),
        stdin=f"{photos}/a/one.jpg\n{photos}/b/two.png\n",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert sorted(result.stdout.split()) == sorted(
        str(tmp_path / "s" / p) for p in ("a/one.ply", "b/two.ply")
    )
    assert "warning" not in result.stderr


def test_depth_file_gives_exact_points_and_colours(planes, tmp_path: Path) -> None:
    photo, depth = planes
    out = tmp_path / "cloud.ply"
    mesh = tmp_path / "mesh.ply"
    result = run(
        str(photo), "--depth", str(depth), "--fx", "40", "--cx", "15.5", "--cy", "11.5",
        "-o", str(out), "--mesh", str(mesh), "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    [record] = records(result)
    assert record["intrinsics_source"] == "options" and record["depth"] == str(depth)
    camera = Intrinsics(40.0, 40.0, 15.5, 11.5, 32, 24)
    metres = np.asarray(Image.open(depth), dtype=np.float64) / 1000.0
    keep = metres > 0
    keep[:, 15:17] = False  # the columns either side of the 1 m -> 3 m jump
    expected = backproject(metres, camera)[keep]
    cloud = read_point_cloud(out)
    np.testing.assert_allclose(cloud.points, expected, atol=1e-6)
    assert (cloud.colors[cloud.points[:, 2] < 2] == (255, 0, 0)).all()
    assert (cloud.colors[cloud.points[:, 2] > 2] == (0, 255, 0)).all()
    import open3d as o3d

    triangles = o3d.io.read_triangle_mesh(str(mesh))
    assert len(triangles.triangles) == record["triangles"] > 0
    z = np.asarray(triangles.vertices)[np.asarray(triangles.triangles), 2]
    assert (z.max(axis=1) / z.min(axis=1) <= 1.05).all()  # no skin across the jump


def test_depth_smaller_than_image_rescales_intrinsics(planes, tmp_path: Path) -> None:
    _photo, depth = planes
    big = tmp_path / "big.png"
    Image.new("RGB", (64, 48), (10, 20, 30)).save(big)
    camera = tmp_path / "cam.json"
    camera.write_text(json.dumps({"fx": 80, "fy": 80, "cx": 31.5, "cy": 23.5}))
    result = run(str(big), "--depth", str(depth), "--intrinsics", str(camera), "-o",
                 str(tmp_path / "c.xyz"), "--json")  # fmt: skip
    assert result.exit_code == 0, result.output
    [record] = records(result)
    assert record["intrinsics"] == {
        "fx": 40.0, "fy": 40.0, "cx": 15.5, "cy": 11.5, "width": 32, "height": 24
    }  # fmt: skip
    assert record["intrinsics_source"] == "file" and record["shape"] == [24, 32]


def test_xyzn_estimates_the_normals_it_holds(planes, tmp_path: Path) -> None:
    _photo, depth = planes
    out = tmp_path / "c.xyzn"
    result = run("--depth", str(depth), "-o", str(out), "--fov", "60")  # no --normals
    assert result.exit_code == 0, result.output
    normals = np.loadtxt(out)[:, 3:]
    assert normals.shape[1] == 3 and np.allclose(np.linalg.norm(normals, axis=1), 1, atol=1e-3)


def test_depth_alone_and_depth_directory(planes, photos: Path, tmp_path: Path) -> None:
    _photo, depth = planes
    result = run("--depth", str(depth), "-o", str(tmp_path / "bare.pts"), "--fov", "90")
    assert result.exit_code == 0, result.output
    assert read_point_cloud(tmp_path / "bare.pts").colors is None
    depths = tmp_path / "depths"
    (depths / "a").mkdir(parents=True)
    Image.fromarray(np.full((48, 64), 1500, dtype=np.uint16)).save(depths / "a" / "one.png")
    meshes = tmp_path / "meshes"
    result = run(
        str(photos), "-r", "--depth", str(depths), "-o", str(tmp_path / "o"), "--json",
        "--mesh", str(meshes),
    )  # fmt: skip
    assert result.exit_code == 1  # b/two.png has no depth map
    done, failed = records(result)
    assert done["points"] == 48 * 64 and done["intrinsics_source"] == "exif-35mm"
    assert done["outputs"]["mesh"] == str(meshes / "a" / "one_mesh.ply")
    assert done["triangles"] == 2 * 47 * 63
    assert "two.png: no depth map for it" in failed["error"]


def test_bad_inputs_fail_cleanly(planes, photos: Path, tiny_weights: Path, tmp_path: Path):
    photo, depth = planes
    out = tmp_path / "out"
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"not a png")
    result = run(str(photo), "--depth", str(corrupt), "-o", str(out / "x.ply"))
    assert result.exit_code == 1 and "corrupt.png" in result.stderr
    assert "Traceback" not in result.output and not out.exists()  # nothing partial
    empty = tmp_path / "empty.png"
    Image.fromarray(np.zeros((24, 32), dtype=np.uint16)).save(empty)
    result = run(str(photo), "--depth", str(empty), "-o", str(out / "x.ply"))
    assert result.exit_code == 1 and "empty.png: no valid depth" in result.stderr
    wide = tmp_path / "wide.png"
    Image.new("RGB", (64, 24)).save(wide)
    result = run(str(wide), "--depth", str(depth), "-o", str(out / "x.ply"))
    assert result.exit_code == 1 and "aspect ratio" in result.stderr
    assert not out.exists()
    bad_camera = tmp_path / "cam.json"
    bad_camera.write_text("{not json")
    usage = [
        [str(photo), "--depth", str(depth), "--intrinsics", str(bad_camera)],
        [str(photo), "--depth", str(depth), "--fov", "200"],
        [str(photo), "--depth", str(depth), "--fx", "-3"],
        [str(photo), "--depth", str(tmp_path / "absent.png")],
        [str(photo), "--depth", str(depth), "-o", str(tmp_path / "x.las")],
        [str(photo), "--depth", str(depth), "--ply", str(tmp_path / "x.pcd")],
        [str(photo), "--depth", str(depth), "--mesh", str(tmp_path / "m.pcd")],
        [str(photos), "-r", "-o", str(tmp_path / "one.ply"), *model_args(tiny_weights)],
        [str(photos), "-r", "--depth", str(depth)],
        ["--fov", "60"],
    ]
    for args in usage:
        result = run(*args)
        assert result.exit_code == 2, (args, result.output)
        assert result.stderr.startswith("dpde: error:") and "Traceback" not in result.output
    assert "cam.json" in run(*usage[0]).stderr


def test_existing_output_needs_overwrite(planes, tmp_path: Path) -> None:
    photo, depth = planes
    args = [str(photo), "--depth", str(depth), "--ply", str(tmp_path / "c.ply"), "--fov", "60"]
    assert run(*args).exit_code == 0
    again = run(*args)
    assert again.exit_code == 0 and "skipped: their outputs exist" in again.stderr
    other = [*args[:3], "-o", str(tmp_path / "c.xyz"), "--fov", "60"]  # c.intrinsics.json exists
    mixed = run(*other)
    assert mixed.exit_code == 1 and "c.intrinsics.json exists (use --overwrite)" in mixed.stderr
    assert not (tmp_path / "c.xyz").exists()
    assert run(*args, "--overwrite", "--voxel-size", "0.5", "--normals").exit_code == 0
    assert read_point_cloud(tmp_path / "c.ply").normals is not None


def test_with_fusion(photos: Path, tiny_weights: Path, tmp_path: Path) -> None:
    pytest.importorskip("dpde_cli.fusion")
    args = ["--model", "dpde-tiny", "--weights", str(tiny_weights), "--fuse"]
    result = run(str(photos / "a/one.jpg"), "--ply", str(tmp_path / "f.ply"), "--json", *args)
    assert result.exit_code == 0, result.output
    assert records(result)[0]["points"] > 0


def test_a_cloud_into_a_pipe(planes: tuple[Path, Path], tmp_path: Path) -> None:
    # the size check took a FIFO's 0 bytes for a full disk
    import os
    import stat
    import threading

    photo, depth = planes
    fifo = tmp_path / "cloud.ply"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()), daemon=True)
    reader.start()
    result = run(str(photo), "--depth", str(depth), "--ply", str(fifo), "--fx", "30")
    reader.join(timeout=10)
    assert result.exit_code == 0, result.output
    assert got and got[0].startswith(b"ply") and stat.S_ISFIFO(os.stat(fifo).st_mode)
