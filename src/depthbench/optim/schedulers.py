"""Learning-rate schedules as functions of (optimizer, total_steps), stepped once per batch.

Each config under ``conf/scheduler/`` is a ``_partial_`` of one of these; the Classifier
completes it with the number of optimizer steps Lightning estimates for the whole fit.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR, LRScheduler, OneCycleLR


def _warmup(step: int, warmup_steps: int) -> float:
    return (step + 1) / warmup_steps if step < warmup_steps else 1.0


def constant(optimizer: Optimizer, total_steps: int, warmup_steps: int = 0) -> LRScheduler:
    """Constant learning rate after an optional linear warm-up."""
    return LambdaLR(optimizer, lambda s: _warmup(s, warmup_steps))


def cosine(
    optimizer: Optimizer, total_steps: int, warmup_steps: int = 0, min_lr_ratio: float = 0.0
) -> LRScheduler:
    """Linear warm-up, then cosine decay to ``min_lr_ratio`` x the base LR (Loshchilov 2017)."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return _warmup(step, warmup_steps)
        t = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * t))

    return LambdaLR(optimizer, factor)


def multistep(
    optimizer: Optimizer,
    total_steps: int,
    milestones: Sequence[float] = (0.5, 0.75),
    gamma: float = 0.1,
    warmup_steps: int = 0,
) -> LRScheduler:
    """Divide the LR by 1/gamma at each milestone, given as fractions of training.

    The default (x0.1 at 50% and 75%) is the CIFAR recipe of He et al. 2016 (32k and 48k of 64k
    iterations). ``warmup_steps`` mirrors their 0.01 warm-up for ResNet-110.
    """
    marks = sorted(int(m * total_steps) for m in milestones)

    def factor(step: int) -> float:
        return _warmup(step, warmup_steps) * gamma ** sum(step >= m for m in marks)

    return LambdaLR(optimizer, factor)


def onecycle(
    optimizer: Optimizer, total_steps: int, pct_start: float = 0.25, div_factor: float = 25.0
) -> LRScheduler:
    """Smith's one-cycle policy peaking at the optimizer's LR (its warm-up is ``pct_start``)."""
    max_lr = [g["lr"] for g in optimizer.param_groups]
    return OneCycleLR(
        optimizer, max_lr=max_lr, total_steps=max(2, total_steps), pct_start=pct_start,
        div_factor=div_factor,
    )  # fmt: skip
