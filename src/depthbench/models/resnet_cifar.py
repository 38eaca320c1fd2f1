"""The CIFAR-10 ResNets of He et al. 2016 (arXiv:1512.03385, section 4.2), and their plain twins.

A 3x3 conv with ``width`` filters, then three stages of ``n`` basic blocks (two 3x3 convs each)
with ``width``, ``2 width`` and ``4 width`` filters on feature maps of size 32, 16 and 8, then
global average pooling and a linear head: ``6n + 2`` weighted layers (ResNet-20 .. ResNet-1202).
Where a stage halves the resolution and doubles the channels, the shortcut is

* option A (the paper's CIFAR choice): parameter-free, a strided identity whose extra channels
  are zeros, so ResNet-20 has the paper's 0.27M parameters;
* option B: a 1x1 strided projection with batch norm.

``residual=False`` drops every shortcut: the plain nets of the paper's degradation study (Fig. 6),
with exactly the same layers.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from depthbench.errors import ConfigError
from depthbench.models.contract import ClassifierNet
from depthbench.models.layers import check_positive_int, make_activation
from depthbench.models.registry import register_model

SHORTCUTS = ("A", "B")
PAPER_DEPTHS = (20, 32, 44, 56, 110, 1202)


def check_depth(depth: int) -> int:
    """Return the number of blocks per stage ``n`` of a ``6n + 2``-layer ResNet."""
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 8 or (depth - 2) % 6:
        raise ConfigError(
            f"resnet depth must be 6n+2 with n >= 1 (8, 14, {', '.join(map(str, PAPER_DEPTHS))}, "
            f"...), got {depth!r}"
        )
    return (depth - 2) // 6


class ShortcutA(nn.Module):
    """Option A: subsample by ``stride`` and zero-pad the channels (no parameters)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.stride = stride
        extra = out_channels - in_channels
        self.pad = (extra // 2, extra - extra // 2)  # channels added before / after

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, :: self.stride, :: self.stride]  # (B, C_in, H/s, W/s)
        return F.pad(x, (0, 0, 0, 0, *self.pad))  # (B, C_out, H/s, W/s)


class BasicBlock(nn.Module):
    """``act(bn(conv(act(bn(conv(x))))) + shortcut(x))``; no shortcut when ``residual`` is off."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int,
        shortcut: str,
        residual: bool,
        activation: str,
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.act1 = make_activation(activation)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.act2 = make_activation(activation)
        self.shortcut: nn.Module | None = None
        if residual:
            if stride == 1 and in_channels == out_channels:
                self.shortcut = nn.Identity()
            elif shortcut == "A":
                self.shortcut = ShortcutA(in_channels, out_channels, stride)
            else:
                self.shortcut = nn.Sequential(
                    nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                    nn.BatchNorm2d(out_channels),
                )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.shortcut is not None:
            out = out + self.shortcut(x)
        return self.act2(out)


@register_model("resnet")
class CifarResNet(ClassifierNet):
    """He et al. 2016's CIFAR ResNet (``depth = 6n + 2``) for (C, H, W) images of any size.

    Follows the classifier contract: ``forward_features`` -> (B, 4 width),
    ``forward_head`` -> (B, num_classes), ``reset_classifier(num_classes)``.
    """

    def __init__(
        self,
        *,
        input_shape: Sequence[int],
        num_classes: int,
        depth: int = 20,
        width: int = 16,
        shortcut: str = "A",
        residual: bool = True,
        activation: str = "relu",
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        n = check_depth(depth)
        check_positive_int("width", width)
        check_positive_int("num_classes", num_classes, minimum=2)
        make_activation(activation)
        if shortcut not in SHORTCUTS:
            raise ConfigError(
                f"resnet shortcut must be one of {', '.join(SHORTCUTS)}, got {shortcut!r}"
            )
        if len(input_shape) != 3:
            raise ConfigError(f"resnet needs images (C, H, W), got input_shape {list(input_shape)}")
        self.depth, self.width, self.shortcut, self.residual = depth, width, shortcut, residual
        self.stem = nn.Sequential(
            nn.Conv2d(input_shape[0], width, 3, 1, 1, bias=False),
            nn.BatchNorm2d(width),
            make_activation(activation),
        )
        stages = []
        channels = width
        for s in range(3):
            out_channels = width * 2**s
            blocks = []
            for b in range(n):
                stride = 2 if s > 0 and b == 0 else 1
                blocks.append(
                    BasicBlock(channels, out_channels, stride, shortcut, residual, activation)
                )
                channels = out_channels
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.num_features = channels
        self.head = nn.Linear(channels, num_classes)
        # The paper initialises as in He et al. 2015 (Kaiming normal, fan-out as torchvision).
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, 4 width)."""
        x = self.stem(x)  # (B, w, H, W)
        x = self.stages(x)  # (B, 4w, H/4, W/4)
        return self.pool(x)  # (B, 4w)


# The depths of the paper's CIFAR-10 table, as typed keyword-only builders (torchvision's style).
@register_model("resnet20")
def resnet20(*, input_shape: Sequence[int], num_classes: int, **kwargs) -> CifarResNet:
    """ResNet-20 of He et al. 2016 (n=3); ``kwargs``: width, shortcut, residual, activation."""
    return CifarResNet(input_shape=input_shape, num_classes=num_classes, depth=20, **kwargs)


@register_model("resnet32")
def resnet32(*, input_shape: Sequence[int], num_classes: int, **kwargs) -> CifarResNet:
    """ResNet-32 of He et al. 2016 (n=5)."""
    return CifarResNet(input_shape=input_shape, num_classes=num_classes, depth=32, **kwargs)


@register_model("resnet44")
def resnet44(*, input_shape: Sequence[int], num_classes: int, **kwargs) -> CifarResNet:
    """ResNet-44 of He et al. 2016 (n=7)."""
    return CifarResNet(input_shape=input_shape, num_classes=num_classes, depth=44, **kwargs)


@register_model("resnet56")
def resnet56(*, input_shape: Sequence[int], num_classes: int, **kwargs) -> CifarResNet:
    """ResNet-56 of He et al. 2016 (n=9)."""
    return CifarResNet(input_shape=input_shape, num_classes=num_classes, depth=56, **kwargs)


@register_model("resnet110")
def resnet110(*, input_shape: Sequence[int], num_classes: int, **kwargs) -> CifarResNet:
    """ResNet-110 of He et al. 2016 (n=18; the paper warms it up at lr 0.01)."""
    return CifarResNet(input_shape=input_shape, num_classes=num_classes, depth=110, **kwargs)


@register_model("resnet1202")
def resnet1202(*, input_shape: Sequence[int], num_classes: int, **kwargs) -> CifarResNet:
    """ResNet-1202 of He et al. 2016 (n=200)."""
    return CifarResNet(input_shape=input_shape, num_classes=num_classes, depth=1202, **kwargs)
