"""Shared fixtures: the --device option and the real frames in ../shared/data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--device",
        default=os.environ.get("DPDE_TEST_DEVICE", "cpu"),
        help="torch device for tests that take one (env DPDE_TEST_DEVICE, default cpu)",
    )


@pytest.fixture(scope="session")
def device(request: pytest.FixtureRequest) -> str:
    """The torch device under test; skips when it is absent."""
    import torch

    name = request.config.getoption("--device")
    if name.startswith("cuda") and not torch.cuda.is_available():
        pytest.skip(f"device {name} is not available")
    if name == "mps" and not torch.backends.mps.is_available():
        pytest.skip("device mps is not available")
    return name


@pytest.fixture
def one_thread():
    """One intra-op torch thread for the test: fast and stable on a small, shared machine."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data/real-dev, or skip when ../shared is absent."""
    root = SHARED_DATA / "real-dev"
    if not root.is_dir():
        pytest.skip("../shared/data is not present")
    return root


# ------------------------------------------------------------------ a tiny registered model


def _register_tiny() -> None:
    """Register `dpde-tiny`: the DPDE design at toy width, so tests over models run fast."""
    from torch import nn

    from dpde_cli.models.dpde import DPDE
    from dpde_cli.registry import WeightsSpec, list_models, register_model

    if "dpde-tiny" in list_models():
        return

    class TinyEncoder(nn.Module):
        """Four strided convs giving 8-channel features at strides 4, 8, 16, 32."""

        channels = (8, 8, 8, 8)

        def __init__(self) -> None:
            super().__init__()
            self.stem = nn.Conv2d(3, 8, 3, stride=4, padding=1)
            self.downs = nn.ModuleList(nn.Conv2d(8, 8, 3, stride=2, padding=1) for _ in range(3))

        def forward(self, x):
            features = [self.stem(x).relu()]
            for down in self.downs:
                features.append(down(features[-1]).relu())
            return features

    @register_model(
        "dpde-tiny",
        "test-only toy model",
        WeightsSpec(file=None, sha256=None, input_size=(64, 96), mean=(0.5,) * 3, std=(0.5,) * 3),
    )
    def dpde_tiny(pretrained: bool = False) -> nn.Module:
        return DPDE(
            TinyEncoder(), (16, 8, 8, 8, 8), gradient_width=4, mean=(0.5,) * 3, std=(0.5,) * 3
        )


_register_tiny()


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A checkpoint of dpde-tiny (seeded random weights) on disk."""
    import torch

    from dpde_cli.registry import create_model

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "tiny.pt"
    torch.save(create_model("dpde-tiny", weights=None).state_dict(), path)
    return path
