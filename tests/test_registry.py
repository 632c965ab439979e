"""The model registry: listing, duplicates, weights checks, untrusted checkpoints."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest
import torch

from dpde_cli import registry
from dpde_cli.errors import UsageError, WeightsError
from dpde_cli.registry import (
    WeightsSpec,
    create_model,
    get_entry,
    list_models,
    register_model,
    resolve_inference,
    sha256_file,
)


def test_list_models_has_the_paper_and_lite_models() -> None:
    assert {"dpde-r50", "dpde-lite"} <= set(list_models())
    assert list_models("dpde-r*") == ["dpde-r50"]


def test_register_refuses_duplicates() -> None:
    with pytest.raises(ValueError, match="already registered"):
        register_model("dpde-lite", "again", get_entry("dpde-lite").weights)(lambda **_: None)


def test_unknown_model_names_the_known_ones() -> None:
    with pytest.raises(UsageError, match="dpde-lite"):
        create_model("no-such-model")


def test_spec_is_frozen() -> None:
    with pytest.raises(AttributeError):
        get_entry("dpde-lite").weights.input_size = (1, 1)  # type: ignore[misc]


def test_no_shipped_weights_says_so() -> None:
    with pytest.raises(UsageError, match="no shipped weights.*--weights"):
        create_model("dpde-r50")


def test_weights_path_round_trip(tiny_weights: Path) -> None:
    model = create_model("dpde-tiny", weights=tiny_weights)
    state = torch.load(tiny_weights, weights_only=True)
    assert torch.equal(model.state_dict()["decoder.head.weight"], state["decoder.head.weight"])


def test_training_checkpoint_with_model_key_loads(tiny_weights: Path, tmp_path: Path) -> None:
    checkpoint = tmp_path / "ckpt.pt"
    torch.save({"model": torch.load(tiny_weights, weights_only=True), "epoch": 3}, checkpoint)
    create_model("dpde-tiny", weights=checkpoint)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="not found"):
        create_model("dpde-tiny", weights=tmp_path / "nope.pt")
    with pytest.raises(WeightsError, match="a folder, not a weights file"):  # was "not found"
        create_model("dpde-tiny", weights=tmp_path)


def test_checkpoint_of_another_model_names_the_mismatch(tmp_path: Path) -> None:
    path = tmp_path / "other.pt"
    state = create_model("dpde-tiny", weights=None).state_dict()
    state["decoder.head.weight"] = torch.zeros(1, 8, 5, 5)
    del state["gradient_net.layers.0.bias"]
    state["extra.weight"] = torch.zeros(1)
    torch.save(state, path)
    with pytest.raises(WeightsError) as info:
        create_model("dpde-tiny", weights=path)
    message = str(info.value)
    assert "gradient_net.layers.0.bias" in message
    assert "extra.weight" in message
    assert "decoder.head.weight: (1, 8, 5, 5)" in message


def test_pickled_objects_are_refused(tmp_path: Path) -> None:
    """A checkpoint is untrusted: arbitrary pickled objects must not be unpickled."""

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "evil.pt"
    torch.save({"model": Evil()}, path)
    with pytest.raises(WeightsError, match="not a PyTorch weights file"):
        create_model("dpde-tiny", weights=path)


def test_garbage_file(tmp_path: Path) -> None:
    path = tmp_path / "garbage.pt"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match="garbage.pt"):
        create_model("dpde-tiny", weights=path)


def test_shipped_weights_are_sha256_checked(
    tiny_weights: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(registry, "WEIGHTS_DIR", tmp_path)
    good = tmp_path / "tiny-good.pt"
    good.write_bytes(tiny_weights.read_bytes())
    digest = sha256_file(good)
    spec = WeightsSpec(
        file="tiny-good.pt", sha256=digest, input_size=(64, 96), mean=(0.5,) * 3, std=(0.5,) * 3
    )
    builder = get_entry("dpde-tiny").builder
    register_model("dpde-tiny-shipped", "test", spec)(builder)
    try:
        assert create_model("dpde-tiny-shipped").spec.sha256 == digest
        good.write_bytes(good.read_bytes() + b"\0")
        with pytest.raises(WeightsError, match="sha256 mismatch"):
            create_model("dpde-tiny-shipped")
        good.unlink()
        with pytest.raises(WeightsError, match="not found"):
            create_model("dpde-tiny-shipped")
    finally:
        registry._REGISTRY.pop("dpde-tiny-shipped")


def _run_folder(tmp_path: Path, tiny_weights: Path, config: object, folder: str) -> Path:
    """A `dpde train` run folder holding tiny_weights in ``folder`` and a config.json."""
    import json
    import shutil

    path = tmp_path / "run" / folder / "dpde-tiny-0123abcd.pt"
    path.parent.mkdir(parents=True)
    shutil.copy(tiny_weights, path)
    text = config if isinstance(config, str) else json.dumps(config)
    (tmp_path / "run" / "config.json").write_text(text)
    return path


def _inference(path: Path, name: str = "dpde-tiny"):
    """How weights at ``path`` run (``resolve_inference`` of the model they load into)."""
    return resolve_inference(create_model(name, weights=path))


def test_inference_is_resolved_from_the_options_and_a_protocol_s_range() -> None:
    model = create_model("dpde-tiny", weights=None)
    assert resolve_inference(model) == registry.InferenceSpec((64, 96), (0.1, 10.0), None)
    wider = resolve_inference(model, input_size=(96, 128), max_depth=80.0)
    assert wider == registry.InferenceSpec((96, 128), (0.1, 80.0), None)
    assert resolve_inference(model, max_depth=5.0).depth_range == (0.1, 10.0)  # never narrower
    assert resolve_inference(model, max_depth=float("inf")).depth_range == (0.1, 10.0)
    with pytest.raises(UsageError, match="multiples of 8"):
        resolve_inference(model, input_size=(60, 96))
    assert model.spec is get_entry("dpde-tiny").weights


@pytest.mark.parametrize("folder", ["weights", "checkpoints"])
def test_a_run_s_weights_run_at_the_size_the_run_trained_at(
    tiny_weights: Path, tmp_path: Path, folder: str
) -> None:
    config = {"model": "dpde-tiny", "input_size": [96, 128], "dataset": "nyuv2"}
    path = _run_folder(tmp_path, tiny_weights, config, folder)
    model = create_model("dpde-tiny", weights=path)
    run = resolve_inference(model)
    assert run.input_size == (96, 128) and run.depth_range == (0.1, 10.0)
    assert model.spec is get_entry("dpde-tiny").weights  # the spec is the registry's, as is
    assert model.spec.input_size == (64, 96)


def test_a_run_s_weights_reach_its_farthest_validation_depth(
    tiny_weights: Path, tmp_path: Path
) -> None:
    import json

    config = {"model": "dpde-tiny", "input_size": [64, 96], "dataset": "folder"}
    path = _run_folder(tmp_path, tiny_weights, config, "weights")
    (tmp_path / "run" / "weights.json").write_text(json.dumps({"val_depth_max": 79.5}))
    assert _inference(path).depth_range == (0.1, 79.5)
    (tmp_path / "run" / "weights.json").write_text(json.dumps({"val_depth_max": 4.0}))
    assert _inference(path).depth_range == (0.1, 10.0)  # only wider


def test_a_make3d_run_s_weights_are_not_clipped_at_10_m(tiny_weights: Path, tmp_path: Path) -> None:
    # the registry's range is indoor; Make3D's protocol scores ground truth up to 70 m
    config = {"model": "dpde-tiny", "input_size": [448, 352], "dataset": "make3d"}
    path = _run_folder(tmp_path, tiny_weights, config, "weights")
    assert _inference(path).depth_range == (0.1, 70.0)


@pytest.mark.parametrize(
    ("config", "folder"),
    [
        ({"model": "dpde-other", "input_size": [96, 128]}, "weights"),
        ({"model": "dpde-tiny", "input_size": [96, 128]}, "elsewhere"),
        ("not json {", "weights"),
    ],
    ids=["another model", "not a run's folder", "unreadable config"],
)
def test_weights_outside_a_run_of_that_model_keep_the_registry_size(
    tiny_weights: Path, tmp_path: Path, config: object, folder: str
) -> None:
    path = _run_folder(tmp_path, tiny_weights, config, folder)
    assert _inference(path).input_size == (64, 96)


@pytest.mark.parametrize(
    "payload",
    [
        lambda state: {
            "model": state,
            "run": {"model": "dpde-tiny", "input_size": [96, 128], "val_depth_max": 42.0},
        },
        lambda state: {  # a training checkpoint
            "model": state,
            "config": {"model": "dpde-tiny", "input_size": [96, 128], "dataset": "folder"},
            "weights_index": {"val_depth_max": 42.0},
        },
    ],
    ids=["exported", "checkpoint"],
)
def test_weights_copied_out_of_their_run_still_run_as_trained(
    tiny_weights: Path, tmp_path: Path, payload: Callable[[dict], dict]
) -> None:
    # the file carries its run's facts: no config.json beside it
    path = tmp_path / "copied.pt"
    torch.save(payload(torch.load(tiny_weights, weights_only=True)), path)
    run = _inference(path)
    assert run.input_size == (96, 128) and run.depth_range == (0.1, 42.0)


@pytest.mark.parametrize("size", [[60, 96], ["a", 96], [64.0, 96]])
def test_a_file_recording_an_unusable_input_size_is_refused_naming_it(
    tiny_weights: Path, tmp_path: Path, size: list[object]
) -> None:
    path = tmp_path / "odd.pt"
    state = torch.load(tiny_weights, weights_only=True)
    torch.save({"model": state, "run": {"model": "dpde-tiny", "input_size": size}}, path)
    with pytest.raises(WeightsError, match=f"{path}: records an unusable input size"):
        create_model("dpde-tiny", weights=path)


@pytest.mark.parametrize("size", [(60, 96), (64, 100), (16, 96)])
def test_input_sizes_must_be_multiples_of_8_and_at_least_32(size: tuple[int, int]) -> None:
    with pytest.raises(UsageError, match="multiples of 8"):
        registry.check_input_size(size)


def test_the_shipped_file_runs_as_shipped_however_it_is_named(tmp_path: Path) -> None:
    # dpde-lite-renders' file carries its run's facts (a farther depth range than the
    # registry's); loaded by path, or as a copy, it must still behave as the registry says
    name = "dpde-lite-renders"
    shipped = get_entry(name).weights
    copy = tmp_path / "mine.pt"
    copy.write_bytes(shipped.path.read_bytes())
    default = resolve_inference(create_model(name))
    assert _inference(shipped.path, name) == default
    assert _inference(copy, name) == default
    copy.write_bytes(copy.read_bytes() + b"\0")  # not the shipped file: its own run's facts
    assert _inference(copy, "dpde-lite").depth_range[1] > 10.0  # (its run was dpde-lite's)


def test_input_sizes_past_the_limit_are_refused_before_any_allocation() -> None:
    assert registry.check_input_size((2048, 2048)) == (2048, 2048)
    with pytest.raises(UsageError, match=r"16384x16384 \(268 MP, about 644 GB per image\) is past"):
        registry.check_input_size((16384, 16384))


def test_a_weights_file_asking_for_a_huge_input_is_refused(
    tiny_weights: Path, tmp_path: Path
) -> None:
    # a crafted checkpoint must not make predict allocate hundreds of gigabytes
    path = tmp_path / "huge.pt"
    state = torch.load(tiny_weights, weights_only=True)
    torch.save({"model": state, "run": {"model": "dpde-tiny", "input_size": [16384] * 2}}, path)
    with pytest.raises(WeightsError, match=f"{path}: records an unusable input size .*past the"):
        create_model("dpde-tiny", weights=path)


def test_the_input_size_help_states_the_limit() -> None:
    from dpde_cli.cli.common import InputSizeOption

    side = int(registry.MAX_INPUT_PIXELS**0.5)
    assert f"at most {side}x{side} pixels" in InputSizeOption.__metadata__[0].help


# ------------------------------------------------------------------ the spec's schema

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = {  # field -> (types, required non-empty)
    "file": ((str, type(None)), False),
    "sha256": ((str, type(None)), False),
    "input_size": (tuple, True),
    "mean": (tuple, True),
    "std": (tuple, True),
    "output": (str, True),
    "depth_range": (tuple, True),
    "training_data": (str, True),
    "metrics": (Mapping, False),
    "metrics_protocol": (str, False),
    "licence": (str, True),
    "canonical_focal": ((float, type(None)), False),
    "card": ((str, type(None)), False),
}
TEXT_LIMIT = 300
"""The most characters of a text field: a sentence or two; the model card has the rest."""


@pytest.mark.parametrize("name", list_models())
def test_spec_schema(name: str) -> None:
    # after torchvision's test_schema_meta_validation
    from dpde_cli.metrics import BASE_METRICS, IMAGE_METRICS

    entry = get_entry(name)
    spec = entry.weights
    assert [f.name for f in dataclasses.fields(spec)] == list(SCHEMA)
    for field, (kinds, required) in SCHEMA.items():
        value = getattr(spec, field)
        assert isinstance(value, kinds), f"{name}: {field} is {type(value).__name__}"
        assert value or not required, f"{name}: {field} is empty"
        if isinstance(value, str):
            assert len(value) <= TEXT_LIMIT, f"{name}: {field} is over {TEXT_LIMIT} characters"
    assert 0 < len(entry.description) <= 100
    assert len(spec.input_size) == 2 and all(isinstance(v, int) for v in spec.input_size)
    assert len(spec.mean) == len(spec.std) == 3 and 0 < spec.depth_range[0] < spec.depth_range[1]
    assert set(spec.metrics) <= set(BASE_METRICS) | set(IMAGE_METRICS)
    assert all(isinstance(v, float) for v in spec.metrics.values())
    assert bool(spec.metrics) == bool(spec.metrics_protocol), f"{name}: metrics need a protocol"
    if spec.file is None:  # nothing shipped: nothing measured, no card, and it says so
        assert spec.sha256 is None and not spec.metrics and spec.card is None
        assert spec.training_data.startswith("none"), f"{name}: say that no weights ship"
    else:
        assert spec.sha256 is not None and len(spec.sha256) == 64
        assert spec.card is not None and (ROOT / spec.card).is_file(), f"{name}: no card"
        assert "model card" in spec.training_data and "model card" in spec.metrics_protocol
