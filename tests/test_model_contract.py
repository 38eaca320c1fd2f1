"""Every registered model honours the classifier contract (``models.contract.ClassifierNet``).

One tiny instance per name of ``models.list_models()``, checked for: the forward pass, gradients
reaching every parameter, ``reset_classifier`` (0 turns the net into a feature extractor of width
``num_features``) and the parameter count of the head.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from depthbench.models import create_model, list_models
from depthbench.models.contract import ClassifierNet

NUM_CLASSES = 5
# tiny input shape and extra kwargs per model (anything not listed: a 3x16x16 image)
TINY: dict[str, tuple[list[int], dict]] = {
    "mlp": ([1, 8, 8], {"depth": 2, "width": 16}),
    "cnn": ([1, 8, 8], {"depth": 2, "width": 4}),
    "resnet_imagenet": ([3, 32, 32], {"arch": "resnet18"}),
    "finetune": ([1, 12, 12], {"image_size": 32}),
    "transformer": ([1, 8, 8], {"dim": 16, "depth": 2, "heads": 2}),
    "efficientnet_lite0": ([3, 32, 32], {}),
}


def tiny(name: str) -> tuple[ClassifierNet, torch.Tensor]:
    """The registered model ``name`` at a tiny size, and a batch of two inputs for it."""
    torch.manual_seed(0)
    shape, kwargs = TINY.get(name, ([3, 16, 16], {}))
    net = create_model(name, input_shape=shape, num_classes=NUM_CLASSES, **kwargs)
    return net, torch.randn(2, *shape)


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# every registered model; resnet1202 (1,202 layers, the one big one) in the slow tier only
MODELS = [
    pytest.param(name, marks=pytest.mark.slow) if name == "resnet1202" else name
    for name in list_models()
]


@pytest.mark.parametrize("name", MODELS)
def test_forward_is_head_of_features(name: str) -> None:
    net, x = tiny(name)
    assert isinstance(net, ClassifierNet)
    with torch.no_grad():  # forward == forward_head(forward_features), same dropout masks
        torch.manual_seed(1)
        features = net.forward_features(x)
        assert features.shape == (2, net.num_features)
        split = net.forward_head(features)
        torch.manual_seed(1)
        out = net(x)
        assert net.forward_head(features, pre_logits=True).shape == (2, net.num_features)
    assert out.shape == (2, NUM_CLASSES)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(split, out, atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", MODELS)
def test_backward_reaches_every_parameter(name: str) -> None:
    net, x = tiny(name)
    net(x).square().sum().backward()
    missing = [n for n, p in net.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing, f"no gradient reaches {missing}"
    grads = {n: p.grad for n, p in net.named_parameters() if p.grad is not None}
    bad = [n for n, g in grads.items() if not g.isfinite().all()]
    assert not bad, f"non-finite gradient in {bad}"


@pytest.mark.parametrize("name", MODELS)
def test_reset_classifier(name: str) -> None:
    net, x = tiny(name)
    with torch.no_grad():  # the same seed: the same dropout masks
        torch.manual_seed(1)
        pre_logits = net.forward_head(net.forward_features(x), pre_logits=True)
    old_head = net.get_classifier()
    net.reset_classifier(7)
    assert net.get_classifier() is not old_head
    assert net(x).shape == (2, 7)
    net.reset_classifier(0)  # no head: a feature extractor
    assert isinstance(net.get_classifier(), nn.Identity)
    with torch.no_grad():
        torch.manual_seed(1)
        out = net(x)
    assert out.shape == (2, net.num_features)
    torch.testing.assert_close(out, pre_logits, atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", MODELS)
def test_parameter_count_of_the_head(name: str) -> None:
    net, _ = tiny(name)
    with_head = n_params(net)
    net.reset_classifier(0)
    head = net.num_features * NUM_CLASSES + NUM_CLASSES  # one Linear layer: weights + biases
    assert with_head - n_params(net) == head
    assert n_params(net) > 0
