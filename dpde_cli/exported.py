"""The export file format: its metadata, the checks an ONNX file passes, and running one.

An export (written by ``dpde_cli.export``) takes RGB in [0, 1] and normalises inside the
graph; batch, height and width are dynamic (multiples of 8, at least 32, as the torch model
takes):

    input   image      (B, 3, H, W) float32, RGB in [0, 1]
    output  depth      (B, 1, H, W) float32, metres (not yet clipped to the depth range;
                       for a model with a canonical focal length, as that camera sees it)
    output  gradients  (B, 2, H, W) float32, (G_x, G_y) in metres per pixel

The weights spec travels with it as metadata (ONNX ``metadata_props``, TorchScript extra
file ``dpde.json``): every key starts with ``dpde.`` and every value is JSON. An ONNX file
is untrusted input, as a checkpoint is: ``load_exported`` checks it before onnxruntime sees
it. A TorchScript archive holds code, so ``load_torchscript`` is for files you trust. This
module imports torch only to run a TorchScript file or to answer a torch tensor with one.

Example:
    >>> model = load_exported("dpde-lite.onnx")  # onnxruntime; model.spec, model.name
    >>> out = model(np.random.rand(1, 3, 240, 320).astype(np.float32))  # out.depth: (1, 1, ...)
"""

from __future__ import annotations

import json
import math
import re
import warnings
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from dpde_cli import __version__
from dpde_cli.errors import UsageError, WeightsError
from dpde_cli.registry import InferenceSpec, WeightsSpec, _check_is_file, check_input_size

if TYPE_CHECKING:
    import torch

FORMATS = ("onnx", "torchscript")
SUFFIXES = {"onnx": (".onnx",), "torchscript": (".pt", ".ts", ".torchscript")}
"""The file names each format is written under (``--weights`` recognises ONNX by its own)."""
INPUT_NAME = "image"
OUTPUT_NAMES = ("depth", "gradients")
PRECISIONS = ("fp32", "fp16")
FORMAT_VERSION = 1
"""Version of the metadata layout; a reader refuses a newer one."""
METADATA_FILE = "dpde.json"
"""The TorchScript extra file that holds the metadata."""
MAX_FILE_BYTES = 2**31 - 1
"""The largest ONNX file read (protobuf's own limit is 2 GiB)."""
MAX_SIDE = 8192
"""The largest input height or width a file's metadata may declare."""
MAX_TEXT = 20_000
"""The longest text a metadata value may hold."""


class ExportedOutput(NamedTuple):
    """An exported model's answer: tensors when called with a tensor, else numpy arrays.

    Attributes:
        depth: (B, 1, H, W) metric depth in metres.
        gradients: (B, 2, H, W) (G_x, G_y) in metres per pixel.
    """

    depth: Any
    gradients: Any


def is_exported(weights: str | Path) -> bool:
    """Whether a ``--weights`` path names an ONNX export (by its suffix, ``.onnx``)."""
    return Path(weights).suffix.lower() in SUFFIXES["onnx"]


# ------------------------------------------------------------------------------ metadata


def export_metadata(
    name: str,
    spec: WeightsSpec,
    precision: str,
    source: tuple[str, str] | None,
    inference: InferenceSpec | None = None,
) -> dict[str, str]:
    """The metadata of an export: ``dpde.<key>`` -> JSON.

    Args:
        name: the registered model name.
        spec: its weights spec (input size, mean/std, depth range, ...).
        precision: "fp32" or "fp16".
        source: (file name, sha256) of the weights exported, None for untrained ones (their
            spec's training data, metrics and card are not theirs, so they are left out).
        inference: how the weights run (a `dpde train` run's input size, depth range and
            canonical focal length, ``registry.resolve_inference``); None: the spec's.
    """
    trained = source is not None
    run = inference or InferenceSpec(spec.input_size, spec.depth_range, spec.canonical_focal)
    values: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "dpde_version": __version__,
        "model": name,
        "precision": precision,
        "file": source[0] if trained else None,
        "sha256": source[1] if trained else None,
        "input_size": list(run.input_size),
        "mean": list(spec.mean),
        "std": list(spec.std),
        "output": spec.output,
        "depth_range": list(run.depth_range),
        "training_data": spec.training_data if trained else "none (untrained weights)",
        "metrics": dict(spec.metrics) if trained else {},
        "metrics_protocol": spec.metrics_protocol if trained else "",
        "licence": spec.licence,
        "canonical_focal": run.canonical_focal,
        "card": spec.card if trained else None,
    }
    return {f"dpde.{key}": json.dumps(value) for key, value in values.items()}


def spec_from_metadata(metadata: Mapping[str, str], path: Path) -> tuple[str, WeightsSpec, str]:
    """Read and check an export's metadata: (model name, WeightsSpec, precision).

    Raises:
        WeightsError: no dpde metadata, a newer layout, or a value of the wrong type or
            out of range; the message names the file and the key.
    """
    get = _MetadataReader(metadata, path)
    version = get("format_version", int)
    if version > FORMAT_VERSION:
        raise WeightsError(f"{path}: written by a newer dpde (metadata version {version})")
    name = get("model", str)
    if not re.fullmatch(r"[A-Za-z0-9._-]{1,100}", name):
        raise get.bad("model", "not a model name")
    precision = get("precision", str, "fp32")
    if precision not in PRECISIONS:
        raise get.bad("precision", "neither fp32 nor fp16")
    size = get.numbers("input_size", 2, integer=True)
    try:
        size = check_input_size(size)
    except UsageError as exc:
        raise get.bad("input_size", str(exc)) from None
    if max(size) > MAX_SIDE:
        raise get.bad("input_size", f"over {MAX_SIDE} pixels")
    mean, std = get.numbers("mean", 3), get.numbers("std", 3)
    if not all(0.0 <= m <= 1.0 for m in mean) or not all(0.0 < s <= 10.0 for s in std):
        raise get.bad("mean", "mean outside [0, 1] or std outside (0, 10]")
    low, high = get.numbers("depth_range", 2)
    if not 0.0 < low < high <= 1e5:
        raise get.bad("depth_range", "not 0 < near < far <= 100000 m")
    file = get("file", (str, type(None)), None)
    if file is not None and (not 0 < len(file) <= 255 or re.search(r"[/\\\x00]", file)):
        raise get.bad("file", "not a file name")
    sha256 = get("sha256", (str, type(None)), None)
    if sha256 is not None and not re.fullmatch(r"[0-9a-f]{64}", sha256):
        raise get.bad("sha256", "not a sha256 hex digest")
    focal = get("canonical_focal", (int, float, type(None)), None)
    if focal is not None and not (_finite(focal) and 0 < focal <= 1e6):
        raise get.bad("canonical_focal", "not a focal length in (0, 1000000] pixels")
    metrics = get("metrics", dict, {})
    if len(metrics) > 200 or not all(
        isinstance(k, str) and len(k) <= 100 and _finite(v) for k, v in metrics.items()
    ):
        raise get.bad("metrics", "not up to 200 names with finite numbers")
    spec = WeightsSpec(
        file=file,
        sha256=sha256,
        input_size=size,
        mean=mean,
        std=std,
        output=get("output", str, WeightsSpec.output),
        depth_range=(low, high),
        training_data=get("training_data", str, ""),
        metrics=MappingProxyType({k: float(v) for k, v in metrics.items()}),
        metrics_protocol=get("metrics_protocol", str, ""),
        licence=get("licence", str, ""),
        canonical_focal=None if focal is None else float(focal),
        card=get("card", (str, type(None)), None),
    )
    return name, spec, precision


def _finite(value: object) -> bool:
    """Whether ``value`` is a finite int or float (not a bool)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


_JSON_KINDS = {
    int: "an integer",
    float: "a number",
    str: "text",
    list: "a list",
    dict: "an object",
    type(None): "null",
}


class _MetadataReader:
    """Typed access to ``dpde.<key>`` JSON values, with one-line errors naming file and key."""

    def __init__(self, metadata: Mapping[str, str], path: Path) -> None:
        self.metadata = metadata
        self.path = path

    def bad(self, key: str, problem: str) -> WeightsError:
        """The error for a metadata value that is not what it should be."""
        return WeightsError(f"{self.path}: metadata dpde.{key}: {problem}")

    def __call__(self, key: str, kind: type | tuple[type, ...], default: Any = ...) -> Any:
        text = self.metadata.get(f"dpde.{key}")
        if text is None:
            if default is ...:
                raise WeightsError(
                    f"{self.path}: not a dpde export (no metadata dpde.{key}); "
                    "write one with `dpde export`"
                )
            return default
        if not isinstance(text, str) or len(text) > MAX_TEXT:
            raise self.bad(key, f"longer than {MAX_TEXT} characters")
        try:
            value = json.loads(text)
        except ValueError:
            raise self.bad(key, "not JSON") from None
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            kinds = kind if isinstance(kind, tuple) else (kind,)
            raise self.bad(key, "not " + " or ".join(_JSON_KINDS[k] for k in kinds))
        return value

    def numbers(self, key: str, count: int, integer: bool = False) -> tuple:
        """A list of ``count`` finite numbers (ints with ``integer``) as a tuple."""
        value = self(key, list)
        ok = len(value) == count and all(_finite(v) for v in value)
        if not ok or (integer and not all(isinstance(v, int) for v in value)):
            raise self.bad(key, f"not {count} finite {'integers' if integer else 'numbers'}")
        return tuple(value) if integer else tuple(float(v) for v in value)


def _first_line(exc: BaseException) -> str:
    """The first line of an exception's message, or its type's name when it has none."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def require_onnx():
    """The onnx package, or a UsageError saying how to install it."""
    try:
        import onnx
    except ImportError:
        raise UsageError("ONNX export needs the onnx package: pip install 'dpde[onnx]'") from None
    return onnx


# ------------------------------------------------------------------------------ running


class _Exported:
    """What an exported model shares with a torch one for ``Predictor``: ``spec``, ``name``,
    ``to(device)``, ``eval()``, and a call on (B, 3, H, W) RGB in [0, 1]."""

    def __init__(self, path: Path, name: str, spec: WeightsSpec, precision: str) -> None:
        self.path = path
        self.name = name
        self.spec = spec
        self.precision = precision

    def eval(self) -> _Exported:
        """Exports are in eval mode already."""
        return self

    def _check_input(self, shape: tuple[int, ...]) -> None:
        if len(shape) != 4 or shape[1] != 3 or shape[0] < 1:
            raise UsageError(f"{self.path}: takes (B, 3, H, W) images, got {tuple(shape)}")
        check_input_size(shape[2:])


class OnnxModel(_Exported):
    """An ONNX export run through onnxruntime (see ``load_exported``)."""

    def __init__(
        self,
        path: Path,
        data: bytes,
        metadata: tuple[str, WeightsSpec, str],
        threads: int | None = None,
    ) -> None:
        super().__init__(path, *metadata)
        self._data = data
        self._threads = threads
        self.device = "cpu"
        self._session = self._open(["CPUExecutionProvider"])

    def _open(self, providers: list):
        """An onnxruntime session on the checked bytes (never the path: nothing is re-read)."""
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3  # errors only: its warnings are not the user's
        if self._threads:
            options.intra_op_num_threads = self._threads
        try:
            return onnxruntime.InferenceSession(self._data, options, providers=providers)
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
            reason = _first_line(exc)
            raise WeightsError(f"{self.path}: onnxruntime cannot run it ({reason})") from exc

    def to(self, device: Any) -> OnnxModel:
        """Run on ``device`` ("cpu", "cuda[:i]" or a torch.device): onnxruntime's CUDA
        provider for cuda, which must be installed (onnxruntime-gpu): never a fallback."""
        import onnxruntime

        kind = getattr(device, "type", str(device).split(":")[0])
        index = getattr(device, "index", None)
        if index is None and ":" in str(device):
            index = int(str(device).split(":")[1])
        if kind == "cpu":
            if self.device != "cpu":
                self._session = self._open(["CPUExecutionProvider"])
            self.device = "cpu"
            return self
        if kind != "cuda":
            raise UsageError(f"{self.path}: onnxruntime runs it on cpu or cuda, not {kind}")
        if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
            raise UsageError(
                f"{self.path}: this onnxruntime has no CUDA provider; install "
                "onnxruntime-gpu, or run it with --device cpu"
            )
        provider = ("CUDAExecutionProvider", {"device_id": index or 0})
        self._session = self._open([provider, "CPUExecutionProvider"])
        self.device = f"cuda:{index or 0}"
        return self

    def __call__(self, image: Any) -> ExportedOutput:
        """Depth and gradients of (B, 3, H, W) RGB in [0, 1]: a torch tensor (answers are
        tensors on its device) or a numpy array (answers are numpy arrays)."""
        tensor = None
        if not isinstance(image, np.ndarray):  # a torch tensor
            tensor, image = image, image.detach().float().cpu().numpy()
        self._check_input(image.shape)
        depth, gradients = self._session.run(
            list(OUTPUT_NAMES), {INPUT_NAME: np.ascontiguousarray(image, dtype=np.float32)}
        )
        if tensor is None:
            return ExportedOutput(depth, gradients)
        import torch

        return ExportedOutput(
            torch.from_numpy(depth).to(tensor.device), torch.from_numpy(gradients).to(tensor.device)
        )


class TorchScriptModel(_Exported):
    """A TorchScript export (see ``load_torchscript``)."""

    def __init__(self, path: Path, module: Any, metadata: tuple[str, WeightsSpec, str]) -> None:
        super().__init__(path, *metadata)
        self.module = module

    def to(self, device: Any) -> TorchScriptModel:
        """Move the module to ``device``."""
        self.module = self.module.to(device)
        return self

    def __call__(self, image: torch.Tensor) -> ExportedOutput:
        """Depth and gradients (tensors) of (B, 3, H, W) RGB in [0, 1]."""
        import torch

        self._check_input(tuple(image.shape))
        with torch.no_grad():
            return ExportedOutput(*self.module(image.float()))


def load_exported(
    path: str | Path, model_name: str | None = None, threads: int | None = None
) -> OnnxModel:
    """Check an ONNX export as untrusted input and open it with onnxruntime (CPU).

    Checks, before onnxruntime sees it: a regular file under 2 GiB; a valid ONNX model
    (``onnx.checker``) of the standard operator set only; no tensor stored outside the file
    (external data could name any file on the machine); the input and outputs of a dpde
    export; the metadata (types, ranges, input size limits).

    Args:
        path: the .onnx file.
        model_name: the model it must hold (``--model``), or None for any.
        threads: onnxruntime's intra-op threads (None: its default).

    Returns:
        An OnnxModel: call it on (B, 3, H, W) RGB in [0, 1]; ``.to(device)``, ``.spec``
        (a WeightsSpec from the metadata) and ``.name`` as a torch model's.

    Raises:
        WeightsError: the file fails a check (one line naming the file and the problem).
        UsageError: onnxruntime or onnx is not installed; the file holds another model.
    """
    path = Path(path)
    _check_is_file(path)
    size = path.stat().st_size
    if size == 0:
        raise WeightsError(f"{path}: an empty file, not an ONNX model")
    if size > MAX_FILE_BYTES:
        raise WeightsError(f"{path}: {size} bytes, over the 2 GiB an ONNX model can hold")
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        raise UsageError(
            f"{path}: running an ONNX model needs onnxruntime: pip install 'dpde[onnx]'"
        ) from None
    data = path.read_bytes()
    metadata = spec_from_metadata(_check_onnx(data, path), path)
    if model_name is not None and metadata[0] != model_name:
        raise UsageError(
            f"{path}: an export of {metadata[0]}, not {model_name}; pass --model {metadata[0]}"
        )
    return OnnxModel(path, data, metadata, threads)


def _check_onnx(data: bytes, path: Path) -> dict[str, str]:
    """Parse and check ONNX bytes (see ``load_exported``); return the metadata."""
    onnx = require_onnx()
    try:
        proto = onnx.load_model_from_string(data)
    except Exception as exc:  # protobuf's DecodeError, and whatever else bytes can cause
        raise WeightsError(f"{path}: not an ONNX model ({type(exc).__name__})") from None
    domains = {opset.domain for opset in proto.opset_import} - {"", "ai.onnx"}
    if domains or proto.functions:
        found = sorted(domains) or ["local functions"]
        raise WeightsError(f"{path}: uses operators outside standard ONNX ({found[0]})")
    external = [t.name or "(unnamed)" for t in _tensors(proto.graph) if _is_external(t)]
    if external:
        raise WeightsError(
            f"{path}: refers to tensors stored outside the file ({external[0]}); "
            "only self-contained ONNX files are loaded"
        )
    try:
        onnx.checker.check_model(proto)
    except Exception as exc:  # onnx.checker.ValidationError and friends
        reason = _first_line(exc)
        raise WeightsError(f"{path}: not a valid ONNX model ({reason})") from None
    _check_signature(proto.graph, path)
    return {prop.key: prop.value for prop in proto.metadata_props}


def _check_signature(graph: Any, path: Path) -> None:
    """A WeightsError unless the graph takes ``image`` and gives ``depth`` and ``gradients``,
    all float32 of rank 4 with 3, 1 and 2 channels."""
    initializers = {t.name for t in graph.initializer}
    inputs = [v for v in graph.input if v.name not in initializers]
    wanted = [(INPUT_NAME, 3)], [(OUTPUT_NAMES[0], 1), (OUTPUT_NAMES[1], 2)]
    for values, expected in zip((inputs, list(graph.output)), wanted, strict=True):
        found = [(v.name, _channels(v)) for v in values]
        if found != expected:
            raise WeightsError(
                f"{path}: not a dpde export (takes and gives {found}, expected {expected})"
            )


def _channels(value: Any) -> int | None:
    """The channel count of a float32 rank-4 value, else None."""
    tensor = value.type.tensor_type
    if tensor.elem_type != 1 or len(tensor.shape.dim) != 4:  # 1: FLOAT
        return None
    dim = tensor.shape.dim[1]
    return dim.dim_value if dim.HasField("dim_value") else None


def _is_external(tensor: Any) -> bool:
    """Whether a TensorProto keeps its data in another file."""
    return tensor.data_location == 1 or len(tensor.external_data) > 0  # 1: EXTERNAL


def _tensors(graph: Any) -> list:
    """Every TensorProto of a graph and its subgraphs that could be stored externally."""
    found = list(graph.initializer)
    for sparse in graph.sparse_initializer:
        found += [sparse.values, sparse.indices]
    for node in graph.node:
        found += _node_tensors(node)
    return found


def _node_tensors(node: Any) -> list:
    """The TensorProtos in a node's attributes, its subgraphs' included."""
    found = []
    for attribute in node.attribute:
        found += [attribute.t, *attribute.tensors]
        found += [attribute.sparse_tensor.values, attribute.sparse_tensor.indices]
        for sparse in attribute.sparse_tensors:
            found += [sparse.values, sparse.indices]
        for sub in [attribute.g, *attribute.graphs]:
            found += _tensors(sub)
    return found


def load_torchscript(path: str | Path) -> TorchScriptModel:
    """Load a TorchScript export with its metadata (on the CPU).

    A TorchScript archive holds code that runs when it is called: load only files you
    trust (``dpde predict --weights`` takes ONNX files, which are checked, instead).

    Raises:
        WeightsError: not a TorchScript archive, or its metadata fails the checks.
    """
    import torch

    path = Path(path)
    _check_is_file(path)
    extra = {METADATA_FILE: ""}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch.jit's deprecation
            module = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
    except Exception as exc:  # RuntimeError for a zip that is not TorchScript, and more
        reason = _first_line(exc)
        raise WeightsError(f"{path}: not a TorchScript archive ({reason})") from None
    try:
        metadata = json.loads(extra[METADATA_FILE] or "null")
    except ValueError:
        metadata = None
    if not isinstance(metadata, dict):
        raise WeightsError(f"{path}: not a dpde export (no {METADATA_FILE} inside)")
    return TorchScriptModel(path, module.eval(), spec_from_metadata(metadata, path))
