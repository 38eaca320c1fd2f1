"""Hold named parts of a network at their initial weights while the rest trains.

A placebo for "the depth does the work": a 1,202-layer residual net whose blocks stay as they
were initialised, with only its stem and head trained, has every layer of the trained net and
none of what training puts in them (the lesson's claim 3 control).

    python train.py experiment=thousand_layers +callbacks.freeze_blocks._target_=\\
        depthbench.core.callbacks.freeze.FreezeAtInit '+callbacks.freeze_blocks.modules=[blocks]'
"""

from __future__ import annotations

from collections.abc import Sequence

import lightning as L
from lightning.pytorch.callbacks import BaseFinetuning

from depthbench.errors import ConfigError


class FreezeAtInit(BaseFinetuning):
    """``requires_grad=False`` on every parameter of ``pl_module.net.<name>`` for each of
    ``modules``, before training: no gradient, no optimizer step, no weight decay for them.

    Unlike ``BaseFinetuning.freeze`` it leaves batch-norm layers in the mode the Trainer gives
    them, so a frozen block normalises exactly as the trained net's would (batch statistics in
    training, running statistics in evaluation); only the weights are held.
    """

    def __init__(self, modules: Sequence[str]) -> None:
        super().__init__()
        if isinstance(modules, str) or not modules:
            raise ConfigError(f"FreezeAtInit.modules must be a list of names, got {modules!r}")
        self.modules = list(modules)

    def freeze_before_training(self, pl_module: L.LightningModule) -> None:
        """Hold the named modules' parameters before the optimizer is built."""
        net = pl_module.net
        for name in self.modules:
            part = getattr(net, name, None)
            if part is None:
                raise ConfigError(
                    f"FreezeAtInit: {type(net).__name__} has no part {name!r}; it has "
                    f"{', '.join(n for n, _ in net.named_children())}"
                )
            for p in part.parameters():
                p.requires_grad_(False)

    def finetune_function(self, *args: object, **kwargs: object) -> None:
        """Nothing is ever unfrozen."""
