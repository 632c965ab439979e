"""The CLI's option enums offer exactly the choices the library accepts.

The enums written out in dpde_cli/cli (so that `dpde --help` does not import torch) are kept
from drifting apart from the library's own lists by these tests; train's are derived from
``dpde_cli.training.config`` and the datasets of both commands from the dataset catalogue,
which import no torch (tests/test_dataset_catalog.py checks that a dataset registered there
is offered).
"""

from __future__ import annotations

from enum import Enum

import pytest

from dpde_cli import metrics, pointcloud
from dpde_cli.cli import eval as eval_cli
from dpde_cli.cli import pointcloud as pointcloud_cli
from dpde_cli.cli import train as train_cli
from dpde_cli.data import nyuv2
from dpde_cli.training import config as train


def _values(enum: type[Enum]) -> set[str]:
    return {member.value for member in enum}


@pytest.mark.parametrize(
    ("enum", "accepted"),
    [
        (train_cli.Stage, train.STAGE_CHOICES),
        (train_cli.Schedule, train.SCHEDULES),
        (train_cli.Optimizer, train.OPTIMIZERS),
        (train_cli.Appearance, train.APPEARANCES),
        (eval_cli.Crop, metrics._CHOICES["crop"]),
        (eval_cli.Averaging, metrics._CHOICES["averaging"]),
        (eval_cli.Alignment, metrics._CHOICES["alignment"]),
        (eval_cli.GroundTruth, tuple(nyuv2._GT_KEYS)),
        (pointcloud_cli.Frame, pointcloud.FRAMES),
        (pointcloud_cli.CloudFormat, tuple(e[1:] for e in pointcloud.POINT_CLOUD_EXTENSIONS)),
    ],
    ids=lambda value: value.__name__ if isinstance(value, type) else None,
)
def test_cli_enum_matches_the_library(enum: type[Enum], accepted: tuple[str, ...]) -> None:
    assert _values(enum) == set(accepted)
