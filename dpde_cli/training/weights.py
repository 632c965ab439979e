"""Writing weights files in the registry's format: exports of a run, and their averages.

A weights file is ``{"model": state dict, "run": facts}`` (``registry.RUN_FACTS``), or a
bare state dict, named ``<model>-<sha256[:8]>.pt``; ``registry.read_weights`` reads both.

Example:
    >>> path, digest = export_weights(model.state_dict(), Path("out"), "dpde-lite")
    >>> average_weights([a, b], Path("soup"))  # a model soup; WiSE-FT for two files
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from dpde_cli.errors import WeightsError


def _state_bytes(state: dict[str, Any]) -> bytes:
    """torch.save of a state dict into bytes (deterministic for equal tensors)."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


def export_weights(
    state: dict[str, torch.Tensor],
    weights_dir: Path,
    model_name: str,
    half: bool = False,
    run: dict[str, Any] | None = None,
) -> tuple[Path, str]:
    """Write a state dict in the registry's weights format as ``<model>-<sha256[:8]>.pt``.

    Args:
        state: the model's state dict (any device).
        weights_dir: folder to write into.
        model_name: registered name (the file name's prefix).
        half: convert floating tensors to float16.
        run: facts about the run (``registry.RUN_FACTS``): stored beside the state dict as
            {"model": state, "run": run}; None: a bare state dict.

    Returns:
        (path, sha256 hex digest of the file).
    """
    from dpde_cli.io import atomic_path

    plain = {}
    for key, value in state.items():
        value = value.detach().to("cpu").contiguous()
        if half and value.is_floating_point():
            value = value.half()
        plain[key] = value.clone()
    data = _state_bytes(plain if run is None else {"model": plain, "run": run})
    digest = hashlib.sha256(data).hexdigest()
    path = weights_dir / f"{model_name}-{digest[:8]}.pt"
    if not path.exists():
        with atomic_path(path) as tmp:
            tmp.write_bytes(data)
    return path, digest


def average_weights(
    paths: Sequence[Path], weights_dir: Path, model_name: str | None = None, half: bool = False
) -> tuple[Path, str]:
    """The uniform average of weight files of one model, exported as ``export_weights`` does.

    Every floating-point tensor is averaged (BatchNorm running statistics included) in
    float32; other tensors (BatchNorm's batch counters) and the run facts come from the last
    file. Averaging a model with its fine-tuned descendants (a "model soup"; WiSE-FT for two)
    is how the shipped dpde-lite weights were made (see the registry's spec). ``model_name``
    (the file name's prefix) defaults to the model the last file's run facts name.

    Raises:
        WeightsError: fewer than two files, files whose keys or shapes differ, or no model
            name given or recorded.
    """
    from dpde_cli.registry import read_weights

    if len(paths) < 2:
        raise WeightsError("averaging needs at least two weights files")
    states = [read_weights(Path(p)) for p in paths]
    last, facts = states[-1]
    model_name = model_name or facts.get("model")
    if not model_name:
        raise WeightsError(f"{paths[-1]}: the file does not name its model; give the model name")
    for path, (state, _) in zip(paths, states, strict=True):
        if state.keys() != last.keys():
            raise WeightsError(f"{path}: its keys differ from {paths[-1]}'s")
        wrong = [k for k in state if state[k].shape != last[k].shape]
        if wrong:
            raise WeightsError(f"{path}: shapes differ from {paths[-1]}'s ({wrong[0]}, ...)")
    average = {}
    for key, value in last.items():
        if value.is_floating_point():
            total = states[0][0][key].float()
            for state, _ in states[1:]:
                total = total + state[key].float()  # not sum(): 0 + -0.0 is +0.0
            average[key] = (total / len(states)).to(value.dtype)
        else:
            average[key] = value
    weights_dir.mkdir(parents=True, exist_ok=True)
    return export_weights(average, weights_dir, model_name, half=half, run=facts or None)
