"""Freeze a fine-tuner's backbone with Lightning's ``BaseFinetuning`` (and unfreeze it later).

``build.run_callbacks`` adds :class:`BackboneFreeze` automatically for any net that carries a
``finetune`` plan (``depthbench.models.finetune.FinetunePlan``, filled from the
``model=finetune`` config keys ``freeze``, ``unfreeze_at_epoch``, ``train_bn``,
``train_last_n_blocks``, ``backbone_lr_factor``).
The Classifier builds its optimizer from :func:`optimizer_param_groups`, which gives a backbone
that is unfrozen later its own parameter group.
"""

from __future__ import annotations

from typing import Any

import lightning as L
from lightning.pytorch.callbacks import BaseFinetuning
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.optim import Optimizer

# the learning-rate keys a parameter group may hold (OneCycleLR keeps max_lr, min_lr per group)
LR_KEYS = ("lr", "initial_lr", "max_lr", "min_lr")


class BackboneFreeze(BaseFinetuning):
    """Freeze ``pl_module.net.backbone`` before training; unfreeze it at ``unfreeze_at_epoch``.

    ``train_bn=False`` (the default) also keeps the frozen BatchNorm layers in eval mode, so they
    normalise with their pretrained running statistics in training as at test time (Lightning's
    ``freeze`` alone only stops updating the statistics, and train-mode BN would then normalise
    with each batch's). ``train_last_n_blocks`` leaves the last blocks of the backbone trainable.
    Unfrozen backbone parameters get ``backbone_lr_factor`` times the head's learning rate.

    How the backbone is held depends on whether it is ever unfrozen:

    * never (``unfreeze_at_epoch=None``): ``BaseFinetuning.freeze``, ``requires_grad=False``, so
      no backbone gradients are computed at all;
    * at an epoch: DDP all-reduces only the parameters that required gradients when it wrapped
      the model, before training, so a backbone unfrozen later would train apart on each rank
      (Lightning issue #20340). The held parameters therefore keep ``requires_grad`` and sit in
      their own optimizer group (:func:`optimizer_param_groups`) with learning rate 0, which
      leaves them unchanged (an SGD or AdamW step, weight decay included, is scaled by the
      learning rate; momentum and Adam moments still accumulate). At the unfreeze epoch the
      group and the schedulers' ``base_lrs`` get the head's rate x ``backbone_lr_factor``. The
      frozen epochs still pay for the backbone's backward pass.
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
        if self.unfreeze_at_epoch is not None:
            return  # held by a zero learning rate (see the class docstring), gradients stay on
        self.freeze(net.backbone, train_bn=self.train_bn)
        if self.train_last_n_blocks:
            self.make_trainable(net.backbone_blocks[-self.train_last_n_blocks :])

    def finetune_function(
        self, pl_module: L.LightningModule, epoch: int, optimizer: Optimizer
    ) -> None:
        due = self.unfreeze_at_epoch is not None and epoch >= self.unfreeze_at_epoch
        if due and not self.unfrozen:
            held = held_parameters(pl_module.net, self.train_bn, self.train_last_n_blocks)
            index = _group_of(optimizer, held)
            set_group_lr(pl_module.trainer, optimizer, index, self.backbone_lr_factor)
            pl_module.net.backbone.train()  # BN layers held in eval mode while frozen
            self.unfrozen = True

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_epoch_start(trainer, pl_module)
        if not self.train_bn and not self.unfrozen:
            held = held_parameters(pl_module.net, self.train_bn, self.train_last_n_blocks)
            for m in held_batchnorms(pl_module.net.backbone, held):
                m.eval()


def held_parameters(net: nn.Module, train_bn: bool, train_last_n_blocks: int) -> list[nn.Parameter]:
    """The backbone parameters a freeze holds: all but the last ``train_last_n_blocks`` blocks'
    and, with ``train_bn``, the BatchNorm layers' (the set ``BaseFinetuning.freeze`` +
    ``make_trainable`` leave with ``requires_grad=False``)."""
    blocks = net.backbone_blocks[-train_last_n_blocks:] if train_last_n_blocks else []
    trainable = {id(p) for block in blocks for p in block.parameters()}
    if train_bn:
        trainable |= {id(p) for m in net.backbone.modules() if isinstance(m, _BatchNorm)
                      for p in m.parameters()}  # fmt: skip
    return [p for p in net.backbone.parameters() if id(p) not in trainable]


def held_batchnorms(module: nn.Module, held: list[nn.Parameter]) -> list[_BatchNorm]:
    """BatchNorm layers of ``module`` whose parameters are all in ``held``."""
    ids = {id(p) for p in held}
    return [
        m
        for m in module.modules()
        if isinstance(m, _BatchNorm) and all(id(p) in ids for p in m.parameters())
    ]


def optimizer_param_groups(module: nn.Module) -> list[dict[str, Any]]:
    """The trainable parameters of ``module`` as optimizer parameter groups.

    One group, except for a net whose ``finetune`` plan freezes the backbone and unfreezes it at
    an epoch: then the held backbone parameters form a second group with ``lr=0.0``
    (``BackboneFreeze`` raises it at the unfreeze epoch).
    """
    net = getattr(module, "net", module)
    plan = getattr(net, "finetune", None)
    trainable = [p for p in module.parameters() if p.requires_grad]
    if plan is None or not plan.freeze or plan.unfreeze_at_epoch is None:
        return [{"params": trainable}]
    held = held_parameters(net, plan.train_bn, plan.train_last_n_blocks)
    ids = {id(p) for p in held}
    return [{"params": [p for p in trainable if id(p) not in ids]}, {"params": held, "lr": 0.0}]


def _group_of(optimizer: Optimizer, params: list[nn.Parameter]) -> int:
    ids = {id(p) for p in params}
    for index, group in enumerate(optimizer.param_groups):
        if group["params"] and all(id(p) in ids for p in group["params"]):
            return index
    raise RuntimeError(
        "BackboneFreeze: no optimizer parameter group holds the frozen backbone; build the "
        "optimizer from depthbench.core.callbacks.finetune.optimizer_param_groups"
    )


def set_group_lr(trainer: L.Trainer, optimizer: Optimizer, index: int, factor: float) -> None:
    """Give parameter group ``index`` the first group's learning rate x ``factor``, now and in
    every schedule: its LR keys and each scheduler's ``base_lrs[index]`` (the public state the
    torch schedulers compute a group's rate from)."""
    head, group = optimizer.param_groups[0], optimizer.param_groups[index]
    for key in LR_KEYS:
        if key in head:
            group[key] = head[key] * factor
    for config in trainer.lr_scheduler_configs:
        scheduler = config.scheduler
        if scheduler.optimizer is optimizer and hasattr(scheduler, "base_lrs"):
            scheduler.base_lrs[index] = scheduler.base_lrs[0] * factor


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
