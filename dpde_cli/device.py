"""One device selector for every command: auto | cpu | cuda | cuda:N | mps."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING

from dpde_cli.errors import UsageError

if TYPE_CHECKING:
    import torch

PRECISIONS = ("auto", "fp32", "fp16", "bf16")


class DeviceError(UsageError):
    """A device that was asked for is not there (exit code 2, never a silent fallback)."""


def resolve_device(name: str = "auto") -> torch.device:
    """Turn a device name into a torch.device that exists.

    ``auto`` picks cuda > mps > cpu. Any other name must be present.

    Raises:
        DeviceError: the name is malformed or the device is absent.
    """
    import torch

    name = name.strip().lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "mps":
        if not _mps_available():
            raise DeviceError("device 'mps' was asked for but Apple's MPS is not available here")
        return torch.device("mps")
    match = re.fullmatch(r"cuda(?::(\d+))?", name)
    if not match:
        raise DeviceError(f"unknown device {name!r}; use auto, cpu, cuda, cuda:N or mps")
    if not torch.cuda.is_available():
        raise DeviceError(f"device {name!r} was asked for but CUDA is not available here")
    index = int(match.group(1) or 0)
    if index >= torch.cuda.device_count():
        raise DeviceError(
            f"device {name!r} was asked for but only {torch.cuda.device_count()} "
            "CUDA device(s) are present"
        )
    return torch.device("cuda", index)


def _mps_available() -> bool:
    """Whether Apple's Metal backend is usable."""
    import torch

    return bool(getattr(torch.backends, "mps", None)) and torch.backends.mps.is_available()


def resolve_precision(device: torch.device, precision: str = "auto") -> torch.dtype | None:
    """The autocast dtype for a device: half precision only on CUDA, fp32 (None) elsewhere.

    ``auto`` is bf16 on CUDA devices that support it, else fp16; fp32 on CPU and MPS.

    Raises:
        DeviceError: half precision asked for off CUDA, or an unknown name.
    """
    import torch

    if precision not in PRECISIONS:
        raise DeviceError(f"unknown precision {precision!r}; use {', '.join(PRECISIONS)}")
    if precision == "fp32":
        return None
    if device.type != "cuda":
        if precision == "auto":
            return None
        raise DeviceError(f"precision {precision} needs a CUDA device; {device} runs in fp32")
    if precision == "fp16":
        return torch.float16
    if precision == "bf16" or torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float16


@contextlib.contextmanager
def autocast(device: torch.device, dtype: torch.dtype | None) -> Iterator[None]:
    """torch.autocast for CUDA half precision; a no-op for fp32."""
    import torch

    if dtype is None:
        yield
    else:
        with torch.autocast(device_type=device.type, dtype=dtype):
            yield
