"""The dataset registry the CLI uses: names, options and errors."""

from __future__ import annotations

import importlib.util

import pytest

from dpde_cli.data import build_dataset, list_datasets
from dpde_cli.errors import DpdeError, UsageError


def test_names():
    assert list_datasets() == ["folder", "make3d", "middlebury", "nyuv2", "synthetic"]


def test_errors(tmp_path):
    with pytest.raises(UsageError, match="kitti"):
        build_dataset("kitti", tmp_path)
    with pytest.raises(UsageError, match="data folder"):
        build_dataset("nyuv2", None)
    with pytest.raises(UsageError, match="bogus"):
        build_dataset("make3d", tmp_path, "test", bogus=1)


def test_option_values_of_the_wrong_type_are_usage_errors(tmp_path):
    # --dataset-option depth_scale=abc was a TypeError traceback from inside the dataset
    with pytest.raises(UsageError, match="option depth_scale takes a number, got 'abc'"):
        build_dataset("folder", tmp_path, depth_scale="abc")
    with pytest.raises(UsageError, match="option clutter takes a number, got 'lots'"):
        build_dataset("synthetic", None, clutter="lots")
    with pytest.raises(UsageError, match="option random_focal takes true or false"):
        build_dataset("synthetic", None, random_focal=1)
    assert len(build_dataset("synthetic", None, length=1, clutter=1, seed=1)) == 1  # int: fine


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


def test_synthetic_test_scenes_are_not_the_training_ones():
    """eval's scenes (split test) start at another seed than train's (split train)."""
    from dpde_cli.data import SYNTHETIC_SEEDS

    if importlib.util.find_spec("dpde_cli.data.synthetic") is None:
        pytest.skip("no synthetic scenes in this build")
    test = build_dataset("synthetic", None)
    train = build_dataset("synthetic", None, "train", length=1000)
    assert (len(test), test.seed, train.seed) == (100, SYNTHETIC_SEEDS["test"], 0)
    assert test.seed >= train.seed + len(train)  # disjoint seed ranges
    assert test.ground_truth.endswith("scenes 1000000-1000099")  # eval's report says which
    assert build_dataset("synthetic", None, "test", seed=7).seed == 7  # an explicit seed wins
    with pytest.raises(UsageError, match="--data-dir"):
        build_dataset("synthetic", "somewhere")
    with pytest.raises(UsageError, match="train, test"):
        build_dataset("synthetic", None, "val")


def _folder(root, stems=("basement_00000",)):
    """A minimal DIR/rgb + DIR/depth folder."""
    import numpy as np
    from PIL import Image

    (root / "rgb").mkdir(parents=True)
    (root / "depth").mkdir()
    for stem in stems:
        Image.fromarray(np.zeros((4, 6, 3), np.uint8)).save(root / "rgb" / f"{stem}.png")
        Image.fromarray(np.full((4, 6), 1000, np.uint16)).save(root / "depth" / f"{stem}.png")
    return root


def test_several_folders_get_the_shortest_distinguishing_names(tmp_path):
    from dpde_cli.data import build_datasets, folder_prefixes

    a, b = _folder(tmp_path / "x" / "data"), _folder(tmp_path / "y" / "data")
    data = build_datasets("folder", [a, b], None, {})
    assert [data[i]["name"] for i in range(2)] == [
        "x/data/basement_00000",
        "y/data/basement_00000",
    ]
    assert folder_prefixes([a, tmp_path / "z" / "other"]) == ["data", "other"]
    with pytest.raises(UsageError, match="once"):
        build_datasets("folder", [a, tmp_path / "x" / ".." / "x" / "data"], None, {})


def test_default_workers_follow_the_usable_cpus(monkeypatch):
    import os

    from dpde_cli.data import default_workers

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    assert default_workers() == 2
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(32)), raising=False)
    assert default_workers() == 4


class _Broken:
    """A dataset whose item 1 is a bad file; items report how their worker treats Ctrl-C."""

    def __len__(self):
        return 2

    def __getitem__(self, index):
        import signal

        from dpde_cli.errors import InputError

        if index == 1:
            raise InputError("frames/1.png", "an L (8-bit) PNG; depth must be a 16-bit PNG")
        return signal.getsignal(signal.SIGINT) is signal.SIG_IGN


class _ViaLoadSample(_Broken):
    """_Broken read the way training reads a sample."""

    def __getitem__(self, index):
        from dpde_cli.data import load_sample

        return load_sample(_Broken(), index)


def test_loader_workers_give_one_line_errors_and_leave_ctrl_c_to_the_main_process():
    from torch.utils.data import DataLoader

    from dpde_cli.data import DataError, worker_init

    loader = DataLoader(
        _ViaLoadSample(), batch_size=None, num_workers=1, worker_init_fn=worker_init
    )
    items = iter(loader)
    assert next(items) is True  # SIGINT ignored in the worker
    with pytest.raises(DataError) as caught:
        next(items)
    assert str(caught.value) == "frames/1.png: an L (8-bit) PNG; depth must be a 16-bit PNG"


def test_skip_bad_hands_unreadable_samples_on_as_their_message():
    from torch.utils.data import DataLoader

    from dpde_cli.data import FAILED, SkipBad, worker_init

    loader = DataLoader(
        SkipBad(_Broken()), batch_size=None, num_workers=1, worker_init_fn=worker_init
    )
    assert list(loader) == [
        True,
        {FAILED: "frames/1.png: an L (8-bit) PNG; depth must be a 16-bit PNG"},
    ]


def test_a_worker_dying_of_ctrl_c_stays_an_interrupt():
    from dpde_cli.data import loader_interrupts

    def sigchld_handler():
        """What torch's SIGCHLD handler raises when a worker died."""
        raise RuntimeError("DataLoader worker (pid 1) exited unexpectedly")

    with pytest.raises(KeyboardInterrupt), loader_interrupts():
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt:  # the handler runs while the interrupt unwinds
            sigchld_handler()
    with pytest.raises(RuntimeError, match="other"), loader_interrupts():
        raise RuntimeError("other")
