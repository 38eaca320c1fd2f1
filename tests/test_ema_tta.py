"""The EMA of the weights (``module.ema_decay``) and flip test-time augmentation (``tta_flip``)."""

from __future__ import annotations

from pathlib import Path

import torch
from helpers import FAST, compose_config
from torch import nn

from depthbench.core import load_checkpoint, load_net
from depthbench.core.classifier import Classifier
from depthbench.optim.ema import ema_copy, ema_update, warmup_decay


def test_ema_update_is_a_lerp_of_parameters_and_float_buffers() -> None:
    net = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    ema = ema_copy(net)
    assert not any(p.requires_grad for p in ema.parameters())
    with torch.no_grad():
        for p in net.parameters():
            p.add_(1.0)
        net[1].running_mean.fill_(2.0)
        net[1].num_batches_tracked.fill_(7)
    before = ema[0].weight.clone()
    ema_update(ema, net, decay=0.75)
    assert torch.allclose(ema[0].weight, 0.75 * before + 0.25 * net[0].weight)
    assert torch.allclose(ema[1].running_mean, torch.full((2,), 0.5))  # 0.75 * 0 + 0.25 * 2
    assert int(ema[1].num_batches_tracked) == 7  # integer buffers are copied
    assert warmup_decay(0.999, 0) == 0.1 and warmup_decay(0.9, 10_000) == 0.9


def test_ema_weights_differ_from_raw_and_are_saved_for_eval(tmp_path: Path) -> None:
    from depthbench.core.run import train

    cfg = compose_config(["module.ema_decay=0.9", *FAST], tmp_path)
    train(cfg)
    ckpt = load_checkpoint(tmp_path / "checkpoints" / "last.ckpt")
    state = ckpt["state_dict"]
    ema_keys = [k for k in state if k.startswith("ema_net.")]
    assert ema_keys and len(ema_keys) == len([k for k in state if k.startswith("net.")])
    key = next(k for k in ema_keys if k.endswith("weight"))
    raw_key = "net." + key.removeprefix("ema_net.")
    assert not torch.allclose(state[key], state[raw_key])  # averaged, not the last iterate
    net, _ = load_net(ckpt)  # the one checkpoint -> network path takes the EMA weights
    name = key.removeprefix("ema_net.")
    assert torch.equal(net.state_dict()[name], state[key])


class RecordingNet(nn.Module):
    """Returns a fixed linear map of its input and records every batch it is called with."""

    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Linear(2 * 3 * 4, 5)
        self.inputs: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.inputs.append(x.clone())
        return self.head(x.flatten(1))


def test_flip_tta_averages_exactly_two_views() -> None:
    torch.manual_seed(0)
    net = RecordingNet()
    module = Classifier(net, optimizer=torch.optim.SGD, tta_flip=True).eval()
    x = torch.randn(6, 2, 3, 4)  # (B, C, H, W)
    with torch.no_grad():
        logits = module.eval_logits(x)
    assert len(net.inputs) == 1 and net.inputs[0].shape[0] == 2 * len(x)  # one batched forward
    views = net.inputs[0].view(2, *x.shape)
    assert torch.equal(views[0], x) and torch.equal(views[1], x.flip(-1))  # image, its mirror
    with torch.no_grad():
        expected = (net.head(x.flatten(1)) + net.head(x.flip(-1).flatten(1))) / 2
    assert torch.allclose(logits, expected, atol=1e-6)  # the mean of the two views' logits
    plain = Classifier(RecordingNet(), optimizer=torch.optim.SGD).eval()
    assert plain.eval_logits(x).shape == (6, 5) and plain.net.inputs[0].shape == x.shape
