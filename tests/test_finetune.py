"""The fine-tuner: a really pretrained EfficientNet-Lite0, frozen by Lightning's BaseFinetuning so
that only the new head learns; unfreezing; last-N blocks; a depthbench checkpoint as backbone."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from helpers import FAST, compose_config
from omegaconf import open_dict

from depthbench.core import train
from depthbench.core.build import build_data, build_module, build_net, build_trainer, run_callbacks
from depthbench.core.callbacks.finetune import BackboneFreeze, finetune_callbacks
from depthbench.errors import ConfigError
from depthbench.models.efficientnet_lite import (
    LITE_MEAN,
    LITE_STD,
    EfficientNetLite0,
    lite0_weights_path,
)
from depthbench.models.finetune import FineTuner

torch.set_num_threads(1)
SMALL = ["data=digits", "model=finetune", "model.image_size=32", *FAST]


def test_lite0_weights_load_strictly_and_recognise_a_daisy() -> None:
    """The package's file is an ImageNet model: scikit-learn's bundled flower photo is a daisy."""
    from sklearn.datasets import load_sample_image
    from torchvision.models import ResNet18_Weights

    net = EfficientNetLite0(input_shape=[3, 224, 224], num_classes=1000)
    net.load_state_dict(torch.load(lite0_weights_path(), weights_only=True), strict=True)
    img = torch.tensor(load_sample_image("flower.jpg")).permute(2, 0, 1).float() / 255
    img = F.interpolate(img[None, :, :, 80:507], size=224, mode="bilinear", antialias=True)
    x = (img - torch.tensor(LITE_MEAN).view(1, 3, 1, 1)) / torch.tensor(LITE_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        top5 = net.eval()(x)[0].topk(5).indices.tolist()
    categories = ResNet18_Weights.IMAGENET1K_V1.meta["categories"]
    assert "daisy" in [categories[i] for i in top5]


def _fit(overrides: list[str], tmp_path: Path):
    """Build and fit exactly as run.train does, keeping the pieces for inspection."""
    cfg = compose_config([*SMALL, *overrides], tmp_path)
    dm = build_data(cfg)
    net = build_net(cfg.model, dm)
    module = build_module(cfg, net)
    trainer = build_trainer(cfg, run_callbacks(cfg, net))
    before = {k: v.clone() for k, v in net.backbone.state_dict().items()}
    head_before = net.head.weight.detach().clone()
    trainer.fit(module, datamodule=dm)
    return net, trainer, before, head_before


def test_frozen_backbone_only_the_head_learns(tmp_path: Path) -> None:
    net, trainer, before, head_before = _fit([], tmp_path)
    assert any(isinstance(cb, BackboneFreeze) for cb in trainer.callbacks)
    trainable = {n for n, p in net.named_parameters() if p.requires_grad}
    assert trainable == {"head.weight", "head.bias"}
    optimized = {id(p) for g in trainer.optimizers[0].param_groups for p in g["params"]}
    assert optimized == {id(net.head.weight), id(net.head.bias)}
    after = net.backbone.state_dict()  # parameters and BN running statistics
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not torch.equal(head_before, net.head.weight)
    # the backbone is the package's ImageNet network, untouched
    imagenet = torch.load(lite0_weights_path(), weights_only=True)
    key = "_blocks.15._project_conv.weight"
    assert torch.equal(after[f"net.{key}"], imagenet[key])


@pytest.mark.slow  # a few epochs of a pretrained backbone: the longest in-process runs
def test_unfreeze_at_epoch_trains_the_backbone(tmp_path: Path) -> None:
    net, trainer, before, _ = _fit(["model.unfreeze_at_epoch=1"], tmp_path)
    groups = trainer.optimizers[0].param_groups
    assert len(groups) == 2 and groups[1]["lr"] == pytest.approx(groups[0]["lr"] * 0.1)
    assert all(p.requires_grad for p in net.backbone.parameters())
    after = net.backbone.state_dict()
    assert not torch.equal(before["net._conv_stem.weight"], after["net._conv_stem.weight"])


@pytest.mark.slow  # two fine-tuning runs
@pytest.mark.parametrize("optimizer", ["adamw", "sgd"])
def test_backbone_unfrozen_later_is_held_by_lr_zero(optimizer: str, tmp_path: Path) -> None:
    """Before its unfreeze epoch the backbone keeps requires_grad (so DDP syncs it) but sits in
    an lr-0 group: with weight decay, momentum or Adam moments it does not change at all, BN
    running statistics included; the head trains."""
    net, trainer, before, head_before = _fit(
        ["model.unfreeze_at_epoch=1", "trainer.max_epochs=1", f"optimizer={optimizer}"], tmp_path
    )
    assert all(p.requires_grad for p in net.backbone.parameters())
    groups = trainer.optimizers[0].param_groups
    assert len(groups) == 2 and groups[1]["lr"] == groups[1]["initial_lr"] == 0.0
    assert groups[0]["initial_lr"] > 0  # (the cosine schedule ends the head at lr 0)
    assert {id(p) for p in groups[1]["params"]} == {id(p) for p in net.backbone.parameters()}
    after = net.backbone.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not torch.equal(head_before, net.head.weight)


@pytest.mark.slow  # a few epochs of a pretrained backbone: the longest in-process runs
def test_unfreeze_sets_the_backbone_lr_through_the_schedule(tmp_path: Path) -> None:
    """At the unfreeze epoch the backbone group follows the head's schedule at 0.1x: the
    scheduler's base_lrs hold it, so the rate after further steps is still 0.1x the head's."""
    _, trainer, _, _ = _fit(["model.unfreeze_at_epoch=1", "scheduler=onecycle"], tmp_path)
    scheduler = trainer.lr_scheduler_configs[0].scheduler
    assert scheduler.base_lrs[1] == pytest.approx(scheduler.base_lrs[0] * 0.1)
    head, backbone = trainer.optimizers[0].param_groups
    assert backbone["lr"] == pytest.approx(head["lr"] * 0.1) and backbone["lr"] > 0
    assert backbone["max_lr"] == pytest.approx(head["max_lr"] * 0.1)


def test_train_last_n_blocks_and_train_bn(tmp_path: Path) -> None:
    net = FineTuner(input_shape=[1, 8, 8], num_classes=10, image_size=32, train_last_n_blocks=2,
                    train_bn=True)  # fmt: skip
    callback = finetune_callbacks(net)[0]
    callback.freeze_before_training(type("M", (), {"net": net})())
    last_two = {id(p) for b in net.backbone_blocks[-2:] for p in b.parameters()}
    bns = {id(p) for m in net.backbone.modules() if isinstance(m, torch.nn.BatchNorm2d)
           for p in m.parameters()}  # fmt: skip
    for p in net.backbone.parameters():
        assert p.requires_grad == (id(p) in last_two or id(p) in bns)
    with pytest.raises(ConfigError, match="train_last_n_blocks=99"):
        FineTuner(input_shape=[1, 8, 8], num_classes=10, train_last_n_blocks=99)


def test_preprocess_undoes_the_data_normalisation() -> None:
    net = FineTuner(input_shape=[1, 28, 28], num_classes=10, image_size=32, data_mean=[0.3],
                    data_std=[0.2])  # fmt: skip
    raw = torch.rand(2, 1, 28, 28)
    x = net.preprocess((raw - 0.3) / 0.2)
    assert x.shape == (2, 3, 32, 32)  # grey -> RGB, resized to the backbone's input
    expected = F.interpolate(raw.expand(-1, 3, -1, -1), size=(32, 32), mode="bilinear")
    assert torch.allclose(x, (expected - LITE_MEAN[0]) / LITE_STD[0], atol=1e-5)


def test_torchvision_backbone_from_a_local_file(tmp_path: Path) -> None:
    import torchvision

    src = torchvision.models.mobilenet_v3_small()
    torch.save(src.state_dict(), tmp_path / "mnv3.pth")
    net = FineTuner(input_shape=[1, 16, 16], num_classes=4, backbone="mobilenet_v3_small",
                    weights_path=str(tmp_path / "mnv3.pth"), image_size=32)  # fmt: skip
    assert net.num_features == 1024 and net.mean == (0.485, 0.456, 0.406)  # from transforms()
    assert torch.equal(
        net.backbone.features[3].block[0][0].weight, src.features[3].block[0][0].weight
    )
    assert net(torch.randn(2, 1, 16, 16)).shape == (2, 4)
    with pytest.raises(ConfigError, match="unknown torchvision"):
        FineTuner(input_shape=[1, 8, 8], num_classes=4, backbone="no_such_net", weights=None)


def test_depthbench_checkpoint_as_backbone(tmp_path: Path) -> None:
    """Train a CNN on 8x8 digits, then fine-tune it, frozen, on 28x28 Fashion-MNIST."""
    first = compose_config(["data=digits", "model=cnn", *FAST], tmp_path / "digits")
    train(first)
    ckpt = tmp_path / "digits" / "checkpoints" / "last.ckpt"
    assert ckpt.is_file()
    second = compose_config(
        ["data=fashion_mnist", "data.train_size=60", "data.batch_size=20", "model=finetune",
         "model.backbone=depthbench", f"model.checkpoint={ckpt}", *FAST],
        tmp_path / "fmnist",
    )  # fmt: skip
    with open_dict(second):
        second.data.val_size = 100  # Fashion-MNIST carves val from train
    dm = build_data(second)
    net = build_net(second.model, dm)
    saved = torch.load(ckpt, weights_only=True)["state_dict"]
    key = "blocks.0.layers.1.weight"
    assert torch.equal(net.backbone.net.state_dict()[key], saved[f"net.{key}"])
    assert net.image_size == (8, 8) and net.head.out_features == 10
    metrics = train(second)
    assert metrics["status"] == "ok" and metrics["model"] == "FineTuner"
