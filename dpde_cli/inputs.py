"""Expanding command-line inputs (files, directories, globs, '-' for stdin lists) and
planning the output paths that keep the inputs' relative layout."""

from __future__ import annotations

import glob
import os
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from dpde_cli.errors import InputError, UsageError
from dpde_cli.formats import IMAGE_EXTENSIONS

_GLOB_CHARS = set("*?[")


@dataclass(frozen=True)
class InputItem:
    """One input file and where its outputs go, relative to the output directory.

    Attributes:
        path: the input file as given (it may not exist: reading it reports the problem).
        relative: output-relative path without extension (keeps the input's layout).
    """

    path: Path
    relative: Path


def expand_inputs(
    args: Iterable[str], recursive: bool = False, stdin: Iterable[str] | None = None
) -> list[InputItem]:
    """Expand arguments into input files, in order, without duplicates.

    Args:
        args: files, directories (their images; with ``recursive`` also subfolders),
            glob patterns (``**`` allowed), or "-" for paths read from ``stdin``, one a line.
        recursive: descend into subdirectories of directory arguments.
        stdin: the lines to use for "-" (default: sys.stdin).

    Returns:
        InputItems whose ``relative`` keeps the layout below the inputs' common folder
        (below the directory itself for directory arguments).

    Raises:
        UsageError: no arguments, or a pattern / directory that matches no image.
    """
    found: list[tuple[Path, Path | None]] = []  # (path, base directory or None)
    for arg in args:
        if arg == "-":
            lines = sys.stdin if stdin is None else stdin
            found += [(Path(line.strip()), None) for line in lines if line.strip()]
        elif Path(arg).is_dir():
            images = _images_in(Path(arg), recursive)
            if not images:
                hint = ""
                if not recursive and _images_in(Path(arg), recursive=True):
                    hint = " (its subfolders do: add -r)"
                raise UsageError(f"{arg}: directory holds no image files{hint}")
            found += [(p, Path(arg)) for p in images]
        elif _GLOB_CHARS & set(arg) and not Path(arg).exists():
            matches = sorted(glob.glob(arg, recursive=True))
            matches = [m for m in matches if Path(m).is_file()]
            if not matches:
                raise UsageError(f"{arg}: no file matches this pattern")
            found += [(Path(m), None) for m in matches]
        else:
            found.append((Path(arg), None))
    if not found:
        raise UsageError("no input files given")
    loose = [p for p, base in found if base is None]
    common = _common_parent(loose) if loose else None
    items: dict[Path, InputItem] = {}
    for path, base in found:
        key = path.resolve()
        if key in items:
            continue
        root = base if base is not None else common
        # by the names as given, not resolved: a link in a folder of photos names its
        # output after itself, never after its target's place (../../ out of -o)
        relative = (
            Path(os.path.relpath(os.path.abspath(path), os.path.abspath(root))) if root else path
        )
        items[key] = InputItem(path, relative.with_suffix(""))
    return _disambiguate(list(items.values()))


def companion_file(item: InputItem, directory: Path, extensions: Sequence[str], what: str) -> Path:
    """The file of ``directory`` that belongs to an input: the input's relative name with
    the first of ``extensions`` that exists (photos/a/b.jpg -> DIR/a/b.png): its depth map,
    its sparse measurements.

    Raises:
        InputError: there is none, naming the input, ``what`` and where it was looked for.
    """
    for suffix in extensions:
        candidate = directory / item.relative.with_suffix(suffix)
        if candidate.is_file():
            return candidate
    raise InputError(
        item.path,
        f"no {what} for it in {directory} (looked for {item.relative}{{{','.join(extensions)}}})",
    )


def _images_in(directory: Path, recursive: bool) -> list[Path]:
    """Image files in a directory (sorted), by extension."""
    pattern = "**/*" if recursive else "*"
    return sorted(
        p for p in directory.glob(pattern) if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
    )


def _common_parent(paths: list[Path]) -> Path:
    """The deepest folder that holds every path."""
    return Path(os.path.commonpath([os.path.dirname(os.path.abspath(p)) for p in paths]))


def _disambiguate(items: list[InputItem]) -> list[InputItem]:
    """Give inputs that would share an output name (a.jpg, a.png) their extension too."""
    counts: dict[Path, int] = {}
    for item in items:
        counts[item.relative] = counts.get(item.relative, 0) + 1
    return [
        InputItem(it.path, it.relative.with_name(f"{it.relative.name}_{it.path.suffix[1:]}"))
        if counts[it.relative] > 1 and it.path.suffix
        else it
        for it in items
    ]
