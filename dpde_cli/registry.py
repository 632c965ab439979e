"""Model registry: names -> builders and frozen weights specs, shared by every command.

Example:
    >>> from dpde_cli.registry import create_model, list_models
    >>> list_models()
    ['dpde-lite', 'dpde-r50']
    >>> model = create_model("dpde-lite")  # shipped weights, sha256-checked
"""

from __future__ import annotations

import fnmatch
import hashlib
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from dpde_cli.errors import UsageError, WeightsError

if TYPE_CHECKING:
    from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
WEIGHTS_DIR = Path(
    os.environ.get("DPDE_WEIGHTS_DIR", Path(__file__).resolve().parents[1] / "weights")
)


@dataclass(frozen=True)
class WeightsSpec:
    """Everything a caller needs to know about a model's weights and its input/output.

    Attributes:
        file: file name under ``weights/`` (None: no weights shipped yet).
        sha256: hex digest of that file.
        input_size: (H, W) the model was trained at.
        mean, std: normalisation the model applies to RGB in [0, 1].
        output: what the depth output means ("metric depth, metres").
        depth_range: (min, max) metres the model was trained on; predictions are clipped to it.
        training_data: what the weights were trained on, in a sentence (the model card has
            the sets, seeds and commands).
        metrics: headline metrics (names from ``dpde_cli.metrics.BASE_METRICS``) -> value,
            measured as ``metrics_protocol`` says; the model card has the rest.
        metrics_protocol: how the metrics were measured, in a sentence or two.
        licence: licence of the weights.
        canonical_focal: the focal length (pixels at ``input_size``) the depth output refers
            to: the network predicts the depth a camera of that focal length would see, and a
            photo's depth is that times f / canonical_focal, with f the photo's focal length
            at the network's grid (``Predictor.camera_scale``). None: the output is taken as
            metres whatever the camera.
        card: the model card of the shipped file, relative to the repository
            (``docs/models/<name>.md``); None where no weights are shipped.
    """

    file: str | None
    sha256: str | None
    input_size: tuple[int, int]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    output: str = "metric depth, metres"
    depth_range: tuple[float, float] = (0.1, 10.0)
    training_data: str = "none (no weights shipped)"
    metrics: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))
    metrics_protocol: str = ""
    licence: str = "Apache-2.0"
    canonical_focal: float | None = None
    card: str | None = None

    @property
    def path(self) -> Path | None:
        """Absolute path of the shipped file, or None."""
        return WEIGHTS_DIR / self.file if self.file else None


@dataclass(frozen=True)
class ModelEntry:
    """One registered model: how to build it and what its weights are."""

    name: str
    builder: Callable[..., nn.Module]
    description: str
    weights: WeightsSpec


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(name: str, description: str, weights: WeightsSpec) -> Callable:
    """Decorator registering ``builder(pretrained: bool) -> nn.Module`` under ``name``.

    Raises:
        ValueError: the name is taken.
    """

    def wrap(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is already registered")
        _REGISTRY[name] = ModelEntry(name, builder, description, weights)
        return builder

    return wrap


def list_models(pattern: str = "*") -> list[str]:
    """Registered model names matching a glob pattern, sorted."""
    return sorted(n for n in _REGISTRY if fnmatch.fnmatch(n, pattern))


def get_entry(name: str) -> ModelEntry:
    """The registry entry of ``name``; a UsageError lists the known names."""
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(list_models())
        raise UsageError(f"unknown model {name!r}; known models: {known}") from None


def create_model(
    name: str, weights: str | Path | None = "default", pretrained: bool = False
) -> nn.Module:
    """Build a registered model, optionally loading weights.

    Args:
        name: registered name (see ``list_models``).
        weights: "default" for the shipped weights, a path to a checkpoint, or None for
            an untrained model; a path to an ONNX export (.onnx) gives an OnnxModel from
            ``dpde_cli.exported.load_exported`` instead, with the same ``spec`` and ``name``.
        pretrained: initialise the encoder from ImageNet (only when ``weights`` is None).

    Returns:
        The model in eval mode on the CPU, with its registered WeightsSpec as ``model.spec``
        and, for a checkpoint of a `dpde train` run, what it says about running it as
        ``model.run_facts`` (``inference_facts``; {} otherwise): ``resolve_inference``
        reads both.

    Raises:
        WeightsError: no shipped weights, a missing file, a sha256 mismatch, or a
            checkpoint that does not fit the model.
    """
    if weights not in (None, "default"):
        from dpde_cli.exported import is_exported, load_exported

        if is_exported(weights):  # an ONNX export, run through onnxruntime
            return load_exported(weights, model_name=name)
    entry = get_entry(name)
    model = entry.builder(pretrained=pretrained and weights is None)
    if weights == "default":
        if entry.weights.path is None:
            raise UsageError(
                f"model {name!r} has no shipped weights yet; pass --weights PATH "
                "(a checkpoint from `dpde train`)"
            )
        load_weights(model, entry.weights.path, expected_sha256=entry.weights.sha256)
    run: Mapping[str, Any] = MappingProxyType({})
    if weights not in (None, "default"):
        path = Path(weights)
        facts = load_weights(model, path)
        if not _is_shipped(path, entry.weights):  # the shipped file runs as shipped
            run = inference_facts(path, name, facts)
    model.spec = entry.weights
    model.run_facts = run
    model.name = name
    return model.eval()


@dataclass(frozen=True)
class InferenceSpec:
    """How a model runs in one session, resolved once (``resolve_inference``) from its
    WeightsSpec, what its weights file says of the run that made it, the caller's options
    and, for an evaluation, the protocol's depth range; the WeightsSpec stays as registered.

    Attributes:
        input_size: (H, W) the network runs at for photos of that aspect ratio (others run
            at as many pixels in their own, ``predict.inference_size``).
        depth_range: (near, far) metres predictions are clipped to.
        canonical_focal: the focal length (pixels at ``input_size``) the depth output
            refers to (see ``WeightsSpec.canonical_focal``), or None.
    """

    input_size: tuple[int, int]
    depth_range: tuple[float, float]
    canonical_focal: float | None = None


def resolve_inference(
    model: Any, input_size: tuple[int, int] | None = None, max_depth: float | None = None
) -> InferenceSpec:
    """How ``model`` (from ``create_model``) runs: its spec's input size, depth range and
    canonical focal length, or its run's (``model.run_facts``, see ``inference_facts``),
    or the caller's.

    Args:
        model: has ``spec`` (WeightsSpec) and, for weights of a `dpde train` run,
            ``run_facts``.
        input_size: (H, W) to run at instead (checked as ``check_input_size``).
        max_depth: widen the depth range to this far limit (an evaluation protocol's, so
            that it can score depths past the model's own range); never narrows it.

    Raises:
        UsageError: an unusable ``input_size``.
    """
    spec = model.spec
    run = getattr(model, "run_facts", None) or {}
    size = check_input_size(input_size) if input_size else run.get("input_size", spec.input_size)
    near, far = spec.depth_range
    for limit in (run.get("max_depth"), max_depth):
        if limit is not None and math.isfinite(limit) and limit > far:
            far = float(limit)
    focal = run.get("canonical_focal", spec.canonical_focal)  # a run's None holds too
    return InferenceSpec(size, (near, far), focal)


def inference_facts(
    path: Path, name: str, facts: Mapping[str, Any] | None = None
) -> Mapping[str, Any]:
    """What weights from a `dpde train` run of ``name`` say about running them, checked:
    "input_size" the run trained at, "canonical_focal" (None: metres whatever the camera)
    and "max_depth", a far limit reaching as far as the run's data where the registry's
    (10 m) would clip predictions: the farthest validation ground truth, else the far limit
    of its dataset's protocol (Make3D: 70 m).

    The run's facts ("model", "input_size", "dataset", "val_depth_max") are those the file
    carries (``facts``, from ``read_weights``), else, for a file in a run's ``weights/`` or
    ``checkpoints/`` folder, the run folder's (``training.run_folder.facts_beside``).
    Without them, or from a run of another model: {} (the model's spec holds).

    Raises:
        WeightsError: an input size or focal length that cannot be used.
    """
    from dpde_cli.training.run_folder import facts_beside

    facts = facts or facts_beside(path)
    if facts.get("model") != name:
        return MappingProxyType({})
    checked: dict[str, Any] = {}
    size = facts.get("input_size")
    if isinstance(size, (list, tuple)) and len(size) == 2:
        try:
            checked["input_size"] = check_input_size([s for s in size if isinstance(s, int)])
        except (UsageError, ValueError) as exc:
            why = f" ({exc})" if isinstance(exc, UsageError) else ""
            raise WeightsError(f"{path}: records an unusable input size {size}{why}") from None
    focal = facts.get("canonical_focal")  # a run without one predicts metres, whatever camera
    if focal is not None and (
        isinstance(focal, bool) or not isinstance(focal, (int, float)) or not 0 < focal < math.inf
    ):
        raise WeightsError(f"{path}: records an unusable canonical focal length {focal!r}")
    checked["canonical_focal"] = None if focal is None else float(focal)
    far = facts.get("val_depth_max")
    if not isinstance(far, (int, float)) or not far > 0:
        from dpde_cli.dataset_catalog import dataset_spec

        try:  # the far limit of the dataset's protocol, where its catalogue entry has one
            far = dataset_spec(str(facts.get("dataset"))).protocol.get("max_depth", math.inf)
        except UsageError:  # an unknown dataset: keep the registry's range
            far = math.inf
    checked["max_depth"] = float(far)
    return MappingProxyType(checked)


RUN_FACTS = ("model", "input_size", "dataset", "val_depth_max", "canonical_focal")
"""What a weights file from `dpde train` says of the run that made it (see
``inference_facts``)."""


def run_facts(*sources: object) -> dict[str, Any]:
    """The ``RUN_FACTS`` found in these dicts, later ones winning; a source that is not a
    dict (a missing entry of an untrusted file) adds nothing."""
    found: dict[str, Any] = {}
    for source in sources:
        if isinstance(source, dict):
            found.update(source)
    return {key: found[key] for key in RUN_FACTS if key in found}


MAX_INPUT_PIXELS = 2048 * 2048
"""The most pixels a network input may have, whether an option or a weights file asks for
more (a crafted file must not exhaust memory): about 10 GB per image for dpde-r50."""
BYTES_PER_INPUT_PIXEL = 2400
"""Peak memory of a dpde-r50 forward pass per input pixel (fp32, batch 1, measured on CPU:
685 MB at 480 x 640, 215 MB at 240 x 320); dpde-lite needs about a quarter."""


def check_input_size(size: tuple[int, int] | list[int]) -> tuple[int, int]:
    """(H, W) as ints, or a UsageError: both multiples of 8, at least 32, and at most
    ``MAX_INPUT_PIXELS`` pixels together (checked before anything is allocated).

    Multiples of 8, not 32: the decoder's laterals resize odd strides (the paper's own
    240 x 320 is not a multiple of 32).
    """
    height, width = (int(v) for v in size)
    if height < 32 or width < 32 or height % 8 or width % 8:
        raise UsageError(
            f"input size must be multiples of 8, at least 32 (H, W), got {tuple(size)}"
        )
    if height * width > MAX_INPUT_PIXELS:
        gigabytes = height * width * BYTES_PER_INPUT_PIXEL / 1e9
        raise UsageError(
            f"input size {height}x{width} ({height * width / 1e6:.3g} MP, about "
            f"{gigabytes:.0f} GB per image) is past the limit of {MAX_INPUT_PIXELS / 1e6:.3g} "
            f"MP (about {MAX_INPUT_PIXELS * BYTES_PER_INPUT_PIXEL / 1e9:.0f} GB per image)"
        )
    return height, width


def _is_shipped(path: Path, spec: WeightsSpec) -> bool:
    """Whether ``path`` holds the registry's shipped file (same size, then same sha256)."""
    shipped = spec.path
    if shipped is None or spec.sha256 is None or not shipped.is_file():
        return False
    if path.stat().st_size != shipped.stat().st_size:
        return False
    return sha256_file(path) == spec.sha256


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_state_dict(path: Path) -> dict[str, Any]:
    """Load a checkpoint as untrusted input: tensors and plain containers only.

    Accepts a bare state dict or a file holding one under "model" (weights exported by
    `dpde train`, or its training checkpoint).
    """
    return read_weights(path)[0]


def _check_is_file(path: Path) -> None:
    """A WeightsError unless ``path`` is a file: a run folder is named as a folder."""
    if path.is_dir():
        raise WeightsError(
            f"{path}: a folder, not a weights file (a run's are in its weights/ folder)"
        )
    if not path.is_file():
        raise WeightsError(f"{path}: weights file not found")


def read_weights(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """A weights file's state dict (as ``read_state_dict``) and the facts it carries about
    the run that made it (``RUN_FACTS``: {} for a bare state dict).

    `dpde train` exports {"model": state dict, "run": facts}; its checkpoints hold the run's
    "config" and "weights_index", where the same facts are found.
    """
    from dpde_cli.training.checkpoint import load_untrusted

    _check_is_file(path)
    state = load_untrusted(path, "PyTorch weights file")
    facts: dict[str, Any] = {}
    if isinstance(state, dict) and isinstance(state.get("model"), dict):
        # an export's "run", else a training checkpoint's "config" and "weights_index"
        facts = run_facts(state.get("weights_index"), state.get("config"), state.get("run"))
        state = state["model"]
    if not isinstance(state, dict) or not all(isinstance(k, str) for k in state):
        raise WeightsError(f"{path}: not a state dict")
    return state, facts


def load_weights(
    model: nn.Module, path: Path, expected_sha256: str | None = None
) -> dict[str, Any]:
    """Check a weights file (sha256, keys, shapes) and load it into ``model`` in place;
    returns the run facts the file carries (see ``read_weights``)."""
    _check_is_file(path)
    if expected_sha256 is not None:
        actual = sha256_file(path)
        if actual != expected_sha256:
            raise WeightsError(
                f"{path}: sha256 mismatch (expected {expected_sha256[:12]}..., "
                f"got {actual[:12]}...); the file is corrupt or not the shipped one"
            )
    state, facts = read_weights(path)
    check_state_dict(model, state, path)
    own = model.state_dict()
    model.load_state_dict({k: v.to(own[k].dtype) for k, v in state.items()})
    return facts


def check_state_dict(model: nn.Module, state: Mapping[str, Any], path: Path) -> None:
    """Raise a WeightsError naming the keys and shapes that do not match the model."""
    own = model.state_dict()
    problems = []
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if missing:
        problems.append(f"missing {len(missing)} keys ({_first(missing)})")
    if unexpected:
        problems.append(f"unexpected {len(unexpected)} keys ({_first(unexpected)})")
    wrong = [
        f"{k}: {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in sorted(set(own) & set(state))
        if getattr(state[k], "shape", None) != own[k].shape
    ]
    if wrong:
        problems.append(f"{len(wrong)} shape mismatches ({_first(wrong)})")
    if problems:
        raise WeightsError(f"{path}: does not fit the model: " + "; ".join(problems))


def _first(items: list[str], count: int = 3) -> str:
    """The first few items joined, with an ellipsis when there are more."""
    return ", ".join(items[:count]) + (", ..." if len(items) > count else "")


def parameter_count(model: nn.Module) -> int:
    """Number of parameters."""
    return sum(p.numel() for p in model.parameters())


# ---------------------------------------------------------------------------- the models


_R50_WEIGHTS = WeightsSpec(
    file=None,
    sha256=None,
    input_size=(240, 320),
    mean=IMAGENET_MEAN,
    std=IMAGENET_STD,
    training_data="none shipped: train on NYUv2 with `dpde train --model dpde-r50`",
    licence="Apache-2.0 (code); torchvision ResNet-50 ImageNet weights: BSD-3-Clause",
)


@register_model(
    "dpde-r50",
    "The paper's modified FCRN (ResNet-50, up-projections, U-Net laterals) + gradient net",
    _R50_WEIGHTS,
)
def dpde_r50(pretrained: bool = False) -> nn.Module:
    """The paper's network: FCRN widths (1024..64); gradient net width 108 (~1/76 of FCRN)."""
    from dpde_cli.models.dpde import DPDE
    from dpde_cli.models.encoders import ResNet50Encoder

    return DPDE(
        ResNet50Encoder(pretrained=pretrained),
        decoder_channels=(1024, 512, 256, 128, 64),
        gradient_width=108,
        mean=_R50_WEIGHTS.mean,
        std=_R50_WEIGHTS.std,
    )


_LITE_WEIGHTS = WeightsSpec(
    file="dpde-lite-b99c33d8.pt",
    sha256="b99c33d8e9ed4c061171f5166c0a9bf2b10d1f5c481d1ad4e53d960584d6ebc4",
    input_size=(240, 320),
    mean=(0.5, 0.5, 0.5),
    std=(0.5, 0.5, 0.5),
    depth_range=(0.1, 10.0),
    training_data=(
        "dpde-lite-renders fine-tuned on a mix of rendered scenes and three real RGB-D sets "
        "(a kitchen, lab scenes, a tabletop), on a 2-core CPU; the mix and commands are in "
        "the model card"
    ),
    metrics=MappingProxyType(
        {"abs_rel": 0.244, "rms": 1.271, "log10": 0.128, "d1": 0.438, "d2": 0.798, "d3": 0.939}
    ),
    metrics_protocol=(
        "dpde eval --dataset folder on the 5 real indoor frames of ../shared/data/real-dev "
        "(nyu-raw + sun-tum), fused, 1e-3 < gt < 10 m, mean of per-image metrics; never used "
        "to train or choose these weights; the rest is in the model card"
    ),
    licence=(
        "Apache-2.0, but trained on 7-Scenes (non-commercial research licence) and "
        "Middlebury 2014 (research use): for commercial use see dpde-lite-renders"
    ),
    card="docs/models/dpde-lite.md",
)

# The same network with its earlier weights: its input size, normalisation and depth range
# are dpde-lite's, by construction.
_LITE_RENDERS_WEIGHTS = replace(
    _LITE_WEIGHTS,
    file="dpde-lite-90657c8d.pt",
    sha256="90657c8dbe09bf37921d2775187b759120c83ebfda78f61b44c8769fa9bbf971",
    training_data=(
        "rendered indoor scenes only (dpde_cli.data.synthetic, no real image), on a 2-core "
        "CPU; the sets, seeds and commands are in the model card"
    ),
    metrics=MappingProxyType(
        {"abs_rel": 0.152, "rms": 0.840, "log10": 0.068, "d1": 0.766, "d2": 0.953, "d3": 0.979}
    ),
    metrics_protocol=(
        "dpde eval --dataset folder on the 5 real indoor frames of ../shared/data/real-dev "
        "(nyu-raw + sun-tum), fused, 1e-3 < gt < 10 m, mean of per-image metrics; these "
        "frames chose the weights: held-out figures are in the model card"
    ),
    licence="Apache-2.0 (code and EfficientNet-Lite0 ImageNet weights)",
    card="docs/models/dpde-lite-renders.md",
)


@register_model(
    "dpde-lite",
    "DPDE design on an EfficientNet-Lite0 encoder (ImageNet) for CPU speed",
    _LITE_WEIGHTS,
)
def dpde_lite(pretrained: bool = False) -> nn.Module:
    """EfficientNet-Lite0 encoder, a narrow up-projection decoder, a 16-wide gradient net.

    Its shipped weights were trained at 240x320 (see the spec), so it runs at that size.
    """
    from dpde_cli.models.dpde import DPDE
    from dpde_cli.models.encoders import EfficientNetLite0Encoder

    return DPDE(
        EfficientNetLite0Encoder(pretrained=pretrained),
        decoder_channels=(256, 128, 64, 32, 16),
        gradient_width=16,
        mean=_LITE_WEIGHTS.mean,
        std=_LITE_WEIGHTS.std,
    )


@register_model(
    "dpde-lite-renders",
    "dpde-lite with the earlier weights, trained on rendered scenes only",
    _LITE_RENDERS_WEIGHTS,
)
def dpde_lite_renders(pretrained: bool = False) -> nn.Module:
    """The ``dpde-lite`` network with the weights it shipped with before real frames."""
    return dpde_lite(pretrained=pretrained)
