"""torchvision's ImageNet ResNets (He et al. 2016: 18, 34, 50, 101, 152 layers) on our contract.

``small_stem=True`` replaces the 7x7 stride-2 convolution and the max-pool (a 4x downsampling
meant for 224 px photos) by one 3x3 stride-1 convolution, the usual choice for 28-32 px images
(as in the CIFAR experiments of He et al. 2016, and e.g. SimCLR's CIFAR ResNet-50). Pretrained
weights come from torchvision's weights enum, or a local state-dict file when offline.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from depthbench.errors import ConfigError
from depthbench.models.backbones import torchvision_model
from depthbench.models.contract import ClassifierNet
from depthbench.models.layers import check_positive_int
from depthbench.models.registry import register_model

ARCHS = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152")


@register_model("resnet_imagenet")
class TorchvisionResNet(ClassifierNet):
    """A torchvision ResNet whose ``fc`` is our ``head``; input channels follow ``input_shape``.

    With pretrained weights and a 1-channel input, the first convolution's RGB filters are summed
    (as timm's ``adapt_input_conv``), so a grey image gives the response of its RGB copy.
    """

    def __init__(
        self,
        *,
        input_shape: Sequence[int],
        num_classes: int,
        arch: str = "resnet18",
        small_stem: bool = False,
        weights: str | None = None,
        weights_path: str | None = None,
        zero_init_residual: bool = False,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        check_positive_int("num_classes", num_classes, minimum=2)
        if arch not in ARCHS:
            raise ConfigError(
                f"resnet_imagenet arch must be one of {', '.join(ARCHS)}, got {arch!r}"
            )
        if len(input_shape) != 3:
            raise ConfigError(f"{arch} needs images (C, H, W), got input_shape {list(input_shape)}")
        kwargs = {} if weights or weights_path else {"zero_init_residual": zero_init_residual}
        body, _ = torchvision_model(arch, weights, weights_path, **kwargs)
        self.arch, self.small_stem = arch, small_stem
        in_channels = input_shape[0]
        conv1 = body.conv1
        if small_stem:
            body.conv1 = nn.Conv2d(in_channels, 64, 3, 1, 1, bias=False)
            nn.init.kaiming_normal_(body.conv1.weight, mode="fan_out", nonlinearity="relu")
            body.maxpool = nn.Identity()
        elif in_channels != 3:
            body.conv1 = nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False)
            with torch.no_grad():
                if in_channels == 1:
                    body.conv1.weight.copy_(conv1.weight.sum(dim=1, keepdim=True))
        self.num_features = body.fc.in_features
        body.fc = nn.Identity()
        self.body = body
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.head = nn.Linear(self.num_features, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, 512 or 2048) after global average pooling."""
        return self.body(x)
