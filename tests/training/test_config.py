"""`dpde_cli.training.config`: the schedule, TrainConfig's JSON and checks, no torch."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from dpde_cli.errors import UsageError
from dpde_cli.training.config import TrainConfig, defaults, lr_factor


def test_paper_schedule_scales_with_epochs() -> None:
    factors = [lr_factor(e, 30) for e in range(30)]
    assert factors == [1.0] * 10 + [0.5] * 10 + [0.1] * 10
    assert [lr_factor(e, 6) for e in range(6)] == [1.0, 1.0, 0.5, 0.5, 0.1, 0.1]
    assert lr_factor(0, 1) == 1.0
    assert lr_factor(25, 30, "constant") == 1.0


def test_config_round_trips_through_json_and_is_validated() -> None:
    config = TrainConfig(input_size=(224, 320), dataset_options={"gt": "raw"})
    again = TrainConfig.from_json(json.loads(json.dumps(config.to_json())))
    assert again == config and again.input_size == (224, 320)
    bad_values = (
        {"stage": "both"},
        {"input_size": (240, 300)},
        {"val_fraction": 1.0},
        {"optimizer": "adam"},
        {"encoder_lr_scale": -1.0},
        {"lambda_silog": -0.5},
        {"appearance": "wild"},
    )
    for bad in bad_values:
        with pytest.raises(UsageError):
            TrainConfig(**bad).validate()
    with pytest.raises(UsageError, match="unknown"):
        TrainConfig.from_json({"nonsense": 1})


def test_the_cli_s_modules_and_the_registry_import_no_torch() -> None:
    # `dpde --help` and the registry read the config, the run folder and the dataset
    # catalogue without torch
    modules = (
        "dpde_cli.training.config, dpde_cli.training.run_folder, dpde_cli.registry, "
        "dpde_cli.dataset_catalog"
    )
    code = f"import sys, {modules}, dpde_cli.cli.app; print('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


def test_defaults_are_the_config_s_own() -> None:
    values = defaults()
    assert "workers" not in values and "dataset_options" not in values  # computed, mutable
    assert TrainConfig(workers=0) == TrainConfig(workers=0, **values)
