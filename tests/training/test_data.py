"""`dpde_cli.training.data`: the resumable sampler and the fixed held-out split."""

from __future__ import annotations

from dpde_cli.training.data import EpochSampler, holdout_split


def test_sampler_order_depends_on_seed_and_epoch_only_and_resumes_mid_epoch() -> None:
    data = list(range(10))
    a, b = EpochSampler(data, 1, 0, seed=3), EpochSampler(data, 1, 0, seed=3)
    a.set_position(2)
    b.set_position(2)
    order = list(a)
    assert order == list(b) and sorted(i for _, i in order) == data
    assert all(epoch == 2 for epoch, _ in order)
    b.set_position(3)
    assert [i for _, i in b] != [i for _, i in order]
    a.set_position(2, skip=4)
    assert list(a) == order[4:] and len(a) == 6
    shards = [EpochSampler(data, 2, rank, seed=3) for rank in (0, 1)]
    for shard in shards:
        shard.set_position(1)
    seen = [i for shard in shards for _, i in shard]
    assert sorted(seen) == data  # disjoint shards that cover everything


def test_holdout_is_fixed_and_disjoint() -> None:
    train_idx, val_idx = holdout_split(20, 0.25)
    assert len(val_idx) == 5 and not set(train_idx) & set(val_idx)
    assert holdout_split(20, 0.25) == (train_idx, val_idx)
    assert holdout_split(20, 0.0) == (list(range(20)), [])
