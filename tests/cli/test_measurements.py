"""`predict` / `pointcloud` with known distances: --sparse-depth, --anchor, --align, and the
bad inputs they refuse (one line naming the file or option, nothing written)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from dpde_cli.cli.app import app
from dpde_cli.io import read_depth, write_depth

runner = CliRunner()


def run(*args: str):
    return runner.invoke(app, ["--device", "cpu", *args])


def tiny(weights: Path) -> list[str]:
    return ["--model", "dpde-tiny", "--weights", str(weights), "--no-fuse"]


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    """Three 48x64 photos: a.png, b.png, sub/c.png."""
    rng = np.random.default_rng(2)
    root = tmp_path / "photos"
    for name in ("a.png", "b.png", "sub/c.png"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(root / name)
    return root


def plain_prediction(photo: Path, out: Path, weights: Path) -> bool:
    """Predict without measurements; whether it worked."""
    return run("predict", str(photo), "-o", str(out), *tiny(weights)).exit_code == 0


def anchors_from(photo: Path, weights: Path, tmp_path: Path, truth) -> list[str]:
    """--anchor options at four pixels, their distances ``truth(depth, depth at the pixel)``
    of the plain prediction."""
    plain = tmp_path / "plain.npy"
    assert plain_prediction(photo, plain, weights)
    d = read_depth(plain)
    pixels = [(5, 5), (60, 40), (30, 20), (12, 33)]
    return [f"--anchor={x},{y}={truth(d, d[y, x])}" for x, y in pixels]


def sparse_map(shape=(48, 64), points=((5, 7, 1.5), (30, 40, 2.25), (40, 10, 3.0))):
    """A float map with measurements at (row, col, metres), 0 elsewhere."""
    out = np.zeros(shape, np.float32)
    for row, col, z in points:
        out[row, col] = z
    return out


@pytest.mark.parametrize("fmt", ["npy", "pfm", "tiff", "png16"])
def test_sparse_depth_makes_the_prediction_pass_through_the_measurements(
    fmt: str, photos: Path, tiny_weights: Path, tmp_path: Path
) -> None:
    sparse = tmp_path / f"lidar.{'png' if fmt == 'png16' else fmt}"
    values = sparse_map()
    if fmt == "png16":  # 256 units per metre, as --depth-scale says
        Image.fromarray(np.rint(values * 256).astype(np.uint16)).save(sparse)
    else:
        write_depth(sparse, values, fmt)
    out = tmp_path / "d.npy"
    extra = ["--depth-scale", "256"] if fmt == "png16" else []
    result = run("predict", str(photos / "a.png"), "-o", str(out), "--sparse-depth",
                 str(sparse), "--json", *extra, *tiny(tiny_weights))  # fmt: skip
    assert result.exit_code == 0, result.output
    depth = read_depth(out)
    rows, cols = np.nonzero(values)
    np.testing.assert_allclose(depth[rows, cols], values[rows, cols], rtol=1e-5)
    completion = json.loads(result.stdout)["completion"]
    assert completion["points_used"] == 3 and completion["points_rejected"] == 0
    assert completion["sparse_depth"] == str(sparse) and completion["align"] == "scale"
    assert completion["completed_residual"]["rel"] < 1e-5
    assert completion["scale"] > 0 and "rel" in completion["aligned_residual"]


def test_a_sparse_map_of_lower_resolution_lands_on_the_photos_pixels(
    photos: Path, tiny_weights: Path, tmp_path: Path
) -> None:
    sparse = tmp_path / "half.npy"
    np.save(sparse, sparse_map((24, 32), ((2, 3, 2.0), (12, 20, 2.0), (20, 5, 2.0))))
    out = tmp_path / "d.npy"
    result = run("predict", str(photos / "a.png"), "-o", str(out), "--sparse-depth",
                 str(sparse), *tiny(tiny_weights))  # fmt: skip
    assert result.exit_code == 0, result.output
    # half-resolution pixel (u, v) is centred at (2u + 0.5, 2v + 0.5): rounds to 2u, 2v (even)
    assert read_depth(out)[4, 6] == pytest.approx(2.0)


def test_one_anchor_fixes_the_scale_of_the_whole_prediction(
    photos: Path, tiny_weights: Path, tmp_path: Path
) -> None:
    plain, anchored = tmp_path / "plain.npy", tmp_path / "anchored.npy"
    assert plain_prediction(photos / "a.png", plain, tiny_weights)
    result = run("predict", str(photos / "a.png"), "-o", str(anchored), "--anchor", "10,20=2.5",
                 "--json", *tiny(tiny_weights))  # fmt: skip
    assert result.exit_code == 0, result.output
    before, after = read_depth(plain), read_depth(anchored)
    scale = 2.5 / before[20, 10]
    np.testing.assert_allclose(after, before * scale, rtol=1e-4)
    record = json.loads(result.stdout)["completion"]
    assert record["scale"] == pytest.approx(scale, rel=1e-4) and record["points_used"] == 1


def test_scale_shift_recovers_a_known_scale_and_shift(
    photos: Path, tiny_weights: Path, tmp_path: Path
) -> None:
    anchors = anchors_from(photos / "a.png", tiny_weights, tmp_path, lambda d, z: 2.0 * z + 0.5)
    result = run("predict", str(photos / "a.png"), "-o", str(tmp_path / "d.npy"), "--json",
                 *anchors, "--align", "scale-shift", *tiny(tiny_weights))  # fmt: skip
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)["completion"]
    assert record["align"] == "scale-shift" and record["points_used"] == 4
    assert record["scale"] == pytest.approx(2.0, rel=1e-3)
    assert record["shift"] == pytest.approx(0.5, abs=1e-3)


def test_a_shift_against_the_depth_order_fails_naming_the_photo(
    photos: Path, tiny_weights: Path, tmp_path: Path
) -> None:
    reversed_order = lambda d, z: d.max() + 1 - z  # noqa: E731
    anchors = anchors_from(photos / "a.png", tiny_weights, tmp_path, reversed_order)
    out = tmp_path / "d.npy"
    result = run("predict", str(photos / "a.png"), "-o", str(out), *anchors,
                 "--align", "scale-shift", *tiny(tiny_weights))  # fmt: skip
    assert result.exit_code == 1 and not out.exists()
    assert f"{photos / 'a.png'}: scale-shift alignment" in result.stderr


def test_a_folder_of_sparse_maps_pairs_by_relative_name_and_a_missing_one_fails_alone(
    photos: Path, tiny_weights: Path, tmp_path: Path
) -> None:
    maps = tmp_path / "lidar"
    (maps / "sub").mkdir(parents=True)
    np.save(maps / "a.npy", sparse_map())
    write_depth(maps / "sub" / "c.png", sparse_map(), "png16")  # b has none
    out = tmp_path / "out"
    result = run("predict", str(photos), "-r", "-o", str(out), "--sparse-depth", str(maps),
                 "--json", *tiny(tiny_weights))  # fmt: skip
    assert result.exit_code == 1
    records = {Path(r["input"]).name: r for r in map(json.loads, result.stdout.splitlines())}
    assert records["a.png"]["completion"]["sparse_depth"] == str(maps / "a.npy")
    assert records["c.png"]["completion"]["sparse_depth"] == str(maps / "sub" / "c.png")
    assert "no sparse depth map for it" in records["b.png"]["error"]
    assert str(maps) in result.stderr
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png"))
    assert written == ["a.png", "sub/c.png"]


def test_pointcloud_takes_the_same_measurements(
    photos: Path, tiny_weights: Path, tmp_path: Path
) -> None:
    cloud = tmp_path / "c.ply"
    result = run("pointcloud", str(photos / "a.png"), "-o", str(cloud), "--anchor", "32,24=3.0",
                 "--fov", "60", "--keep-edges", "--json", *tiny(tiny_weights))  # fmt: skip
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert record["completion"]["points_used"] == 1 and cloud.exists()
    from dpde_cli.pointcloud import read_point_cloud

    points = read_point_cloud(cloud).points
    centre = np.argmin(np.abs(points[:, 0]) + np.abs(points[:, 1]))  # the ray of pixel 32,24
    assert points[centre, 2] == pytest.approx(3.0, rel=0.05)


# ------------------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    ("anchor", "words"),
    [
        ("64,10=2", "outside the 64x48 photo"),
        ("-1,10=2", "outside"),
        ("10,10=0", "positive"),
        ("10,10=-2", "positive"),
        ("10,10=nan", "positive"),
        ("10,10", "X,Y=METRES"),
    ],
)
def test_bad_anchors_are_usage_errors_naming_the_option(
    anchor: str, words: str, photos: Path, tiny_weights: Path, tmp_path: Path
) -> None:
    out = tmp_path / "d.png"
    result = run("predict", str(photos / "a.png"), "-o", str(out), f"--anchor={anchor}",
                 *tiny(tiny_weights))  # fmt: skip
    assert result.exit_code == 2
    assert result.stderr.startswith("dpde: error: --anchor") and words in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not out.exists()


def _bad_maps(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    """name -> (a sparse map that cannot be used, words of its error)."""
    other = tmp_path / "square.npy"
    np.save(other, sparse_map((48, 48)))
    empty = tmp_path / "empty.npy"
    np.save(empty, np.where(np.eye(48, 64) > 0, np.nan, 0.0).astype(np.float32))
    eight = tmp_path / "eight.png"
    Image.fromarray(np.full((48, 64), 7, np.uint8)).save(eight)
    return {
        "aspect": (other, "aspect ratio"),
        "empty": (empty, "no measurement"),
        "8-bit": (eight, "8-bit"),
    }


@pytest.mark.parametrize("case", ["aspect", "empty", "8-bit"])
def test_bad_sparse_maps_fail_in_one_line_naming_the_file(
    case: str, photos: Path, tiny_weights: Path, tmp_path: Path
) -> None:
    sparse, words = _bad_maps(tmp_path)[case]
    out = tmp_path / "d.png"
    result = run("predict", str(photos / "a.png"), "-o", str(out), "--sparse-depth",
                 str(sparse), *tiny(tiny_weights))  # fmt: skip
    assert result.exit_code == 1
    assert result.stderr.startswith(f"dpde: error: {sparse}") and words in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not out.exists()


def test_bad_sparse_map_in_a_batch_fails_that_photo_alone(
    photos: Path, tiny_weights: Path, tmp_path: Path
) -> None:
    maps = tmp_path / "maps"
    maps.mkdir()
    np.save(maps / "a.npy", sparse_map())
    np.save(maps / "b.npy", np.zeros((48, 64), np.float32))  # all empty
    out = tmp_path / "out"
    result = run("predict", str(photos / "a.png"), str(photos / "b.png"), "-o", str(out),
                 "--sparse-depth", str(maps), *tiny(tiny_weights))  # fmt: skip
    assert result.exit_code == 1
    assert f"{maps / 'b.npy'}: no measurement" in result.stderr
    assert (out / "a.png").exists() and not (out / "b.png").exists()


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--anchor", "1,1=2"], "--anchor gives distances in one photo"),
        (["--sparse-depth", "MAP"], "is one sparse map but there are 3 photos"),
        (["--sparse-depth", "nowhere.npy"], "--sparse-depth nowhere.npy: no such file"),
    ],
)
def test_options_that_do_not_fit_a_batch_are_usage_errors(
    args: list[str], words: str, photos: Path, tiny_weights: Path, tmp_path: Path
) -> None:
    np.save(tmp_path / "map.npy", sparse_map())
    args = [str(tmp_path / "map.npy") if a == "MAP" else a for a in args]
    out = tmp_path / "out"
    result = run("predict", str(photos), "-r", "-o", str(out), *args, *tiny(tiny_weights))
    assert result.exit_code == 2 and words in result.stderr, result.output
    assert not out.exists()


def test_pointcloud_refuses_measurements_with_a_depth_map(
    photos: Path, tiny_weights: Path, tmp_path: Path
) -> None:
    depth = tmp_path / "d.npy"
    np.save(depth, np.full((48, 64), 2.0, np.float32))
    result = run("pointcloud", str(photos / "a.png"), "--depth", str(depth), "--anchor",
                 "1,1=2", "-o", str(tmp_path / "c.ply"))  # fmt: skip
    assert result.exit_code == 2 and "not a --depth map" in result.stderr
