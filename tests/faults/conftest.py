"""The fault-injection suite's tools: hostile files made by fixtures, the CLI run in this
process or as a real one, and the checks every fault ends with (exit code, one line on
stderr and no traceback, no partial or temporary file, inputs unchanged)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from dpde_cli.cli.app import app

ROOT = Path(__file__).resolve().parents[2]
_runner = CliRunner()
# A real process: the test conftest registers dpde-tiny, then the app runs.
_BOOT = "import sys, tests.conftest; from dpde_cli.cli.app import app; sys.argv[0] = 'dpde'; app()"


def dpde(*args: str | Path, stdin: str | None = None):
    """The CLI in this process (fast): a result with exit_code, stdout, stderr."""
    return _runner.invoke(app, ["--device", "cpu", *map(str, args)], input=stdin)


def dpde_process(*args: str | Path, stdout=subprocess.PIPE, timeout: float = 300, **kwargs):
    """The CLI as a real process (for real streams, /dev/full, kills): a Popen."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-c", _BOOT, "--device", "cpu", *map(str, args)]
    return subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=stdout, stderr=subprocess.PIPE, text=True, **kwargs
    )


def finished(process: subprocess.Popen, timeout: float = 300) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of a process run to its end."""
    out, err = process.communicate(timeout=timeout)
    return process.returncode, out or "", err


def assert_one_line_error(code: int, stderr: str, expected_code: int, *names: object) -> str:
    """The exit code, and one line on stderr naming each of ``names``, no traceback."""
    assert code == expected_code, stderr
    assert "Traceback" not in stderr and "Warning" not in stderr, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("dpde: error: "), stderr
    for name in names:
        assert str(name) in lines[0], (name, lines[0])
    return lines[0]


def assert_batch_failures(code: int, stderr: str, failed: int, total: int) -> list[str]:
    """Exit 1, then a header and one line per failed input on stderr; no traceback."""
    assert code == 1, stderr
    assert "Traceback" not in stderr and "Warning" not in stderr, stderr
    lines = stderr.strip().splitlines()
    assert lines[0] == f"dpde: {failed} of {total} input(s) failed:", stderr
    assert len(lines) == 1 + failed, stderr
    return lines[1:]


def snapshot(*folders: Path) -> dict[Path, str]:
    """sha256 of every file below the folders (or of the files given)."""
    files = [p for f in folders for p in ([f] if f.is_file() else sorted(f.rglob("*")))]
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in files if p.is_file()}


def leftovers(*folders: Path) -> list[Path]:
    """Temporary files of atomic writes left below the folders."""
    return [p for f in folders if f.exists() for p in f.rglob(".*.tmp*")]


@pytest.fixture
def tiny(tiny_weights: Path) -> list[str]:
    """Options that run the test-only tiny model."""
    return ["--model", "dpde-tiny", "--weights", str(tiny_weights), "--no-fuse"]


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    """Three small photos (two sizes) in a folder of their own."""
    rng = np.random.default_rng(0)
    root = tmp_path / "photos"
    root.mkdir()
    for name, size in (("a.png", (24, 32)), ("b.jpg", (24, 32)), ("c.png", (32, 24))):
        Image.fromarray(rng.integers(0, 255, (*size, 3), dtype=np.uint8)).save(root / name)
    return root


@pytest.fixture
def rgbd(tmp_path: Path) -> Path:
    """Two RGB-D frames in the folder layout that `eval --dataset folder` reads."""
    rng = np.random.default_rng(1)
    root = tmp_path / "rgbd"
    (root / "rgb").mkdir(parents=True)
    (root / "depth").mkdir()
    for index in range(2):
        Image.fromarray(rng.integers(0, 255, (24, 32, 3), dtype=np.uint8)).save(
            root / "rgb" / f"f{index}.png"
        )
        Image.fromarray(np.full((24, 32), 2000 + 100 * index, np.uint16)).save(
            root / "depth" / f"f{index}.png"
        )
    return root
