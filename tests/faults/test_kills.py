"""A batch killed (SIGKILL, nothing runs after it) at a random moment while it writes, then
run again: no input changed, no output half-written or missing a part, no temporary file
left once the second run is done, every output there."""

from __future__ import annotations

import json
import random
import signal
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dpde_cli.io import read_depth
from tests.faults.conftest import dpde_process, finished, leftovers, snapshot

pytestmark = pytest.mark.slow  # a real process each time (torch's import)

ROLES = ("{}.png", "{}_color.png", "{}_gradients.npy")


def _complete(out: Path, name: str) -> bool | None:
    """True: the input's outputs are all there and whole; False: none; None: a part."""
    paths = [out / role.format(name) for role in ROLES]
    there = [p.exists() for p in paths]
    if not any(there):
        return False
    if not all(there):
        return None
    assert read_depth(paths[0]).shape == (24, 32)  # whole files: they decode
    assert Image.open(paths[1]).size == (32, 24)
    assert np.load(paths[2]).shape == (2, 24, 32)
    return True


@pytest.mark.parametrize("seed", [0, 1])
def test_a_batch_killed_while_writing_resumes_cleanly(seed: int, tmp_path: Path, tiny) -> None:
    rng = np.random.default_rng(seed)
    photos = tmp_path / "photos"
    photos.mkdir()
    names = [f"p{index:02d}" for index in range(40)]
    for name in names:
        Image.fromarray(rng.integers(0, 255, (24, 32, 3), np.uint8)).save(photos / f"{name}.png")
    before = snapshot(photos)
    out = tmp_path / "out"
    args = ["predict", photos, "-o", out, "--preview", "--save-gradients", "--json", *tiny]
    process = dpde_process(*args, "--batch-size", "1")
    first = process.stdout.readline()  # writing has begun: one input is done
    assert json.loads(first)["input"].endswith(".png"), process.stderr.read()
    time.sleep(random.Random(seed).uniform(0.0, 0.3))
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    process.stdout.close()
    process.stderr.close()
    states = {name: _complete(out, name) for name in names}
    assert None not in states.values(), states  # an input's outputs appear together
    assert any(states.values())

    code, stdout, err = finished(dpde_process(*args))  # the same command again
    assert code == 0 and "Traceback" not in err, err
    redone = [json.loads(line) for line in stdout.splitlines()]
    assert {r["input"] for r in redone if "skipped" not in r} == {
        str(photos / f"{name}.png") for name, done in states.items() if not done
    }
    assert all(_complete(out, name) for name in names)
    assert leftovers(out) == [] and leftovers(photos) == []
    assert snapshot(photos) == before
