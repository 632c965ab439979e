"""The DPDE gradient network: ten 3x3 convs predicting horizontal and vertical depth gradients."""

from __future__ import annotations

import torch
from torch import nn


class GradientNet(nn.Module):
    """Ten 3x3 convolutions, ReLU after the first nine; 2 output channels (G_x, G_y).

    Gaussian (He-normal) initialisation, as the paper's "random Gaussian" init; the last
    layer starts near zero so untrained gradients are close to 0 and the fusion leaves the
    depth alone.

    Shapes: (B, 3, H, W) normalised image -> (B, 2, H, W) forward-difference gradients
    in metres per pixel at the input resolution (see dpde_cli.geometry).

    Args:
        width: channels of the nine hidden layers.
        num_layers: total number of conv layers (10 in the paper).
    """

    def __init__(self, width: int = 64, num_layers: int = 10) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3
        for _ in range(num_layers - 1):
            layers += [nn.Conv2d(channels, width, 3, padding=1), nn.ReLU(inplace=True)]
            channels = width
        layers.append(nn.Conv2d(channels, 2, 3, padding=1))
        self.layers = nn.Sequential(*layers)
        for module in self.layers:
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
                nn.init.zeros_(module.bias)
        last = self.layers[-1]
        nn.init.normal_(last.weight, std=1e-3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)
