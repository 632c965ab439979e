"""Exceptions for expected failures; the CLI turns each into a one-line message and an exit code."""

from __future__ import annotations

from pathlib import Path


class DpdeError(Exception):
    """An expected failure with a message fit to show a user as one line."""


class InputError(DpdeError):
    """A bad input file: names the file and the problem."""

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class UsageError(DpdeError):
    """A bad combination of options or arguments (exit code 2 in the CLI)."""


class WeightsError(DpdeError):
    """Missing, corrupt or mismatched model weights."""


class OutputError(DpdeError, OSError):
    """An output that could not be written: "cannot write PATH (reason)".

    Also an OSError carrying the errno, so that code handling OS failures still catches it;
    ``dpde_cli.outputs.writing`` is the one place that raises it.
    """

    def __init__(self, path: str | Path, reason: str, errno: int | None = None) -> None:
        OSError.__init__(self, errno, reason, str(path))
        self.path = str(path)
        self.reason = reason

    def __str__(self) -> str:
        return f"cannot write {self.path} ({self.reason})"
