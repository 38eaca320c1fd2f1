"""DeepMLP and DeepCNN: the blocks of He et al. 2016 / 2016b, plain-residual parity, bad input."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from depthbench.models.deep import DeepCNN, DeepMLP, ResidualBlock


def count(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def projections(net: nn.Module) -> int:
    """Parameters of the 1x1 projection shortcuts (the only layers a residual twin adds)."""
    return sum(count(b.shortcut) for b in net.blocks if b.shortcut is not None)


@pytest.mark.parametrize("family", [DeepMLP, DeepCNN])
@pytest.mark.parametrize("depth", [1, 10, 200])
@pytest.mark.parametrize(
    "flags", [{}, {"residual": True}, {"batchnorm": True}], ids=["plain", "residual", "batchnorm"]
)
def test_deep_nets_forward_backward(family, depth: int, flags: dict) -> None:
    torch.manual_seed(0)
    width = 8 if family is DeepCNN else 32
    net = family(input_shape=[1, 8, 8], num_classes=10, depth=depth, width=width, **flags)
    x = torch.randn(16, 1, 8, 8)
    out = net(x)
    assert out.shape == (16, 10)
    assert torch.isfinite(out).all()
    torch.nn.functional.cross_entropy(out, torch.arange(16) % 10).backward()
    first = net.stem[0].weight.grad
    last = net.head.weight.grad
    assert first is not None and torch.isfinite(last).all()
    if flags == {"batchnorm": True} and depth == 200:
        # Plain nets with batch norm have exploding gradients at init (Yang et al. 2019,
        # "A Mean Field Theory of Batch Normalization"): the first layer's gradient is orders of
        # magnitude above the last layer's, or overflows.
        assert not torch.isfinite(first).all() or first.norm() > 1e3 * last.norm()
    else:
        assert torch.isfinite(first).all()


@pytest.mark.parametrize("depth", [1, 2, 7, 8, 1202])
def test_depth_counts_the_weight_layers_before_the_head(depth: int) -> None:
    with torch.device("meta"):
        net = DeepMLP(input_shape=[16], num_classes=4, depth=depth, width=8, residual=True)
    layers = [m for m in net.modules() if isinstance(m, nn.Linear)]
    assert len(layers) == depth + 1  # + the head
    sizes = [len(b.layers) for b in net.blocks]
    assert sum(sizes) == depth - 1 and all(s == 2 for s in sizes[:-1])


@pytest.mark.parametrize("family", [DeepMLP, DeepCNN])
@pytest.mark.parametrize("preactivation", [False, True], ids=["post", "pre"])
@pytest.mark.parametrize("batchnorm", [False, True], ids=["nobn", "bn"])
@pytest.mark.parametrize("depth", [2, 9, 32])
def test_residual_twin_has_the_plain_nets_parameters(
    family, preactivation: bool, batchnorm: bool, depth: int
) -> None:
    kw = {"input_shape": [1, 16, 16], "num_classes": 10, "depth": depth, "width": 8}
    kw.update(preactivation=preactivation, batchnorm=batchnorm)
    plain, residual = family(**kw), family(**kw, residual=True)
    assert count(residual) - projections(residual) == count(plain)
    if family is DeepMLP:
        assert projections(residual) == 0  # width -> width everywhere after the stem


def test_post_activation_block_is_the_papers() -> None:
    """act(x + BN(W2 act(BN(W1 x)))): zero branch weights leave act(x)."""
    torch.manual_seed(0)
    net = DeepMLP(input_shape=[8], num_classes=2, depth=3, width=8, residual=True, batchnorm=True)
    block = net.blocks[0]
    assert isinstance(block, ResidualBlock) and len(block.layers) == 2
    nn.init.zeros_(block.norms[1].weight)  # the branch's last BN scales it to zero (+ its bias 0)
    x = torch.randn(4, 8)
    block.eval()
    assert torch.allclose(block(x), torch.relu(x))
    # pre-activation: the identity path is untouched, no activation after the sum
    pre = DeepMLP(input_shape=[8], num_classes=2, depth=3, width=8, residual=True,
                  batchnorm=True, preactivation=True).blocks[0].eval()  # fmt: skip
    nn.init.zeros_(pre.layers[1].weight)
    nn.init.zeros_(pre.layers[1].bias)
    assert torch.allclose(pre(x), x)


@pytest.mark.parametrize("family", [DeepMLP, DeepCNN])
@pytest.mark.parametrize("preactivation", [False, True], ids=["post", "pre"])
def test_textbook_residual_with_bn_keeps_the_forward_signal_bounded(family, preactivation) -> None:
    """With BN and x + F(x) each block adds O(1) variance: the norm grows like sqrt(blocks) at
    most, never exponentially, and the plain twin's signal stays O(1) too."""
    torch.manual_seed(0)
    kw = {"input_shape": [1, 8, 8], "num_classes": 10, "width": 8, "batchnorm": True,
          "residual": True, "preactivation": preactivation, "init": "kaiming"}  # fmt: skip
    x = torch.randn(32, 1, 8, 8)
    with torch.no_grad():
        # root mean square per feature (the CNN's feature count grows with its stages)
        shallow = family(**kw, depth=3).forward_features(x).pow(2).mean().sqrt()
        deep = family(**kw, depth=129).forward_features(x).pow(2).mean().sqrt()
    assert torch.isfinite(deep)
    assert deep < 2 * (64**0.5) * shallow  # 64 blocks: at most ~sqrt(64) x the 1-block size


def test_branch_scale_is_only_for_nets_without_normalisation() -> None:
    with pytest.raises(
        ValueError, match=r"model\.residual_scale=0\.1 is for nets without normalisation"
    ):
        DeepMLP(input_shape=[8], num_classes=2, residual=True, batchnorm=True, residual_scale=0.1)
    with pytest.raises(ValueError, match=r"residual_scale must be a number > 0"):
        DeepMLP(input_shape=[8], num_classes=2, residual=True, residual_scale=0)


def test_scaled_preactivation_branch_keeps_1202_layers_bounded() -> None:
    """The thousand-layer setting: tanh, no BN, branch scale 1/sqrt(blocks), pre-activation."""
    torch.manual_seed(0)
    kw = {"input_shape": [64], "num_classes": 10, "depth": 1202, "width": 16, "activation": "tanh",
          "init": "xavier", "preactivation": True}  # fmt: skip
    x = torch.randn(8, 64)
    with torch.no_grad():
        res = DeepMLP(**kw, residual=True, residual_scale=601**-0.5).forward_features(x)
        plain = DeepMLP(**kw).forward_features(x)
    assert torch.isfinite(res).all() and 0.1 < float(res.norm(dim=1).mean()) < 100
    assert float(plain.std(dim=0).mean()) < 1e-2  # the plain net forgets its input


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"depth": 0}, "depth must be an integer >= 1"),
        ({"width": -3}, "width must be an integer >= 1"),
        ({"activation": "swishy"}, "unknown activation 'swishy'; allowed: relu"),
        ({"init": "orthogonal"}, "unknown init 'orthogonal'"),
    ],
)
def test_deep_net_bad_arguments(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        DeepMLP(input_shape=[8], num_classes=2, **kwargs)


def test_reset_classifier() -> None:
    net = DeepCNN(input_shape=[1, 8, 8], num_classes=10, depth=3)
    net.reset_classifier(3)
    assert net(torch.randn(2, 1, 8, 8)).shape == (2, 3)


def test_parameter_budget_solves_the_width() -> None:
    net = DeepMLP(input_shape=[40], num_classes=10, depth=4, params=10_000, residual=True)
    assert abs(count(net) - 10_000) / 10_000 < 0.1


def test_he_is_another_name_for_kaiming_init() -> None:
    nets = []
    for init in ("he", "kaiming"):
        torch.manual_seed(0)
        nets.append(DeepMLP(input_shape=[8], num_classes=2, depth=3, width=8, init=init))
    for a, b in zip(nets[0].parameters(), nets[1].parameters(), strict=True):
        assert torch.equal(a, b)
