"""`dpde train` end to end on a tiny folder dataset: outputs, resume, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from dpde_cli.cli.app import app
from dpde_cli.registry import sha256_file

runner = CliRunner()


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """DIR/rgb/<stem>.png + DIR/depth/<stem>.png (uint16 mm): six planes, brighter = nearer."""
    root = tmp_path / "frames"
    (root / "rgb").mkdir(parents=True)
    (root / "depth").mkdir()
    rows = np.linspace(0, 1, 48)[:, None].repeat(72, axis=1)
    for i in range(6):
        depth = 1.0 + 0.3 * i + 2.0 * (1 - rows)
        gray = np.clip(255 / depth, 0, 255).astype(np.uint8)
        Image.fromarray(np.stack([gray] * 3, axis=-1)).save(root / "rgb" / f"f{i}.png")
        mm = np.round(depth * 1000).astype(np.uint16)
        mm[:2] = 0  # no depth on the top rows
        Image.fromarray(mm).save(root / "depth" / f"f{i}.png")
    return root


def run(*args: str):
    return runner.invoke(app, ["--device", "cpu", "--quiet", *args])


def base_args(folder: Path, out: Path) -> list[str]:
    return [
        "train",
        "--dataset",
        "folder",
        "--data-dir",
        str(folder),
        "--model",
        "dpde-tiny",
        "--no-pretrained",
        "--batch-size",
        "2",
        "--workers",
        "0",
        "--val-fraction",
        "0.34",
        "--out",
        str(out),
    ]


def test_train_end_to_end_then_resume_and_errors(folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = run(*base_args(folder, out), "--epochs", "2", "--max-steps", "3", "--log-every", "1")
    assert result.exit_code == 0, result.output
    lines = [line.split("\t") for line in result.stdout.strip().splitlines()]
    assert [line[0] for line in lines] == ["best", "last"]
    for _, path, digest in lines:
        assert Path(path).is_file() and digest == f"sha256:{sha256_file(Path(path))}"
    for name in ("config.json", "log.jsonl", "weights.json", "checkpoints/last.pt"):
        assert (out / name).is_file()
    config = json.loads((out / "config.json").read_text())
    assert config["dataset"] == "folder" and config["input_size"] == [64, 96]
    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    steps = [r for r in records if r["kind"] == "step"]
    # 4 training frames, batches of 2: 2 steps an epoch, max 3 a stage, two stages
    assert [(r["stage"], r["step"]) for r in steps] == [
        (s, n) for s in ("global", "gradient") for n in (1, 2, 3)
    ]

    again = run("train", "--resume", str(out), "--json")
    assert again.exit_code == 0, again.output
    index = json.loads(again.stdout)
    assert index["best"]["sha256"] == lines[0][2].removeprefix("sha256:")

    changed = run("train", "--resume", str(out), "--lr", "0.5")
    assert changed.exit_code == 2 and "--lr" in changed.output

    taken = run(*base_args(folder, out))
    assert taken.exit_code == 2
    assert "already holds a run" in taken.output and "Traceback" not in taken.output

    bad = run(*base_args(folder, tmp_path / "other"), "--input-size", "50", "50")
    assert bad.exit_code == 2 and "multiples of 8" in bad.output

    options = ["--optimizer", "adamw", "--lambda-silog", "0.5", "--encoder-lr-scale", "0.1"]
    options += ["--appearance", "strong"]
    other = tmp_path / "adamw"
    adamw = run(*base_args(folder, other), "--stage", "global", "--max-steps", "1", *options)
    assert adamw.exit_code == 0, adamw.output
    saved = json.loads((other / "config.json").read_text())
    assert (saved["optimizer"], saved["lambda_silog"], saved["encoder_lr_scale"]) == (
        "adamw",
        0.5,
        0.1,
    )
    assert saved["appearance"] == "strong"
    unknown = run(*base_args(folder, tmp_path / "adam"), "--optimizer", "adam")
    assert unknown.exit_code == 2

    missing = run(*base_args(tmp_path / "nowhere", tmp_path / "x"))
    assert missing.exit_code != 0 and "Traceback" not in missing.output
    assert len(missing.output.strip().splitlines()) == 1


def test_a_run_s_weights_predict_at_the_size_it_trained_at(folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    small = ["--stage", "global", "--max-steps", "1", "--input-size", "32", "48"]
    trained = run(*base_args(folder, out), *small)
    assert trained.exit_code == 0, trained.output
    best = trained.stdout.split("\t")[1]
    evaluate = ["eval", "--dataset", "folder", "--data-dir", str(folder), "--split", "all"]
    evaluate += ["--model", "dpde-tiny", "--weights", best, "--no-fuse"]
    for extra, size in (([], [32, 48]), (["--input-size", "64", "96"], [64, 96])):
        report = tmp_path / "eval.json"
        done = run(*evaluate, *extra, "--json", str(report))
        assert done.exit_code == 0, done.output
        assert json.loads(report.read_text())["input_size"] == size
        assert f"network at {size[0]}x{size[1]}" in done.stdout
    bad = run(*evaluate, "--input-size", "30", "48")
    assert bad.exit_code == 2 and "multiples of 8" in bad.output


@pytest.mark.slow
def test_torchrun_two_processes_through_the_cli(tmp_path: Path) -> None:
    """`python -m torch.distributed.run --nproc_per_node 2 -m dpde_cli train` on the CPU."""
    import os
    import socket
    import subprocess
    import sys

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = str(sock.getsockname()[1])
    out = tmp_path / "run"
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
        "--master_port", port, "-m", "dpde_cli", "--device", "cpu", "train",
        "--dataset", "synthetic", "--synthetic-size", "10", "--model", "dpde-lite",
        "--no-pretrained", "--input-size", "64", "96", "--epochs", "1", "--batch-size", "2",
        "--workers", "0", "--val-fraction", "0.2", "--out", str(out), "--json",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    index = json.loads(done.stdout)  # rank 0 alone prints
    assert sha256_file(out / index["best"]["file"]) == index["best"]["sha256"]
    start = json.loads((out / "log.jsonl").read_text().splitlines()[0])
    assert start["world_size"] == 2


def _interrupt_at(monkeypatch: pytest.MonkeyPatch, step: int, via_worker: bool = False) -> None:
    """Make the optimiser step number ``step`` meet Ctrl-C (or, with ``via_worker``, the
    RuntimeError torch raises when a loader worker died of that Ctrl-C)."""
    from dpde_cli.training import loop

    calls = {"n": 0}
    original = loop.train_step

    def worker_died() -> None:
        raise RuntimeError("DataLoader worker (pid 1) exited unexpectedly with exit code 1")

    def step_or_interrupt(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == step:
            try:
                raise KeyboardInterrupt
            except KeyboardInterrupt:
                if via_worker:
                    worker_died()
                raise
        return original(*args, **kwargs)

    monkeypatch.setattr(loop, "train_step", step_or_interrupt)


@pytest.mark.parametrize("via_worker", [False, True])
def test_ctrl_c_says_where_the_last_checkpoint_is(
    folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, via_worker: bool
) -> None:
    out = tmp_path / "run"
    _interrupt_at(monkeypatch, 3, via_worker)
    args = [*base_args(folder, out), "--stage", "global", "--epochs", "3", "--val-fraction", "0"]
    result = run(*args, "--checkpoint-every", "1")
    assert result.exit_code == 130 and "Traceback" not in result.output
    message = " ".join(result.stderr.split())
    assert message.startswith("dpde: error: interrupted")
    assert str(out / "checkpoints" / "last.pt") in message and "stage global step 2" in message
    assert f"dpde train --resume {out}" in message


def test_ctrl_c_before_any_checkpoint(
    folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _interrupt_at(monkeypatch, 1)
    result = run(*base_args(folder, tmp_path / "run"), "--stage", "global")
    assert result.exit_code == 130
    assert "before the first checkpoint" in " ".join(result.stderr.split())


def test_several_folders_are_one_training_set(folder: Path, tmp_path: Path) -> None:
    import shutil

    other = tmp_path / "more"
    shutil.copytree(folder, other)
    out = tmp_path / "run"
    args = [*base_args(folder, out), "--data-dir", str(other), "--stage", "global"]
    result = run(*args, "--max-steps", "1")
    assert result.exit_code == 0, result.output
    assert json.loads((out / "config.json").read_text())["data_dir"] == [str(folder), str(other)]
    start = json.loads((out / "log.jsonl").read_text().splitlines()[0])
    assert start["train_images"] + start["val_images"] == 12  # six frames in each folder


def test_data_options_that_would_be_ignored_are_refused(folder: Path, tmp_path: Path) -> None:
    val_split = run(*base_args(folder, tmp_path / "a"), "--val-split", "test")
    assert val_split.exit_code == 2 and "--val-fraction" in val_split.stderr
    synthetic = ["train", "--dataset", "synthetic", "--out", str(tmp_path / "b")]
    both = run(*synthetic, "--synthetic-size", "4", "--dataset-option", "length=3")
    assert both.exit_code == 2 and "--synthetic-size" in both.stderr
    folder_too = run(*synthetic, "--data-dir", str(folder))
    assert folder_too.exit_code == 2 and "--data-dir" in folder_too.stderr


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--momentum", "5", "momentum must be in [0, 1), got 5.0"),
        ("--weight-decay", "-1", "weight_decay must be >= 0, got -1.0"),
        ("--clip-grad-norm", "-1", "clip_grad_norm must be positive, got -1.0"),
        ("--lr", "inf", "lr must be positive, got inf"),
    ],
)
def test_settings_that_cannot_train_are_usage_errors(
    folder: Path, tmp_path: Path, option: str, value: str, message: str
) -> None:
    result = run(*base_args(folder, tmp_path / "run"), option, value)
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert result.stderr.strip() == f"dpde: error: {message}"
    assert not (tmp_path / "run").exists()  # refused before the run folder is made


def test_a_file_in_the_run_folder_s_place_is_refused_before_any_work(
    folder: Path, tmp_path: Path
) -> None:
    (tmp_path / "afile").write_text("not a folder")
    for out in (tmp_path / "afile", tmp_path / "afile" / "run"):
        result = run(*base_args(folder, out), "--max-steps", "1")
        assert result.exit_code == 2 and "Traceback" not in result.output
        assert result.stderr.strip() == (
            f"dpde: error: --out {out}: cannot write there ({tmp_path / 'afile'} is a file, "
            "not a folder)"
        )


def test_depth_that_is_all_missing_fails_instead_of_training(folder: Path, tmp_path: Path) -> None:
    for path in (folder / "depth").iterdir():
        Image.fromarray(np.zeros((48, 72), np.uint16)).save(path)
    out = tmp_path / "run"
    result = run(*base_args(folder, out), "--stage", "global", "--epochs", "1")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.stderr.strip().startswith("dpde: error: no valid depth in 2 training batches")
    assert not list((out / "weights").glob("*.pt"))


def test_quiet_after_the_command_also_on_resume(folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = ["--stage", "global", "--max-steps", "1", "--val-fraction", "0"]
    started = runner.invoke(app, ["--device", "cpu", *base_args(folder, out), *args, "-q"])
    assert started.exit_code == 0, started.output
    assert started.stderr == ""
    resumed = runner.invoke(app, ["--device", "cpu", "train", "--resume", str(out), "-q"])
    assert resumed.exit_code == 0, resumed.output


def test_a_stage_s_summary_comes_before_its_done_message(folder: Path, tmp_path: Path) -> None:
    args = [*base_args(folder, tmp_path / "run"), "--epochs", "1", "--max-steps", "1"]
    result = runner.invoke(app, ["--device", "cpu", *args])
    assert result.exit_code == 0, result.output
    lines = result.stderr.splitlines()
    summary = next(i for i, line in enumerate(lines) if line.startswith("global epoch 1"))
    done = next(i for i, line in enumerate(lines) if "stage global done" in line)
    assert summary < done


def test_workers_default_to_the_usable_cpus(
    folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    from dpde_cli.errors import DpdeError
    from dpde_cli.training import trainer

    seen = {}

    def fake_train(config, callbacks):
        seen["workers"] = config.workers
        raise DpdeError("stop here")

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0}, raising=False)
    monkeypatch.setattr(trainer, "train", fake_train)
    args = [a for a in base_args(folder, tmp_path / "run") if a not in ("--workers", "0")]
    result = run(*args)
    assert result.exit_code == 1 and seen["workers"] == 1


def test_a_folder_of_the_user_s_own_files_is_refused_and_untouched(
    folder: Path, tmp_path: Path
) -> None:
    import hashlib

    out = tmp_path / "mine"
    out.mkdir()
    for name, text in (("config.json", '{"lr": 1}'), ("log.jsonl", "{}\n"), ("weights.json", "[]")):
        (out / name).write_text(text)
    before = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in out.iterdir()}
    result = run(*base_args(folder, out), "--max-steps", "1")
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert result.stderr.strip().splitlines() == [
        f"dpde: error: --out {out}: not empty and not a dpde run folder (holds config.json, "
        "log.jsonl, weights.json); choose a new or empty folder"
    ]
    after = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in out.iterdir()}
    assert after == before


class _Payload:
    """Pickled code in a checkpoint: loading it unsafely would call print."""

    def __reduce__(self):
        return (print, ("pwned",))


@pytest.mark.parametrize("damage", ["payload", "no progress.done"])
def test_a_hostile_or_damaged_checkpoint_is_one_plain_line(
    folder: Path, tmp_path: Path, damage: str
) -> None:
    import torch

    out = tmp_path / "run"
    done = run(*base_args(folder, out), "--stage", "global", "--epochs", "2", "--max-steps", "1")
    assert done.exit_code == 0, done.output
    checkpoint = out / "checkpoints" / "last.pt"
    payload = torch.load(checkpoint, weights_only=True)
    if damage == "payload":
        payload["progress"] = _Payload()
    else:
        del payload["progress"]["done"]
    torch.save(payload, checkpoint)
    result = run("train", "--resume", str(out))
    assert result.exit_code == 1 and "pwned" not in result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and "\x1b" not in result.stderr, result.stderr
    for advice in ("weights_only", "safe_globals", "allowlist"):
        assert advice not in result.stderr
    assert lines[0].startswith(f"dpde: error: {checkpoint}: ")
    if damage == "payload":
        assert "only tensors are loaded" in lines[0]
    else:
        assert lines[0].endswith("field 'progress.done' is missing")


# A `dpde train` process whose N-th checkpoint write trickles its bytes into the temporary
# file (so that a kill lands inside the write) and marks the write's start in READY.
_SLOW_CHECKPOINT = """
import io, sys, time
import torch
import tests.conftest  # registers dpde-tiny

ready, nth, argv = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
save, writes = torch.save, []

def trickle(obj, f, *args, **kwargs):
    if not str(f).endswith(".tmp.pt"):
        return save(obj, f, *args, **kwargs)
    writes.append(f)
    if len(writes) != nth:
        return save(obj, f, *args, **kwargs)
    buffer = io.BytesIO()
    save(obj, buffer, *args, **kwargs)
    data = buffer.getvalue()
    with open(f, "wb") as handle:
        open(ready, "w").close()
        for start in range(0, len(data), len(data) // 20 + 1):
            handle.write(data[start : start + len(data) // 20 + 1])
            handle.flush()
            time.sleep(0.075)

torch.save = trickle
from dpde_cli.cli.app import app
app(["--device", "cpu", "--quiet", *argv])
"""


def test_a_run_killed_while_it_checkpoints_resumes_cleanly(folder: Path, tmp_path: Path) -> None:
    import os
    import random
    import signal
    import subprocess
    import sys
    import time

    seed = random.randrange(2**32)
    draw = random.Random(seed)
    nth, delay = draw.randint(1, 5), draw.uniform(0.0, 0.6)  # of 6 writes; a write takes 1.5 s
    out, ready = tmp_path / "run", tmp_path / "ready"
    args = [*base_args(folder, out), "--stage", "global", "--epochs", "3", "--log-every", "1"]
    args += ["--checkpoint-every", "1"]
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(root)}
    command = [sys.executable, "-c", _SLOW_CHECKPOINT, str(ready), str(nth), *args]
    with open(tmp_path / "stderr", "w") as stderr:
        process = subprocess.Popen(command, cwd=root, env=env, stderr=stderr)
    try:
        deadline = time.monotonic() + 300  # a busy machine is slow to start torch
        while not ready.exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        if ready.exists():
            time.sleep(delay)
            process.send_signal(signal.SIGKILL)
    finally:
        process.kill()
        process.wait()
    assert ready.exists(), (
        f"never reached write {nth} (exit {process.returncode}, "
        f"{time.monotonic() - deadline + 300:.0f} s): {(tmp_path / 'stderr').read_text()}"
    )
    left = [p for p in out.rglob(".*") if ".tmp" in p.name]
    assert left, f"seed {seed}: the kill (write {nth}, +{delay:.2f} s) left no temporary file"

    # the first write killed: nothing to resume, the run starts over in its own folder
    again = ["train", "--resume", str(out)] if nth > 1 else args
    resumed = run(*again, "--json")
    assert resumed.exit_code == 0, f"seed {seed}: {resumed.output}"
    assert not [p for p in out.rglob(".*") if ".tmp" in p.name]  # the killed write's are gone
    # one record per step and per epoch (those after the checkpoint were dropped, then redone)
    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["kind"] == "step"] == [1, 2, 3, 4, 5, 6]
    assert [r["epoch"] for r in records if r["kind"] == "epoch"] == [0, 1, 2]
    kinds = ["start", "resume"] if nth > 1 else ["start"]
    assert [r["kind"] for r in records if "step" not in r] == kinds
    index = json.loads((out / "weights.json").read_text())
    assert json.loads(resumed.stdout)["best"] == index["best"]
    named = {index[k]["file"] for k in ("best", "last")}
    assert {str(p.relative_to(out)) for p in (out / "weights").iterdir()} == named
    for key in ("best", "last"):
        assert sha256_file(out / index[key]["file"]) == index[key]["sha256"]
