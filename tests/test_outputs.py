"""outputs.py: outputs that are inputs, the one write-error path, staged sets, stale temporaries."""

from __future__ import annotations

import errno
import fcntl
import os
from pathlib import Path

import pytest

from dpde_cli.errors import OutputError, UsageError
from dpde_cli.io import write_text
from dpde_cli.outputs import (
    refuse_inputs_as_outputs,
    refuse_outputs_inside,
    remove_stale_temporaries,
    shown_name,
    staged,
    writing,
)


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    path = tmp_path / "photo.png"
    path.write_bytes(b"a photo")
    return path


def test_an_output_that_is_an_input_by_any_name_is_refused(photo: Path, tmp_path: Path) -> None:
    hard = tmp_path / "hard.png"
    os.link(photo, hard)
    soft = tmp_path / "soft.png"
    soft.symlink_to(photo)
    other = tmp_path / "sub" / ".." / "photo.png"  # the same path spelt another way
    for output in (photo, hard, soft, other):
        with pytest.raises(UsageError, match=f"is the input {photo}: dpde never writes over"):
            refuse_inputs_as_outputs([(f"-o {output}", output)], [photo])
    refuse_inputs_as_outputs([("-o x", tmp_path / "new.png"), ("-o y", tmp_path)], [photo])


def test_the_refusal_counts_the_other_clashes(photo: Path, tmp_path: Path) -> None:
    second = tmp_path / "b.png"
    second.write_bytes(b"b")
    outputs = [("a", photo), ("b", second), ("c", tmp_path / "c.png")]
    with pytest.raises(UsageError, match=r"^a is the input .*\(1 more outputs clash too\)$"):
        refuse_inputs_as_outputs(outputs, [photo, second])


def test_outputs_inside_a_data_folder_are_refused(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "depth").mkdir(parents=True)
    link = tmp_path / "link"
    link.symlink_to(data)
    for inside in (data, data / "depth", link / "depth" / "p"):
        with pytest.raises(UsageError, match=f"inside the data folder {data}"):
            refuse_outputs_inside([("--save-predictions x", inside)], [data])
    refuse_outputs_inside([("--json r", tmp_path / "r.json")], [data])


def test_every_os_error_of_a_write_names_the_output(tmp_path: Path) -> None:
    with pytest.raises(OutputError) as caught, writing(tmp_path / "a.png"):
        raise OSError(errno.ENOSPC, "No space left on device", "/tmp/.a.xyz.tmp.png")
    assert str(caught.value) == f"cannot write {tmp_path / 'a.png'} (No space left on device)"
    assert caught.value.errno == errno.ENOSPC and isinstance(caught.value, OSError)
    (tmp_path / "afile").write_text("x")
    with pytest.raises(OutputError, match="afile is a file, not a folder"):
        write_text(tmp_path / "afile" / "r.json", "{}")
    short = pytest.raises(OutputError, match=r"short write, disk full\?")
    with short, writing(tmp_path / "b.png"):
        raise OSError("-1 bytes requested and 0 written")


def test_a_staged_set_appears_whole_or_not_at_all(tmp_path: Path) -> None:
    targets = {"a": tmp_path / "out" / "a.txt", "b": tmp_path / "out" / "b.txt"}
    with pytest.raises(RuntimeError), staged(targets) as paths:
        write_text(paths["a"], "new a")
        raise RuntimeError("the second write fails")
    assert not (tmp_path / "out").exists()  # not even the folder it made
    with staged(targets) as paths:
        assert shown_name(paths["a"]) == targets["a"] and paths["a"] != targets["a"]
        write_text(paths["a"], "a")
        write_text(paths["b"], "b")
        assert not targets["a"].exists()  # nothing under the final names until the end
    assert targets["a"].read_text() == "a" and targets["b"].read_text() == "b"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.txt", "b.txt"]


def test_a_failed_write_in_a_staged_set_keeps_the_old_outputs(tmp_path: Path) -> None:
    targets = {"a": tmp_path / "a.txt", "b": tmp_path / "b.txt"}
    for path in targets.values():
        path.write_text("old")
    with pytest.raises(OutputError, match="cannot write .*b.txt"), staged(targets) as paths:
        write_text(paths["a"], "new")
        with writing(paths["b"]):  # an error about a staged path names the output
            raise OSError(errno.EIO, "Input/output error")
    assert [p.read_text() for p in targets.values()] == ["old", "old"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.txt"]


def test_a_rename_that_fails_removes_the_outputs_renamed_before_it(tmp_path: Path) -> None:
    targets = {"a": tmp_path / "a.txt", "b": tmp_path / "b"}
    targets["b"].mkdir()  # a folder where the second output goes: its rename fails
    with pytest.raises(OutputError, match="Is a directory"), staged(targets) as paths:
        write_text(paths["a"], "a")
        write_text(paths["b"], "b")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"]


def test_stale_temporaries_go_live_ones_and_other_files_stay(tmp_path: Path) -> None:
    out = tmp_path / "d.png"
    dead = tmp_path / ".d.abcd1234.tmp.png"
    dead.write_bytes(b"half")
    live = tmp_path / ".d.live5678.tmp.png"
    live.write_bytes(b"being written")
    mine = tmp_path / ".d.backup.png"  # a user's file that only looks alike
    mine.write_bytes(b"keep")
    with open(live, "rb") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # as atomic_path holds its temporary file
        assert remove_stale_temporaries([out, tmp_path / "absent" / "x.png"]) == [dead]
    assert not dead.exists() and live.exists() and mine.exists()
