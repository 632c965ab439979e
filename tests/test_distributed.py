"""Shares of a batch (``--shard K/N``, torchrun ranks) and an inference run's place."""

from __future__ import annotations

import random

import pytest

from dpde_cli.distributed import Share, inference_run, parse_shard
from dpde_cli.errors import UsageError

NAMES = [f"photo{i:03d}.jpg" for i in range(23)]


@pytest.mark.parametrize("count", [1, 2, 3, 5, 23, 40])
def test_shares_are_disjoint_cover_the_inputs_and_balance(count: int) -> None:
    shares = [parse_shard(f"{k}/{count}").take(NAMES) for k in range(1, count + 1)]
    taken = [name for share in shares for name in share]
    assert sorted(taken) == sorted(NAMES)  # every input once: disjoint and covering
    sizes = [len(share) for share in shares]
    assert max(sizes) - min(sizes) <= 1


def test_a_share_does_not_depend_on_the_order_the_inputs_came_in() -> None:
    shuffled = NAMES[:]
    random.Random(1).shuffle(shuffled)
    share = Share(2, 5)
    assert sorted(share.take(shuffled)) == sorted(share.take(NAMES)) == NAMES[2::5]
    assert share.take(shuffled) == [n for n in shuffled if n in NAMES[2::5]]  # given order kept
    assert share.take(NAMES) == share.take(NAMES)


def test_ranks_within_a_shard_split_it_and_every_pair_covers_all() -> None:
    world = 3
    parts = [Share(k, 4).within(rank, world) for k in range(4) for rank in range(world)]
    taken = [name for part in parts for name in part.take(NAMES)]
    assert sorted(taken) == sorted(NAMES)
    for k in range(4):  # a shard's ranks take exactly that shard
        ranks = [Share(k, 4).within(r, world).take(NAMES) for r in range(world)]
        assert sorted(n for part in ranks for n in part) == Share(k, 4).take(NAMES)


def test_a_custom_key_ranks_the_items() -> None:
    items = [("b", 2), ("a", 1), ("c", 3)]
    assert Share(0, 2).take(items, key=lambda item: item[0]) == [("a", 1), ("c", 3)]


@pytest.mark.parametrize(
    ("text", "offset", "step"), [("1/1", 0, 1), ("3/8", 2, 8), (" 2 / 2 ", 1, 2)]
)
def test_parse_shard(text: str, offset: int, step: int) -> None:
    share = parse_shard(text)
    assert (share.offset, share.step) == (offset, step)
    assert share.label == f"{offset + 1}/{step}"


@pytest.mark.parametrize("text", ["0/2", "3/2", "1/0", "x", "1", "1/2/3", "-1/2", "", "1.5/2"])
def test_bad_shards_are_usage_errors(text: str) -> None:
    with pytest.raises(UsageError, match="--shard"):
        parse_shard(text)


def test_without_torchrun_a_run_is_the_shard_on_the_device_given(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    run = inference_run("2/3", "cpu")
    assert (run.share, run.device, run.is_main, run.sharded) == (Share(1, 3), "cpu", True, True)
    assert run.gather("x") == ["x"]
    assert inference_run(None, "auto").share.whole
