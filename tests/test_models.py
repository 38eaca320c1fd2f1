"""The model zoo: ResNets match the paper; the transformer's attention weights are proper
distributions; AMP / channels_last / compile run. The contract of every registered model is
checked in ``test_model_contract.py``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from helpers import FAST, compose_config

from depthbench.core import train
from depthbench.errors import ConfigError
from depthbench.models import create_model
from depthbench.models.resnet_cifar import CifarResNet
from depthbench.models.transformer import TransformerClassifier


def _params(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


# He et al. 2016, Table 6 (CIFAR-10, option A): parameters in millions, as printed
PAPER_PARAMS = {20: 0.27, 32: 0.46, 44: 0.66, 56: 0.85, 110: 1.7, 1202: 19.4}


@pytest.mark.parametrize("depth", sorted(PAPER_PARAMS))
def test_cifar_resnet_parameter_counts_match_the_paper(depth: int) -> None:
    net = CifarResNet(input_shape=[3, 32, 32], num_classes=10, depth=depth)
    decimals = 2 if depth < 100 else 1  # as printed in the paper
    assert round(_params(net) / 1e6, decimals) == PAPER_PARAMS[depth]


def test_resnet_options() -> None:
    a = CifarResNet(input_shape=[3, 32, 32], num_classes=10, depth=20, shortcut="A")
    b = CifarResNet(input_shape=[3, 32, 32], num_classes=10, depth=20, shortcut="B")
    plain = CifarResNet(input_shape=[3, 32, 32], num_classes=10, depth=20, residual=False)
    assert _params(plain) == _params(a)  # option A shortcuts have no parameters
    assert _params(b) > _params(a)  # two 1x1 projections + BN
    # 1-channel 28x28 (Fashion-MNIST) works too: 28 -> 14 -> 7
    grey = CifarResNet(input_shape=[1, 28, 28], num_classes=10, depth=20)
    assert grey(torch.randn(2, 1, 28, 28)).shape == (2, 10)
    with pytest.raises(ConfigError, match=r"6n\+2.*20, 32, 44, 56, 110, 1202"):
        CifarResNet(input_shape=[3, 32, 32], num_classes=10, depth=21)
    with pytest.raises(ConfigError, match="shortcut"):
        CifarResNet(input_shape=[3, 32, 32], num_classes=10, shortcut="C")


@pytest.mark.slow  # 1,202 layers
def test_resnet1202_builds_and_takes_a_training_step() -> None:
    torch.manual_seed(0)
    net = create_model("resnet1202", input_shape=[3, 8, 8], num_classes=10)
    assert len([m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]) == 1201  # + fc
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    x, y = torch.randn(4, 3, 8, 8), torch.tensor([0, 1, 2, 3])
    before = net.head.weight.detach().clone()
    loss = torch.nn.functional.cross_entropy(net(x), y)
    loss.backward()
    opt.step()
    assert torch.isfinite(loss) and not torch.equal(before, net.head.weight)


def test_imagenet_resnet_small_stem_and_grey_input() -> None:
    net = create_model("resnet_imagenet", input_shape=[1, 28, 28], num_classes=10,
                       arch="resnet18", small_stem=True)  # fmt: skip
    assert net.body.conv1.kernel_size == (3, 3) and isinstance(net.body.maxpool, torch.nn.Identity)
    assert net(torch.randn(2, 1, 28, 28)).shape == (2, 10)
    with pytest.raises(ConfigError, match="resnet18, resnet34"):
        create_model("resnet_imagenet", input_shape=[3, 32, 32], num_classes=10, arch="vgg11")
    with pytest.raises(ConfigError, match="IMAGENET1K_V1"):
        create_model("resnet_imagenet", input_shape=[3, 32, 32], num_classes=10, weights="NOPE")


def test_imagenet_resnet_loads_a_local_weights_file(tmp_path: Path) -> None:
    import torchvision

    src = torchvision.models.resnet18()
    torch.save(src.state_dict(), tmp_path / "r18.pth")
    net = create_model("resnet_imagenet", input_shape=[3, 32, 32], num_classes=10,
                       weights_path=str(tmp_path / "r18.pth"))  # fmt: skip
    assert torch.equal(net.body.layer4[1].conv2.weight, src.layer4[1].conv2.weight)


def _check_attention(net: TransformerClassifier, n_tokens: int, **inputs) -> list[torch.Tensor]:
    weights = net.forward_attention(**inputs)
    batch = len(next(iter(inputs.values())))
    assert len(weights) == len(net.blocks)
    for w in weights:
        assert w.shape == (batch, net.blocks[0].attn.heads, n_tokens, n_tokens)
        assert torch.allclose(w.sum(-1), torch.ones(()), atol=1e-5)
    return weights


def test_transformer_attention_images_and_signals() -> None:
    img = TransformerClassifier(input_shape=[1, 28, 28], num_classes=10, patch_size=7, dim=16,
                                depth=2, heads=4)  # fmt: skip
    _check_attention(img, 1 + 16, x=torch.randn(3, 1, 28, 28))  # cls + 4x4 patches
    # MNIST-1D: 40 samples, as (40,) or (1, 40); patches of 4 -> 10 tokens, mean pooling
    for shape in ([40], [1, 40]):
        sig = TransformerClassifier(input_shape=shape, num_classes=10, patch_size=4, dim=16,
                                    depth=3, heads=2, pool="mean")  # fmt: skip
        _check_attention(sig, 10, x=torch.randn(3, *shape))
        assert sig(torch.randn(3, *shape)).shape == (3, 10)


def test_transformer_tokens_padding_mask_and_position() -> None:
    torch.manual_seed(0)
    net = TransformerClassifier(input_shape=[6], num_classes=2, vocab_size=20, dim=16, depth=2,
                                heads=2, pool="token")  # fmt: skip
    tokens = torch.randint(1, 20, (2, 6))
    padding = torch.tensor([[False] * 6, [False] * 4 + [True] * 2])
    position = torch.tensor([5, 1])
    weights = _check_attention(net, 6, tokens=tokens, padding_mask=padding, position=position)
    for w in weights:  # no query attends to padding
        assert torch.all(w[1, :, :, 4:] < 1e-6)
    # the batch arrives as a dict of tensors, passed as keywords
    out = net(**{"tokens": tokens, "padding_mask": padding, "position": position})
    assert out.shape == (2, 2) and torch.isfinite(out).all()
    # padding content does not change the output of the padded sequence
    changed = tokens.clone()
    changed[1, 4:] = 3
    again = net(tokens=changed, padding_mask=padding, position=position)
    assert torch.allclose(out[1], again[1], atol=1e-5)
    cls = TransformerClassifier(input_shape=[6], num_classes=2, vocab_size=20, dim=16, depth=1,
                                heads=2, pool="cls")  # fmt: skip
    _check_attention(cls, 7, tokens=tokens, padding_mask=padding)


def _fit(tmp_path: Path, overrides: list[str]) -> dict:
    cfg = compose_config(["data=digits", "trainer.max_epochs=1", *FAST[1:], *overrides], tmp_path)
    metrics = train(cfg)
    assert json.loads((tmp_path / "metrics.json").read_text())["status"] == "ok"
    return metrics


def test_resnet_trains_with_bf16_and_channels_last(tmp_path: Path) -> None:
    metrics = _fit(tmp_path, ["model=resnet", "model.depth=8", "trainer.precision=bf16-mixed",
                              "module.channels_last=true"])  # fmt: skip
    assert metrics["model"] == "CifarResNet" and metrics["test/loss"] is not None


def test_transformer_trains_through_hydra(tmp_path: Path) -> None:
    metrics = _fit(tmp_path, ["model=transformer", "model.dim=16", "model.depth=1",
                              "model.heads=2"])  # fmt: skip
    assert metrics["model"] == "TransformerClassifier"


@pytest.mark.slow
def test_torch_compile_on_cpu(tmp_path: Path) -> None:
    metrics = _fit(tmp_path, ["model=resnet", "model.depth=8", "module.compile=true"])
    assert metrics["status"] == "ok"
