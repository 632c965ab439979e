"""The DPDE networks: encoders, the up-projection decoder with U-Net laterals, the gradient net."""

from dpde_cli.models.dpde import DPDE, DPDEOutput

__all__ = ["DPDE", "DPDEOutput"]
