"""`dpde export` through the CLI, and `dpde predict --weights x.onnx` on examples/room.jpg."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from dpde_cli.cli import export as export_cli
from dpde_cli.cli.app import app
from dpde_cli.exported import FORMATS

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

runner = CliRunner()
ROOM = Path(__file__).resolve().parents[2] / "examples" / "room.jpg"


def run(*args: str):
    return runner.invoke(app, ["--device", "cpu", *args])


@pytest.fixture(scope="module")
def tiny_onnx(tiny_weights: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cli-export") / "tiny.onnx"
    result = run("export", "dpde-tiny", "--weights", str(tiny_weights), "-o", str(out))
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(out) and result.stderr == ""
    return out


def _predict(weights: Path, out: Path, model: str = "dpde-tiny", *extra: str):
    return run("predict", str(ROOM), "--model", model, "--weights", str(weights), "-o", str(out),
               *extra)  # fmt: skip


def test_predict_with_onnx_matches_torch(tiny_onnx: Path, tiny_weights: Path, tmp_path) -> None:
    onnx_out, torch_out = tmp_path / "onnx.npy", tmp_path / "torch.npy"
    for weights, out in ((tiny_onnx, onnx_out), (tiny_weights, torch_out)):
        result = _predict(weights, out, "dpde-tiny", "--save-unfused", "--json")
        assert result.exit_code == 0, result.output
    fused, want = np.load(onnx_out), np.load(torch_out)
    assert fused.shape == want.shape and np.abs(fused - want).max() < 1e-3
    unfused = np.load(tmp_path / "onnx_unfused.npy")
    assert np.abs(unfused - np.load(tmp_path / "torch_unfused.npy")).max() < 1e-3


def test_predict_refuses_a_hostile_onnx_in_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07garbage" * 50)
    result = _predict(bad, tmp_path / "d.png")
    assert result.exit_code == 1
    assert result.stderr.startswith(f"dpde: error: {bad}: ") and result.stderr.count("\n") == 1
    assert not (tmp_path / "d.png").exists()


def test_predict_names_the_model_an_onnx_holds(tiny_onnx: Path, tmp_path: Path) -> None:
    result = _predict(tiny_onnx, tmp_path / "d.png", "dpde-lite")
    assert result.exit_code == 2 and "pass --model dpde-tiny" in result.stderr


def test_torchscript_export(tiny_weights: Path, tmp_path: Path) -> None:
    from dpde_cli.exported import load_torchscript

    out = tmp_path / "tiny.pt"
    result = run(
        "export", "dpde-tiny", "-w", str(tiny_weights), "-f", "TorchScript", "-o", str(out)
    )
    assert result.exit_code == 0, result.output
    assert load_torchscript(out).name == "dpde-tiny"


def test_existing_output_is_skipped_unless_overwrite(tiny_onnx: Path, tiny_weights, tmp_path):
    out = tmp_path / "m.onnx"
    out.write_bytes(b"keep")
    result = run("export", "dpde-tiny", "-w", str(tiny_weights), "-o", str(out))
    assert result.exit_code == 0 and "skipped" in result.stderr and out.read_bytes() == b"keep"
    result = run("export", "dpde-tiny", "-w", str(tiny_weights), "-o", str(out), "--overwrite")
    assert result.exit_code == 0, result.output
    assert out.stat().st_size > 1000


@pytest.mark.parametrize(
    ("args", "code", "problem"),
    [
        (["dpde-tiny", "-o", "{tmp}/m.txt"], 2, "name it .onnx"),
        (["dpde-tiny", "-f", "onnx", "-o", "{tmp}/m.pt"], 2, "named *.onnx"),
        (["dpde-tiny", "-o", "{tmp}"], 2, "is a folder"),
        (["dpde-nope", "-o", "{tmp}/m.onnx"], 2, "unknown model"),
        (["dpde-r50", "-o", "{tmp}/m.onnx"], 2, "no shipped weights"),
        (["dpde-tiny", "-w", "{tmp}/absent.pt", "-o", "{tmp}/m.onnx"], 1, "not found"),
        (["dpde-tiny", "-w", "{onnx}", "-o", "{tmp}/m.onnx"], 2, "already an export"),
        (["dpde-tiny", "-w", "{weights}", "-o", "{weights}"], 2, "is the weights file"),
    ],
)  # fmt: skip
def test_bad_usage_one_line_no_file(args, code, problem, tiny_onnx, tiny_weights, tmp_path):
    before = sorted(tmp_path.iterdir())
    values = {"tmp": str(tmp_path), "onnx": str(tiny_onnx), "weights": str(tiny_weights)}
    result = run("export", *(a.format(**values) for a in args))
    assert result.exit_code == code, result.output
    assert problem in result.stderr and result.stderr.count("\n") == 1, result.stderr
    assert sorted(tmp_path.iterdir()) == before


def test_format_choices_are_the_library_formats() -> None:
    assert {member.value for member in export_cli.ExportFormat} == set(FORMATS)


def test_help_names_no_python_types() -> None:
    result = runner.invoke(app, ["export", "--help"], terminal_width=100)
    assert result.exit_code == 0, result.output
    options = [line for line in result.output.splitlines() if re.match(r"\s+-", line)]
    assert options and not [line for line in options if re.search(r"<[^>]*(\[|,)", line)]


@pytest.mark.slow
def test_shipped_lite_through_onnx_end_to_end(tmp_path: Path) -> None:
    model = tmp_path / "lite.onnx"
    assert run("export", "dpde-lite", "-o", str(model)).exit_code == 0
    onnx_run = run("predict", str(ROOM), "--weights", str(model), "-o", str(tmp_path / "o.npy"))
    torch_run = run("predict", str(ROOM), "-o", str(tmp_path / "t.npy"))
    assert onnx_run.exit_code == 0 and torch_run.exit_code == 0, onnx_run.output
    depth, want = np.load(tmp_path / "o.npy"), np.load(tmp_path / "t.npy")
    assert np.abs(depth - want).max() < 1e-3
