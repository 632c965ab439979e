"""Summaries of the registered models (for `dpde models` and the README)."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from dpde_cli.registry import get_entry, list_models, parameter_count


def describe_models(pattern: str = "*") -> list[dict[str, Any]]:
    """One record per registered model: spec, parameter counts, whether weights exist."""
    records = []
    for name in list_models(pattern):
        entry = get_entry(name)
        model = entry.builder(pretrained=False)
        spec = {f.name: getattr(entry.weights, f.name) for f in fields(entry.weights)}
        records.append(
            {
                "name": name,
                "description": entry.description,
                "weights_file": spec.pop("file"),
                "weights_present": bool(entry.weights.path and entry.weights.path.is_file()),
                "params_total": parameter_count(model),
                "params_global": parameter_count(model) - parameter_count(model.gradient_net),
                "params_gradient": parameter_count(model.gradient_net),
                **{k: (dict(v) if k == "metrics" else v) for k, v in spec.items()},
            }
        )
    return records


def find_models(query: str = "*") -> list[dict[str, Any]]:
    """``describe_models`` of the models a user's query names: a glob pattern on the names,
    or a plain word matching a part of them ("lite"), in any case.

    Raises:
        UsageError: no model matches (the message lists the models there are).
    """
    from dpde_cli.errors import UsageError

    pattern = query.lower()  # model names are lower case
    if not set("*?[") & set(pattern):
        pattern = f"*{pattern}*"
    records = describe_models(pattern)
    if not records:
        raise UsageError(f"no model matches {query!r}; models: {', '.join(list_models())}")
    return records
