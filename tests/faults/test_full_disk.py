"""Full disks (/dev/full, behind a link where a file name is needed) and read-only folders:
one line naming the file, a non-zero exit, nothing partial, inputs unchanged."""

from __future__ import annotations

import errno
import io
import os
import sys
from pathlib import Path

import numpy as np
import pytest

from dpde_cli.errors import OutputError
from tests.faults.conftest import (
    assert_batch_failures,
    assert_one_line_error,
    dpde,
    dpde_process,
    finished,
    leftovers,
    snapshot,
)

FULL = Path("/dev/full")
needs_full = pytest.mark.skipif(not FULL.exists(), reason="no /dev/full here")


def _full_as(path: Path) -> Path:
    """A file name that leads to /dev/full (a command names the format by extension)."""
    path.symlink_to(FULL)
    return path


@needs_full
def test_depth_maps_and_clouds_onto_a_full_disk(photos: Path, tmp_path: Path, tiny) -> None:
    before = snapshot(photos)
    depth = _full_as(tmp_path / "d.npy")
    result = dpde("predict", photos / "a.png", "-o", depth, *tiny)
    [line] = assert_batch_failures(result.exit_code, result.stderr, 1, 1)
    assert line.strip() == f"{photos / 'a.png'}: cannot write {depth} (No space left on device)"
    cloud = _full_as(tmp_path / "c.ply")
    result = dpde("pointcloud", photos / "a.png", "--ply", cloud, "--fov", "60", *tiny)
    [line] = assert_batch_failures(result.exit_code, result.stderr, 1, 1)
    assert f"cannot write {cloud} (" in line
    assert snapshot(photos) == before and not leftovers(tmp_path)
    assert not (tmp_path / "c.intrinsics.json").exists()  # none of a failed input's set


@needs_full
def test_fuse_onto_a_full_disk(tmp_path: Path) -> None:
    np.save(tmp_path / "d.npy", np.full((24, 32), 2.0, np.float32))
    np.save(tmp_path / "g.npy", np.zeros((2, 24, 32), np.float32))
    out = _full_as(tmp_path / "f.npy")
    result = dpde("fuse", tmp_path / "d.npy", "--gradients", tmp_path / "g.npy", "-o", out)
    assert_one_line_error(result.exit_code, result.stderr, 1, out, "No space left on device")


def test_standard_output_that_cannot_be_written_is_one_error(monkeypatch) -> None:
    from dpde_cli.outputs import write_stdout

    class Full(io.StringIO):
        def flush(self) -> None:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(sys, "stdout", Full())
    with pytest.raises(OutputError) as caught:
        write_stdout('{"input": "a.png"}\n')
    assert str(caught.value) == "cannot write standard output (No space left on device)"


@pytest.mark.slow
@needs_full
def test_results_and_reports_into_a_full_disk(photos: Path, rgbd: Path, tmp_path: Path, tiny):
    with open(FULL, "w") as full:  # a real process: stdout is /dev/full itself
        process = dpde_process("predict", photos / "a.png", "-o", tmp_path / "d.png", "--json",
                               *tiny, stdout=full)  # fmt: skip
        code, _, err = finished(process)
    assert_one_line_error(code, err, 1, "cannot write standard output (No space left")
    assert (tmp_path / "d.png").is_file()  # the depth map was whole before its record failed
    evaluate = ["eval", "--dataset", "folder", "--data-dir", rgbd, "--workers", "0", *tiny]
    code, _, err = finished(dpde_process(*evaluate, "--json", FULL))
    assert_one_line_error(code, err, 1, f"cannot write {FULL} (No space left on device)")
    with open(FULL, "w") as full:
        code, _, err = finished(dpde_process(*evaluate, "-q", stdout=full))
    assert_one_line_error(code, err, 1, "cannot write standard output")


@pytest.fixture
def read_only(tmp_path: Path):
    """A folder this process may not write in; skips where chmod does not bite (root)."""
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        (folder / "probe").touch()
    except PermissionError:
        yield folder
    else:
        (folder / "probe").unlink()
        pytest.skip("this user writes in a read-only folder (root): chmod does not bite")
    finally:
        folder.chmod(0o755)


def test_a_read_only_folder(photos: Path, read_only: Path, tmp_path: Path, tiny) -> None:
    result = dpde("predict", photos, "-o", read_only, *tiny)
    lines = assert_batch_failures(result.exit_code, result.stderr, 3, 3)
    assert all("(Permission denied)" in line for line in lines)
    np.save(tmp_path / "d.npy", np.full((24, 32), 2.0, np.float32))
    np.save(tmp_path / "g.npy", np.zeros((2, 24, 32), np.float32))
    out = read_only / "f.npy"
    fused = dpde("fuse", tmp_path / "d.npy", "--gradients", tmp_path / "g.npy", "-o", out)
    assert_one_line_error(fused.exit_code, fused.stderr, 2, out, "Permission denied")
    assert list(read_only.iterdir()) == []
