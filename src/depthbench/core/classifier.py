"""The one generic LightningModule: a classifier around any plain ``nn.Module`` network."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics.classification import MulticlassAccuracy

from depthbench.core.callbacks.finetune import optimizer_param_groups
from depthbench.errors import ConfigError
from depthbench.optim.ema import ema_copy, ema_update, warmup_decay

OptimizerFactory = Callable[..., torch.optim.Optimizer]
SchedulerFactory = Callable[..., torch.optim.lr_scheduler.LRScheduler]
EPOCH_SUMS_KEY = "depthbench_train_epoch_sums"  # the current epoch's training sums, in checkpoints


class Classifier(L.LightningModule):
    """Cross-entropy training of ``net`` with accuracy per stage.

    ``optimizer`` is a partial taking the parameters; ``scheduler`` (or None) a partial taking
    ``(optimizer, total_steps)``; both come from the ``optimizer/`` and ``scheduler/`` groups.
    Logged: ``train/loss``, ``train/acc``, ``val/loss``, ``val/acc``, ``test/loss``, ``test/acc``.
    A batch is ``(x, y)`` where ``x`` is a tensor, or a dict of tensors passed as keywords.

    ``ema_decay`` (e.g. 0.99; None = off): validation and test use an exponential moving
    average of the weights (``ema.py``), updated after every optimizer step and saved as
    ``ema_net.*`` in the checkpoint, which ``checkpoint.load_net`` prefers. ``tta_flip``:
    validation and test logits are the mean of the logits of each image and its horizontal
    mirror (two views, one batched forward). Logits, not softmax probabilities, are averaged:
    the result stays a logit that the same cross-entropy and accuracy read, and it is what
    airbench does (``0.5 * net(x) + 0.5 * net(x.flip(-1))``).
    """

    def __init__(
        self,
        net: nn.Module,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        num_classes: int | None = None,
        label_smoothing: float = 0.0,
        compile: bool = False,
        channels_last: bool = False,
        compile_backend: str = "inductor",
        ema_decay: float | None = None,
        tta_flip: bool = False,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["net"])
        self.net = net
        num_classes = num_classes or net.head.out_features
        # training accuracy is two on-device counters (see training_step), not a torchmetrics
        # object: its per-batch update costs ~5x more Python work (~130 us vs ~25 us on a CPU)
        self.val_acc = MulticlassAccuracy(num_classes, average="micro")
        self.test_acc = MulticlassAccuracy(num_classes, average="micro")
        self.label_smoothing = label_smoothing
        # channels_last (NHWC) lets cuDNN use tensor-core convolutions under AMP; weights are
        # converted here, 4-D inputs in forward. A no-op for nets without 4-D weights.
        self.channels_last = channels_last
        if channels_last:
            net.to(memory_format=torch.channels_last)
        # compile=true compiles the training forward only, for one batch shape (the training
        # loader drops its last partial batch, see build.build_data): one graph for the whole
        # fit. Evaluation runs eagerly, so its other batch sizes and eval-mode layers cost no
        # recompile. The compiled function is a plain attribute, not a submodule: the state dict
        # (and every checkpoint) has the same keys with and without compile.
        self._compiled_forward = (
            torch.compile(net.forward, backend=compile_backend, dynamic=False) if compile else None
        )
        # set by a callback that hooks into the net for the next training step (diagnostics'
        # ActivationStats): that step runs eagerly, with no hook or .item() inside a graph
        self.eager_next_step = False
        if ema_decay is not None and not 0.0 < ema_decay < 1.0:
            raise ConfigError(f"module.ema_decay must be in (0, 1) or null, got {ema_decay!r}")
        self.ema_decay, self.tta_flip = ema_decay, bool(tta_flip)
        self.ema_net = ema_copy(net) if ema_decay is not None else None
        self.train_samples = 0  # examples seen by training_step in this process (a plain int)
        # this epoch's sums on the device: loss x batch size, correct predictions; and the count
        self._train_loss_sum: torch.Tensor | None = None
        self._train_correct: torch.Tensor | None = None
        self._train_count = 0
        self._saved_epoch_sums: dict[str, Any] | None = None  # from a resumed checkpoint

    def forward(self, x: torch.Tensor | dict[str, torch.Tensor]) -> torch.Tensor:
        return self._call(self.net, x)

    def _call(self, fn: Callable[..., torch.Tensor], x: Any) -> torch.Tensor:
        if self.channels_last and isinstance(x, torch.Tensor) and x.ndim == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return fn(**x) if isinstance(x, dict) else fn(x)

    def eval_logits(self, x: torch.Tensor | dict[str, torch.Tensor]) -> torch.Tensor:
        """Validation/test logits: of the EMA weights if on, averaged over flips if on."""

        net = self.net if self.ema_net is None else self.ema_net

        def logits_of(inputs: Any) -> torch.Tensor:
            return self._call(net, inputs)

        if not self.tta_flip:
            return logits_of(x)
        if not isinstance(x, torch.Tensor) or x.ndim != 4:
            raise ConfigError("module.tta_flip needs image batches (B, C, H, W)")
        both = logits_of(torch.cat([x, x.flip(-1)]))  # (2B, classes): images, then mirrors
        return both.view(2, len(x), -1).mean(0)  # (B, classes)

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        if self.ema_net is not None:  # global_step already counts this step's optimizer step
            decay = warmup_decay(self.ema_decay, self.trainer.global_step)
            ema_update(self.ema_net, self.net, decay)

    def _step(self, batch: Any, stage: str, metric: MulticlassAccuracy) -> torch.Tensor:
        """Log the batch's loss and accuracy; return its (detached) logits."""
        x, y = batch[0], batch[1]
        logits = self.eval_logits(x)
        loss = F.cross_entropy(logits, y, label_smoothing=self.label_smoothing)
        metric.update(logits.detach(), y)  # update only: the per-batch value is never used
        self.log(f"{stage}/loss", loss, on_epoch=True, prog_bar=True, batch_size=len(y),
                 sync_dist=True)  # fmt: skip
        self.log(f"{stage}/acc", metric, on_step=False, on_epoch=True, prog_bar=True)
        return logits.detach()

    # Training is the hot path. Each ``self.log`` call moves Lightning's result store to the
    # value's device, so per step the loss and accuracy are only summed on the device (no host
    # sync) and logged seldom: ``train/loss_step`` every ``log_every_n_steps`` steps
    # (+ ``train/loss`` on the progress bar), ``train/loss_epoch`` and ``train/acc`` at the end
    # of the epoch. ``python train.py +trainer.profiler=simple`` shows where a step's time goes.
    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch[0], batch[1]
        n = len(y)
        self.train_samples += n
        compiled, eager = self._compiled_forward, self.eager_next_step
        self.eager_next_step = False
        logits = self._call(compiled if compiled is not None and not eager else self.net, x)
        loss = F.cross_entropy(logits, y, label_smoothing=self.label_smoothing)
        detached = loss.detach()
        weighted, correct = detached * n, (logits.detach().argmax(-1) == y).sum()
        if self._train_loss_sum is None or self._train_correct is None:
            self._train_loss_sum, self._train_correct = weighted, correct
        else:
            self._train_loss_sum, self._train_correct = (
                self._train_loss_sum + weighted, self._train_correct + correct
            )  # fmt: skip
        self._train_count += n
        if (self.global_step + 1) % self.trainer.log_every_n_steps == 0:
            self.log("train/loss_step", detached, logger=True, prog_bar=False)
            if self.trainer.progress_bar_callback is not None:
                # Lightning turns every progress-bar value into a Python number at every batch
                # end until the epoch ends; a CPU copy (one sync, here) keeps that off the GPU
                self.log("train/loss", detached.cpu(), logger=False, prog_bar=True)
        return loss

    def on_train_epoch_start(self) -> None:
        self._train_loss_sum, self._train_correct, self._train_count = None, None, 0

    # The epoch's sums travel with a checkpoint, so an epoch resumed mid-way (Lightning calls no
    # on_train_epoch_start then) logs the same train/loss_epoch and train/acc as an
    # uninterrupted one. Plain tensors and ints: the checkpoint still loads with weights_only.
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint[EPOCH_SUMS_KEY] = {"count": self._train_count, "loss_sum": self._train_loss_sum,
                                      "correct": self._train_correct}  # fmt: skip

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self._saved_epoch_sums = checkpoint.get(EPOCH_SUMS_KEY)

    def on_train_start(self) -> None:  # on the device by now
        saved, self._saved_epoch_sums = self._saved_epoch_sums, None
        if saved and saved["count"] and saved["loss_sum"] is not None:
            self._train_loss_sum = saved["loss_sum"].to(self.device)
            self._train_correct = saved["correct"].to(self.device)
            self._train_count = int(saved["count"])

    def on_train_epoch_end(self) -> None:
        if self._train_count and self._train_loss_sum is not None:
            n = self._train_count
            # sync_dist: the mean over processes under DDP (once per epoch, not per step)
            self.log("train/loss_epoch", self._train_loss_sum / n, prog_bar=False, sync_dist=True)
            self.log("train/acc", self._train_correct.float() / n, prog_bar=True, sync_dist=True)

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self._step(batch, "val", self.val_acc)

    def test_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        """The batch's logits, for ``on_test_batch_end`` callbacks (eval's confusion matrix)."""
        return self._step(batch, "test", self.test_acc)

    def configure_optimizers(self) -> Any:
        # one group; a fine-tuner's backbone that is unfrozen later gets a second, at lr 0
        groups = optimizer_param_groups(self)
        try:
            optimizer = self.hparams.optimizer(params=groups)
        except ValueError as e:  # torch validates lr, momentum, weight_decay ranges
            raise ConfigError(f"optimizer: {e}") from e
        if self.hparams.scheduler is None:
            return optimizer
        total = int(self.trainer.estimated_stepping_batches)
        scheduler = self.hparams.scheduler(optimizer=optimizer, total_steps=total)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }
