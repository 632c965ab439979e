"""Beyond one process: `--shard K/N` on predict, pointcloud and eval, `eval --merge`, and
the same commands under torchrun (2 CPU processes, gloo)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from dpde_cli.cli.app import app

runner = CliRunner()


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    """Five small photos."""
    rng = np.random.default_rng(0)
    root = tmp_path / "photos"
    root.mkdir()
    for index in range(5):
        image = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
        Image.fromarray(image).save(root / f"p{index}.png")
    return root


def run(*args: str):
    return runner.invoke(app, ["--device", "cpu", *args])


def tiny(weights: Path) -> list[str]:
    return ["--model", "dpde-tiny", "--weights", str(weights)]


def files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())} if folder.exists() else {}


def test_predict_shards_split_the_batch_and_match_one_process(
    photos: Path, tiny_weights: Path, tmp_path: Path
) -> None:
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    assert run("predict", str(photos), "-o", str(whole), *tiny(tiny_weights)).exit_code == 0
    seen = []
    for k in (1, 2):
        result = run(
            "predict",
            str(photos),
            "-o",
            str(parts),
            "--shard",
            f"{k}/2",
            "--json",
            *tiny(tiny_weights),
        )
        assert result.exit_code == 0, result.output
        seen.append([json.loads(line)["input"] for line in result.stdout.splitlines()])
    assert [len(s) for s in seen] == [3, 2]
    assert not set(seen[0]) & set(seen[1])
    assert files(parts) == files(whole)  # the same names and the same bytes


def test_a_shard_run_again_redoes_only_what_is_missing(
    photos: Path, tiny_weights: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    args = ["predict", str(photos), "-o", str(out), "--shard", "2/2", "--json", *tiny(tiny_weights)]
    assert run(*args).exit_code == 0
    assert sorted(files(out)) == ["p1.png", "p3.png"]
    (out / "p3.png").unlink()
    result = run(*args)
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert result.exit_code == 0
    assert [r["input"].endswith("p3.png") for r in records if "output" in r] == [True]
    assert [Path(r["input"]).name for r in records if "skipped" in r] == ["p1.png"]


def test_pointcloud_takes_its_shard(photos: Path, tiny_weights: Path, tmp_path: Path) -> None:
    out = tmp_path / "clouds"
    args = ["pointcloud", str(photos), "-o", str(out), "--fov", "60", *tiny(tiny_weights)]
    result = run(*args, "--shard", "1/3")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.glob("*.ply")) == ["p0.ply", "p3.ply"]


@pytest.mark.parametrize("command", ["predict", "pointcloud", "eval"])
@pytest.mark.parametrize("shard", ["0/2", "3/2", "two/3", "1"])
def test_a_bad_shard_is_one_usage_line(
    command: str, shard: str, photos: Path, tiny_weights: Path, tmp_path: Path
) -> None:
    inputs = ["--dataset", "synthetic", "--json", str(tmp_path / "r.json")]
    if command != "eval":
        inputs = [str(photos), "-o", str(tmp_path / "out")]
    result = run(command, *inputs, *tiny(tiny_weights), "--shard", shard)
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        f"dpde: error: --shard {shard!r}: expected K/N with 1 <= K <= N, e.g. --shard 2/8"
    ]
    assert not (tmp_path / "out").exists() and not (tmp_path / "r.json").exists()


# ------------------------------------------------------------------------------ eval


LITE = ["--model", "dpde-lite", "--input-size", "64", "96"]
"""The shipped model, small: a torchrun's processes do not see the tests' dpde-tiny."""


def eval_args(model: list[str], *extra: str) -> list[str]:
    """One image per network pass: a network's float32 output moves by ~1e-7 with the
    images batched beside it, which shards change; the sums must not add more."""
    return [
        "eval", "--dataset", "synthetic", "--limit", "5", "--workers", "0", "--ablation", "-b", "1",
        "--metric", "gsm", "--constant-baseline", "2", *model, *extra,
    ]  # fmt: skip


def assert_same_table(one: dict, other: dict) -> None:
    """The same rows, images and protocol; every metric within 1e-6."""
    for key in ("images", "protocol", "skipped", "model", "dataset", "ground_truth"):
        assert one[key] == other[key], key
    assert list(one["results"]) == list(other["results"])
    for row, values in one["results"].items():
        for name, value in values.items():
            assert other["results"][row][name] == pytest.approx(value, abs=1e-6), (row, name)
    names = [[r["name"] for r in one["per_image"][row]] for row in one["per_image"]]
    assert names == [[r["name"] for r in other["per_image"][row]] for row in other["per_image"]]


@pytest.mark.parametrize(
    ("averaging", "extra"),
    [
        ("image", ()),
        ("pixel", ()),
        ("image", ("--sparse-samples", "20", "--sparse-seed", "3")),  # draws follow the image
    ],
)
def test_merged_shards_give_the_table_of_one_process(
    tiny_weights: Path, tmp_path: Path, averaging: str, extra: tuple[str, ...]
) -> None:
    full = tmp_path / "full.json"
    args = eval_args(tiny(tiny_weights), "--averaging", averaging, *extra)
    result = run(*args, "--json", str(full))
    assert result.exit_code == 0, result.output
    parts = []
    for k in (3, 1, 2):  # any order
        part = tmp_path / f"part{k}.json"
        result = run(*args, "--shard", f"{k}/3", "--json", str(part))
        assert result.exit_code == 0, result.output
        assert f"shard {k}/3: " in result.stdout and "RMS" not in result.stdout  # no table
        parts.append(str(part))
    merged = tmp_path / "merged.json"
    result = run("eval", "--merge", *parts, "--json", str(merged))
    assert result.exit_code == 0, result.output
    table = result.stdout.split("protocol:")[0]
    one = run(*args)
    assert one.stdout.split("protocol:")[0] == table  # the printed table itself
    assert_same_table(json.loads(full.read_text()), json.loads(merged.read_text()))


@pytest.fixture
def shard_reports(tiny_weights: Path, tmp_path: Path) -> list[Path]:
    reports = []
    for k in (1, 2):
        path = tmp_path / f"s{k}.json"
        args = ["eval", "--dataset", "synthetic", "--limit", "3", "--workers", "0"]
        result = run(*args, *tiny(tiny_weights), "--shard", f"{k}/2", "--json", str(path))
        assert result.exit_code == 0, result.output
        reports.append(path)
    return reports


def other_run(path: Path, tmp_path: Path, key: str, value) -> Path:
    report = json.loads(path.read_text())
    report[key] = value
    changed = tmp_path / f"other-{key}.json"
    changed.write_text(json.dumps(report))
    return changed


@pytest.mark.parametrize(
    ("key", "value"),
    [("model", "dpde-lite"), ("weights", "other.pt"), ("protocol", "pooled"), ("dataset", "nyuv2")],
)
def test_merge_refuses_shards_of_another_run_naming_the_file(
    shard_reports: list[Path], tmp_path: Path, key: str, value: str
) -> None:
    other = other_run(shard_reports[1], tmp_path, key, value)
    result = run("eval", "--merge", str(shard_reports[0]), str(other))
    assert result.exit_code == 2 and "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"dpde: error: --merge {other}: ")
    assert f"another run than {shard_reports[0]} ({key} " in lines[0]


def test_merge_refuses_a_missing_or_repeated_shard(shard_reports: list[Path]) -> None:
    first, second = map(str, shard_reports)
    missing = run("eval", "--merge", first)
    assert missing.exit_code == 2
    assert missing.stderr.strip() == (
        "dpde: error: --merge: shard(s) 2/2 missing; the table needs every shard"
    )
    twice = run("eval", "--merge", first, first, second)
    assert twice.exit_code == 2
    assert twice.stderr.strip() == f"dpde: error: --merge: {first} and {first} are both shard 1/2"


def test_merge_refuses_files_that_are_no_shard_reports(
    shard_reports: list[Path], tiny_weights: Path, tmp_path: Path
) -> None:
    whole = tmp_path / "whole.json"
    args = ["eval", "--dataset", "synthetic", "--limit", "2", "--workers", "0", *tiny(tiny_weights)]
    assert run(*args, "--json", str(whole)).exit_code == 0
    garbage = tmp_path / "garbage.json"
    garbage.write_text("{not json")
    for bad, problem in (
        (whole, "no partial sums"),
        (garbage, "not a JSON report of dpde eval"),
        (tmp_path / "absent.json", "cannot read it"),
    ):
        result = run("eval", "--merge", str(shard_reports[0]), str(bad))
        assert result.exit_code == 1 and "Traceback" not in result.output
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"dpde: error: {bad}: {problem}")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["a.json"], "report files are arguments of --merge"),
        (["--merge", "a.json", "--dataset", "synthetic"], "it takes no --dataset or --shard"),
        (["--merge"], "--merge needs the JSON reports of every shard"),
        (["--dataset", "synthetic", "--shard", "1/2"], "give --json FILE"),
    ],
)
def test_eval_shard_and_merge_usage(args: list[str], message: str) -> None:
    result = run("eval", *args)
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0]


# ------------------------------------------------------------------------------ torchrun


def torchrun(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """`torchrun --nproc_per_node 2 -m dpde_cli --device cpu ARGS` on this checkout."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).parents[2])}
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2"]
    command += ["--standalone", "-m", "dpde_cli", "--device", "cpu", *args]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_torchrun_predicts_each_photo_once_and_fails_for_every_rank(
    photos: Path, tmp_path: Path
) -> None:
    (photos / "broken.png").write_bytes(b"not a png")
    out = tmp_path / "out"
    result = torchrun("predict", str(photos), "-o", str(out), "--json", *LITE, cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]  # whole lines
    inputs = sorted(Path(r["input"]).name for r in records)
    assert inputs == ["broken.png", "p0.png", "p1.png", "p2.png", "p3.png", "p4.png"]
    assert sorted(files(out)) == [f"p{i}.png" for i in range(5)]
    assert result.stderr.count("dpde: 1 of 6 input(s) failed:") == 1  # rank 0 alone


def test_torchrun_eval_prints_the_table_of_one_process(tmp_path: Path) -> None:
    full, both = tmp_path / "full.json", tmp_path / "both.json"
    args = eval_args(LITE)
    result = torchrun(*args, "--json", str(both), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("protocol:") == 1  # rank 0 prints
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each rank: the same float sums in the network
    try:
        assert run(*args, "--json", str(full)).exit_code == 0
    finally:
        torch.set_num_threads(threads)
    assert_same_table(json.loads(full.read_text()), json.loads(both.read_text()))
