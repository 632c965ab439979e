"""dpde_cli.export: ONNX and TorchScript exports match the torch model, carry the spec, and a
hostile ONNX file is refused with one line before onnxruntime sees it."""

from __future__ import annotations

import dataclasses
import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from dpde_cli.errors import DpdeError, UsageError, WeightsError
from dpde_cli.export import EXPORT_TOLERANCE, export_format, export_model, export_registered
from dpde_cli.exported import (
    OnnxModel,
    export_metadata,
    load_exported,
    load_torchscript,
    spec_from_metadata,
)
from dpde_cli.registry import create_model, sha256_file

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

SOURCE = ("tiny.pt", "ab" * 32)


@pytest.fixture(scope="module")
def tiny() -> torch.nn.Module:
    """dpde-tiny with seeded random weights."""
    torch.manual_seed(0)
    return create_model("dpde-tiny", weights=None)


@pytest.fixture(scope="module")
def tiny_onnx(tiny: torch.nn.Module, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """dpde-tiny exported to ONNX (export_model checks it against the model on writing)."""
    path = tmp_path_factory.mktemp("export") / "tiny.onnx"
    return export_model(tiny, path, "onnx", source=SOURCE)


def _batch(batch: int, height: int, width: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(batch, 3, height, width, generator=torch.Generator().manual_seed(seed))


def _worst(a, b) -> float:
    return float((torch.as_tensor(a) - torch.as_tensor(b)).abs().max())


@pytest.mark.parametrize("shape", [(1, 64, 96), (2, 72, 104), (3, 96, 64), (1, 40, 200)])
def test_onnx_matches_torch_at_any_batch_and_size(tiny, tiny_onnx: Path, shape) -> None:
    exported = load_exported(tiny_onnx)
    image = _batch(shape[0], shape[1], shape[2])
    with torch.no_grad():
        want = tiny(image)
    got = exported(image)
    assert got.depth.shape == (shape[0], 1, *shape[1:]) and got.depth.dtype == torch.float32
    assert got.gradients.shape == (shape[0], 2, *shape[1:])
    assert _worst(got.depth, want.depth) < 1e-3
    assert _worst(got.gradients, want.gradients) < 1e-4


def test_numpy_in_numpy_out(tiny, tiny_onnx: Path) -> None:
    image = _batch(1, 64, 96)
    out = load_exported(tiny_onnx)(image.numpy())
    assert isinstance(out.depth, np.ndarray) and isinstance(out.gradients, np.ndarray)
    with torch.no_grad():
        assert _worst(out.depth, tiny(image).depth) < 1e-3


def test_onnx_runs_without_torch(tiny_onnx: Path) -> None:
    """load_exported and the call on numpy import no torch: a deployment can leave it out."""
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['torch'] = None\n"  # any import of torch now fails
        "import numpy as np\n"
        "from dpde_cli.exported import load_exported\n"
        f"model = load_exported({str(tiny_onnx)!r})\n"
        "out = model(np.random.rand(2, 3, 64, 96).astype(np.float32))\n"
        "print(out.depth.shape, out.gradients.shape, model.name)\n"
    )
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root)}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "(2, 1, 64, 96) (2, 2, 64, 96) dpde-tiny"


def test_devices_without_a_provider_are_refused(tiny_onnx: Path) -> None:
    import onnxruntime

    model = load_exported(tiny_onnx)
    assert model.to(torch.device("cpu")) is model and model.device == "cpu"
    with pytest.raises(UsageError, match="on cpu or cuda, not mps"):
        model.to("mps")
    if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
        with pytest.raises(UsageError, match="no CUDA provider; install onnxruntime-gpu"):
            model.to(torch.device("cuda", 0))


def test_exported_input_checked(tiny_onnx: Path) -> None:
    exported = load_exported(tiny_onnx)
    with pytest.raises(UsageError, match="multiples of 8"):
        exported(torch.rand(1, 3, 60, 96))
    with pytest.raises(UsageError, match=r"takes \(B, 3, H, W\)"):
        exported(torch.rand(1, 4, 64, 96))


def test_metadata_round_trip(tiny, tiny_onnx: Path) -> None:
    exported = load_exported(tiny_onnx)
    assert exported.name == "dpde-tiny" and exported.precision == "fp32"
    assert exported.spec == dataclasses.replace(tiny.spec, file=SOURCE[0], sha256=SOURCE[1])
    proto = onnx.load(str(tiny_onnx))
    keys = {p.key for p in proto.metadata_props}
    assert {"dpde.model", "dpde.input_size", "dpde.sha256", "dpde.mean", "dpde.std"} <= keys
    assert [o.name for o in proto.graph.output] == ["depth", "gradients"]
    assert proto.graph.input[0].name == "image"


def test_metadata_of_shipped_weights_round_trips() -> None:
    spec = create_model("dpde-lite", weights=None).spec  # the registry's spec, no file read
    metadata = export_metadata("dpde-lite", spec, "fp32", (spec.file, spec.sha256))
    name, back, precision = spec_from_metadata(metadata, Path("x.onnx"))
    assert (name, back, precision) == ("dpde-lite", spec, "fp32")
    assert all(isinstance(v, str) for v in metadata.values())
    assert json.loads(metadata["dpde.card"]) == "docs/models/dpde-lite.md"
    assert json.loads(metadata["dpde.canonical_focal"]) is None  # JSON null, not a string


def test_a_run_s_input_size_range_and_focal_travel_in_the_metadata() -> None:
    from dpde_cli.registry import InferenceSpec

    spec = create_model("dpde-tiny", weights=None).spec
    run = InferenceSpec((96, 128), (0.1, 42.0), 50.0)
    metadata = export_metadata("dpde-tiny", spec, "fp32", ("w.pt", "0" * 64), run)
    _, back, _ = spec_from_metadata(metadata, Path("x.onnx"))
    assert (back.input_size, back.depth_range, back.canonical_focal) == (
        (96, 128),
        (0.1, 42.0),
        50.0,
    )


def test_untrained_weights_claim_no_training() -> None:
    spec = create_model("dpde-lite", weights=None).spec
    _, back, _ = spec_from_metadata(export_metadata("dpde-lite", spec, "fp32", None), Path("x"))
    assert back.sha256 is None and back.file is None and not back.metrics
    assert back.training_data.startswith("none")


def test_create_model_runs_an_onnx_file(tiny_onnx: Path) -> None:
    model = create_model("dpde-tiny", weights=tiny_onnx)
    assert isinstance(model, OnnxModel) and model.spec.input_size == (64, 96)
    with pytest.raises(UsageError, match="an export of dpde-tiny, not dpde-lite"):
        create_model("dpde-lite", weights=tiny_onnx)


def test_predictor_with_onnx_matches_torch(tiny, tiny_onnx: Path) -> None:
    from dpde_cli.fusion import FusionConfig
    from dpde_cli.predict import Predictor

    image = (np.random.default_rng(0).random((70, 100, 3)) * 255).astype(np.uint8)
    device = torch.device("cpu")
    results = [
        Predictor(model, device, fusion=FusionConfig()).predict([image])[0]
        for model in (tiny, create_model("dpde-tiny", weights=tiny_onnx))
    ]
    assert results[1].network_size == results[0].network_size
    assert _worst(results[1].depth_unfused, results[0].depth_unfused) < 1e-3
    assert _worst(results[1].depth, results[0].depth) < 1e-3


def test_torchscript_round_trip(tiny, tmp_path: Path) -> None:
    path = export_model(tiny, tmp_path / "tiny.pt", "torchscript", source=SOURCE)
    loaded = load_torchscript(path)
    assert loaded.name == "dpde-tiny" and loaded.spec.sha256 == SOURCE[1]
    assert loaded.spec.input_size == tiny.spec.input_size
    image = _batch(2, 80, 120)
    with torch.no_grad():
        want = tiny(image)
    got = loaded(image)
    assert _worst(got.depth, want.depth) < 1e-5 and _worst(got.gradients, want.gradients) < 1e-5


def test_half_export_is_close_and_says_so(tiny, tmp_path: Path) -> None:
    path = export_model(tiny, tmp_path / "half.onnx", "onnx", half=True)
    exported = load_exported(path)
    assert exported.precision == "fp16"
    assert onnx.load(str(path)).graph.input[0].type.tensor_type.elem_type == 1  # float32 in
    image = _batch(1, 64, 96)
    with torch.no_grad():
        assert _worst(exported(image).depth, tiny(image).depth) < EXPORT_TOLERANCE["fp16"]
    proto = onnx.load(str(path))
    weights = {t.name: t.data_type for t in proto.graph.initializer}
    conv_weights = [weights[n.input[1]] for n in proto.graph.node if n.op_type == "Conv"]
    assert conv_weights and set(conv_weights) == {onnx.TensorProto.FLOAT16}


def test_export_that_does_not_reproduce_leaves_no_file(tiny, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setitem(EXPORT_TOLERANCE, "fp32", -1.0)  # every export now fails its check
    with pytest.raises(DpdeError, match="does not reproduce dpde-tiny"):
        export_model(tiny, tmp_path / "m.onnx")
    assert list(tmp_path.iterdir()) == []


def test_export_registered_records_the_weights_sha256(tiny_weights: Path, tmp_path: Path) -> None:
    path = export_registered("dpde-tiny", tmp_path / "t.onnx", tiny_weights)
    spec = load_exported(path).spec
    assert spec.sha256 == sha256_file(tiny_weights) and spec.file == tiny_weights.name
    with pytest.raises(UsageError, match="already an export"):
        export_registered("dpde-tiny", tmp_path / "u.onnx", path)


def test_export_format_from_suffix_and_option() -> None:
    assert export_format(Path("m.onnx"), None) == "onnx"
    assert export_format(Path("m.PT"), None) == "torchscript"
    assert export_format(Path("m.ts"), "TorchScript") == "torchscript"
    for output, fmt, problem in [
        ("m.txt", None, "name it .onnx"),
        ("m.pt", "onnx", "named *.onnx"),
        ("m.onnx", "torchscript", "named *.pt"),
        ("m.onnx", "tflite", "unknown export format"),
    ]:
        with pytest.raises(UsageError, match=re.escape(problem)):
            export_format(Path(output), fmt)


# ------------------------------------------------------------------------ hostile files


def _refused(path: Path, match: str) -> str:
    with pytest.raises(WeightsError) as info:
        load_exported(path)
    message = str(info.value)
    assert match in message, message
    assert message.startswith(f"{path}: ") and "\n" not in message
    return message


def _edited(tiny_onnx: Path, path: Path, edit) -> Path:
    proto = onnx.load(str(tiny_onnx))
    edit(proto)
    path.write_bytes(proto.SerializeToString())
    return path


def test_external_data_is_refused(tiny_onnx: Path, tmp_path: Path) -> None:
    def to_passwd(proto) -> None:
        tensor = proto.graph.initializer[0]
        tensor.ClearField("raw_data")
        tensor.data_location = onnx.TensorProto.EXTERNAL
        tensor.external_data.add(key="location", value="/etc/passwd")

    _refused(_edited(tiny_onnx, tmp_path / "ext.onnx", to_passwd), "stored outside the file")


def test_external_data_in_a_node_attribute_is_refused(tiny_onnx: Path, tmp_path: Path) -> None:
    def constant_to_passwd(proto) -> None:
        node = onnx.helper.make_node("Constant", [], ["leak"], value=onnx.TensorProto())
        node.attribute[0].t.name = "leak"
        node.attribute[0].t.data_location = onnx.TensorProto.EXTERNAL
        node.attribute[0].t.external_data.add(key="location", value="../../../etc/passwd")
        proto.graph.node.insert(0, node)

    _refused(_edited(tiny_onnx, tmp_path / "c.onnx", constant_to_passwd), "outside the file")


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"", "an empty file"),
        (b"\x00garbage\xff" * 100, "not an ONNX model"),
        (b"PK\x03\x04 a zip, not ONNX", "not an ONNX model"),
    ],
)
def test_garbage_is_refused(tmp_path: Path, content: bytes, match: str) -> None:
    path = tmp_path / "bad.onnx"
    path.write_bytes(content)
    with pytest.raises(WeightsError) as info:
        load_exported(path)
    message = str(info.value)
    assert match in message and message.startswith(f"{path}: ") and "\n" not in message


@pytest.mark.parametrize(
    ("key", "value", "match"),
    [
        ("model", '"../etc"', "not a model name"),
        ("input_size", "[240, 321]", "multiples of 8"),
        ("input_size", "[32, 8200]", "over 8192"),  # few pixels, one side too long
        ("input_size", "[240.0, 320]", "finite integers"),
        ("mean", "abc", "not JSON"),
        ("mean", "[0.5, 0.5]", "3 finite numbers"),
        ("std", "[0.5, 0.5, 0]", "std outside"),
        ("depth_range", "[5, 1]", "not 0 < near < far"),
        ("depth_range", "[0.1, Infinity]", "finite numbers"),
        ("sha256", '"zz"', "not a sha256"),
        ("file", '"../../etc/passwd"', "not a file name"),
        ("metrics", '{"abs_rel": NaN}', "finite numbers"),
        ("training_data", json.dumps("x" * 30_000), "longer than"),
        ("format_version", "99", "newer dpde"),
        ("format_version", "true", "not an integer"),
        ("precision", '"int4"', "neither fp32 nor fp16"),
    ],
)
def test_bad_metadata_is_refused(tiny_onnx: Path, tmp_path: Path, key, value, match) -> None:
    def set_value(proto) -> None:
        for prop in proto.metadata_props:
            if prop.key == f"dpde.{key}":
                prop.value = value

    _refused(_edited(tiny_onnx, tmp_path / "meta.onnx", set_value), match)


def test_missing_metadata_is_refused(tiny_onnx: Path, tmp_path: Path) -> None:
    path = _edited(tiny_onnx, tmp_path / "bare.onnx", lambda p: p.ClearField("metadata_props"))
    _refused(path, "not a dpde export (no metadata dpde.")


def test_foreign_operators_are_refused(tiny_onnx: Path, tmp_path: Path) -> None:
    def add_domain(proto) -> None:
        proto.opset_import.add(domain="com.microsoft", version=1)

    _refused(_edited(tiny_onnx, tmp_path / "ms.onnx", add_domain), "outside standard ONNX")


def test_another_signature_is_refused(tiny_onnx: Path, tmp_path: Path) -> None:
    x = onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 3, 8, 8])
    y = onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 3, 8, 8])
    graph = onnx.helper.make_graph([onnx.helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y])
    proto = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)])
    proto.metadata_props.extend(onnx.load(str(tiny_onnx)).metadata_props)
    path = tmp_path / "relu.onnx"
    path.write_bytes(proto.SerializeToString())
    _refused(path, "not a dpde export (takes and gives")


def test_invalid_graph_is_refused(tiny_onnx: Path, tmp_path: Path) -> None:
    def break_node(proto) -> None:
        proto.graph.node[0].input[0] = "nowhere"

    _refused(_edited(tiny_onnx, tmp_path / "broken.onnx", break_node), "not a valid ONNX model")


def test_size_limit_and_paths(tiny_onnx: Path, tmp_path: Path, monkeypatch) -> None:
    _refused(tmp_path, "a folder, not a weights file")
    _refused(tmp_path / "absent.onnx", "not found")
    monkeypatch.setattr("dpde_cli.exported.MAX_FILE_BYTES", 1000)
    _refused(tiny_onnx, "over the 2 GiB")


# ------------------------------------------------------------------ the shipped weights


@pytest.fixture(scope="module")
def lite_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_registered("dpde-lite", tmp_path_factory.mktemp("lite") / "lite.onnx")


@pytest.mark.slow
@pytest.mark.parametrize("shape", [(1, 240, 320), (2, 240, 320), (1, 288, 384)])
def test_shipped_lite_onnx_matches_torch(lite_onnx: Path, shape) -> None:
    model = create_model("dpde-lite")
    exported = load_exported(lite_onnx)
    assert exported.spec == model.spec
    image = _batch(*shape, seed=3)
    with torch.no_grad():
        want = model(image)
    got = exported(image)
    assert _worst(got.depth, want.depth) < 1e-3
    assert _worst(got.gradients, want.gradients) < 1e-4
