"""The dataset catalogue: its entries fit their builders, and one entry is all a dataset needs.

A throwaway dataset registered in the catalogue alone (``throwaway`` fixture) must be built,
scored, trained on and offered by the CLI like the shipped ones.
"""

from __future__ import annotations

import inspect
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch.utils.data import Dataset

from dpde_cli import dataset_catalog
from dpde_cli.data import build_dataset
from dpde_cli.dataset_catalog import (
    DatasetSpec,
    dataset_spec,
    list_datasets,
    register_dataset,
    training_split,
)
from dpde_cli.errors import UsageError
from dpde_cli.metrics import EvalProtocol, default_protocol


class Constant(Dataset):
    """``count`` frames of constant depth: the throwaway dataset's builder."""

    def __init__(self, root: str | Path, split: str = "score", depth: float = 2.0, count: int = 3):
        self.root, self.split, self.depth, self.count = Path(root), split, depth, count

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> dict:
        return {
            "image": torch.full((3, 48, 64), 0.5),
            "depth": torch.full((1, 48, 64), self.depth),
            "valid": torch.ones(1, 48, 64, dtype=torch.bool),
            "intrinsics": torch.tensor([50.0, 50.0, 32.0, 24.0]),
            "name": f"{self.split}{index}",
        }


THROWAWAY = DatasetSpec(
    name="throwaway",
    builder=f"{__name__}:Constant",
    description="Frames of constant depth (a test's)",
    splits=("fit", "score"),
    eval_split="score",
    train_split="fit",
    protocol={"max_depth": 42.0, "alignment": "median"},
    options={"depth": "metres", "count": "frames"},
    input_size=(64, 96),
)


@pytest.fixture
def throwaway(monkeypatch: pytest.MonkeyPatch) -> DatasetSpec:
    """THROWAWAY in the catalogue for one test."""
    monkeypatch.setitem(dataset_catalog._CATALOG, THROWAWAY.name, THROWAWAY)
    return THROWAWAY


def test_the_shipped_datasets() -> None:
    assert list_datasets() == ["folder", "make3d", "middlebury", "nyuv2", "synthetic"]
    assert list_datasets(trainable=True) == ["folder", "make3d", "nyuv2", "synthetic"]
    assert dataset_spec("make3d").input_size == (448, 352)


@pytest.mark.parametrize("name", list_datasets())
def test_an_entry_fits_its_builder(name: str) -> None:
    spec = dataset_spec(name)
    params = list(inspect.signature(spec.load_builder()).parameters.values())[2:]
    keywords = [p.name for p in params if p.kind is not inspect.Parameter.VAR_KEYWORD]
    assert sorted(spec.options) == sorted(keywords)
    assert all(spec.options.values()) and spec.description
    assert isinstance(EvalProtocol(**spec.protocol), EvalProtocol)  # its fields are valid


def test_an_entry_is_checked_and_frozen() -> None:
    with pytest.raises(ValueError, match="already registered"):
        register_dataset(dataset_spec("nyuv2"))
    with pytest.raises(ValueError, match="split 'val' not in"):
        DatasetSpec("x", "m:a", "x", ("test",), "val", None, {}, {})
    with pytest.raises(ValueError, match="module:attr"):
        DatasetSpec("x", "nothing", "x", ("test",), "test", None, {}, {})
    with pytest.raises(TypeError):
        dataset_spec("nyuv2").protocol["max_depth"] = 1.0  # type: ignore[index]
    with pytest.raises(UsageError, match="unknown dataset 'kitti'; known: folder"):
        dataset_spec("kitti")
    with pytest.raises(UsageError, match="middlebury is for evaluation only"):
        training_split("middlebury")


def test_one_entry_makes_a_dataset_built_and_scored(throwaway: DatasetSpec, tmp_path) -> None:
    assert "throwaway" in list_datasets(trainable=True)
    data = build_dataset("throwaway", tmp_path)  # no split: the entry's eval split
    assert (data.split, len(data)) == ("score", 3)
    assert len(build_dataset("throwaway", tmp_path, "fit", count=2)) == 2
    with pytest.raises(UsageError, match="no option.*bogus; options: count, depth"):
        build_dataset("throwaway", tmp_path, bogus=1)
    with pytest.raises(UsageError, match="option count takes an integer"):
        build_dataset("throwaway", tmp_path, count="many")
    with pytest.raises(UsageError, match="needs a data folder"):
        build_dataset("throwaway", None)
    protocol = default_protocol("throwaway")
    assert (protocol.max_depth, protocol.alignment, protocol.crop) == (42.0, "median", "none")


def test_one_entry_makes_a_dataset_trained_on(throwaway: DatasetSpec, tmp_path) -> None:
    from dpde_cli.data.mix import Source, build_mix
    from dpde_cli.training.config import TrainConfig
    from dpde_cli.training.data import resolve_input_size, training_sets

    config = TrainConfig(dataset="throwaway", data_dir=str(tmp_path), workers=0)
    assert resolve_input_size(config, (240, 320)) == (64, 96)
    train_set, val_set = training_sets(config, (64, 96))
    assert (train_set.split, val_set) == ("fit", None)
    mix = build_mix([Source("throwaway", str(tmp_path))], (64, 96), seed=0, val_fraction=0.0)
    [(dataset, indices, _)] = mix.train.parts
    assert (dataset.split, indices) == ("fit", [0, 1, 2])


def test_one_entry_widens_a_run_s_depth_range(throwaway: DatasetSpec, tmp_path) -> None:
    from dpde_cli.registry import inference_facts

    facts = {"model": "dpde-r50", "dataset": "throwaway"}
    assert inference_facts(tmp_path / "w.pt", "dpde-r50", facts)["max_depth"] == 42.0


def test_one_entry_is_offered_by_the_cli() -> None:
    # a fresh process: the CLI's enums are made when its modules are imported
    code = (
        "import sys; sys.path.insert(0, '.');"
        "from dpde_cli.dataset_catalog import register_dataset;"
        f"from {__name__} import THROWAWAY; register_dataset(THROWAWAY);"
        "from dpde_cli.cli import eval, train;"
        "print(sorted(m.value for m in eval.Dataset), sorted(m.value for m in train.Dataset))"
    )
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root)
    assert done.returncode == 0, done.stderr
    offered = ["folder", "make3d", "middlebury", "nyuv2", "synthetic", "throwaway"]
    trained = ["folder", "make3d", "nyuv2", "synthetic", "throwaway"]
    assert done.stdout.strip() == f"{offered} {trained}"
