"""Decoder building blocks: Laina's fast up-projection and the DPDE lateral connection."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class FastUpConv(nn.Module):
    """2x unpooling followed by a 5x5 conv, computed as four interleaved small convs.

    Unpooling puts x[i, j] at (2i, 2j) and zeros elsewhere; a 5x5 conv of that map only
    ever touches 3x3, 3x2, 2x3 or 2x2 input taps depending on the output's parity, so four
    convs on the low-resolution input, interleaved, give the same result at a quarter of
    the cost (Laina et al. 2016, "fast up-convolution").

    Shapes: (B, C_in, H, W) -> (B, C_out, 2H, 2W).
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv_a = nn.Conv2d(in_channels, out_channels, (3, 3), bias=False)  # even row, even col
        self.conv_b = nn.Conv2d(in_channels, out_channels, (3, 2), bias=False)  # even row, odd col
        self.conv_c = nn.Conv2d(in_channels, out_channels, (2, 3), bias=False)  # odd row, even col
        self.conv_d = nn.Conv2d(in_channels, out_channels, (2, 2), bias=False)  # odd row, odd col

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # F.pad takes (left, right, top, bottom).
        a = self.conv_a(F.pad(x, (1, 1, 1, 1)))
        b = self.conv_b(F.pad(x, (0, 1, 1, 1)))
        c = self.conv_c(F.pad(x, (1, 1, 0, 1)))
        d = self.conv_d(F.pad(x, (0, 1, 0, 1)))
        batch, channels, height, width = a.shape
        # pixel_shuffle reads channel c*4 + 2*row_parity + col_parity.
        stacked = torch.stack((a, b, c, d), dim=2).reshape(batch, channels * 4, height, width)
        return F.pixel_shuffle(stacked, 2)


class UpProjection(nn.Module):
    """Laina's up-projection block: doubles the resolution, changes the channel count.

    Main branch: up-conv 5x5 + BN + ReLU, conv 3x3 + BN; projection branch: up-conv 5x5 + BN;
    the sum goes through a ReLU. Both up-convs share one FastUpConv with twice the channels.

    Shapes: (B, C_in, H, W) -> (B, C_out, 2H, 2W).
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.out_channels = out_channels
        self.up = FastUpConv(in_channels, 2 * out_channels)
        self.up_bn = nn.BatchNorm2d(2 * out_channels)
        self.conv = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.conv_bn = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        main, projection = self.up_bn(self.up(x)).split(self.out_channels, dim=1)
        main = self.conv_bn(self.conv(F.relu(main)))
        return F.relu(main + projection)


class Lateral(nn.Module):
    """DPDE's U-shaped link: concatenate encoder and decoder features, 1x1 conv back to C_dec.

    Shapes: decoder (B, C_dec, H, W), encoder (B, C_enc, H, W) -> (B, C_dec, H, W).
    """

    def __init__(self, decoder_channels: int, encoder_channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(decoder_channels + encoder_channels, decoder_channels, 1)

    def forward(self, decoder: torch.Tensor, encoder: torch.Tensor) -> torch.Tensor:
        # A trace (ONNX export) always resizes: it must serve sizes where the shapes differ;
        # at equal sizes the bilinear resize is an exact copy.
        if torch.jit.is_tracing() or decoder.shape[-2:] != encoder.shape[-2:]:
            decoder = F.interpolate(decoder, size=encoder.shape[-2:], mode="bilinear")
        return self.conv(torch.cat((decoder, encoder), dim=1))


class UpProjectionDecoder(nn.Module):
    """The modified-FCRN decoder: 1x1 bottleneck, four up-projections, laterals, depth head.

    Takes encoder features at strides 4, 8, 16 and 32 (fine to coarse) and returns a
    one-channel map at stride 2 (half the input resolution), before the output activation.

    Args:
        encoder_channels: channels of the stride-4, 8, 16 and 32 features.
        decoder_channels: five widths: the bottleneck's and the four up-projections' outputs,
            e.g. (1024, 512, 256, 128, 64) for FCRN.
        dropout: dropout probability before the last conv.
    """

    def __init__(
        self,
        encoder_channels: tuple[int, int, int, int],
        decoder_channels: tuple[int, int, int, int, int],
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        c4, c8, c16, c32 = encoder_channels
        self.bottleneck = nn.Sequential(
            nn.Conv2d(c32, decoder_channels[0], 1, bias=False),
            nn.BatchNorm2d(decoder_channels[0]),
        )
        self.ups = nn.ModuleList(
            UpProjection(decoder_channels[i], decoder_channels[i + 1]) for i in range(4)
        )
        # Laterals join the stride-16, 8 and 4 encoder stages to the inputs of up-blocks 2-4.
        self.laterals = nn.ModuleList(
            Lateral(decoder_channels[i + 1], enc) for i, enc in enumerate((c16, c8, c4))
        )
        self.dropout = nn.Dropout2d(dropout)
        self.head = nn.Conv2d(decoder_channels[4], 1, 3, padding=1)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        f4, f8, f16, f32 = features
        x = self.ups[0](self.bottleneck(f32))
        for up, lateral, skip in zip(self.ups[1:], self.laterals, (f16, f8, f4), strict=True):
            x = up(lateral(x, skip))
        return self.head(self.dropout(x))
