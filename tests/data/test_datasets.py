"""The dataset registry the CLI uses: names, options and errors."""

from __future__ import annotations

import importlib.util

import pytest

from dpde_cli.data import DATASETS, build_dataset, list_datasets
from dpde_cli.errors import DpdeError, UsageError


def test_names():
    assert list_datasets() == ["folder", "make3d", "middlebury", "nyuv2", "synthetic"]
    assert set(DATASETS) == set(list_datasets())


def test_errors(tmp_path):
    with pytest.raises(UsageError, match="kitti"):
        build_dataset("kitti", tmp_path)
    with pytest.raises(UsageError, match="data folder"):
        build_dataset("nyuv2", None)
    with pytest.raises(UsageError, match="bogus"):
        build_dataset("make3d", tmp_path, "test", bogus=1)


def test_synthetic_is_guarded():
    if importlib.util.find_spec("dpde_cli.data.synthetic") is None:
        with pytest.raises(DpdeError, match="synthetic"):
            build_dataset("synthetic", None, length=3)
    else:
        assert len(build_dataset("synthetic", None, length=3, seed=1)) == 3
    with pytest.raises(UsageError, match="size"):
        build_dataset("synthetic", None, size=(2, 2))


def test_synthetic_options_override_the_scene_config():
    ds = build_dataset("synthetic", None, length=2, close_view_prob=1.0, height=30, width=40)
    assert ds.config.close_view_prob == 1.0 and (ds.config.height, ds.config.width) == (30, 40)
    assert ds[0]["depth"].shape == (1, 30, 40)
    with pytest.raises(UsageError, match="close_view_prob"):  # the valid names are listed
        build_dataset("synthetic", None, length=2, close_view=1.0)
