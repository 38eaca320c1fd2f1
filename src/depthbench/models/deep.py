"""Configurable deep MLP and CNN: depth, width, activation, skip connections, batch norm, init.

Both families are built as He et al. built their plain and residual nets: a stem layer, then
the remaining ``depth - 1`` layers in blocks of two, then global pooling (CNN) and a linear head.

* ``residual=False``: the plain net, ``x -> act(norm(layer(x)))`` layer after layer.
* ``residual=True``: the same layers with a shortcut around each two-layer block, the block of
  He et al. 2016 ("Deep Residual Learning", Fig. 2):
  ``act(x + norm2(layer2(act(norm1(layer1(x))))))`` -- the branch ends in a normalisation,
  the activation comes after the addition.
* ``preactivation=True``: the block of He et al. 2016b ("Identity Mappings in Deep Residual
  Networks", Fig. 1b), ``x + layer2(act(norm2(layer1(act(norm1(x))))))``, with a final
  ``act(norm(.))`` before the head; with ``residual=False`` the same layers without shortcuts.

A plain net and its residual twin have the same layers and the same parameter count, up to the
1x1 projection shortcuts where a CNN stage changes shape (option B of He et al. 2016), so a
sweep over ``residual`` compares like with like. When ``depth - 1`` is odd the last block has one
layer. ``depth`` counts the weight layers before the head, as the papers count them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from depthbench.errors import ConfigError
from depthbench.models.budget import solve_width
from depthbench.models.contract import ClassifierNet
from depthbench.models.layers import check_positive_int, init_weights, make_activation
from depthbench.models.registry import register_model

BLOCK_LAYERS = 2  # weight layers per residual block (He et al. 2016's basic block)


def _check_common(
    depth: int, width: int, residual_scale: float, batchnorm: bool, activation: str
) -> None:
    check_positive_int("depth", depth)
    check_positive_int("width", width)
    make_activation(activation)  # validate before building 1,000 blocks
    if isinstance(residual_scale, bool) or not (
        isinstance(residual_scale, (int, float)) and residual_scale > 0
    ):
        raise ConfigError(f"residual_scale must be a number > 0, got {residual_scale!r}")
    if batchnorm and residual_scale != 1.0:
        raise ConfigError(
            f"model.residual_scale={residual_scale} is for nets without normalisation; with "
            "model.batchnorm=true the block is the paper's x + F(x) (model.residual_scale=1.0)"
        )


def _block_sizes(depth: int) -> list[int]:
    """Layers per block after the stem: ``depth=8`` -> [2, 2, 2, 1]; ``depth=1`` -> []."""
    full, rest = divmod(depth - 1, BLOCK_LAYERS)
    return [BLOCK_LAYERS] * full + ([rest] if rest else [])


def _budget_args(local_vars: dict[str, Any]) -> dict[str, Any]:
    """A constructor's own arguments (from ``locals()``) less the width and the budget."""
    drop = {"self", "__class__", "width", "params"}
    return {k: v for k, v in local_vars.items() if k not in drop}


class ResidualBlock(nn.Module):
    """One to two weight layers, with or without the identity (or projection) shortcut.

    ``layers[i]`` and ``norms[i]`` are the i-th layer and its normalisation (``nn.Identity``
    without batch norm); in the pre-activation order each norm sits before its layer and has
    the layer's input width. ``shortcut`` is ``None`` for a plain block.
    """

    def __init__(
        self,
        layers: Sequence[nn.Module],
        norms: Sequence[nn.Module],
        activation: str,
        shortcut: nn.Module | None,
        residual_scale: float = 1.0,
        preactivation: bool = False,
    ) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.norms = nn.ModuleList(norms)
        self.acts = nn.ModuleList(make_activation(activation) for _ in layers)
        self.shortcut = shortcut
        self.residual_scale = residual_scale
        self.preactivation = preactivation

    @property
    def layer(self) -> nn.Module:
        """The block's first weight layer."""
        return self.layers[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x
        last = len(self.layers) - 1
        for i, (layer, norm, act) in enumerate(zip(self.layers, self.norms, self.acts)):
            if self.preactivation:  # norm -> act -> layer
                out = layer(act(norm(out)))
            else:  # layer -> norm (-> act, except after the block's last layer when residual)
                out = norm(layer(out))
                if i < last or self.shortcut is None:
                    out = act(out)
        if self.shortcut is None:
            return out
        out = self.shortcut(x) + self.residual_scale * out
        # post-activation: the activation after the addition (He et al. 2016, Fig. 2)
        return out if self.preactivation else self.acts[last](out)


@register_model("mlp")
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
        residual_scale: float = 1.0,
        preactivation: bool = False,
        params: int | None = None,
    ) -> None:
        super().__init__()
        if params is not None:  # a parameter budget: the width comes from it (models/budget.py)
            width = solve_width(DeepMLP, params, **_budget_args(locals()))
        _check_common(depth, width, residual_scale, batchnorm, activation)
        check_positive_int("num_classes", num_classes, minimum=2)
        self.depth, self.width, self.activation = depth, width, activation
        self.flatten = nn.Flatten()
        in_features = math.prod(input_shape)

        def norm() -> nn.Module:
            return nn.BatchNorm1d(width) if batchnorm else nn.Identity()

        self.stem = nn.Sequential(nn.Linear(in_features, width))  # (B, D) -> (B, width)
        if not preactivation:
            self.stem.extend([norm(), make_activation(activation)])
        blocks = []
        for n in _block_sizes(depth):
            blocks.append(
                ResidualBlock(
                    [nn.Linear(width, width) for _ in range(n)],
                    [norm() for _ in range(n)],
                    activation,
                    nn.Identity() if residual else None,
                    residual_scale,
                    preactivation,
                )
            )
        self.blocks = nn.Sequential(*blocks)
        # pre-activation nets end with the norm + activation their last block left out
        self.final = (
            nn.Sequential(norm(), make_activation(activation)) if preactivation else nn.Identity()
        )
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.num_features = width
        self.head = nn.Linear(width, num_classes)
        init_weights(self, init, activation)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, *input_shape) -> (B, width)."""
        return self.final(self.blocks(self.stem(self.flatten(x))))


@register_model("cnn")
class DeepCNN(ClassifierNet):
    """A convolutional network of ``depth`` 3x3 conv layers, for images or 1-D signals.

    ``input_shape`` is (C, H, W) for Conv2d or (C, L) for Conv1d. A stem conv maps the input to
    ``width`` channels; the blocks are split over up to ``stages`` stages, and each stage after
    the first halves the resolution (stride 2 in its first layer) and doubles the channels, as
    in He et al. 2016. Residual blocks use a 1x1 projection shortcut where the shape changes.
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
        residual_scale: float = 1.0,
        preactivation: bool = False,
        params: int | None = None,
    ) -> None:
        super().__init__()
        if params is not None:  # a parameter budget: the width comes from it (models/budget.py)
            width = solve_width(DeepCNN, params, **_budget_args(locals()))
        _check_common(depth, width, residual_scale, batchnorm, activation)
        check_positive_int("stages", stages)
        check_positive_int("num_classes", num_classes, minimum=2)
        if len(input_shape) not in (2, 3):
            raise ConfigError(f"DeepCNN needs input_shape (C, H, W) or (C, L), got {input_shape}")
        conv = nn.Conv2d if len(input_shape) == 3 else nn.Conv1d
        bn = nn.BatchNorm2d if len(input_shape) == 3 else nn.BatchNorm1d
        pool = nn.AdaptiveAvgPool2d(1) if len(input_shape) == 3 else nn.AdaptiveAvgPool1d(1)
        self.depth, self.width, self.activation = depth, width, activation

        def norm(channels: int) -> nn.Module:
            return bn(channels) if batchnorm else nn.Identity()

        def conv3(c_in: int, c_out: int, stride: int = 1) -> nn.Module:
            # no bias before a BN that follows it (the BN's shift replaces it)
            bias = not batchnorm or preactivation
            return conv(c_in, c_out, 3, stride=stride, padding=1, bias=bias)

        self.stem = nn.Sequential(conv3(input_shape[0], width))
        if not preactivation:
            self.stem.extend([norm(width), make_activation(activation)])
        sizes = _block_sizes(depth)
        n_stages = min(stages, len(sizes)) or 1
        # blocks per stage, as even as possible (earlier stages get the remainder)
        per_stage = [
            len(sizes) // n_stages + (1 if s < len(sizes) % n_stages else 0)
            for s in range(n_stages)
        ]
        blocks, channels, k = [], width, 0
        for s, n_blocks in enumerate(per_stage):
            out_channels = width * 2**s
            for b in range(n_blocks):
                stride = 2 if (s > 0 and b == 0) else 1
                n = sizes[k]
                k += 1
                ins = [channels, *[out_channels] * (n - 1)]
                strides = [stride] + [1] * (n - 1)
                layers = [conv3(c, out_channels, st) for c, st in zip(ins, strides)]
                norms = [norm(c if preactivation else out_channels) for c in ins]
                shortcut = None
                if residual:
                    shortcut = (
                        nn.Identity()
                        if stride == 1 and channels == out_channels
                        else conv(channels, out_channels, 1, stride=stride, bias=False)
                    )
                blocks.append(
                    ResidualBlock(
                        layers, norms, activation, shortcut, residual_scale, preactivation
                    )
                )
                channels = out_channels
        self.blocks = nn.Sequential(*blocks)
        self.final = (
            nn.Sequential(norm(channels), make_activation(activation))
            if preactivation
            else nn.Identity()
        )
        self.pool = nn.Sequential(pool, nn.Flatten())
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.num_features = channels
        self.head = nn.Linear(channels, num_classes)
        init_weights(self, init, activation)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) or (B, C, L) -> (B, num_features) after global average pooling."""
        return self.pool(self.final(self.blocks(self.stem(x))))
