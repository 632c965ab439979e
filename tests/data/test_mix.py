"""Training mixes: sources, weights, the weighted sampler and canonical-camera targets."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from dpde_cli.data.mix import (
    MixedView,
    Source,
    WeightedEpochSampler,
    build_mix,
    parse_source,
    read_mix,
    source_from_json,
)
from dpde_cli.data.transforms import EvalTransform, TrainTransform, canonical_depth, cover_size
from dpde_cli.errors import InputError, UsageError


def _write_folder(root, count, size=(48, 64), focal=50.0, depth_m=2.0):
    """A tiny RGB-D folder of ``count`` frames of constant depth, with intrinsics."""
    from PIL import Image

    (root / "rgb").mkdir(parents=True)
    (root / "depth").mkdir()
    intrinsics = {}
    for i in range(count):
        rgb = np.full((*size, 3), 40 + i, dtype=np.uint8)
        Image.fromarray(rgb).save(root / "rgb" / f"f{i:03d}.png")
        depth = np.full(size, int(depth_m * 1000), dtype=np.uint16)
        Image.fromarray(depth).save(root / "depth" / f"f{i:03d}.png")
        intrinsics[f"f{i:03d}"] = [focal, focal, size[1] / 2, size[0] / 2]
    (root / "intrinsics.json").write_text(json.dumps(intrinsics))
    return root


def test_parse_source_weight_and_plain_folder(tmp_path):
    assert parse_source("data/kitchen:2.5") == Source("folder", "data/kitchen", 2.5)
    assert parse_source("data/kitchen") == Source("folder", "data/kitchen", 1.0)
    odd = tmp_path / "a:3"
    odd.mkdir()
    assert parse_source(str(odd)).data_dir == str(odd)  # an existing folder wins
    with pytest.raises(UsageError, match="positive"):
        parse_source("data/kitchen:0")
    with pytest.raises(UsageError, match="positive"):
        parse_source("data/kitchen:-1")


def test_read_mix_resolves_folders_and_refuses_bad_files(tmp_path):
    mix = tmp_path / "mix.json"
    mix.write_text(
        json.dumps(
            {
                "sources": [
                    {"dataset": "folder", "data_dir": "real", "weight": 2},
                    {"dataset": "synthetic", "options": {"length": 4}, "appearance": "strong"},
                ]
            }
        )
    )
    first, second = read_mix(mix)
    assert first.data_dir == str((tmp_path / "real").resolve()) and first.weight == 2
    assert second == Source("synthetic", None, 1.0, {"length": 4}, "strong")
    assert source_from_json(second.to_json()) == second
    for text, match in (
        ("[1, 2]", "a mix is"),
        ('{"sources": [{"dataset": "folder", "colour": 1}]}', "unknown key"),
        ('{"sources": [{"dataset": "folder", "weight": 0}]}', "source 1"),
        ("{not json", "cannot read"),
    ):
        mix.write_text(text)
        with pytest.raises(InputError, match=match):
            read_mix(mix)


def test_weights_do_not_depend_on_source_size(tmp_path):
    big = _write_folder(tmp_path / "big", 12)
    small = _write_folder(tmp_path / "small", 3)
    mix = build_mix(
        [Source("folder", str(big), 1.0), Source("folder", str(small), 1.0)],
        (48, 64),
        seed=0,
        val_fraction=0.0,
    )
    weights = mix.train.weights
    assert len(weights) == 15 and math.isclose(weights.sum(), 1.0)
    assert math.isclose(weights[:12].sum(), 0.5) and math.isclose(weights[12:].sum(), 0.5)
    sampler = WeightedEpochSampler(weights, 4000, 1, 0, seed=3)
    picks = np.array([index for _, index, _ in sampler])
    assert 0.45 < (picks >= 12).mean() < 0.55  # the 3-frame source gets half the draws


def test_sampler_is_deterministic_sharded_and_resumable():
    weights = np.full(10, 0.1)
    one = list(WeightedEpochSampler(weights, 20, 1, 0, seed=5))
    again = list(WeightedEpochSampler(weights, 20, 1, 0, seed=5))
    assert one == again and len(one) == 20
    ranks = [list(WeightedEpochSampler(weights, 20, 2, r, seed=5)) for r in (0, 1)]
    merged = sorted(ranks[0] + ranks[1], key=lambda key: key[2])
    assert merged == one  # two processes split the one-process draws, no overlap
    resumed = WeightedEpochSampler(weights, 20, 1, 0, seed=5)
    resumed.set_position(0, skip=7)
    assert list(resumed) == one[7:] and len(resumed) == 13
    later = WeightedEpochSampler(weights, 20, 1, 0, seed=5)
    later.set_epoch(1)
    assert [k[1] for k in later] != [k[1] for k in one]


def test_a_frame_drawn_twice_is_augmented_two_ways(tmp_path):
    folder = _write_folder(tmp_path / "f", 2)
    from dpde_cli.data import build_dataset

    dataset = build_dataset("folder", folder)
    view = MixedView([(dataset, [0, 1], TrainTransform((32, 48)))], [1.0], seed=0)
    a, b = view[(0, 0, 0)], view[(0, 0, 1)]
    assert not torch.equal(a["image"], b["image"])
    assert torch.equal(view[(0, 0, 1)]["image"], b["image"])


def test_canonical_depth_follows_the_focal_length(tmp_path):
    sample = {
        "image": torch.rand(3, 48, 64),
        "depth": torch.full((1, 48, 64), 2.0),
        "valid": torch.ones(1, 48, 64, dtype=torch.bool),
        "intrinsics": torch.tensor([100.0, 100.0, 32.0, 24.0]),
    }
    out = canonical_depth(sample, 50.0)
    assert torch.allclose(out["depth"], torch.full_like(out["depth"], 1.0))
    unknown = dict(sample, intrinsics=torch.tensor([math.nan, math.nan, 32.0, 24.0]))
    assert canonical_depth(unknown, 50.0) is None
    # the eval transform: halving the size halves the focal length, so depth halves too
    evaluated = EvalTransform((24, 32), canonical_focal=50.0)(sample)
    assert torch.allclose(evaluated["depth"], torch.full((1, 24, 32), 2.0))


def test_train_transform_canonical_targets_match_the_zoom(tmp_path):
    """With a canonical focal length, the target is depth x f_c / f of the final crop,
    whatever the random zoom: a zoom by s multiplies f by s, as dividing by s did."""
    sample = {
        "image": torch.rand(3, 48, 64),
        "depth": torch.full((1, 48, 64), 3.0),
        "valid": torch.ones(1, 48, 64, dtype=torch.bool),
        "intrinsics": torch.tensor([40.0, 40.0, 31.5, 23.5]),
    }
    plain = TrainTransform((48, 64), rotation_deg=0.0)
    canonical = TrainTransform((48, 64), rotation_deg=0.0, canonical_focal=40.0)
    for seed in range(4):
        g1, g2 = torch.Generator().manual_seed(seed), torch.Generator().manual_seed(seed)
        a, b = plain(sample, g1), canonical(sample, g2)
        # f = f_c: the same, up to the rounding of the zoomed size to whole pixels, which
        # the intrinsics (and so the canonical target) follow exactly and 1 / s does not
        assert torch.allclose(a["depth"], b["depth"], rtol=0.02)
        assert not torch.equal(a["depth"], b["depth"]) or seed == 0


def test_cover_size_keeps_the_aspect_ratio():
    assert cover_size((480, 640), (240, 320)) == (240, 320)
    h, w = cover_size((490, 720), (240, 320))
    assert h >= 240 and w >= 320 and abs(w / h - 720 / 490) < 0.01


def test_training_on_a_mix_runs_and_records_the_camera(tmp_path):
    from dpde_cli.registry import create_model, resolve_inference
    from dpde_cli.training import TrainConfig, train

    a = _write_folder(tmp_path / "a", 6, focal=50.0)
    b = _write_folder(tmp_path / "b", 4, focal=70.0)
    config = TrainConfig(
        model="dpde-tiny",
        sources=[Source("folder", str(a), 2.0).to_json(), Source("folder", str(b)).to_json()],
        epoch_size=8,
        input_size=(48, 64),
        stage="global",
        epochs=1,
        batch_size=4,
        val_fraction=0.2,
        workers=0,
        pretrained=False,
        canonical_camera=True,
        lambda_fsim=0.0,
        device="cpu",
        out=str(tmp_path / "run"),
    )
    result = train(config)
    index = json.loads((tmp_path / "run" / "weights.json").read_text())
    assert index["canonical_focal"] == pytest.approx(518.8579 * 64 / 640)
    model = create_model("dpde-tiny", weights=tmp_path / "run" / index["last"]["file"])
    focal = resolve_inference(model).canonical_focal
    assert focal == pytest.approx(518.8579 * 64 / 640)
    assert result.epochs and result.epochs[-1]["step"] == 2  # 8 draws / batch 4


def test_cli_data_dir_weights_and_mix_file_make_sources(tmp_path):
    from typer.testing import CliRunner

    from dpde_cli.cli.app import app

    a = _write_folder(tmp_path / "a", 6)
    b = _write_folder(tmp_path / "b", 4)
    common = ["--model", "dpde-tiny", "--input-size", "48", "64", "--stage", "global"]
    common += ["--epochs", "1", "--batch-size", "4", "--no-pretrained", "--workers", "0", "-q"]
    common += ["--lambda-fsim", "0", "--epoch-size", "8", "--canonical-camera"]
    common += ["--zoom-range", "1", "2.5"]
    result = CliRunner().invoke(
        app,
        ["train", "--dataset", "folder", "--data-dir", f"{a}:3", "--data-dir", str(b),
         "--out", str(tmp_path / "run1"), *common],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    config = json.loads((tmp_path / "run1" / "config.json").read_text())
    assert [s["weight"] for s in config["sources"]] == [3.0, 1.0]
    assert config["canonical_camera"] is True and config["epoch_size"] == 8
    assert config["zoom_range"] == [1.0, 2.5]
    mix = tmp_path / "mix.json"
    mix.write_text(json.dumps({"sources": [{"dataset": "folder", "data_dir": "a"}]}))
    result = CliRunner().invoke(
        app, ["train", "--mix", str(mix), "--out", str(tmp_path / "run2"), *common]
    )
    assert result.exit_code == 0, result.output
    both = CliRunner().invoke(
        app, ["train", "--mix", str(mix), "--data-dir", str(a), "--out", str(tmp_path / "r3")]
    )
    assert both.exit_code == 2 and "--mix names every source" in both.output
