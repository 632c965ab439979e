"""The DPDE model: global depth network (encoder + U-shaped up-projection decoder) and
gradient network, with input normalisation and a positive metric-depth head."""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from dpde_cli.models.blocks import UpProjectionDecoder
from dpde_cli.models.gradnet import GradientNet


class DPDEOutput(NamedTuple):
    """What the model returns, at the input resolution.

    Attributes:
        depth: (B, 1, H, W) metric depth in metres, > min_depth.
        gradients: (B, 2, H, W) predicted forward-difference depth gradients
            (channel 0: G_x, channel 1: G_y) in metres per pixel, signed.
    """

    depth: torch.Tensor
    gradients: torch.Tensor


class DPDE(nn.Module):
    """Detail-preserving depth estimation network.

    The decoder works at half the input resolution (output stride 2, as FCRN); its map is
    upsampled bilinearly to the input size. The head is ``softplus(x) + min_depth`` with the
    bias set so an untrained model predicts ``init_depth`` everywhere.

    Input: (B, 3, H, W) RGB in [0, 1] (the model normalises with its own mean/std);
    H and W multiples of 8 (the laterals resize the odd strides that leaves).

    Args:
        encoder: a module returning features at strides 4, 8, 16, 32 with ``channels``.
        decoder_channels: the decoder's five widths (see UpProjectionDecoder).
        gradient_width: hidden width of the gradient network.
        mean, std: input normalisation of the encoder's pretraining.
        min_depth: lower bound of the depth head, metres.
        init_depth: depth an untrained head predicts, metres.

    Example:
        >>> out = model(torch.rand(1, 3, 224, 320))  # out.depth: (1, 1, 224, 320)
    """

    def __init__(
        self,
        encoder: nn.Module,
        decoder_channels: tuple[int, int, int, int, int],
        gradient_width: int,
        mean: tuple[float, float, float],
        std: tuple[float, float, float],
        min_depth: float = 1e-3,
        init_depth: float = 3.0,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.decoder = UpProjectionDecoder(tuple(encoder.channels), decoder_channels)
        self.gradient_net = GradientNet(gradient_width)
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)
        self.min_depth = min_depth
        # softplus^-1(init_depth - min_depth), so the untrained output is init_depth.
        nn.init.constant_(self.decoder.head.bias, math.log(math.expm1(init_depth - min_depth)))

    def global_parameters(self) -> list[nn.Parameter]:
        """Parameters of the global depth network (training stage 1)."""
        return [*self.encoder.parameters(), *self.decoder.parameters()]

    def normalize(self, image: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) RGB in [0, 1] -> the encoder's normalised input."""
        return (image - self.mean) / self.std

    def forward_depth(self, x: torch.Tensor) -> torch.Tensor:
        """Global depth (B, 1, H, W) in metres from a normalised image."""
        coarse = self.decoder(self.encoder(x))
        coarse = F.interpolate(coarse, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return F.softplus(coarse.float()) + self.min_depth

    def forward(self, image: torch.Tensor) -> DPDEOutput:
        x = self.normalize(image)
        return DPDEOutput(self.forward_depth(x), self.gradient_net(x).float())
