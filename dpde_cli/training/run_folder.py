"""The run folder of `dpde train`: the one place that knows its files (no torch at import).

    config.json                  {"format": "dpde-run/1", **the final TrainConfig}: what
                                 ``resume`` reads, and the mark of a dpde run folder
    log.jsonl                    one JSON object a line: kind "start" / "resume", "step"
                                 (every ``log_every`` steps), "epoch" (losses, lr, val_*,
                                 images_per_s)
    checkpoints/last.pt          the TrainState a resume continues from (``checkpoint.py``)
    weights/<model>-<sha8>.pt    best and last weights: {"model": state dict, "run": the
                                 run's model, input_size, dataset, val_depth_max}, so that
                                 a copy anywhere runs as trained (``registry.inference_facts``)
    weights.json                 the WeightsIndex: {"model", "input_size", "dtype", "best",
                                 "last", "stages"} with file, sha256, stage, epoch, step,
                                 metric, value of each; "val_depth_max": the farthest
                                 validation ground truth (where predictions are clamped)

Every file is written atomically (``dpde_cli.io.atomic_path``); the temporary files a
killed write leaves (``.<name>.<random>.tmp<suffix>``) are removed when the run starts or
resumes. A folder is a dpde run when its config.json carries ``RUN_FORMAT``; ``train``
refuses any other folder that is not empty, so a user's own files are never touched.

Example:
    >>> folder = RunFolder("runs/nyu")
    >>> folder.read_index().best.file
    'weights/dpde-r50-0123abcd.pt'
    >>> read_log("runs/nyu", "epoch")[-1]["val_rms"]
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from dpde_cli.errors import DpdeError, UsageError
from dpde_cli.training.config import STAGES, TrainConfig

RUN_FORMAT = "dpde-run/1"
"""The mark config.json carries in a folder `dpde train` made."""
CONFIG_FILE = "config.json"
LOG_FILE = "log.jsonl"
INDEX_FILE = "weights.json"
WEIGHTS_DIR = "weights"
CHECKPOINT_DIR = "checkpoints"
CHECKPOINT_FILE = f"{CHECKPOINT_DIR}/last.pt"
_OWN_FILES = (CONFIG_FILE, LOG_FILE, INDEX_FILE, CHECKPOINT_FILE)


# --------------------------------------------------------------------------- weights index


def checked_field(
    data: Any, key: str, kinds: type | tuple[type, ...], where: str, within: str = ""
) -> Any:
    """``data[key]`` if it is one of ``kinds``, else a DpdeError naming the file (``where``)
    and the field (``within`` + ``key``, e.g. "progress.done")."""
    if not isinstance(data, dict) or key not in data:
        raise DpdeError(f"{where}: field '{within}{key}' is missing")
    value = data[key]
    kinds = kinds if isinstance(kinds, tuple) else (kinds,)
    # True is an int to Python, not to a file format
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        raise DpdeError(f"{where}: field '{within}{key}' is not {_kind_name(kinds)}")
    return value


def _kind_name(kinds: tuple[type, ...]) -> str:
    """'a str', 'an int or a float', ... for a message."""
    names = [k.__name__ for k in kinds]
    names = ["None" if n == "NoneType" else n for n in names]
    return " or ".join(("an " if n[0] in "aeiou" else "a ") + n for n in names)


@dataclass(frozen=True)
class WeightsEntry:
    """One exported weights file of a run and why it was kept.

    Attributes:
        file: path relative to the run folder (``weights/<model>-<sha8>.pt``).
        sha256: hex digest of the file.
        stage, epoch, step: where the run was (epoch 0-based; step within the stage).
        metric, value: the selection metric ("val_rms", "val_grad_loss" or "train_loss")
            and its value (lower is better).
    """

    file: str
    sha256: str
    stage: str
    epoch: int
    step: int
    metric: str
    value: float

    def to_json(self) -> dict[str, Any]:
        """The entry as weights.json holds it."""
        return dict(self.__dict__)

    @classmethod
    def from_json(cls, data: Any, where: str, within: str = "") -> WeightsEntry:
        """An entry read from ``where`` (weights.json, a checkpoint); ``within``: its place
        there ("best.", ...). A bad field is a DpdeError naming both."""

        def get(key: str, kinds: type | tuple[type, ...]) -> Any:
            return checked_field(data, key, kinds, where, within)

        value = get("value", (int, float, type(None)))
        return cls(
            file=get("file", str),
            sha256=get("sha256", str),
            stage=get("stage", str),
            epoch=get("epoch", int),
            step=get("step", int),
            metric=get("metric", str),
            value=math.nan if value is None else float(value),
        )


def _entry_or_none(data: Any, key: str, where: str, within: str) -> WeightsEntry | None:
    """The entry under ``key`` (None where it is null)."""
    value = checked_field(data, key, (dict, type(None)), where, within)
    return None if value is None else WeightsEntry.from_json(value, where, f"{within}{key}.")


@dataclass(frozen=True)
class StageWeights:
    """The best and last weights of one stage."""

    best: WeightsEntry | None = None
    last: WeightsEntry | None = None


@dataclass
class WeightsIndex:
    """weights.json: the weights a run exported, overall and per stage.

    Attributes:
        model: registered model name.
        input_size: (H, W) the run trained at.
        dtype: "float32", or "float16" once ``export_half`` converted the files.
        best, last: the best and the latest weights of the run (best: the last stage's).
        stages: stage -> its best and last weights.
        val_depth_max: the farthest validation ground truth, metres (None: no validation).
        canonical_focal: the focal length (pixels at ``input_size``) the depth targets
            referred to (``TrainConfig.canonical_camera``), or None.
    """

    model: str
    input_size: tuple[int, int]
    dtype: str = "float32"
    best: WeightsEntry | None = None
    last: WeightsEntry | None = None
    stages: dict[str, StageWeights] = field(default_factory=dict)
    val_depth_max: float | None = None
    canonical_focal: float | None = None

    def record(self, entry: WeightsEntry, improved: bool) -> None:
        """Note a new export: the stage's (and run's) last, and best when ``improved``."""
        old = self.stages.get(entry.stage, StageWeights())
        stage = StageWeights(best=entry if improved else old.best, last=entry)
        self.stages[entry.stage] = stage
        self.last, self.best = entry, stage.best

    def entries(self) -> Iterator[WeightsEntry]:
        """Every entry the index names (a file may be named more than once)."""
        for stage in self.stages.values():
            yield from (e for e in (stage.best, stage.last) if e is not None)
        yield from (e for e in (self.best, self.last) if e is not None)

    def with_files(self, files: dict[str, tuple[str, str]], dtype: str) -> WeightsIndex:
        """The index with each file replaced: old file -> (new file, its sha256)."""

        def swap(entry: WeightsEntry | None) -> WeightsEntry | None:
            if entry is None or entry.file not in files:
                return entry
            file, digest = files[entry.file]
            return replace(entry, file=file, sha256=digest)

        stages = {k: StageWeights(swap(v.best), swap(v.last)) for k, v in self.stages.items()}
        best, last = swap(self.best), swap(self.last)
        return replace(self, best=best, last=last, stages=stages, dtype=dtype)

    def to_json(self) -> dict[str, Any]:
        """weights.json's content."""

        def entry(value: WeightsEntry | None) -> dict[str, Any] | None:
            return None if value is None else value.to_json()

        data: dict[str, Any] = {
            "model": self.model,
            "input_size": list(self.input_size),
            "dtype": self.dtype,
            "best": entry(self.best),
            "last": entry(self.last),
            "stages": {
                k: {"best": entry(v.best), "last": entry(v.last)} for k, v in self.stages.items()
            },
        }
        if self.val_depth_max is not None:
            data["val_depth_max"] = self.val_depth_max
        if self.canonical_focal is not None:
            data["canonical_focal"] = self.canonical_focal
        return data

    @classmethod
    def from_json(cls, data: Any, where: str, within: str = "") -> WeightsIndex:
        """An index read from ``where`` (weights.json, or a checkpoint with ``within``
        "weights_index."); a bad field is a DpdeError naming the file and the field."""

        def get(key: str, kinds: type | tuple[type, ...]) -> Any:
            return checked_field(data, key, kinds, where, within)

        size = get("input_size", (list, tuple))
        if len(size) != 2 or not all(isinstance(v, int) for v in size):
            raise DpdeError(f"{where}: field '{within}input_size' is not two integers")
        stages = {}
        for name, value in get("stages", dict).items():
            if name not in STAGES:
                raise DpdeError(f"{where}: field '{within}stages' names an unknown stage")
            inner = f"{within}stages.{name}."
            stages[name] = StageWeights(
                _entry_or_none(value, "best", where, inner),
                _entry_or_none(value, "last", where, inner),
            )
        far = get("val_depth_max", (int, float, type(None))) if "val_depth_max" in data else None
        focal = None
        if "canonical_focal" in data:
            focal = get("canonical_focal", (int, float, type(None)))
        return cls(
            model=get("model", str),
            input_size=(size[0], size[1]),
            dtype=get("dtype", str),
            best=_entry_or_none(data, "best", where, within),
            last=_entry_or_none(data, "last", where, within),
            stages=stages,
            val_depth_max=None if far is None else float(far),
            canonical_focal=None if focal is None else float(focal),
        )


# --------------------------------------------------------------------------- the folder


def _json_line(record: dict[str, Any]) -> str:
    """One compact JSON line, strict JSON (floats written exactly; NaN and inf, which
    JSON has not, as null)."""
    plain = {
        k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in record.items()
    }
    return json.dumps(plain, separators=(",", ":"), allow_nan=False) + "\n"


def _json_object(path: Path) -> dict[str, Any]:
    """A JSON object from a file, or {} where there is none (missing, unreadable, a list)."""
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def _write_json(path: Path, data: Any) -> None:
    """Write JSON atomically."""
    from dpde_cli.io import write_text

    write_text(path, json.dumps(data, indent=2) + "\n")


def _later(record: dict[str, Any], checkpoint: tuple[int, int]) -> bool:
    """Whether a log record was written after the checkpoint at (stage index, step)."""
    stage, step = record.get("stage"), record.get("step")
    return stage in STAGES and isinstance(step, int) and (STAGES.index(stage), step) > checkpoint


def _is_temporary(path: Path, own: str) -> bool:
    """Whether ``path`` is a temporary file ``atomic_path`` made for the file ``own`` (a
    name; "*" for any): ``.<stem>.<random>.tmp<suffix>``."""
    stem, suffix = Path(own).stem, Path(own).suffix
    name = path.name
    if own == "*":
        return name.startswith(".") and ".tmp." in name and name.endswith(".pt")
    return name.startswith(f".{stem}.") and name.endswith(f".tmp{suffix}")


class RunFolder:
    """The files of one run folder; every reader and writer of the format goes through it.

    Args:
        path: the run folder (``TrainConfig.out``); ``~`` is expanded.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).expanduser()

    @property
    def checkpoint_path(self) -> Path:
        """checkpoints/last.pt."""
        return self.path / CHECKPOINT_FILE

    @property
    def weights_dir(self) -> Path:
        """weights/, where the exported files go."""
        return self.path / WEIGHTS_DIR

    # ------------------------------------------------------------------ what the folder is

    def is_run(self) -> bool:
        """Whether `dpde train` made this folder (its config.json carries RUN_FORMAT)."""
        return _json_object(self.path / CONFIG_FILE).get("format") == RUN_FORMAT

    def check_new_run(self) -> None:
        """Refuse to start a run here unless the folder is new, empty, or a dpde run that
        never reached a checkpoint (which starts over); nothing is touched.

        Raises:
            UsageError: the folder holds a run (resume it), or other files.
        """
        try:
            if self.checkpoint_path.exists():
                raise UsageError(
                    f"{self.path} already holds a run; continue it with --resume "
                    f"{self.path} or choose another --out"
                )
            if not self.path.is_dir() or self.is_run():
                return
            others = sorted(p.name for p in self.path.iterdir() if not self._temporary(p))
        except OSError as exc:
            raise UsageError(f"--out {self.path}: cannot read ({exc.strerror})") from None
        if others:
            shown = ", ".join(others[:3]) + (", ..." if len(others) > 3 else "")
            raise UsageError(
                f"--out {self.path}: not empty and not a dpde run folder (holds {shown}); "
                "choose a new or empty folder"
            )

    def _temporary(self, path: Path) -> bool:
        """Whether ``path`` (in this folder) is a temporary file of a killed write."""
        if path.parent == self.weights_dir:
            return _is_temporary(path, "*")
        return any(
            path.parent == (self.path / own).parent and _is_temporary(path, Path(own).name)
            for own in _OWN_FILES
        )

    def remove_temporaries(self) -> list[Path]:
        """Delete the temporary files killed writes left; returns what was removed."""
        removed = []
        for folder in (self.path, self.weights_dir, self.path / CHECKPOINT_DIR):
            if not folder.is_dir():
                continue
            for path in folder.iterdir():
                if path.is_file() and self._temporary(path):
                    path.unlink(missing_ok=True)
                    removed.append(path)
        return removed

    # ------------------------------------------------------------------ config and log

    def write_config(self, config: TrainConfig) -> None:
        """config.json: the format mark, then the config."""
        _write_json(self.path / CONFIG_FILE, {"format": RUN_FORMAT, **config.to_json()})

    def read_config(self) -> TrainConfig:
        """The run's TrainConfig.

        Raises:
            DpdeError: no config.json (not a run folder), or one that cannot be read.
        """
        path = self.path / CONFIG_FILE
        if not path.is_file():
            raise DpdeError(f"{self.path}: not a dpde run folder (no {CONFIG_FILE})")
        try:
            data = json.loads(path.read_text())
            if not isinstance(data, dict):
                raise ValueError("not a JSON object")
            mark = data.pop("format", RUN_FORMAT)  # folders of older versions have none
            if mark != RUN_FORMAT:
                raise ValueError(f"format {mark!r}, this version reads {RUN_FORMAT!r}")
            return TrainConfig.from_json(data)
        except (OSError, ValueError, TypeError, UsageError) as exc:
            raise DpdeError(f"{path}: cannot read ({exc})") from exc

    def start_over(self) -> None:
        """Forget the log and index of a run that never reached a checkpoint."""
        (self.path / LOG_FILE).unlink(missing_ok=True)
        (self.path / INDEX_FILE).unlink(missing_ok=True)

    def append_log(self, record: dict[str, Any]) -> None:
        """Append one record to log.jsonl."""
        with open(self.path / LOG_FILE, "a") as handle:
            handle.write(_json_line(record))

    def read_log(self, kind: str | None = None) -> list[dict[str, Any]]:
        """The records of log.jsonl, optionally only those of one kind ("step", ...); a
        last line a killed write left unfinished is left out.

        Raises:
            DpdeError: a line that is not JSON before the last.
        """
        path = self.path / LOG_FILE
        if not path.is_file():
            return []
        records = []
        text = path.read_text()
        for number, line in enumerate(text.splitlines(keepends=True), 1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except ValueError:
                if line.endswith("\n"):
                    raise DpdeError(f"{path}: line {number} is not JSON") from None
        return [r for r in records if kind is None or r.get("kind") == kind]

    def truncate_log(self, stage: str, step: int) -> None:
        """Drop the log records written after the checkpoint at (stage, step), and a last
        line a killed write left unfinished."""
        from dpde_cli.io import atomic_path

        path = self.path / LOG_FILE
        if not path.is_file():
            return
        checkpoint = (STAGES.index(stage), step)
        kept = []
        for line in path.read_text().splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict) and not _later(record, checkpoint):
                kept.append(line + "\n")
        with atomic_path(path) as tmp:
            tmp.write_text("".join(kept))

    # ------------------------------------------------------------------ weights

    def write_index(self, index: WeightsIndex) -> None:
        """weights.json."""
        _write_json(self.path / INDEX_FILE, index.to_json())

    def read_index(self) -> WeightsIndex:
        """weights.json as a WeightsIndex.

        Raises:
            DpdeError: missing or not an index.
        """
        path = self.path / INDEX_FILE
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise DpdeError(f"{path}: cannot read ({exc})") from exc
        return WeightsIndex.from_json(data, str(path))

    def export(
        self, state: dict[str, Any], model: str, facts: dict[str, Any], half: bool = False
    ) -> tuple[str, str]:
        """Export a state dict into weights/ (``weights.export_weights``).

        Returns:
            (the file relative to the run folder, its sha256).
        """
        from dpde_cli.training.weights import export_weights

        path, digest = export_weights(state, self.weights_dir, model, half=half, run=facts)
        return str(path.relative_to(self.path)), digest

    def export_half(self, index: WeightsIndex) -> WeightsIndex:
        """Convert every file the index names to float16; returns the index naming the new
        files (the old ones are pruned)."""
        from dpde_cli.registry import read_weights

        converted: dict[str, tuple[str, str]] = {}
        for entry in index.entries():
            if entry.file not in converted:
                state, facts = read_weights(self.path / entry.file)
                converted[entry.file] = self.export(state, index.model, facts, half=True)
        index = index.with_files(converted, dtype="float16")
        self.prune(index)
        return index

    def prune(self, index: WeightsIndex) -> None:
        """Delete the files in weights/ the index no longer names."""
        keep = {entry.file for entry in index.entries()}
        for path in self.weights_dir.glob("*.pt"):
            if str(path.relative_to(self.path)) not in keep:
                path.unlink(missing_ok=True)


def read_log(run_dir: str | Path, kind: str | None = None) -> list[dict[str, Any]]:
    """The records of a run's log.jsonl, optionally only those of one kind ("step", ...)."""
    return RunFolder(run_dir).read_log(kind)


def facts_beside(path: Path) -> dict[str, Any]:
    """The run facts (``registry.RUN_FACTS``) of a weights file in a run's ``weights/`` or
    ``checkpoints/`` folder, from the run's config.json and weights.json ({} elsewhere, or
    where they cannot be read)."""
    from dpde_cli.registry import run_facts

    if path.parent.name not in (WEIGHTS_DIR, CHECKPOINT_DIR):
        return {}
    run = path.parent.parent
    return run_facts(_json_object(run / CONFIG_FILE), _json_object(run / INDEX_FILE))
