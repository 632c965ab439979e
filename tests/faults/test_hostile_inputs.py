"""Hostile and broken input files, made here: each fails alone with one line naming it,
leaves no output of its own, and changes no input; good inputs beside it are done."""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests.faults.conftest import (
    assert_batch_failures,
    assert_one_line_error,
    dpde,
    leftovers,
    snapshot,
)

pytestmark = pytest.mark.filterwarnings("error::RuntimeWarning")  # a raw numpy warning fails


def _png_header(width: int, height: int) -> bytes:
    """A PNG that declares a size and holds no pixels (a decompression bomb's header)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


def _truncated(path: Path) -> bytes:
    return path.read_bytes()[: path.stat().st_size // 2]


BROKEN = {
    "empty.png": lambda photos: b"",
    "garbage.jpg": lambda photos: bytes(range(256)) * 4,
    "truncated.png": lambda photos: _truncated(photos / "a.png"),
    "truncated.jpg": lambda photos: _truncated(photos / "b.jpg"),
    "huge.png": lambda photos: _png_header(100_000, 100_000),
    "text.png": lambda photos: b"<html>not an image</html>",
}


def test_broken_images_fail_alone_and_leave_nothing(photos: Path, tmp_path: Path, tiny) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    for name, make in BROKEN.items():
        (bad / name).write_bytes(make(photos))
    before = snapshot(bad, photos)
    out = tmp_path / "out"
    result = dpde("predict", bad, photos / "a.png", "-o", out, "--preview", *tiny)
    lines = assert_batch_failures(result.exit_code, result.stderr, len(BROKEN), len(BROKEN) + 1)
    for name in BROKEN:  # each failure names its file
        assert sum(name in line for line in lines) == 1, (name, lines)
    assert "image too large (100000x100000" in result.stderr
    assert sorted(p.name for p in out.rglob("*")) == ["a.png", "a_color.png"]
    assert snapshot(bad, photos) == before and not leftovers(out)


def test_every_image_mode_is_read_as_a_photo(tmp_path: Path, tiny) -> None:
    base = Image.fromarray(np.random.default_rng(0).integers(0, 255, (24, 32, 3), np.uint8))
    modes = tmp_path / "modes"
    modes.mkdir()
    for mode in ("1", "L", "LA", "P", "RGBA", "I;16", "I", "F", "CMYK"):
        suffix = ".tiff" if mode in ("I;16", "I", "F", "CMYK") else ".png"
        base.convert(mode).save(modes / f"{mode.replace(';', '')}{suffix}")
    result = dpde("predict", modes, "-o", tmp_path / "out", "--batch-size", "9", *tiny)
    assert result.exit_code == 0, result.output
    written = sorted((tmp_path / "out").iterdir())
    assert len(written) == 9 and {Image.open(p).size for p in written} == {(32, 24)}


def _nan_depth(path: Path, all_nan: bool = False) -> Path:
    depth = np.full((24, 32), 2.0, np.float32)
    depth[:, 16:] = 3.0
    depth[2, 3], depth[4, 5], depth[6, 7] = np.nan, np.inf, -np.inf
    if all_nan:
        depth[:] = np.nan
    Image.fromarray(depth).save(path)
    return path


def test_nan_and_infinite_depth_are_holes_without_a_warning(photos: Path, tmp_path: Path) -> None:
    depth = _nan_depth(tmp_path / "d.tiff")
    photo = tmp_path / "photo.png"
    Image.new("RGB", (32, 24), (10, 20, 30)).save(photo)
    cloud = dpde("pointcloud", photo, "--depth", depth, "--ply", tmp_path / "c.ply", "--fov", "60")
    assert cloud.exit_code == 0 and cloud.stderr == "", cloud.output
    np.save(tmp_path / "g.npy", np.zeros((2, 24, 32), np.float32))
    fused = dpde("fuse", depth, "--gradients", tmp_path / "g.npy", "-o", tmp_path / "f.npy")
    assert fused.exit_code == 0 and fused.stderr == "", fused.output
    assert np.isfinite(np.load(tmp_path / "f.npy")).all()  # the holes are filled
    as_photo = dpde("predict", depth, "-o", tmp_path / "p.png", "--model", "dpde-tiny")
    assert "RuntimeWarning" not in as_photo.output  # a depth map read as a photo: quietly


def test_depth_with_no_valid_value_is_one_line(tmp_path: Path) -> None:
    depth = _nan_depth(tmp_path / "nan.tiff", all_nan=True)
    np.save(tmp_path / "g.npy", np.zeros((2, 24, 32), np.float32))
    result = dpde("fuse", depth, "--gradients", tmp_path / "g.npy", "-o", tmp_path / "f.npy")
    assert_one_line_error(result.exit_code, result.stderr, 1, depth, "no valid depth")
    cloud = dpde("pointcloud", "--depth", depth, "-o", tmp_path / "c.ply", "--fov", "60")
    assert "no valid depth" in cloud.stderr and cloud.exit_code == 1
    assert not (tmp_path / "f.npy").exists() and not (tmp_path / "c.ply").exists()


class _Payload:
    """Unpickling this would run a command that leaves a marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def test_a_weights_file_with_a_pickle_payload_never_runs_it(
    photos: Path, tmp_path: Path, tiny_weights: Path
) -> None:
    marker = tmp_path / "payload-ran"
    evil = tmp_path / "evil.pt"
    state = torch.load(tiny_weights, weights_only=True)
    torch.save({"model": state, "run": _Payload(marker)}, evil)
    result = dpde(
        "predict", photos / "a.png", "-o", tmp_path / "d.png", "-m", "dpde-tiny", "-w", evil
    )
    line = assert_one_line_error(result.exit_code, result.stderr, 1, evil)
    assert "weights_only" not in line and "allowlist" not in line.lower()
    assert not marker.exists() and not (tmp_path / "d.png").exists()


def test_a_weights_file_asking_for_a_huge_input_is_refused_before_allocating(
    photos: Path, tmp_path: Path, tiny_weights: Path
) -> None:
    huge = tmp_path / "huge.pt"
    state = torch.load(tiny_weights, weights_only=True)
    torch.save({"model": state, "run": {"model": "dpde-tiny", "input_size": [16384, 16384]}}, huge)
    result = dpde(
        "predict", photos / "a.png", "-o", tmp_path / "d.png", "-m", "dpde-tiny", "-w", huge
    )
    assert_one_line_error(result.exit_code, result.stderr, 1, huge, "past the limit")
    option = dpde("predict", photos / "a.png", "--input-size", "16384", "16384", "-m", "dpde-tiny")
    assert_one_line_error(option.exit_code, option.stderr, 2, "16384x16384", "past the limit")
    assert not (tmp_path / "d.png").exists()


def test_a_camera_file_that_is_garbage_is_a_usage_error(photos: Path, tmp_path: Path) -> None:
    camera = tmp_path / "cam.json"
    camera.write_text(json.dumps({"fx": "wide"}))
    depth = tmp_path / "d.npy"
    np.save(depth, np.full((24, 32), 2.0, np.float32))
    result = dpde("pointcloud", photos / "a.png", "--depth", depth, "--intrinsics", camera)
    assert_one_line_error(result.exit_code, result.stderr, 2, camera)
