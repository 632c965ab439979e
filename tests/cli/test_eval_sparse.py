"""`dpde eval --sparse-samples N`: completion scored on any dataset (Ma & Karaman's
sparse-to-dense protocol), its row beside the model's own."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from dpde_cli.cli.app import app

runner = CliRunner()
COMPLETED = "DPDE completed from {} samples"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """Two RGB-D frames whose depth is a ramp (1.5-3.5 m), a few pixels without depth."""
    rng = np.random.default_rng(3)
    root = tmp_path / "captures"
    (root / "rgb").mkdir(parents=True)
    (root / "depth").mkdir()
    ramp = np.linspace(1500, 3500, 64)[None, :].repeat(48, axis=0).astype(np.uint16)
    for index in range(2):
        depth = ramp + 100 * index
        depth[:5, :5] = 0
        Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(
            root / "rgb" / f"f{index}.png"
        )
        Image.fromarray(depth).save(root / "depth" / f"f{index}.png")
    return root


def evaluate(folder: Path, weights: Path, report: Path, *args: str) -> dict:
    result = runner.invoke(
        app,
        ["--device", "cpu", "eval", "--model", "dpde-tiny", "--weights", str(weights),
         "--workers", "0", "--dataset", "folder", "--data-dir", str(folder), "--no-fuse",
         "--json", str(report), *args],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return json.loads(report.read_text())


def test_every_valid_pixel_as_a_sample_gives_the_ground_truth(
    folder: Path, tiny_weights: Path, tmp_path: Path
) -> None:
    report = evaluate(folder, tiny_weights, tmp_path / "r.json", "--sparse-samples", "5000")
    completed = report["results"][COMPLETED.format(5000)]
    assert completed["abs_rel"] < 1e-3  # measured everywhere: the depth is the measurement
    network = report["results"]["DPDE without gradient stream"]
    assert network["abs_rel"] > 0.05
    assert "Ma & Karaman 2018" in report["protocol"] and "seed 0" in report["protocol"]
    assert report["images"] == 2


def test_the_seed_draws_the_same_pixels_again_and_another_seed_others(
    folder: Path, tiny_weights: Path, tmp_path: Path
) -> None:
    def rel(seed: str, name: str) -> float:
        args = ("--sparse-samples", "1", "--sparse-seed", seed)
        report = evaluate(folder, tiny_weights, tmp_path / name, *args)
        return report["results"][COMPLETED.format(1)]["abs_rel"]

    first = rel("7", "a.json")
    assert rel("7", "b.json") == first
    assert rel("8", "c.json") != first


def test_a_seed_without_samples_is_a_usage_error(folder: Path, tiny_weights: Path) -> None:
    result = runner.invoke(
        app,
        ["eval", "--dataset", "folder", "--data-dir", str(folder), "--sparse-seed", "3"],
    )
    assert result.exit_code == 2 and "--sparse-samples" in result.stderr


def test_samples_are_drawn_only_where_the_protocol_scores(tmp_path: Path) -> None:
    import torch

    from dpde_cli.evaluate import SparseSamples
    from dpde_cli.predict import BatchPrediction

    depth = torch.full((1, 1, 6, 8), 2.0)
    out = BatchPrediction(depth, depth, torch.zeros(1, 2, 6, 8), (6, 8), [None])
    gt = torch.full((1, 1, 12, 16), 3.0)  # twice the prediction's grid
    mask = torch.zeros_like(gt, dtype=torch.bool)
    mask[..., 4, 6] = True  # one scored pixel: lands on the prediction's (2, 3)
    completed = SparseSamples(10).complete(out, gt, mask, indices=[0])
    assert completed.shape == depth.shape
    np.testing.assert_allclose(completed.numpy(), 3.0, rtol=1e-6)  # one point: the scale
