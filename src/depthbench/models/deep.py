"""Configurable deep MLP and CNN: depth, width, activation, skip connections, batch norm, init.

Plain, residual and batch-norm networks are one class each with flags, so that a sweep over
``residual`` or ``batchnorm`` changes nothing else: the same layers, the same parameter count
(up to the projection shortcuts where shapes change).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from depthbench.models.budget import solve_width
from depthbench.models.contract import ClassifierNet
from depthbench.models.layers import check_positive_int, init_weights, make_activation


def _check_common(depth: int, width: int, residual_scale: float | None) -> float:
    check_positive_int("depth", depth)
    check_positive_int("width", width)
    if residual_scale is None:
        # Scaling each residual branch by 1/sqrt(depth) keeps the forward signal's variance
        # bounded at any depth without normalisation *when the branch output has zero mean*
        # (tanh, or preactivation=True; cf. Fixup, Zhang et al. 2019; SkipInit, De & Smith 2020).
        # A post-activation ReLU branch adds a positive mean every block, so the signal still
        # grows like exp(c * sqrt(depth)) (measured: feature norm ~1e9 at 1,202 blocks).
        # Set 1.0 for the textbook x + F(x).
        return 1.0 / math.sqrt(depth)
    if not residual_scale > 0:
        raise ValueError(f"residual_scale must be > 0, got {residual_scale!r}")
    return float(residual_scale)


class Block(nn.Module):
    """One hidden layer: ``act(norm(layer(x)))``, plus ``shortcut(x)`` when residual.

    With ``preactivation`` the order is ``layer(act(norm(x)))`` (He et al. 2016b, "Identity
    Mappings in Deep Residual Networks"): the branch ends in a linear map, so its output has zero
    mean and the residual sum stays bounded at 1,000+ blocks with ReLU too.
    """

    def __init__(
        self,
        layer: nn.Module,
        norm: nn.Module,
        activation: str,
        shortcut: nn.Module | None,
        residual_scale: float,
        preactivation: bool = False,
    ) -> None:
        super().__init__()
        self.layer = layer
        self.norm = norm
        self.act = make_activation(activation)
        self.shortcut = shortcut  # None: plain block
        self.residual_scale = residual_scale
        self.preactivation = preactivation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.preactivation:
            out = self.layer(self.act(self.norm(x)))
        else:
            out = self.act(self.norm(self.layer(x)))
        if self.shortcut is None:
            return out
        return self.shortcut(x) + self.residual_scale * out


class DeepMLP(ClassifierNet):
    """A fully connected network of ``depth`` hidden layers of ``width`` units.

    Follows the classifier contract: ``forward_features`` -> (B, num_features),
    ``forward_head`` -> (B, num_classes), ``reset_classifier(num_classes)``.
    """

    def __init__(
        self,
        *,
        input_shape: Sequence[int],
        num_classes: int,
        depth: int = 4,
        width: int = 128,
        activation: str = "relu",
        residual: bool = False,
        batchnorm: bool = False,
        init: str = "default",
        dropout: float = 0.0,
        residual_scale: float | None = None,
        preactivation: bool = False,
        params: int | None = None,
    ) -> None:
        super().__init__()
        if params is not None:  # a parameter budget: the width comes from it (models/budget.py)
            width = solve_width(
                DeepMLP,
                params,
                input_shape=input_shape,
                num_classes=num_classes,
                depth=depth,
                activation=activation,
                residual=residual,
                batchnorm=batchnorm,
                init=init,
                dropout=dropout,
                residual_scale=residual_scale,
                preactivation=preactivation,
            )
        scale = _check_common(depth, width, residual_scale)
        check_positive_int("num_classes", num_classes, minimum=2)
        make_activation(activation)  # validate before building 1,000 blocks
        in_features = math.prod(input_shape)
        self.depth, self.width, self.activation = depth, width, activation
        self.flatten = nn.Flatten()
        blocks = []
        for i in range(depth):
            fan_in = in_features if i == 0 else width
            shortcut = None
            if residual:
                shortcut = (
                    nn.Identity() if fan_in == width else nn.Linear(fan_in, width, bias=False)
                )
            blocks.append(
                Block(
                    nn.Linear(fan_in, width),
                    nn.BatchNorm1d(fan_in if preactivation else width)
                    if batchnorm
                    else nn.Identity(),
                    activation,
                    shortcut,
                    scale,
                    preactivation,
                )
            )
        self.blocks = nn.Sequential(*blocks)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.num_features = width
        self.head = nn.Linear(width, num_classes)
        init_weights(self, init, activation)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, *input_shape) -> (B, width)."""
        return self.blocks(self.flatten(x))


class DeepCNN(ClassifierNet):
    """A convolutional network of ``depth`` 3x3 conv layers, for images or 1-D signals.

    ``input_shape`` is (C, H, W) for Conv2d or (C, L) for Conv1d. The blocks are split over up
    to ``stages`` stages; each stage after the first halves the resolution (stride 2) and doubles
    the channels, as in He et al. 2016. Residual blocks use a 1x1 projection where shapes change.
    """

    def __init__(
        self,
        *,
        input_shape: Sequence[int],
        num_classes: int,
        depth: int = 4,
        width: int = 16,
        activation: str = "relu",
        residual: bool = False,
        batchnorm: bool = False,
        init: str = "default",
        stages: int = 3,
        dropout: float = 0.0,
        residual_scale: float | None = None,
        preactivation: bool = False,
        params: int | None = None,
    ) -> None:
        super().__init__()
        if params is not None:  # a parameter budget: the width comes from it (models/budget.py)
            width = solve_width(
                DeepCNN,
                params,
                input_shape=input_shape,
                num_classes=num_classes,
                depth=depth,
                activation=activation,
                residual=residual,
                batchnorm=batchnorm,
                init=init,
                stages=stages,
                dropout=dropout,
                residual_scale=residual_scale,
                preactivation=preactivation,
            )
        scale = _check_common(depth, width, residual_scale)
        check_positive_int("stages", stages)
        check_positive_int("num_classes", num_classes, minimum=2)
        make_activation(activation)
        if len(input_shape) not in (2, 3):
            raise ValueError(f"DeepCNN needs input_shape (C, H, W) or (C, L), got {input_shape}")
        conv = nn.Conv2d if len(input_shape) == 3 else nn.Conv1d
        bn = nn.BatchNorm2d if len(input_shape) == 3 else nn.BatchNorm1d
        pool = nn.AdaptiveAvgPool2d(1) if len(input_shape) == 3 else nn.AdaptiveAvgPool1d(1)
        self.depth, self.width, self.activation = depth, width, activation
        n_stages = min(stages, depth)
        # Blocks per stage, as even as possible (earlier stages get the remainder).
        per_stage = [
            depth // n_stages + (1 if s < depth % n_stages else 0) for s in range(n_stages)
        ]
        blocks = []
        channels = input_shape[0]
        for s, n in enumerate(per_stage):
            out_channels = width * 2**s
            for b in range(n):
                stride = 2 if (s > 0 and b == 0) else 1
                shortcut = None
                if residual:
                    if stride == 1 and channels == out_channels:
                        shortcut = nn.Identity()
                    else:
                        shortcut = conv(channels, out_channels, 1, stride=stride, bias=False)
                blocks.append(
                    Block(
                        conv(
                            channels,
                            out_channels,
                            3,
                            stride=stride,
                            padding=1,
                            bias=preactivation or not batchnorm,
                        ),
                        bn(channels if preactivation else out_channels)
                        if batchnorm
                        else nn.Identity(),
                        activation,
                        shortcut,
                        scale,
                        preactivation,
                    )
                )
                channels = out_channels
        self.blocks = nn.Sequential(*blocks)
        self.pool = nn.Sequential(pool, nn.Flatten())
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.num_features = channels
        self.head = nn.Linear(channels, num_classes)
        init_weights(self, init, activation)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) or (B, C, L) -> (B, num_features) after global average pooling."""
        return self.pool(self.blocks(x))
