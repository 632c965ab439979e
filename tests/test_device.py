"""The device selector: auto picks what exists; an absent device is an error, not a fallback."""

from __future__ import annotations

import pytest
import torch

from dpde_cli.device import DeviceError, resolve_device, resolve_precision


def test_cpu_and_auto() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    if not torch.cuda.is_available() and torch.backends.mps.is_available():
        expected = "mps"
    assert resolve_device("auto").type == expected


@pytest.mark.parametrize("name", ["gpu", "cuda:x", "tpu", "cuda:-1"])
def test_malformed_names(name: str) -> None:
    with pytest.raises(DeviceError, match="unknown device"):
        resolve_device(name)


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is present")
@pytest.mark.parametrize("name", ["cuda", "cuda:0", "cuda:3"])
def test_absent_cuda_is_an_error(name: str) -> None:
    with pytest.raises(DeviceError, match="not available"):
        resolve_device(name)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_index_out_of_range() -> None:
    with pytest.raises(DeviceError, match="present"):
        resolve_device(f"cuda:{torch.cuda.device_count()}")


def test_precision_is_fp32_off_cuda() -> None:
    cpu = torch.device("cpu")
    assert resolve_precision(cpu, "auto") is None
    assert resolve_precision(cpu, "fp32") is None
    for half in ("fp16", "bf16"):
        with pytest.raises(DeviceError, match="needs a CUDA device"):
            resolve_precision(cpu, half)
    with pytest.raises(DeviceError, match="unknown precision"):
        resolve_precision(cpu, "fp8")


@pytest.mark.gpu
def test_precision_is_half_on_cuda(device: str) -> None:
    if not device.startswith("cuda"):
        pytest.skip("needs --device cuda")
    assert resolve_precision(torch.device(device), "auto") in (torch.bfloat16, torch.float16)
