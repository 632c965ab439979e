"""`dpde predict` through the CLI: inputs of every kind, outputs, --json, bad files, exits."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from dpde_cli.cli.app import app
from dpde_cli.io import read_depth

runner = CliRunner()


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    """A folder of small photos in two subfolders, of two sizes."""
    rng = np.random.default_rng(0)
    root = tmp_path / "photos"
    for name, size in (("a/one.jpg", (48, 64)), ("a/two.png", (48, 64)), ("b/three.jpg", (60, 45))):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (*size, 3), dtype=np.uint8)).save(root / name)
    return root


def run(*args: str, stdin: str | None = None):
    return runner.invoke(app, ["--device", "cpu", *args], input=stdin)


def base_args(weights: Path) -> list[str]:
    return ["--model", "dpde-tiny", "--weights", str(weights)]


def test_single_file_each_format(photos: Path, tiny_weights: Path, tmp_path: Path) -> None:
    for suffix in (".png", ".npy", ".pfm", ".tiff"):
        out = tmp_path / f"depth{suffix}"
        result = run(
            "predict",
            str(photos / "a/one.jpg"),
            "-o",
            str(out),
            "--no-fuse",
            *base_args(tiny_weights),
        )
        assert result.exit_code == 0, result.output
        depth = read_depth(out)
        assert depth.shape == (48, 64)  # back at the photo's full resolution
        assert (depth > 0).all()


def test_directory_recursive_keeps_layout_and_json(
    photos: Path, tiny_weights: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    result = run(
        "predict",
        str(photos),
        "-r",
        "-o",
        str(out),
        "--json",
        "--no-fuse",
        "--preview",
        "--save-gradients",
        "--batch-size",
        "2",
        *base_args(tiny_weights),
    )
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert {Path(r["output"]).relative_to(out).as_posix() for r in records} == {
        "a/one.png",
        "a/two.png",
        "b/three.png",
    }
    for record in records:
        assert record["depth_min"] <= record["depth_median"] <= record["depth_max"]
        assert Path(record["outputs"]["preview"]).is_file()
        gradients = np.load(record["outputs"]["gradients"])
        assert gradients.shape == (2, *record["shape"])
    assert records[2]["shape"] == [60, 45]


def test_glob_and_stdin(photos: Path, tiny_weights: Path, tmp_path: Path) -> None:
    result = run(
        "predict",
        str(photos / "a" / "*.jpg"),
        "-o",
        str(tmp_path / "g"),
        "--no-fuse",
        *base_args(tiny_weights),
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "g" / "one.png").is_file()
    listing = f"{photos}/a/one.jpg\n{photos}/b/three.jpg\n"
    result = run(
        "predict",
        "-",
        "-o",
        str(tmp_path / "s"),
        "--no-fuse",
        *base_args(tiny_weights),
        stdin=listing,
    )
    assert result.exit_code == 0, result.output
    assert sorted(
        p.relative_to(tmp_path / "s").as_posix() for p in (tmp_path / "s").rglob("*.png")
    ) == ["a/one.png", "b/three.png"]


def test_bad_files_exit_1_rest_processed_no_partial_output(
    photos: Path, tiny_weights: Path, tmp_path: Path
) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "empty.jpg").write_bytes(b"")
    (bad / "text.jpg").write_bytes(b"this is not a jpeg")
    good = (photos / "a/two.png").read_bytes()
    (bad / "truncated.png").write_bytes(good[: len(good) // 3])
    out = tmp_path / "out"
    result = run(
        "predict",
        str(bad / "empty.jpg"),
        str(bad / "text.jpg"),
        str(bad / "truncated.png"),
        str(bad / "missing.jpg"),
        str(photos / "a/one.jpg"),
        "-o",
        str(out),
        "--no-fuse",
        "--json",
        *base_args(tiny_weights),
    )
    assert result.exit_code == 1
    records = [json.loads(line) for line in result.stdout.splitlines()]
    errors = [r for r in records if "error" in r]
    assert len(errors) == 4 and len(records) == 5
    assert any("empty.jpg: empty file" in r["error"] for r in errors)
    assert any("missing.jpg: no such file" in r["error"] for r in errors)
    assert "4 of 5 input(s) failed" in result.stderr
    written = [p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()]
    assert written == ["photos/a/one.png"]  # nothing partial, the inputs' layout kept


def test_a_pipe_as_the_output_is_written_into_and_never_removed(
    photos: Path, tiny_weights: Path, tmp_path: Path
) -> None:
    # a failed input's outputs are removed: that removed /dev/null itself, as root
    import os
    import stat
    import threading

    fifo = tmp_path / "depth.npy"
    os.mkfifo(fifo)
    (tmp_path / "bad.jpg").write_bytes(b"not a jpeg")
    failed = run("predict", str(tmp_path / "bad.jpg"), "-o", str(fifo), "--overwrite")
    assert failed.exit_code == 1 and stat.S_ISFIFO(os.stat(fifo).st_mode)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()), daemon=True)
    reader.start()
    args = ["predict", str(photos / "a/one.jpg"), "-o", str(fifo), "--no-fuse"]
    done = run(*args, *base_args(tiny_weights))  # no --overwrite: a pipe is not an output
    reader.join(timeout=10)
    assert done.exit_code == 0, done.output
    assert got and got[0].startswith(b"\x93NUMPY") and stat.S_ISFIFO(os.stat(fifo).st_mode)


def test_existing_outputs_are_skipped_without_overwrite(
    photos: Path, tiny_weights: Path, tmp_path: Path
) -> None:
    out = tmp_path / "d.png"
    args = [
        "predict",
        str(photos / "a/one.jpg"),
        "-o",
        str(out),
        "--no-fuse",
        *base_args(tiny_weights),
    ]
    assert run(*args).exit_code == 0
    before = out.stat().st_mtime_ns
    result = run(*args)  # run again: kept and skipped, not a failure
    assert result.exit_code == 0 and result.stdout == ""
    assert "1 of 1 input(s) skipped" in result.stderr and "--overwrite" in result.stderr
    assert out.stat().st_mtime_ns == before
    quiet = run(*args, "-q")  # the command's own --quiet, as the root's
    assert quiet.exit_code == 0 and quiet.stderr == ""
    more = run(*args, "--preview")  # the depth map exists, its preview does not: a conflict
    assert more.exit_code == 1 and "d.png exists (use --overwrite)" in more.stderr
    assert not (tmp_path / "d_color.png").exists()
    assert run(*args, "--overwrite").exit_code == 0
    assert out.stat().st_mtime_ns != before


def test_an_input_that_fails_while_written_leaves_none_of_its_outputs(
    photos: Path, tiny_weights: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dpde_cli.io as io

    real = io.write_depth

    def full_disk_on_previews(path, depth, fmt, *args):
        if fmt == "color":
            raise OSError(28, "No space left on device", str(path.with_name(".x.tmp.png")))
        return real(path, depth, fmt, *args)

    monkeypatch.setattr(io, "write_depth", full_disk_on_previews)
    out = tmp_path / "out"
    photo = photos / "a/one.jpg"
    result = run("predict", str(photo), "-o", f"{out}/", "--preview", *base_args(tiny_weights))
    assert result.exit_code == 1
    assert f"{photo}: cannot write its output in {out}/ (No space left on device)" in result.stderr
    assert ".tmp" not in result.stderr
    assert not out.exists() or list(out.iterdir()) == []  # the depth map written first is gone


def test_a_folder_in_an_output_s_place_fails_that_input_only(
    photos: Path, tiny_weights: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    (out / "one_color.png").mkdir(parents=True)  # where one.jpg's preview would go
    args = ["predict", str(photos / "a"), "-o", str(out), "--preview", "--overwrite"]
    result = run(*args, *base_args(tiny_weights))
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "1 of 2 input(s) failed" in result.stderr
    assert f"cannot write {out / 'one_color.png'} (Is a directory)" in result.stderr
    assert sorted(p.name for p in out.iterdir()) == ["one_color.png", "two.png", "two_color.png"]


@pytest.mark.parametrize("output", ["{file}", "{file}/d.png", "{file}/sub/"])
def test_a_file_in_the_output_folder_s_place_is_one_line_per_input(
    photos: Path, tiny_weights: Path, tmp_path: Path, output: str
) -> None:
    blocker = tmp_path / "afile"
    blocker.write_text("not a folder")
    inputs = [str(photos / "a/one.jpg")]
    if not output.endswith(".png"):  # -o names a folder: a batch, which goes on past each
        inputs.append(str(photos / "a/two.png"))
    result = run("predict", *inputs, "-o", output.format(file=blocker), *base_args(tiny_weights))
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert f"{len(inputs)} of {len(inputs)} input(s) failed" in result.stderr
    assert result.stderr.count(f"({blocker} is a file, not a folder)") == len(inputs)
    assert blocker.read_text() == "not a folder"


def test_usage_errors_exit_2(photos: Path, tiny_weights: Path, tmp_path: Path) -> None:
    many_to_file = run(
        "predict",
        str(photos / "a/one.jpg"),
        str(photos / "a/two.png"),
        "-o",
        str(tmp_path / "x.png"),
        *base_args(tiny_weights),
    )
    assert many_to_file.exit_code == 2 and "give a directory" in many_to_file.stderr
    absent = runner.invoke(
        app, ["--device", "cuda:7", "predict", str(photos / "a/one.jpg"), *base_args(tiny_weights)]
    )
    if absent.exit_code != 0:  # unless this machine really has eight GPUs
        assert absent.exit_code == 2 and "cuda:7" in absent.stderr
    unknown = run("predict", str(photos / "a/one.jpg"), "--model", "nope")
    assert unknown.exit_code == 2 and "known models" in unknown.stderr
    for limit in ("0", "-5"):  # were: 0 the default limit, -5 a failure per image
        none = run("predict", str(photos / "a/one.jpg"), "--max-pixels", limit)
        assert none.exit_code == 2 and "--max-pixels" in none.stderr


@pytest.mark.parametrize(
    "options",
    [
        ["-o", "{tmp}/d.npy", "--format", "png16"],
        ["-o", "{tmp}/d.png", "--format", "tiff"],
        ["-o", "{tmp}/d.png", "--preview", "--colormap", "nosuch"],
        ["-o", "{tmp}/d.png", "--preview", "--depth-range", "8", "1"],
        ["-o", "{tmp}/d.png", "--preview", "--depth-range", "nan", "5"],
    ],
    ids=["npy as png16", "png as tiff", "colormap", "range reversed", "range nan"],
)
def test_contradictory_or_impossible_output_options_exit_2_before_any_work(
    photos: Path, tiny_weights: Path, tmp_path: Path, options: list[str]
) -> None:
    options = [o.replace("{tmp}", str(tmp_path / "out")) for o in options]
    result = run("predict", str(photos / "a/one.jpg"), *options, *base_args(tiny_weights))
    assert result.exit_code == 2, result.output
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "out").exists()


def test_a_colour_preview_may_be_a_png(photos: Path, tiny_weights: Path, tmp_path: Path) -> None:
    out = tmp_path / "d.png"
    result = run(
        "predict",
        str(photos / "a/one.jpg"),
        "-o",
        str(out),
        "-f",
        "color",
        *base_args(tiny_weights),
    )
    assert result.exit_code == 0, result.output
    assert Image.open(out).mode == "RGB"


def test_model_without_weights_says_so(photos: Path) -> None:
    result = run("predict", str(photos / "a/one.jpg"), "--model", "dpde-r50")
    assert result.exit_code == 2  # usage: this model needs --weights
    assert "no shipped weights" in result.stderr and "--weights" in result.stderr
    assert "Traceback" not in result.output
    text = photos / "a/one.jpg"  # a photo given as weights: one line saying what it is not
    wrong = run("predict", str(text), "--model", "dpde-lite", "--weights", str(text))
    assert wrong.exit_code == 1 and len(wrong.stderr.strip().splitlines()) == 1
    assert f"{text}: not a PyTorch weights file (only tensors are loaded:" in wrong.stderr
    assert "weights_only" not in wrong.stderr  # torch's advice to load it unsafely


def test_models_command_lists_parameters() -> None:
    result = runner.invoke(app, ["models", "--json"])
    assert result.exit_code == 0
    records = {r["name"]: r for r in map(json.loads, result.stdout.splitlines())}
    assert records["dpde-r50"]["params_gradient"] > 0
    assert records["dpde-r50"]["input_size"] == [240, 320]  # the paper's NYUv2 size
    assert records["dpde-r50"]["params_total"] == (
        records["dpde-r50"]["params_global"] + records["dpde-r50"]["params_gradient"]
    )


def test_models_table_piped_keeps_names_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    from dpde_cli.registry import get_entry

    monkeypatch.delenv("COLUMNS", raising=False)  # piped: rich would assume 80 columns
    result = runner.invoke(app, ["models"])
    assert result.exit_code == 0
    shipped = get_entry("dpde-lite").weights.file
    assert any(shipped in line for line in result.stdout.splitlines())  # `| grep` finds it


def test_tables_keep_a_terminals_own_width(monkeypatch: pytest.MonkeyPatch) -> None:
    from rich.console import Console

    import dpde_cli.cli.common as common

    class Terminal(Console):
        def __init__(self, **kwargs) -> None:
            super().__init__(force_terminal=True, **kwargs)

    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.setattr(common, "Console", Terminal)
    assert common.wide_console().width == 80  # not widened: a terminal would wrap each row
    monkeypatch.setattr(common, "Console", Console)  # piped
    assert common.wide_console().width == 120


def test_models_pattern_matches_parts_of_names_and_nothing_is_an_error() -> None:
    lite = runner.invoke(app, ["models", "lite", "--json"])
    assert [json.loads(line)["name"] for line in lite.stdout.splitlines()] == [
        "dpde-lite",
        "dpde-lite-renders",
    ]
    none = runner.invoke(app, ["models", "xyz"])
    assert none.exit_code == 2 and "no model matches" in none.stderr and "dpde-lite" in none.stderr


def test_fusion_is_on_by_default_and_unfused_is_kept(
    photos: Path, tiny_weights: Path, tmp_path: Path
) -> None:
    out = tmp_path / "fused.npy"
    result = run(
        "predict",
        str(photos / "a/one.jpg"),
        "-o",
        str(out),
        "--save-unfused",
        "--save-gradients",
        "--json",
        *base_args(tiny_weights),
    )
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert record["fusion"]["irls_iterations"] >= 1
    assert set(record["outputs"]) == {"depth", "unfused", "gradients"}
    fused, unfused = np.load(out), np.load(record["outputs"]["unfused"])
    assert fused.shape == unfused.shape == (48, 64)
    assert not np.array_equal(fused, unfused)  # the gradients moved the depth
    off = run(
        "predict",
        str(photos / "a/one.jpg"),
        "-o",
        str(tmp_path / "plain.npy"),
        "--no-fuse",
        "--json",
        *base_args(tiny_weights),
    )
    assert json.loads(off.stdout)["fusion"] is None
    np.testing.assert_allclose(np.load(tmp_path / "plain.npy"), unfused, atol=1e-6)
