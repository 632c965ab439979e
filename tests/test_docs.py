"""The documents agree with the code: links resolve, the reference names real options, every
shipped weights file has a model card, and the README and RESULTS stay within their budgets."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest
import typer

from dpde_cli.cli.app import app
from dpde_cli.registry import get_entry, list_models

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = sorted(
    [
        ROOT / "README.md",
        ROOT / "CHANGELOG.md",
        ROOT / "benchmarks" / "RESULTS.md",
        *(ROOT / "docs").rglob("*.md"),
    ]
)
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)|^\[[^\]]+\]:\s*(\S+)", re.MULTILINE)


def _slug(heading: str) -> str:
    """GitHub's anchor for a Markdown heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    """The anchors of a Markdown file's headings (outside code blocks)."""
    text = re.sub(r"```.*?```", "", path.read_text(), flags=re.DOTALL)
    return {_slug(m) for m in re.findall(r"^#+\s+(.*)$", text, flags=re.MULTILINE)}


def _links(path: Path) -> list[str]:
    """Link targets of a Markdown file (inline and reference-style), outside code blocks."""
    text = re.sub(r"```.*?```", "", path.read_text(), flags=re.DOTALL)
    return [a or b for a, b in LINK.findall(text)]


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(document: Path) -> None:
    broken = []
    for target in _links(document):
        if re.match(r"[a-z]+:", target):  # http:, https:, mailto:
            continue
        file_part, _, anchor = target.partition("#")
        linked = (document.parent / file_part).resolve() if file_part else document
        if ROOT not in linked.parents and linked != ROOT:
            continue  # beyond the repository (e.g. the changelog's compare links)
        if not linked.exists():
            broken.append(target)
            continue
        if anchor and linked.suffix == ".md" and anchor not in _anchors(linked):
            broken.append(target)
    assert not broken, f"{document.name}: {broken}"


def test_readme_and_results_within_budget() -> None:
    assert len((ROOT / "README.md").read_text().splitlines()) <= 200
    assert len((ROOT / "benchmarks" / "RESULTS.md").read_text().splitlines()) <= 500


@pytest.mark.parametrize("model", list_models())
def test_every_shipped_weights_file_has_a_model_card(model: str) -> None:
    file = get_entry(model).weights.file
    if file is None:
        pytest.skip(f"{model} ships no weights")
    card = ROOT / "docs" / "models" / f"{model}.md"
    assert card.is_file(), f"no model card {card.relative_to(ROOT)}"
    assert file in card.read_text(), f"{card.name} does not name {file}"
    assert file in (ROOT / "README.md").read_text(), f"the README does not name {file}"


def _reference_sections() -> dict[str, str]:
    """docs/reference.md's text under each "## `dpde COMMAND`" heading."""
    text = (ROOT / "docs" / "reference.md").read_text()
    parts = re.split(r"^## ", text, flags=re.MULTILINE)
    sections = {}
    for part in parts:
        match = re.match(r"`dpde (\w+)`", part)
        if match:
            sections[match.group(1)] = part
    return sections


def _option_names(command: click.Command) -> set[str]:
    names = set()
    for param in command.params:
        names.update(o for o in (*param.opts, *param.secondary_opts) if o.startswith("--"))
    return names


def test_reference_covers_every_command() -> None:
    commands = typer.main.get_command(app).commands
    assert set(_reference_sections()) == set(commands)


@pytest.mark.parametrize("name", sorted(_reference_sections()))
def test_reference_names_only_real_options(name: str) -> None:
    root = typer.main.get_command(app)
    known = _option_names(root.commands[name]) | _option_names(root)
    named = set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*(?![\w])", _reference_sections()[name]))
    assert not named - known, f"dpde {name} has no {sorted(named - known)}"
