"""`dpde_cli.training.weights`: exported and averaged weights files."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from dpde_cli.errors import WeightsError
from dpde_cli.registry import create_model, read_weights, sha256_file
from dpde_cli.training.weights import average_weights, export_weights
from tests.training.helpers import SIZE


def test_averaged_weights_are_the_mean_and_load_like_an_export(tmp_path: Path) -> None:
    facts = [{"model": "dpde-tiny", "input_size": list(SIZE), "dataset": d} for d in "ab"]
    states, paths = [], []
    for seed, run in enumerate(facts):
        torch.manual_seed(seed)
        model = create_model("dpde-tiny", weights=None)
        model.train()(torch.rand(2, 3, *SIZE))  # moves the BatchNorm statistics and counters
        states.append(model.state_dict())
        states[-1][next(iter(states[-1]))].fill_(-0.0)  # the mean of -0.0s stays -0.0, bit for bit
        paths.append(export_weights(states[-1], tmp_path, "dpde-tiny", run=run)[0])
    path, digest = average_weights(paths, tmp_path / "soup")  # the files name their model
    assert path.name == f"dpde-tiny-{digest[:8]}.pt" and sha256_file(path) == digest
    state, got_facts = read_weights(path)
    assert got_facts == facts[-1]
    differ = 0
    for key, value in state.items():
        a, b = states[0][key], states[1][key]
        if value.is_floating_point():
            assert torch.allclose(value, (a + b) / 2, atol=1e-7), key
            assert torch.equal(value.signbit(), ((a + b) / 2).signbit()), key
            differ += not torch.equal(a, b)
        else:
            assert torch.equal(value, b), key  # batch counters: the last file's
    assert differ > 10  # the two inits really differ, so the mean is not one of them
    create_model("dpde-tiny", weights=path)

    with pytest.raises(WeightsError, match="at least two"):
        average_weights(paths[:1], tmp_path, "dpde-tiny")
    fewer = dict(states[0])
    fewer.pop(next(iter(fewer)))
    odd = export_weights(fewer, tmp_path / "odd", "dpde-tiny")[0]
    with pytest.raises(WeightsError, match="keys differ"):
        average_weights([odd, paths[1]], tmp_path, "dpde-tiny")
    with pytest.raises(WeightsError, match="does not name its model"):
        average_weights([paths[0], odd], tmp_path)  # a bare state dict, no run facts
