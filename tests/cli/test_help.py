"""Each command's --help reads as a user's manual: value placeholders, not Python types."""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from dpde_cli.cli.app import app

runner = CliRunner()

COMMANDS = ["predict", "pointcloud", "fuse", "eval", "train", "models"]


@pytest.mark.parametrize("command", COMMANDS)
def test_option_placeholders_name_no_python_types(command: str) -> None:
    result = runner.invoke(app, [command, "--help"], terminal_width=100)
    assert result.exit_code == 0, result.output
    options = [line for line in result.output.splitlines() if re.match(r"\s+-", line)]
    assert options, result.output
    # typer's own labels for list and tuple options ("<list[Path]>", "<int,int>...").
    odd = [line for line in options if re.search(r"<[^>]*(\[|,)[^>]*>", line)]
    assert not odd, "\n".join(odd)
