"""`dpde eval` end to end: generated folder data, the real frames, outputs, errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from dpde_cli.cli.app import app

runner = CliRunner()


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """Three RGB-D frames in the folder layout, one with no valid depth at all."""
    rng = np.random.default_rng(0)
    root = tmp_path / "captures"
    (root / "rgb").mkdir(parents=True)
    (root / "depth").mkdir()
    for index in range(3):
        rgb = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
        depth = np.full((48, 64), 2000 + 500 * index, np.uint16)
        if index == 2:
            depth[:] = 0
        Image.fromarray(rgb).save(root / "rgb" / f"f{index}.png")
        Image.fromarray(depth).save(root / "depth" / f"f{index}.png")
    return root


def run(*args: str):
    return runner.invoke(app, ["--device", "cpu", *args])


def run_tiny(weights: Path, *args: str):
    """`dpde eval` with the registered test model and these weights, without loader workers."""
    return run("eval", "--model", "dpde-tiny", "--weights", str(weights), "--workers", "0", *args)


def test_folder_eval_writes_json_csv_and_predictions(
    folder: Path, tiny_weights: Path, tmp_path: Path
) -> None:
    result = run_tiny(
        tiny_weights,
        "--dataset",
        "folder",
        "--data-dir",
        str(folder),
        "--no-fuse",
        "--json",
        str(tmp_path / "r.json"),
        "--csv",
        str(tmp_path / "r.csv"),
        "--save-predictions",
        str(tmp_path / "pred"),
        "--constant-baseline",
        "2.5",
    )
    assert result.exit_code == 0, result.output
    assert "protocol: no crop" in result.stdout
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["images"] == 2 and report["skipped"] == ["f2"]
    rows = report["results"]
    assert set(rows) == {
        "DPDE without gradient stream",
        "constant 2.5 m",
        "constant x GT median (oracle)",
    }
    # The oracle-scaled constant is exact on these flat frames.
    assert rows["constant x GT median (oracle)"]["abs_rel"] == pytest.approx(0.0, abs=1e-6)
    # A constant 2.5 m against 2.0 and 2.5 m ground truth: REL = mean(0.25, 0).
    assert rows["constant 2.5 m"]["abs_rel"] == pytest.approx(0.125, abs=1e-6)
    assert len((tmp_path / "r.csv").read_text().splitlines()) == 4
    assert sorted(p.name for p in (tmp_path / "pred").iterdir()) == ["f0.png", "f1.png", "f2.png"]


def test_ablation_reports_both_streams(folder: Path, tiny_weights: Path, tmp_path: Path) -> None:
    result = run_tiny(
        tiny_weights,
        "--dataset",
        "folder",
        "--data-dir",
        str(folder),
        "--ablation",
        "--json",
        str(tmp_path / "r.json"),
        "--limit",
        "2",
    )
    assert result.exit_code == 0, result.output
    rows = json.loads((tmp_path / "r.json").read_text())["results"]
    assert set(rows) == {"DPDE", "DPDE without gradient stream"}


def test_protocol_overrides_are_printed(folder: Path, tiny_weights: Path) -> None:
    result = run_tiny(
        tiny_weights,
        "--dataset",
        "folder",
        "--data-dir",
        str(folder),
        "--no-fuse",
        "--align",
        "median",
        "--averaging",
        "pixel",
        "--max-depth",
        "5",
    )
    assert result.exit_code == 0, result.output
    out = " ".join(result.stdout.split())
    assert "median scaling per image" in out and "pooled over all pixels" in out
    assert "gt < 5 m" in out


def test_missing_nyu_file_says_where_to_get_it(tmp_path: Path) -> None:
    result = run("eval", "--dataset", "nyuv2", "--data-dir", str(tmp_path))
    assert result.exit_code != 0
    assert "nyu_depth_v2_labeled.mat" in result.stderr
    assert "Traceback" not in result.output


def test_option_for_another_dataset_is_a_usage_error(folder: Path) -> None:
    result = run("eval", "--dataset", "folder", "--data-dir", str(folder), "--gt", "raw")
    assert result.exit_code == 2 and "gt" in result.stderr


def test_real_frames_nyu_raw_and_middlebury(
    shared_data: Path, tiny_weights: Path, tmp_path: Path
) -> None:
    for dataset, folder_name in (("folder", "nyu-raw"), ("middlebury", "middlebury")):
        out = tmp_path / f"{dataset}.json"
        result = run_tiny(
            tiny_weights,
            "--dataset",
            dataset,
            "--data-dir",
            str(shared_data / folder_name),
            "--json",
            str(out),
            "--metric",
            "ssim",
            "--metric",
            "gsm",
        )
        assert result.exit_code == 0, result.output
        report = json.loads(out.read_text())
        assert report["images"] == 3
        values = report["results"]["DPDE"]
        assert 0 < values["abs_rel"] < 10 and 0 <= values["d1"] <= 1
        assert 0 <= values["ssim"] <= 1 and 0 <= values["gsm"] <= 1


def test_several_folders_are_one_set(folder: Path, tiny_weights: Path, tmp_path: Path) -> None:
    import shutil

    other = tmp_path / "other"
    shutil.copytree(folder, other)
    out = tmp_path / "r.json"
    result = run_tiny(
        tiny_weights,
        "--dataset",
        "folder",
        "--data-dir",
        str(folder),
        "--data-dir",
        str(other),
        "--no-fuse",
        "--json",
        str(out),
    )
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["images"] == 4 and report["skipped"] == ["captures/f2", "other/f2"]
    names = [r["name"] for r in report["per_image"]["DPDE without gradient stream"]]
    assert names == ["captures/f0", "captures/f1", "other/f0", "other/f1"]
