"""Exporting a model to ONNX or TorchScript (the file format: ``dpde_cli.exported``).

Example:
    >>> export_registered("dpde-lite", "dpde-lite.onnx")  # shipped weights, fp32
    >>> model = load_exported("dpde-lite.onnx")  # runs through onnxruntime
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from dpde_cli import __version__
from dpde_cli.errors import DpdeError, UsageError
from dpde_cli.exported import (
    FORMATS,
    INPUT_NAME,
    METADATA_FILE,
    OUTPUT_NAMES,
    SUFFIXES,
    export_metadata,
    is_exported,
    load_exported,
    load_torchscript,
    require_onnx,
)
from dpde_cli.registry import resolve_inference

if TYPE_CHECKING:
    import torch
    from torch import nn

OPSET = 17
EXPORT_TOLERANCE = {"fp32": 1e-3, "fp16": 5e-2}
"""Largest depth difference (metres) between an export and its model for the export to stand."""


def export_format(output: Path, fmt: str | None) -> str:
    """The format to write ``output`` in: ``fmt``, else read from the suffix.

    Raises:
        UsageError: an unknown format, a suffix that says none, or one that says another
            (an ONNX file not named .onnx would not run with ``--weights``).
    """
    suffix = output.suffix.lower()
    if fmt is None:
        fmt = next((f for f, suffixes in SUFFIXES.items() if suffix in suffixes), None)
        if fmt is None:
            raise UsageError(f"-o {output}: name it .onnx or .pt (TorchScript), or give --format")
    fmt = fmt.lower()
    if fmt not in FORMATS:
        raise UsageError(f"unknown export format {fmt!r}; use {' or '.join(FORMATS)}")
    if suffix not in SUFFIXES[fmt]:
        kind = {"onnx": "an ONNX", "torchscript": "a TorchScript"}[fmt]
        raise UsageError(f"-o {output}: {kind} export is named *{' or *'.join(SUFFIXES[fmt])}")
    return fmt


def export_registered(
    name: str,
    output: str | Path,
    weights: str | Path | None = "default",
    fmt: str = "onnx",
    half: bool = False,
) -> Path:
    """Export a registered model with its weights (as ``create_model`` loads them).

    Args:
        name: registered model name.
        output: the file to write (atomically).
        weights: "default" for the shipped weights, a checkpoint path, or None (untrained).
        fmt: "onnx" or "torchscript".
        half: store the weights in fp16 (input and outputs stay float32).

    Returns:
        ``output`` as a Path.
    """
    from dpde_cli.registry import create_model, sha256_file

    if weights not in (None, "default") and is_exported(weights):
        raise UsageError(f"--weights {weights}: already an export; give a PyTorch checkpoint")
    model = create_model(name, weights=weights)
    source = None
    if weights == "default":
        source = (model.spec.file, model.spec.sha256)  # create_model checked the sha256
    elif weights is not None:
        source = (Path(weights).name, sha256_file(Path(weights)))
    return export_model(model, output, fmt, half=half, source=source)


def export_model(
    model: nn.Module,
    path: str | Path,
    fmt: str = "onnx",
    half: bool = False,
    source: tuple[str, str] | None = None,
    check: bool = True,
) -> Path:
    """Export a model from ``create_model`` (it carries ``spec`` and ``name``).

    The trace runs on the CPU at the spec's input size (batch 2); with ``check`` the file
    written is loaded back and run at another size and batch (onnxruntime for ONNX, when
    installed), and the export stands only if its depth is within ``EXPORT_TOLERANCE`` of
    the model's. The write is atomic: a failure leaves no file.

    Args:
        model: the model, with ``spec`` and ``name`` attributes.
        path: the file to write.
        fmt: "onnx" or "torchscript".
        half: fp16 weights inside the graph (input and outputs stay float32).
        source: (file name, sha256) of the weights, recorded in the metadata; None for
            untrained weights.
        check: verify the file written against the model.

    Raises:
        UsageError: an unknown format, or the onnx package missing for ONNX.
        DpdeError: the export does not reproduce the model.
    """
    import torch

    from dpde_cli.io import atomic_path

    if fmt not in FORMATS:
        raise UsageError(f"unknown export format {fmt!r}; use {' or '.join(FORMATS)}")
    path = Path(path)
    precision = "fp16" if half else "fp32"
    inference = resolve_inference(model)  # a run's input size and range travel with it
    metadata = export_metadata(model.name, model.spec, precision, source, inference)
    graph = _export_graph(model.cpu().eval(), torch.float16 if half else torch.float32)
    example = torch.rand(2, 3, *inference.input_size, generator=torch.Generator().manual_seed(0))
    with atomic_path(path) as tmp:
        if fmt == "onnx":
            _write_onnx(graph, example, tmp, metadata)
        else:
            _write_torchscript(graph, example, tmp, metadata)
        if check:
            _check_export(model, tmp, path, fmt, precision)
    return path


def _export_graph(model: nn.Module, dtype: torch.dtype) -> nn.Module:
    """A module taking float32 RGB in [0, 1], running ``model`` in ``dtype``, returning
    (depth, gradients) in float32; the caller's model is left as it is."""
    import copy

    import torch
    from torch import nn

    if dtype != torch.float32:  # a copy; the spec's and facts' mapping proxies are shared
        shared = (model.spec, getattr(model, "run_facts", None))
        model = copy.deepcopy(model, {id(x): x for x in shared}).to(dtype)

    class ExportGraph(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            out = self.model(image.to(dtype))
            return out.depth.float(), out.gradients.float()

    return ExportGraph().eval()


def _write_onnx(
    graph: nn.Module, example: torch.Tensor, path: Path, metadata: dict[str, str]
) -> None:
    """Trace to ONNX (the TorchScript-based exporter: its trace records the pads and resizes
    as functions of the input size), name the dynamic axes, add the metadata."""
    import tempfile

    import torch

    onnx = require_onnx()
    axes = {0: "batch", 2: "height", 3: "width"}
    with tempfile.TemporaryDirectory() as folder, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's deprecation and folding notes
        raw = Path(folder) / "model.onnx"
        with torch.no_grad():
            torch.onnx.export(
                graph,
                (example,),
                str(raw),
                dynamo=False,
                input_names=[INPUT_NAME],
                output_names=list(OUTPUT_NAMES),
                dynamic_axes={name: axes for name in (INPUT_NAME, *OUTPUT_NAMES)},
                opset_version=OPSET,
            )
        proto = onnx.load_model(str(raw))
    for value, channels in zip(proto.graph.output, (1, 2), strict=True):
        value.type.tensor_type.shape.dim[1].dim_value = channels  # the exporter leaves a name
    proto.producer_name, proto.producer_version = "dpde", __version__
    proto.doc_string = "dpde depth model: image (B,3,H,W) RGB in [0,1] -> depth, gradients"
    del proto.metadata_props[:]
    for key, value in metadata.items():
        proto.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(proto)
    path.write_bytes(proto.SerializeToString())


def _write_torchscript(
    graph: nn.Module, example: torch.Tensor, path: Path, metadata: dict[str, str]
) -> None:
    """Trace to TorchScript and save it with the metadata as an extra file."""
    import torch

    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # TracerWarnings (the check is the judge), deprecation
        traced = torch.jit.trace(graph, (example,), check_trace=False)
        torch.jit.save(traced, str(path), _extra_files={METADATA_FILE: json.dumps(metadata)})


def _check_export(model: nn.Module, tmp: Path, path: Path, fmt: str, precision: str) -> None:
    """Run the file written and the model at a size and batch other than the trace's;
    raise a DpdeError when their depths differ by more than ``EXPORT_TOLERANCE``."""
    import torch

    if fmt == "onnx":
        try:
            import onnxruntime  # noqa: F401
        except ImportError:
            return  # nothing to run it with here; exporting needs only torch and onnx
        exported = load_exported(tmp)
    else:
        exported = load_torchscript(tmp)
    height, width = resolve_inference(model).input_size
    image = torch.rand(1, 3, height + 8, width + 8, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want = model(image).depth
    got = exported(image).depth
    worst = float((got - want).abs().max())
    if not worst <= EXPORT_TOLERANCE[precision]:  # NaN fails too
        raise DpdeError(
            f"{path}: the {fmt} export does not reproduce {model.name} (depth differs by "
            f"{worst:.3g} m at {height + 8}x{width + 8}); nothing written"
        )


__all__ = [
    "EXPORT_TOLERANCE",
    "export_format",
    "export_model",
    "export_registered",
    "load_exported",
    "load_torchscript",
]
