"""Intrinsics, back-projection, depth edges and where the intrinsics come from."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, TiffImagePlugin

from dpde_cli.errors import InputError
from dpde_cli.geometry import (
    Intrinsics,
    backproject,
    depth_discontinuities,
    exif_intrinsics,
    read_intrinsics_file,
    resolve_intrinsics,
)

K = Intrinsics(fx=100.0, fy=80.0, cx=32.0, cy=24.0, width=64, height=48)
# Exif IFD (0x8769) tags
FOCAL, FOCAL_35MM = 0x920A, 0xA405
PLANE_X, PLANE_Y, PLANE_UNIT = 0xA20E, 0xA20F, 0xA210
PIXEL_X, PIXEL_Y = 0xA002, 0xA003


def write_exif_jpeg(
    path: Path, tags: dict[int, float], size: tuple[int, int] = (64, 48), orientation: int = 1
) -> Path:
    """A JPEG of (width, height) with the given Exif-IFD tags, written as a camera does."""
    image = Image.fromarray(np.full((size[1], size[0], 3), 128, dtype=np.uint8))
    exif = image.getexif()
    ifd = exif.get_ifd(0x8769)
    for number, value in tags.items():
        ifd[number] = value if isinstance(value, int) else TiffImagePlugin.IFDRational(value)
    if orientation != 1:
        exif[0x0112] = orientation
    image.save(path, exif=exif)
    return path


# ------------------------------------------------------------------------------ Intrinsics


def test_matrix_and_fov() -> None:
    np.testing.assert_array_equal(K.as_matrix(), [[100, 0, 32], [0, 80, 24], [0, 0, 1]])
    assert Intrinsics.from_matrix(K.as_matrix(), 64, 48) == K
    wide = Intrinsics.from_fov(90.0, 640, 480)
    assert wide.fx == pytest.approx(320.0) and wide.fy == pytest.approx(320.0)
    assert (wide.cx, wide.cy) == (319.5, 239.5)  # the centre between the middle pixels
    assert wide.fov_degrees()[0] == pytest.approx(90.0)
    assert Intrinsics.from_fov(60.0, 640, 480, vertical=True).fov_degrees()[1] == pytest.approx(60)
    with pytest.raises(ValueError):
        Intrinsics.from_fov(180.0, 640, 480)
    with pytest.raises(ValueError):
        Intrinsics(-1.0, 1.0, 0.0, 0.0, 4, 4)
    with pytest.raises(ValueError, match="skew"):
        Intrinsics.from_matrix([[100, 3, 32], [0, 80, 24], [0, 0, 1]], 64, 48)


def test_nyu_kinect_default() -> None:
    kinect = Intrinsics.nyu_kinect()
    assert (kinect.width, kinect.height) == (640, 480)
    assert (round(kinect.fx, 2), round(kinect.fy, 2)) == (518.86, 519.47)
    assert (round(kinect.cx, 2), round(kinect.cy, 2)) == (325.58, 253.74)


def test_scaled_pixel_centre_convention() -> None:
    """Integer coordinates are pixel centres: halving maps x to (x + 0.5) / 2 - 0.5."""
    half = K.scaled(32, 24)
    assert (half.fx, half.fy) == (50.0, 40.0)
    assert (half.cx, half.cy) == (15.75, 11.75)  # (32 + 0.5) / 2 - 0.5, (24 + 0.5) / 2 - 0.5
    # the exact image centre stays the centre; scaling there and back is the identity
    centred = Intrinsics(100.0, 100.0, 319.5, 239.5, 640, 480)
    assert (centred.scaled(320, 240).cx, centred.scaled(320, 240).cy) == (159.5, 119.5)
    back = K.scaled(32, 24).scaled(64, 48)
    for name in ("fx", "fy", "cx", "cy"):
        assert getattr(back, name) == pytest.approx(getattr(K, name))
    # a 3D point projects to the same place in the continuous image (pixel edges at 0, W)
    point = np.array([0.3, -0.2, 2.0])
    for w, h in ((32, 24), (128, 96), (96, 48)):  # also a non-uniform resize
        small = K.scaled(w, h)
        u_full = (K.as_matrix() @ point / point[2])[:2]
        u_small = (small.as_matrix() @ point / point[2])[:2]
        np.testing.assert_allclose((u_small + 0.5) / (w / 64, h / 48), u_full + 0.5)


# ------------------------------------------------------------------------------ backproject


def plane_and_box_depth(k: Intrinsics) -> tuple[np.ndarray, np.ndarray]:
    """A slanted plane 0.1 x + 0.2 y + z = 3 with a box face at z = 1 in front of it.

    Returns the depth map (H, W) and a mask of the box face.
    """
    u = (np.arange(k.width) - k.cx) / k.fx
    v = (np.arange(k.height)[:, None] - k.cy) / k.fy
    depth = 3.0 / (0.1 * u + 0.2 * v + 1.0)  # ray (u, v, 1) hits the plane at this z
    box = (np.abs(u) <= 0.1) & (np.abs(v) <= 0.05)  # X in [-0.1, 0.1], Y in [-0.05, 0.05] at z 1
    return np.where(box, 1.0, depth), box


def test_backproject_plane_and_box_exact() -> None:
    depth, box = plane_and_box_depth(K)
    points = backproject(depth, K)
    assert points.shape == (48, 64, 3) and points.dtype == np.float64
    plane = points[~box]
    np.testing.assert_allclose(plane @ [0.1, 0.2, 1.0], 3.0, rtol=0, atol=1e-12)
    face = points[box]
    np.testing.assert_array_equal(face[:, 2], 1.0)
    assert np.abs(face[:, 0]).max() <= 0.1 and np.abs(face[:, 1]).max() <= 0.05
    # hand-computed pixels: (u, v) = (42, 24) and (32, 29) on the box face at z = 1
    np.testing.assert_allclose(points[24, 42], [0.1, 0.0, 1.0], atol=1e-15)
    np.testing.assert_allclose(points[28, 32], [0.0, 0.05, 1.0], atol=1e-15)
    # the principal point maps onto the optical axis
    np.testing.assert_allclose(points[24, 32], [0.0, 0.0, 1.0])


def test_backproject_rescales_to_a_smaller_depth_map() -> None:
    """A half-size depth map takes the scaled camera: pixel u' sits at 2u' + 0.5 in full size."""
    small = np.full((24, 32), 2.0)
    points = backproject(small, K)  # K is for 64x48: rescaled inside
    np.testing.assert_array_equal(points, backproject(small, K.scaled(32, 24)))
    u, v = 5, 7
    np.testing.assert_allclose(
        points[v, u], [(2 * u + 0.5 - K.cx) / K.fx * 2.0, (2 * v + 0.5 - K.cy) / K.fy * 2.0, 2.0]
    )


@pytest.mark.parametrize("shape", [(48, 64), (1, 48, 64), (3, 48, 64), (2, 1, 48, 64)])
def test_backproject_torch_matches_numpy(shape: tuple[int, ...], device: str) -> None:
    depth = np.random.default_rng(0).uniform(0.5, 5.0, shape)
    expected = backproject(depth, K)
    assert expected.shape == (*shape, 3)
    got = backproject(torch.from_numpy(depth).to(device), K)
    assert got.shape == (*shape, 3) and got.dtype == torch.float64
    np.testing.assert_allclose(got.cpu().numpy(), expected, rtol=1e-12)
    assert backproject(torch.ones(48, 64, dtype=torch.float32), K).dtype == torch.float32
    assert backproject(np.ones((48, 64), dtype=np.uint16), K).dtype == np.float64


def test_backproject_gradcheck() -> None:
    depth = torch.rand(2, 5, 6, dtype=torch.float64, requires_grad=True)
    k = Intrinsics(4.0, 5.0, 2.5, 2.0, 6, 5)
    assert torch.autograd.gradcheck(lambda d: backproject(d, k), (depth,))


# ------------------------------------------------------------------------------ depth edges


def test_discontinuities_mark_jumps_not_slopes() -> None:
    depth = np.full((6, 8), 1.0)
    depth[:, 4:] = 3.0  # a step between columns 3 and 4
    depth[0, 0] = 0.0  # no depth: not an edge, and no edge to its neighbours
    edges = depth_discontinuities(depth, 0.05)
    assert edges[:, 3:5].all() and not edges[:, :3].any() and not edges[:, 5:].any()
    slope = np.linspace(2.0, 2.5, 8)[None].repeat(6, 0)  # 1% per pixel: a slanted plane
    assert not depth_discontinuities(slope, 0.05).any()
    diagonal = np.where(np.add.outer(np.arange(6), np.arange(8)) >= 7, 3.0, 1.0)
    four = depth_discontinuities(diagonal, 0.05, neighbours=4)
    eight = depth_discontinuities(diagonal, 0.05, neighbours=8)
    assert four.sum() < eight.sum() and (four <= eight).all()


# ------------------------------------------------------------------------------ sources


def test_exif_35mm_long_side(tmp_path: Path) -> None:
    path = write_exif_jpeg(tmp_path / "a.jpg", {FOCAL_35MM: 28, FOCAL: 4.2})
    k, source = exif_intrinsics(path, 64, 48)
    assert source == "exif-35mm"
    assert k.fx == k.fy == pytest.approx(28 / 36 * 64)  # the long side is the 36 mm side
    assert (k.cx, k.cy) == (31.5, 23.5)
    # portrait (rotated by EXIF): the long side is now the height
    tall = write_exif_jpeg(tmp_path / "t.jpg", {FOCAL_35MM: 28}, orientation=6)
    k, _ = exif_intrinsics(tall, 48, 64)
    assert k.fx == pytest.approx(28 / 36 * 64) and (k.width, k.height) == (48, 64)


def test_exif_focal_plane_resolution(tmp_path: Path) -> None:
    # 4.2 mm lens, 1000 px/cm sensor (unit 3 = cm), shot at 128x96, file now 64x48
    sensor = {FOCAL: 4.2, PLANE_X: 1000.0, PLANE_Y: 500.0, PLANE_UNIT: 3}
    path = write_exif_jpeg(tmp_path / "b.jpg", {**sensor, PIXEL_X: 128, PIXEL_Y: 96})
    k, source = exif_intrinsics(path, 64, 48)
    assert source == "exif-focal-plane"
    assert k.fx == pytest.approx(4.2 * 100 / 2) and k.fy == pytest.approx(4.2 * 50 / 2)
    # rotated for display: the sensor's y resolution is now across
    turned = write_exif_jpeg(tmp_path / "c.jpg", sensor, orientation=8)
    k, _ = exif_intrinsics(turned, 48, 64)
    assert k.fx == pytest.approx(4.2 * 50) and k.fy == pytest.approx(4.2 * 100)


def test_exif_of_a_heic_photo(tmp_path: Path) -> None:
    import pillow_heif

    image = Image.new("RGB", (64, 48))
    exif = image.getexif()
    exif.get_ifd(0x8769)[FOCAL_35MM] = 28
    path = tmp_path / "phone.heic"
    pillow_heif.from_pillow(image).save(path, exif=exif.tobytes())
    k, source = exif_intrinsics(path, 64, 48)
    assert source == "exif-35mm" and k.fx == pytest.approx(28 / 36 * 64)


def test_no_exif(tmp_path: Path) -> None:
    plain = tmp_path / "p.png"
    Image.new("RGB", (8, 6)).save(plain)
    assert exif_intrinsics(plain, 8, 6) is None
    assert exif_intrinsics(write_exif_jpeg(tmp_path / "z.jpg", {FOCAL_35MM: 0}), 64, 48) is None
    broken = write_exif_jpeg(tmp_path / "w.jpg", {FOCAL_35MM: 1})  # a 172-degree view: a bad tag
    assert exif_intrinsics(broken, 64, 48) is None
    assert exif_intrinsics(tmp_path / "missing.jpg", 8, 6) is None


def test_precedence(tmp_path: Path) -> None:
    photo = write_exif_jpeg(tmp_path / "a.jpg", {FOCAL_35MM: 28})
    camera = tmp_path / "cam.json"
    camera.write_text(json.dumps({"fx": 200, "fy": 210, "cx": 60, "cy": 50, "width": 128}))
    with pytest.raises(InputError, match="cam.json"):  # width without height
        resolve_intrinsics(64, 48, file=camera)
    camera.write_text(json.dumps({**K.scaled(128, 96).to_dict()}))
    everything = {"fx": 90.0, "file": camera, "image": photo, "fov": 60.0}

    k, source = resolve_intrinsics(64, 48, **everything)
    assert source == "options" and (k.fx, k.fy) == (90.0, 90.0)
    assert (k.cx, k.cy) == pytest.approx((K.cx, K.cy))  # principal point from the file
    k, source = resolve_intrinsics(64, 48, **{**everything, "fx": None})
    assert source == "file" and k.fx == pytest.approx(K.fx)  # rescaled from 128x96
    k, source = resolve_intrinsics(64, 48, image=photo, fov=60.0)
    assert source == "exif-35mm" and k.fx == pytest.approx(28 / 36 * 64)
    k, source = resolve_intrinsics(64, 48, fov=60.0)
    assert source == "fov" and k.fov_degrees()[0] == pytest.approx(60.0)
    k, source = resolve_intrinsics(64, 48)
    assert source == "default" and k == Intrinsics.nyu_kinect().scaled(64, 48)
    k, source = resolve_intrinsics(64, 48, fy=70.0, cy=20.0)
    assert source == "options" and (k.fx, k.fy, k.cx, k.cy) == (70.0, 70.0, 31.5, 20.0)
    k, source = resolve_intrinsics(64, 48, image=photo, cx=30.0)
    assert source == "exif-35mm+options" and (k.cx, k.cy) == (30.0, 23.5)


def test_default_for_other_aspect_ratios() -> None:
    k, source = resolve_intrinsics(1920, 1080)
    kinect = Intrinsics.nyu_kinect()
    assert source == "default"
    assert k.fov_degrees()[0] == pytest.approx(kinect.fov_degrees()[0])  # across the long side
    assert (k.cx, k.cy) == (959.5, 539.5)
    k, _ = resolve_intrinsics(1080, 1920)
    assert k.fov_degrees()[1] == pytest.approx(kinect.fov_degrees()[0])


@pytest.mark.parametrize(
    "text",
    [
        json.dumps({"fx": 100, "fy": 80, "cx": 32, "cy": 24, "width": 64, "height": 48}),
        json.dumps({"K": K.as_matrix().tolist(), "width": 64, "height": 48}),
        json.dumps(
            {"width": 64, "height": 48, "intrinsic_matrix": [100, 0, 0, 0, 80, 0, 32, 24, 1]}
        ),
        json.dumps([100, 80, 32, 24]),
        json.dumps(K.as_matrix().tolist()),
        "100 80 32 24\n",
        "100, 0, 32\n0, 80, 24\n0, 0, 1\n",
    ],
)
def test_intrinsics_files(tmp_path: Path, text: str) -> None:
    path = tmp_path / "cam.txt"
    path.write_text(text)
    k, values = read_intrinsics_file(path)
    assert values == (100.0, 80.0, 32.0, 24.0)
    assert k is None or k == K
    got, source = resolve_intrinsics(64, 48, file=path)
    assert got == K and source == "file"


def test_intrinsics_savetxt_and_bad_files(tmp_path: Path) -> None:
    matrix = tmp_path / "K.txt"
    np.savetxt(matrix, K.as_matrix())
    assert read_intrinsics_file(matrix)[1] == (100.0, 80.0, 32.0, 24.0)
    for name, text in {
        "words.txt": "no numbers here",
        "negative.json": '{"fx": -1, "fy": 1, "cx": 0, "cy": 0}',
        "missing.json": '{"fx": 1, "fy": 1}',
        "skew.txt": "100 5 32\n0 80 24\n0 0 1\n",
        "shape.json": "[1, 2, 3]",
    }.items():
        (tmp_path / name).write_text(text)
        with pytest.raises(InputError, match=name):
            read_intrinsics_file(tmp_path / name)
    with pytest.raises(InputError, match="no such"):
        read_intrinsics_file(tmp_path / "absent.json")
    wide = tmp_path / "wide.json"
    wide.write_text(json.dumps({**K.to_dict(), "width": 128, "height": 48}))
    with pytest.raises(InputError, match="aspect ratio"):
        resolve_intrinsics(64, 48, file=wide)


def test_fov_geometry_is_consistent() -> None:
    """The edge of the image is fov / 2 away from the axis (pixel edges at -0.5 and W - 0.5)."""
    k = Intrinsics.from_fov(70.0, 100, 50)
    edge = (k.width - 0.5 - k.cx) / k.fx
    assert math.degrees(math.atan(edge)) == pytest.approx(35.0)


def test_same_aspect_is_one_view_at_another_resolution() -> None:
    from dpde_cli.geometry import same_aspect

    assert same_aspect((480, 640), (240, 320)) and same_aspect((480, 640), (483, 640))
    assert not same_aspect((480, 640), (640, 480)) and not same_aspect((480, 640), (490, 640))
    assert Intrinsics.nyu_kinect().same_aspect(320, 240)
