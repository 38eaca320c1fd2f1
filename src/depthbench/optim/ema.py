"""An exponential moving average (EMA) of a network's weights, updated without a host sync.

Evaluating an EMA of the weights instead of the last iterate is one of the cheapest accuracy
gains of fast trainers (Polyak & Juditsky 1992; airbench's "EMA of weights"; timm's
``ModelEmaV3``). The averaged copy is an ordinary submodule of the LightningModule, so Lightning
moves it to the device, and it lands in the checkpoint's ``state_dict`` next to the raw weights
(the raw ones resume training; ``checkpoint.load_net`` builds the eval network from the EMA
ones). ``torch.optim.swa_utils.AveragedModel`` is not used: its update compares a tensor
counter with 0 once per parameter (a host sync per parameter per step on a GPU).
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.optim.swa_utils import get_ema_multi_avg_fn


def ema_copy(net: nn.Module) -> nn.Module:
    """A frozen deep copy of ``net`` to hold the average (never trained, never in an optimizer)."""
    ema = copy.deepcopy(net)
    return ema.requires_grad_(False)  # train/eval mode follows the LightningModule's


def warmup_decay(decay: float, step: int) -> float:
    """``min(decay, (1 + step) / (10 + step))``: short runs are not dominated by the init.

    The ``num_updates`` warm-up of TensorFlow's ``ExponentialMovingAverage`` (also timm's
    ``ModelEmaV3(use_warmup=...)`` in spirit); ``step`` is a Python int, so no sync.
    """
    return min(decay, (1.0 + step) / (10.0 + step))


@torch.no_grad()
def ema_update(ema: nn.Module, net: nn.Module, decay: float) -> None:
    """``ema = decay * ema + (1 - decay) * net`` for every float parameter and buffer.

    Buffers (batch-norm running statistics) are averaged as well, so the averaged weights are
    evaluated with statistics that match them; integer buffers (``num_batches_tracked``) are
    copied. One ``torch._foreach_lerp_`` per dtype and device (``get_ema_multi_avg_fn``).
    """
    pairs = list(zip(ema.parameters(), net.parameters())) + list(zip(ema.buffers(), net.buffers()))
    groups: dict[tuple[torch.dtype, torch.device], tuple[list, list]] = {}
    for avg, cur in pairs:
        if avg.is_floating_point():
            avg_list, cur_list = groups.setdefault((avg.dtype, avg.device), ([], []))
            avg_list.append(avg.detach())
            cur_list.append(cur.detach())
        else:
            avg.copy_(cur)
    update = get_ema_multi_avg_fn(decay)
    for avg_list, cur_list in groups.values():
        update(avg_list, cur_list, None)
