"""`dpde_cli.training.checkpoint`: TrainState saved and read whole and checked field by
field; untrusted torch files refused in one line of our own."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from dpde_cli.errors import DpdeError, WeightsError
from dpde_cli.training.checkpoint import CHECKPOINT_FORMAT, TrainState, load_untrusted
from dpde_cli.training.trainer import resume, train
from tests.training.helpers import Planes, tiny_config

pytestmark = pytest.mark.usefixtures("one_thread")


class Payload:
    """Pickled code: loading it unsafely would call print."""

    def __reduce__(self):
        return (print, ("pwned",))


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """checkpoints/last.pt of a dpde-tiny run of one step in each stage."""
    out = tmp_path_factory.mktemp("run") / "run"
    config = tiny_config(out, stage="all", epochs=2, max_steps=1, val_fraction=0.25)
    train(config, train_set=Planes(12))
    return out / "checkpoints" / "last.pt"


def _one_line_of_ours(message: str) -> None:
    """One line, with none of torch's advice to load a file unsafely, nor its colours."""
    assert "\n" not in message and "\x1b" not in message
    for advice in ("weights_only", "safe_globals", "allowlist", "add_safe"):
        assert advice not in message


def test_a_pickled_payload_is_refused_in_one_line_and_never_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "evil.pt"
    torch.save({"format": CHECKPOINT_FORMAT, "model": Payload()}, path)
    with pytest.raises(WeightsError) as caught:
        load_untrusted(path, "loadable checkpoint")
    message = str(caught.value)
    _one_line_of_ours(message)
    assert message.startswith(f"{path}: not a loadable checkpoint (only tensors are loaded: ")
    assert "print" in message  # the global it holds is named
    with pytest.raises(DpdeError) as again:
        TrainState.load(path)
    _one_line_of_ours(str(again.value))
    assert "pwned" not in capsys.readouterr().out


@pytest.mark.parametrize(
    "content", [b"not a checkpoint", b"PK\x03\x04 a truncated zip"], ids=["text", "zip"]
)
def test_garbage_is_one_line(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "last.pt"
    path.write_bytes(content)
    with pytest.raises(DpdeError) as caught:
        TrainState.load(path)
    _one_line_of_ours(str(caught.value))
    assert str(caught.value).startswith(f"{path}: not a loadable checkpoint")


def test_a_state_saves_and_loads_whole(checkpoint: Path, tmp_path: Path) -> None:
    state = TrainState.load(checkpoint)
    assert (state.progress.stage, state.progress.step, state.progress.done) == ("gradient", 1, True)
    copy = tmp_path / "copy.pt"
    state.save(copy)
    again = TrainState.load(copy)
    assert again.progress == state.progress and again.weights_index == state.weights_index
    assert again.ranks[0].loss_count == state.ranks[0].loss_count
    assert again.model.keys() == state.model.keys()
    assert all(torch.equal(again.model[k], v) for k, v in state.model.items())
    assert not list(tmp_path.glob(".*"))  # no temporary file left beside it


def _without(*keys: str) -> Callable[[dict[str, Any]], None]:
    """Delete the field at a dotted path."""

    def change(payload: dict[str, Any]) -> None:
        holder = payload
        for key in keys[:-1]:
            holder = holder[int(key)] if isinstance(holder, list) else holder[key]
        del holder[keys[-1]]

    return change


def _set(value: Any, *keys: str) -> Callable[[dict[str, Any]], None]:
    """Set the field at a dotted path."""

    def change(payload: dict[str, Any]) -> None:
        holder = payload
        for key in keys[:-1]:
            holder = holder[int(key)] if isinstance(holder, list) else holder[key]
        holder[keys[-1]] = value

    return change


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (_without("progress", "done"), "field 'progress.done' is missing"),
        (_without("progress"), "field 'progress' is missing"),
        (_set("yes", "progress", "done"), "field 'progress.done' is not a bool"),
        (_set("middle", "progress", "stage"), "field 'progress.stage' is not one of"),
        (_set(2.5, "progress", "step"), "field 'progress.step' is not an int"),
        (_set(True, "world_size"), "field 'world_size' is not an int"),
        (_without("ranks", "0", "rng"), "field 'ranks.0.rng' is missing"),
        (_set([], "ranks"), "fields 'world_size' and 'ranks' hold no process"),
        (_without("weights_index", "last", "file"), "field 'weights_index.last.file' is missing"),
        (_set("x", "weights_index", "input_size"), "field 'weights_index.input_size' is not"),
        (_set({"a": 1}, "model"), "field 'model' is not a state dict"),
        (_set([], "optimizer"), "field 'optimizer' is not a dict"),
    ],
    ids=lambda value: value if isinstance(value, str) else None,
)
def test_a_damaged_checkpoint_names_the_file_and_the_field(
    checkpoint: Path, tmp_path: Path, change: Callable[[dict[str, Any]], None], message: str
) -> None:
    payload = torch.load(checkpoint, weights_only=True)
    change(payload)
    path = tmp_path / "last.pt"
    torch.save(payload, path)
    with pytest.raises(DpdeError) as caught:
        TrainState.load(path)
    assert str(caught.value).startswith(f"{path}: {message}")
    _one_line_of_ours(str(caught.value))


def test_an_optimiser_state_that_does_not_fit_is_one_line(checkpoint: Path, tmp_path: Path) -> None:
    import shutil

    run = tmp_path / "run"
    shutil.copytree(checkpoint.parent.parent, run)
    payload = torch.load(checkpoint, weights_only=True)
    payload["progress"]["done"] = False  # go on in the stage, whose optimiser is restored
    payload["optimizer"]["param_groups"] = payload["optimizer"]["param_groups"] * 2
    torch.save(payload, run / "checkpoints" / "last.pt")
    with pytest.raises(DpdeError, match="optimiser state does not fit") as caught:
        resume(run, train_set=Planes(12))
    _one_line_of_ours(str(caught.value))
