"""batch.py: grouping by size, planning, and run_batch's skip / fail / write policy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dpde_cli.batch import (
    DONE,
    FAILED,
    SKIPPED,
    BatchOptions,
    Job,
    batched_images,
    beside,
    group_by_size,
    output_path,
    run_batch,
    single_output,
)
from dpde_cli.errors import DpdeError, InputError, UsageError
from dpde_cli.inputs import InputItem, expand_inputs
from dpde_cli.io import write_text


def test_group_by_size_keeps_order_caps_length_and_lets_errors_join() -> None:
    groups = list(group_by_size([1, 1, 1, 2, None, 2, 3], lambda n: n, most=2))
    assert groups == [[1, 1], [1], [2, None], [2], [3]]
    assert list(group_by_size([None, 4, 4], lambda n: n)) == [[None, 4, 4]]
    assert list(group_by_size([], lambda n: n)) == []


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    """a.png and b.png of one size, c.png of another, d.png broken."""
    root = tmp_path / "photos"
    root.mkdir()
    for name, size in (("a", (8, 12)), ("b", (8, 12)), ("c", (12, 8))):
        Image.fromarray(np.full((*size, 3), 100, np.uint8)).save(root / f"{name}.png")
    (root / "d.png").write_bytes(b"not a png")
    return root


def test_batched_images_groups_one_size_and_hands_errors_back(photos: Path) -> None:
    paths = sorted(photos.iterdir())
    batches = list(batched_images([p.stem for p in paths], paths, batch_size=4))
    assert [[key for key, _ in batch] for batch in batches] == [["a", "b"], ["c", "d"]]
    assert isinstance(batches[1][1][1], DpdeError) and batches[0][0][1].shape == (8, 12, 3)


def test_planning_names_outputs_from_the_inputs_layout(tmp_path: Path) -> None:
    item = InputItem(Path("photos/sub/a.jpg"), Path("sub/a"))
    assert output_path(item, None, ".png") == Path("outputs/sub/a.png")
    assert output_path(item, tmp_path, ".npy") == tmp_path / "sub/a.npy"
    assert output_path(item, Path("d.png"), ".npy", single=True) == Path("d.png")
    assert beside(Path("o/a.png"), "_color") == Path("o/a_color.png")
    assert beside(Path("o/a.png"), ".intrinsics", ".json") == Path("o/a.intrinsics.json")
    assert single_output(Path("x.png"), 1) and not single_output(tmp_path, 3)
    with pytest.raises(UsageError, match="give a directory"):
        single_output(Path("x.png"), 2)


def _jobs(photos: Path, out: Path) -> list[Job]:
    return [
        Job(item, {"main": out / f"{item.relative}.txt", "extra": out / f"{item.relative}.x"})
        for item in expand_inputs([str(photos)])
    ]


def _write(job: Job, paths: dict[str, Path], image, result) -> dict:
    if result == "fail":
        raise InputError(job.item.path, "the writer refuses it")
    write_text(paths["main"], f"{image.shape} {result}")
    write_text(paths["extra"], "x")
    return {"input": str(job.item.path), "output": str(job.targets["main"])}


def test_run_batch_reports_done_failed_and_skipped(photos: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    jobs = _jobs(photos, out)
    calls: list[int] = []

    def infer(batch: list[Job], images: list[np.ndarray]) -> list[str]:
        assert [job.item.path.stem for job in batch] in (["a", "b"], ["c"])  # whose images
        calls.append(len(images))
        return ["fail" if im.shape[0] == 12 else "ok" for im in images]

    heard = []
    options = BatchOptions(batch_size=4, on_outcome=heard.append)
    report = run_batch(jobs, _write, infer=infer, options=options)
    assert calls == [2, 1]  # a and b together, c alone, d never decoded into a batch
    assert heard == report.outcomes and len(report.done) == 2  # in the order they finished
    reasons = {Path(o.record["input"]).name: o.reason for o in report.failed}
    assert reasons["c.png"] == f"{photos / 'c.png'}: the writer refuses it"
    assert "d.png: not an image" in reasons["d.png"]
    assert (out / "a.txt").read_text() == "(8, 12, 3) ok"
    assert sorted(p.name for p in out.iterdir()) == ["a.txt", "a.x", "b.txt", "b.x"]

    again = run_batch(jobs, _write, infer=infer)  # done ones are skipped
    assert [o.status for o in again.skipped] == [SKIPPED, SKIPPED]
    assert again.skipped[0].reason == f"{out / 'a.txt'} exists"
    (out / "b.x").unlink()  # one output of b is gone: not ours to mix with
    mixed = run_batch(jobs[:2], _write, infer=infer)
    assert mixed.failed[0].reason == f"{photos / 'b.png'}: {out / 'b.txt'} exists (use --overwrite)"
    redo = run_batch(jobs[:2], _write, infer=infer, options=BatchOptions(overwrite=True))
    assert [o.status for o in redo.outcomes] == [DONE, DONE] and (out / "b.x").exists()


def test_run_batch_refuses_an_output_that_is_an_input_before_any_work(photos: Path) -> None:
    item = expand_inputs([str(photos / "a.png")])[0]
    other = expand_inputs([str(photos / "b.png")])[0]
    before = (photos / "b.png").read_bytes()
    jobs = [Job(item, {"main": photos / "b.png"}), Job(other, {"main": photos / "x.txt"})]
    with pytest.raises(UsageError, match=f"the output {photos / 'b.png'} is the input"):
        run_batch(
            jobs, _write, infer=lambda _jobs, ims: ["ok"] * len(ims), options=BatchOptions(True)
        )
    weights = photos / "w.pt"
    weights.write_bytes(b"w")
    with pytest.raises(UsageError, match="is the input .*w.pt"):
        options = BatchOptions(overwrite=True, inputs=(weights,))
        run_batch([Job(item, {"main": weights})], _write, options=options)
    assert (photos / "b.png").read_bytes() == before and not (photos / "x.txt").exists()


def test_an_input_that_fails_mid_write_keeps_none_of_its_new_files(
    photos: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    (out / "a.x").mkdir(parents=True)  # where a's second output goes: a folder

    infer = lambda _jobs, images: ["ok"] * len(images)  # noqa: E731
    options = BatchOptions(overwrite=True)
    report = run_batch(_jobs(photos, out)[:2], _write, infer=infer, options=options)
    assert [o.status for o in report.outcomes] == [FAILED, DONE]
    assert report.failed[0].reason == (
        f"{photos / 'a.png'}: cannot write {out / 'a.x'} (Is a directory)"
    )
    assert sorted(p.name for p in out.iterdir()) == ["a.x", "b.txt", "b.x"]
    assert not any(p.name.startswith(".") for p in out.iterdir())


def test_run_batch_removes_what_a_killed_run_left(photos: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    stale = out / ".a.k1ll3d00.tmp.txt"
    stale.write_text("half a file")
    run_batch(_jobs(photos, out)[:1], _write, infer=lambda _jobs, ims: ["ok"] * len(ims))
    assert not stale.exists() and (out / "a.txt").exists()


def test_without_decoding_the_writer_gets_no_image(photos: Path, tmp_path: Path) -> None:
    seen = []

    def write(job, paths, image, result):
        seen.append((image, result))
        write_text(paths["main"], "x")
        write_text(paths["extra"], "x")
        return {"input": str(job.item.path), "output": str(job.targets["main"])}

    report = run_batch(_jobs(photos, tmp_path / "o"), write, decode=False)
    assert len(report.done) == 4 and seen == [(None, None)] * 4  # d.png is never read
