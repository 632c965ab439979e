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
    assert result.exit_code == 2
    assert "--gt is for --dataset nyuv2 (filled or raw depth), not folder" in result.stderr
    synthetic = run("eval", "--dataset", "synthetic", "--depth-scale", "256")
    assert synthetic.exit_code == 2
    assert "--depth-scale is for --dataset folder, not synthetic" in synthetic.stderr


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


def _break(root: Path, kind: str) -> None:
    """Spoil the folder's first pair the way the audit's folders were spoilt."""
    if kind == "8-bit depth":
        Image.fromarray(np.zeros((48, 64), np.uint8)).save(root / "depth" / "f0.png")
    elif kind == "depth of another size":
        Image.fromarray(np.full((24, 32), 2000, np.uint16)).save(root / "depth" / "f0.png")
    else:
        (root / "rgb" / "f0.png").write_bytes(b"not an image")


@pytest.mark.parametrize("kind", ["8-bit depth", "depth of another size", "rgb not an image"])
def test_a_bad_pair_is_left_out_and_reported_at_the_end(
    folder: Path, tiny_weights: Path, kind: str, tmp_path: Path
) -> None:
    _break(folder, kind)
    report = tmp_path / "r.json"
    args = ["--dataset", "folder", "--data-dir", str(folder), "--no-fuse", "--workers", "2"]
    result = run(
        "eval", "--model", "dpde-tiny", "--weights", str(tiny_weights), *args, "--json", str(report)
    )
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "(all, 1 images)" in result.stdout  # f1 scored; f2 has no valid depth
    lines = result.stderr.strip().splitlines()
    assert lines[-2:][0] == "dpde: 1 of 3 input(s) failed:"
    assert lines[-1].startswith(f"  {folder}/") and "f0.png" in lines[-1]
    written = json.loads(report.read_text())
    assert (
        written["images"] == 1 and len(written["failed"]) == 1 and "f0.png" in written["failed"][0]
    )


def test_when_no_pair_can_be_read_it_is_one_error(folder: Path, tiny_weights: Path) -> None:
    for index in range(3):
        (folder / "rgb" / f"f{index}.png").write_bytes(b"not an image")
    result = run_tiny(tiny_weights, "--dataset", "folder", "--data-dir", str(folder))
    assert result.exit_code == 1 and "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        "dpde: error: no image could be read; the first:"
    )


def test_nyuv2_ground_truth_is_in_the_protocol(tmp_path: Path, tiny_weights: Path) -> None:
    import scipy.io

    from tests.data.test_nyuv2 import write_labeled_mat

    write_labeled_mat(tmp_path / "nyu_depth_v2_labeled.mat")
    splits = {"trainNdxs": np.array([[1]]), "testNdxs": np.array([[2], [3]])}
    scipy.io.savemat(tmp_path / "splits.mat", splits)
    for gt in ("filled", "raw"):
        out = tmp_path / f"{gt}.json"
        args = ["--dataset", "nyuv2", "--data-dir", str(tmp_path), "--no-fuse", "--crop", "none"]
        result = run_tiny(tiny_weights, *args, "--gt", gt, "--json", str(out))
        assert result.exit_code == 0, result.output
        report = json.loads(out.read_text())
        assert f"NYUv2 {gt} depth" in report["ground_truth"]
        assert report["protocol"].startswith(f"ground truth NYUv2 {gt} depth")
        assert f"NYUv2 {gt} depth" in " ".join(result.stdout.split())


def test_limit_is_named_in_the_ground_truth(tiny_weights: Path) -> None:
    result = run_tiny(tiny_weights, "--dataset", "synthetic", "--limit", "2", "-q", "--json", "-")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["images"] == 2
    assert report["ground_truth"].endswith("scenes 1000000-1000099, the first 2 of 100 images")
    assert "the first 2 of 100 images" in report["protocol"]


def test_synthetic_takes_no_data_dir(tmp_path: Path) -> None:
    result = run("eval", "--dataset", "synthetic", "--data-dir", str(tmp_path))
    assert result.exit_code == 2 and "--data-dir" in result.stderr


def test_folders_of_one_name_keep_their_predictions_apart(
    folder: Path, tiny_weights: Path, tmp_path: Path
) -> None:
    import shutil

    a, b = tmp_path / "x" / "data", tmp_path / "y" / "data"
    shutil.copytree(folder, a)
    shutil.copytree(folder, b)
    pred = tmp_path / "pred"
    args = ["--dataset", "folder", "--no-fuse", "--save-predictions", str(pred)]
    result = run_tiny(tiny_weights, *args, "--data-dir", str(a), "--data-dir", str(b))
    assert result.exit_code == 0, result.output
    saved = sorted(str(p.relative_to(pred)) for p in pred.rglob("*.png"))
    assert saved == [f"{d}/data/f{i}.png" for d in "xy" for i in range(3)]
    twice = run_tiny(tiny_weights, *args, "--data-dir", str(a), "--data-dir", f"{a}/../data")
    assert twice.exit_code == 2 and "once" in twice.stderr


def test_a_folder_has_only_the_split_all(folder: Path, tiny_weights: Path) -> None:
    for split in ("test", "train"):
        result = run_tiny(
            tiny_weights, "--dataset", "folder", "--data-dir", str(folder), "--split", split
        )
        assert result.exit_code == 2 and "'all'" in result.stderr
    result = run_tiny(tiny_weights, "--dataset", "folder", "--data-dir", str(folder), "--no-fuse")
    assert result.exit_code == 0, result.output
    assert "(all, 2 images)" in result.stdout


def test_relative_middlebury_depth_refuses_metric_scoring(tmp_path: Path) -> None:
    root = tmp_path / "middlebury"
    (root / "rgb").mkdir(parents=True)
    (root / "disparity").mkdir()
    Image.fromarray(np.full((15, 20, 3), 90, np.uint8)).save(root / "rgb" / "cones.png")
    Image.fromarray(np.full((15, 20), 40, np.uint8)).save(root / "disparity" / "cones.png")
    (root / "meta.json").write_text(json.dumps({"cones": {"disparity_scale": 4}}))
    result = run("eval", "--dataset", "middlebury", "--data-dir", str(root), "--align", "none")
    assert result.exit_code == 2
    assert "no metric scale" in result.stderr and "--align median" in result.stderr


def test_quiet_after_the_command(folder: Path, tiny_weights: Path) -> None:
    result = run_tiny(tiny_weights, "-q", "--dataset", "folder", "--data-dir", str(folder))
    assert result.exit_code == 0, result.output


def test_aligned_constant_baseline_is_one_honest_row(
    folder: Path, tiny_weights: Path, tmp_path: Path
) -> None:
    out = tmp_path / "r.json"
    args = ["--dataset", "folder", "--data-dir", str(folder), "--no-fuse", "--align", "median"]
    result = run_tiny(tiny_weights, *args, "--constant-baseline", "2.93", "--json", str(out))
    assert result.exit_code == 0, result.output
    rows = json.loads(out.read_text())["results"]
    assert set(rows) == {"DPDE without gradient stream", "constant depth, median-aligned"}


def test_workers_default_to_the_usable_cpus(
    folder: Path, tiny_weights: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    from dpde_cli import evaluate
    from dpde_cli.errors import DpdeError

    seen = {}

    def fake_evaluate(*args, **kwargs):
        seen.update(kwargs)
        raise DpdeError("stop here")

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0}, raising=False)
    monkeypatch.setattr(evaluate, "evaluate_share", fake_evaluate)
    args = ["--model", "dpde-tiny", "--weights", str(tiny_weights), "--no-fuse"]
    result = run("eval", *args, "--dataset", "folder", "--data-dir", str(folder))
    assert result.exit_code == 1 and seen["workers"] == 1


@pytest.mark.parametrize(("cap", "far"), [([], 10.0), (["--max-depth", "80"], 80.0)])
def test_the_model_s_clamp_widens_to_the_protocol_s_range(
    folder: Path, tiny_weights: Path, monkeypatch: pytest.MonkeyPatch, cap: list[str], far: float
) -> None:
    # KITTI-like folders are scored to 80 m: predictions must not be clipped at the 10 m
    # of an indoor model's range before the protocol sees them
    import dpde_cli.evaluate

    seen = {}

    def capture(predictor, *args, **kwargs):
        seen["range"] = predictor.inference.depth_range
        raise RuntimeError("captured")

    monkeypatch.setattr(dpde_cli.evaluate, "evaluate_share", capture)
    result = run_tiny(tiny_weights, "--dataset", "folder", "--data-dir", str(folder), *cap)
    assert isinstance(result.exception, RuntimeError)
    assert seen["range"] == (0.1, far)


def test_json_to_stdout_leaves_stdout_machine_readable(
    folder: Path, tiny_weights: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # where a file named "-" would land
    result = run_tiny(tiny_weights, "--dataset", "folder", "--data-dir", str(folder), "--json", "-")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)  # the table went to stderr
    assert report["images"] == 2 and "DPDE" in report["results"]
    assert "protocol: no crop" in result.stderr
    assert all(label in result.stderr for label in ("d<1.25^2", "d<1.25^3", "SILog"))  # uncut
    assert [p.name for p in tmp_path.iterdir()] == [folder.name]  # no file "-"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--json", "-q"], "--json takes a file name (- for stdout), got '-q'"),
        (["--csv", "--quiet"], "--csv takes a file name"),
        (["--json", "-", "--csv", "-"], "only one of --json and --csv"),
        (["--json", "r.out", "--csv", "./r.out"], "--json and --csv both name r.out"),
    ],
)
def test_report_paths_that_look_like_options_are_refused(
    folder: Path,
    tiny_weights: Path,
    args: list[str],
    message: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # `--json -q` (--json is a flag on predict) wrote the results to a file named "-q"
    monkeypatch.chdir(tmp_path)
    result = run_tiny(tiny_weights, "--dataset", "folder", "--data-dir", str(folder), *args)
    assert result.exit_code == 2 and message in result.stderr, result.output
    assert [p.name for p in tmp_path.iterdir()] == [folder.name]


@pytest.mark.parametrize(
    ("option", "target", "message"),
    [
        ("--json", "afile/r.json", "--json {tmp}/afile/r.json: cannot write there ({tmp}/afile is"),
        ("--csv", "afolder", "--csv {tmp}/afolder: is a folder; give a file name"),
        ("--save-predictions", "afile", "--save-predictions {tmp}/afile: cannot write there"),
    ],
)
def test_outputs_it_could_not_write_are_refused_before_the_run(
    folder: Path,
    tiny_weights: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    option: str,
    target: str,
    message: str,
) -> None:
    # these were found only after the whole evaluation, and were a traceback
    import dpde_cli.evaluate

    (tmp_path / "afile").write_text("a file")
    (tmp_path / "afolder").mkdir()
    monkeypatch.setattr(dpde_cli.evaluate, "evaluate_share", lambda *a, **k: pytest.fail("it ran"))
    args = ["--dataset", "folder", "--data-dir", str(folder), option, str(tmp_path / target)]
    result = run_tiny(tiny_weights, *args)
    assert result.exit_code == 2, result.output
    assert message.format(tmp=tmp_path) in " ".join(result.stderr.split())
    assert (tmp_path / "afile").read_text() == "a file"


def test_a_report_into_a_pipe_leaves_the_pipe(
    folder: Path, tiny_weights: Path, tmp_path: Path
) -> None:
    # --json /dev/null (as root) replaced /dev/null with a plain file; a FIFO stands in
    import os
    import stat
    import threading

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got: list[str] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_text()), daemon=True)
    reader.start()
    result = run_tiny(
        tiny_weights, "--dataset", "folder", "--data-dir", str(folder), "--json", str(fifo)
    )
    reader.join(timeout=10)
    assert result.exit_code == 0, result.output
    assert json.loads(got[0])["images"] == 2 and stat.S_ISFIFO(os.stat(fifo).st_mode)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--constant-baseline", "nan"], "a constant baseline is a positive depth in metres"),
        (["--constant-baseline", "-1"], "a constant baseline is a positive depth in metres"),
        (["--depth-scale", "inf"], "depth_scale must be a positive number, got inf"),
    ],
)
def test_numbers_that_make_no_sense_are_usage_errors(
    folder: Path, tiny_weights: Path, args: list[str], message: str
) -> None:
    # a NaN baseline printed NaN rows; depth-scale inf failed as "no valid ground truth"
    result = run_tiny(tiny_weights, "--dataset", "folder", "--data-dir", str(folder), *args)
    assert result.exit_code == 2 and message in result.stderr, result.output
