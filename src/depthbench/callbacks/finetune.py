"""Freeze a fine-tuner's backbone with Lightning's ``BaseFinetuning`` (and unfreeze it later).

``run.train`` adds :class:`BackboneFreeze` automatically for any net that carries a ``finetune``
plan (``depthbench.models.finetune.FinetunePlan``, filled from the ``model=finetune`` config keys
``freeze``, ``unfreeze_at_epoch``, ``train_bn``, ``train_last_n_blocks``, ``backbone_lr_factor``).
"""

from __future__ import annotations

from typing import Any

import lightning as L
from lightning.pytorch.callbacks import BaseFinetuning
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.optim import Optimizer


class BackboneFreeze(BaseFinetuning):
    """Freeze ``pl_module.net.backbone`` before training; unfreeze it at ``unfreeze_at_epoch``.

    ``train_bn=False`` (the default) also keeps the frozen BatchNorm layers in eval mode, so they
    normalise with their pretrained running statistics in training as at test time (Lightning's
    ``freeze`` alone only stops updating the statistics, and train-mode BN would then normalise
    with each batch's). ``train_last_n_blocks`` leaves the last blocks of the backbone trainable.
    Unfrozen backbone parameters get ``backbone_lr_factor`` times the head's learning rate.
    """

    def __init__(
        self,
        unfreeze_at_epoch: int | None = None,
        train_bn: bool = False,
        train_last_n_blocks: int = 0,
        backbone_lr_factor: float = 0.1,
    ) -> None:
        super().__init__()
        self.unfreeze_at_epoch = unfreeze_at_epoch
        self.train_bn = train_bn
        self.train_last_n_blocks = train_last_n_blocks
        self.backbone_lr_factor = backbone_lr_factor
        self.unfrozen = False

    def freeze_before_training(self, pl_module: L.LightningModule) -> None:
        net = pl_module.net
        self.freeze(net.backbone, train_bn=self.train_bn)
        if self.train_last_n_blocks:
            self.make_trainable(net.backbone_blocks[-self.train_last_n_blocks :])

    def finetune_function(
        self, pl_module: L.LightningModule, epoch: int, optimizer: Optimizer
    ) -> None:
        due = self.unfreeze_at_epoch is not None and epoch >= self.unfreeze_at_epoch
        if due and not self.unfrozen:
            head = optimizer.param_groups[0]
            lr = head.get("initial_lr", head["lr"]) * self.backbone_lr_factor
            self.unfreeze_and_add_param_group(pl_module.net.backbone, optimizer, lr=lr)
            _extend_schedulers(pl_module.trainer, optimizer)
            pl_module.net.backbone.train()  # BN layers held in eval mode while frozen
            self.unfrozen = True

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_epoch_start(trainer, pl_module)
        if not self.train_bn:
            for m in frozen_batchnorms(pl_module.net.backbone):
                m.eval()


def _extend_schedulers(trainer: L.Trainer, optimizer: Optimizer) -> None:
    """Let the LR schedulers of ``optimizer`` drive the param groups added after they were built.

    torch's schedulers keep one base LR (and LambdaLR one lambda) per group and refuse a
    mismatch; the new group follows the same schedule as the first, scaled by its own LR.
    """
    head = optimizer.param_groups[0]
    for config in trainer.lr_scheduler_configs:
        scheduler = config.scheduler
        if scheduler.optimizer is not optimizer or not hasattr(scheduler, "base_lrs"):
            continue
        for group in optimizer.param_groups[len(scheduler.base_lrs) :]:
            ratio = group["lr"] / head.get("initial_lr", head["lr"])
            for key in ("initial_lr", "max_lr", "min_lr"):  # OneCycleLR keeps these per group
                if key in head:
                    group.setdefault(key, head[key] * ratio)
            group.setdefault("initial_lr", group["lr"])
            scheduler.base_lrs.append(group["initial_lr"])
            if hasattr(scheduler, "lr_lambdas"):
                scheduler.lr_lambdas.append(scheduler.lr_lambdas[0])
        scheduler._last_lr = [g["lr"] for g in optimizer.param_groups]


def frozen_batchnorms(module: nn.Module) -> list[_BatchNorm]:
    """BatchNorm layers of ``module`` whose parameters are all frozen."""
    return [
        m
        for m in module.modules()
        if isinstance(m, _BatchNorm) and not any(p.requires_grad for p in m.parameters())
    ]


def finetune_callbacks(net: nn.Module) -> list[Any]:
    """``[BackboneFreeze(...)]`` for a net with a freezing ``finetune`` plan, else ``[]``."""
    plan = getattr(net, "finetune", None)
    if plan is None or not plan.freeze:
        return []
    return [
        BackboneFreeze(
            plan.unfreeze_at_epoch, plan.train_bn, plan.train_last_n_blocks, plan.backbone_lr_factor
        )
    ]
