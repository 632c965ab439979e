"""`dpde_cli.training.run_folder`: what is a run folder, its weights index, its log, and the
temporary files killed writes leave."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from dpde_cli.errors import DpdeError, UsageError
from dpde_cli.training.config import TrainConfig
from dpde_cli.training.run_folder import (
    RUN_FORMAT,
    RunFolder,
    WeightsEntry,
    WeightsIndex,
    facts_beside,
    read_log,
)


def _hashes(folder: Path) -> dict[str, str]:
    """Every file below ``folder`` -> its sha256."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _entry(stage: str, step: int, value: float) -> WeightsEntry:
    return WeightsEntry(f"weights/m-{step:08x}.pt", "ab" * 32, stage, 0, step, "val_rms", value)


def test_the_index_records_best_and_last_and_round_trips_through_json() -> None:
    index = WeightsIndex("dpde-tiny", (64, 96))
    first, second, third = (
        _entry("global", 1, 0.5),
        _entry("global", 2, 0.7),
        _entry("gradient", 1, 0.1),
    )
    index.record(first, improved=True)
    index.record(second, improved=False)
    assert (index.best, index.last) == (first, second)
    index.record(third, improved=True)
    assert (index.best, index.last) == (third, third)
    assert {e.file for e in index.entries()} == {first.file, second.file, third.file}
    index.val_depth_max = 9.5
    data = json.loads(json.dumps(index.to_json()))
    assert list(data) == ["model", "input_size", "dtype", "best", "last", "stages", "val_depth_max"]
    assert WeightsIndex.from_json(data, "weights.json") == index
    half = index.with_files({first.file: ("weights/h.pt", "cd" * 32)}, dtype="float16")
    assert half.stages["global"].best.file == "weights/h.pt" and half.dtype == "float16"
    assert index.stages["global"].best.file == first.file  # the original is unchanged


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.pop("model"), "field 'model' is missing"),
        (lambda d: d["best"].pop("sha256"), "field 'best.sha256' is missing"),
        (lambda d: d["stages"]["global"].update(last=3), "field 'stages.global.last' is not"),
        (lambda d: d.update(input_size=[64]), "field 'input_size' is not two integers"),
        (lambda d: d.update(val_depth_max="far"), "field 'val_depth_max' is not"),
    ],
)
def test_a_damaged_index_names_the_field(change, message: str, tmp_path: Path) -> None:
    index = WeightsIndex("dpde-tiny", (64, 96))
    index.record(_entry("global", 1, 0.5), improved=True)
    data = index.to_json()
    change(data)
    folder = RunFolder(tmp_path)
    (tmp_path / "weights.json").write_text(json.dumps(data))
    with pytest.raises(DpdeError, match=f"^{tmp_path / 'weights.json'}: {message}"):
        folder.read_index()


def test_a_folder_of_other_files_is_refused_and_left_as_it_was(tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "config.json").write_text('{"model": "my own", "epochs": 3}\n')
    (mine / "log.jsonl").write_text('{"kind": "my log"}\n')
    (mine / "weights.json").write_text("{}\n")
    before = _hashes(mine)
    with pytest.raises(UsageError) as caught:
        RunFolder(mine).check_new_run()
    assert str(caught.value) == (
        f"--out {mine}: not empty and not a dpde run folder (holds config.json, log.jsonl, "
        "weights.json); choose a new or empty folder"
    )
    assert _hashes(mine) == before
    RunFolder(tmp_path / "new").check_new_run()  # a new folder
    (tmp_path / "empty").mkdir()
    RunFolder(tmp_path / "empty").check_new_run()


def test_a_run_that_never_reached_a_checkpoint_may_start_over(tmp_path: Path) -> None:
    folder = RunFolder(tmp_path / "run")
    folder.write_config(TrainConfig(workers=0))
    assert folder.is_run()
    assert json.loads((folder.path / "config.json").read_text())["format"] == RUN_FORMAT
    assert folder.read_config() == TrainConfig(workers=0)
    folder.check_new_run()  # no checkpoint: it starts over
    folder.checkpoint_path.parent.mkdir()
    folder.checkpoint_path.write_bytes(b"")
    with pytest.raises(UsageError, match="already holds a run; continue it with --resume"):
        folder.check_new_run()


def test_temporaries_of_killed_writes_are_removed_and_nothing_else(tmp_path: Path) -> None:
    folder = RunFolder(tmp_path)
    (tmp_path / "weights").mkdir()
    (tmp_path / "checkpoints").mkdir()
    left = [
        "checkpoints/.last.k2j_x8aa.tmp.pt",
        ".config.abc12345.tmp.json",
        ".weights.abc12345.tmp.json",
        ".log.abc12345.tmp.jsonl",
        "weights/.dpde-tiny-0123abcd.q1w2e3r4.tmp.pt",
    ]
    kept = [
        "checkpoints/last.pt",
        "checkpoints/.other.abc.tmp.pt",
        "notes.tmp.txt",
        ".hidden",
        "weights/dpde-tiny-0123abcd.pt",
    ]
    for name in left + kept:
        (tmp_path / name).write_text("x")
    removed = folder.remove_temporaries()
    assert sorted(str(p.relative_to(tmp_path)) for p in removed) == sorted(left)
    assert sorted(_hashes(tmp_path)) == sorted(kept)


def test_only_temporaries_leave_a_folder_empty(tmp_path: Path) -> None:
    (tmp_path / ".config.abc12345.tmp.json").write_text("{")
    RunFolder(tmp_path).check_new_run()


def test_the_log_drops_a_line_a_killed_write_left_unfinished(tmp_path: Path) -> None:
    folder = RunFolder(tmp_path)
    for step in (1, 2, 3):
        folder.append_log({"kind": "step", "stage": "global", "step": step, "loss": float("nan")})
    with open(tmp_path / "log.jsonl", "a") as handle:
        handle.write('{"kind": "step", "sta')  # killed mid-line
    records = read_log(tmp_path, "step")
    assert [r["step"] for r in records] == [1, 2, 3] and records[0]["loss"] is None
    folder.truncate_log("global", 2)
    assert [r["step"] for r in read_log(tmp_path)] == [1, 2]
    assert (tmp_path / "log.jsonl").read_text().endswith("}\n")
    (tmp_path / "log.jsonl").write_text('{"kind": "start"}\nnot json\n{"kind": "step"}\n')
    with pytest.raises(DpdeError, match="log.jsonl: line 2 is not JSON"):
        read_log(tmp_path)


def test_facts_beside_a_run_s_weights(tmp_path: Path) -> None:
    folder = RunFolder(tmp_path)
    folder.write_config(TrainConfig(model="dpde-tiny", input_size=(96, 128), workers=0))
    (tmp_path / "weights.json").write_text(json.dumps({"val_depth_max": 12.5}))
    facts = facts_beside(tmp_path / "weights" / "x.pt")
    assert facts == {
        "model": "dpde-tiny",
        "input_size": [96, 128],
        "dataset": "nyuv2",
        "val_depth_max": 12.5,
    }
    assert facts_beside(tmp_path / "elsewhere" / "x.pt") == {}
