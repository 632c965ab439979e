"""Expanding files, directories, globs and stdin lists; output names keep the layout."""

from __future__ import annotations

from pathlib import Path

import pytest

from dpde_cli.errors import UsageError
from dpde_cli.inputs import expand_inputs


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    for name in ("a/x.jpg", "a/y.png", "b/x.jpg", "b/deep/z.jpg", "notes.txt"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    return tmp_path


def test_directory_and_recursive(tree: Path) -> None:
    flat = expand_inputs([str(tree / "b")])
    assert [i.relative for i in flat] == [Path("x")]
    deep = expand_inputs([str(tree)], recursive=True)
    assert sorted(str(i.relative) for i in deep) == ["a/x", "a/y", "b/deep/z", "b/x"]


def test_glob_and_layout_kept(tree: Path) -> None:
    items = expand_inputs([str(tree / "*" / "x.jpg")])
    assert [str(i.relative) for i in items] == ["a/x", "b/x"]


def test_stdin_list_skips_blank_lines_and_duplicates(tree: Path) -> None:
    lines = [f"{tree}/a/x.jpg\n", "\n", f"{tree}/b/deep/z.jpg\n", f"{tree}/a/x.jpg\n"]
    items = expand_inputs(["-"], stdin=lines)
    assert [str(i.relative) for i in items] == ["a/x", "b/deep/z"]


def test_same_stem_different_extension_is_disambiguated(tree: Path) -> None:
    (tree / "a" / "x.png").write_bytes(b"")
    items = expand_inputs([str(tree / "a" / "x.jpg"), str(tree / "a" / "x.png")])
    assert [str(i.relative) for i in items] == ["x_jpg", "x_png"]


def test_missing_file_is_kept_for_reporting(tree: Path) -> None:
    items = expand_inputs([str(tree / "nope.jpg")])
    assert items[0].path == tree / "nope.jpg"


@pytest.mark.parametrize("arg", ["*.nothing", "empty-dir"])
def test_patterns_and_dirs_with_no_images(tree: Path, arg: str) -> None:
    (tree / "empty-dir").mkdir()
    with pytest.raises(UsageError):
        expand_inputs([str(tree / arg)])


def test_a_folder_with_images_only_in_subfolders_suggests_r(tree: Path) -> None:
    with pytest.raises(UsageError, match=r"holds no image files \(its subfolders do: add -r\)"):
        expand_inputs([str(tree)])
    (tree / "empty-dir").mkdir()
    with pytest.raises(UsageError, match="holds no image files$"):
        expand_inputs([str(tree / "empty-dir")])


def test_links_in_a_folder_are_named_as_the_links(tmp_path: Path) -> None:
    # a folder of links to photos elsewhere: outputs are named after the links, never
    # after their targets' place (which led out of -o, into the photos' own folder)
    elsewhere = tmp_path / "data" / "rgb"
    elsewhere.mkdir(parents=True)
    for name in ("frame.jpg", "other.jpg"):
        (elsewhere / name).write_bytes(b"")
    links = tmp_path / "links"
    links.mkdir()
    (links / "frame.jpg").symlink_to(elsewhere / "frame.jpg")
    (links / "renamed.jpg").symlink_to(elsewhere / "other.jpg")
    items = expand_inputs([str(links)])
    assert [item.relative for item in items] == [Path("frame"), Path("renamed")]
    loose = expand_inputs([str(links / "renamed.jpg"), str(elsewhere / "frame.jpg")])
    assert [item.relative for item in loose] == [Path("links/renamed"), Path("data/rgb/frame")]
