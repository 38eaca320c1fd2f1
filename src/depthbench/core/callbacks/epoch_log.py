"""``EpochLog``: one plain line per epoch in the run log, and the training-only clock.

Meant for logs read after the fact (SLURM, ``nohup``, CI), where a progress bar is noise: a start
line (parameters, trainable parameters, where outputs go), then per epoch ``epoch 3/20  train
loss 0.4123 acc 0.8710  val loss 0.3981 acc 0.8833  2.1 s  5,120 samples/s``. Lines go to the
``depthbench`` logger, so Hydra writes them to ``<run>/<task>.log`` as well as the console.

``train_seconds`` counts training only: the clock stops while validation runs, so the samples
per second it gives (``metrics.json``'s ``train_samples_per_second``) are training throughput.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

import lightning as L

log = logging.getLogger("depthbench")


def _value(metrics: dict[str, Any], *keys: str) -> float | None:
    for key in keys:
        if key in metrics:
            return float(metrics[key])
    return None


def _loss_acc(loss: float | None, acc: float | None) -> str:
    parts = [f"loss {loss:.4f}" if loss is not None else "", ""]
    parts[1] = f"acc {acc:.4f}" if acc is not None else ""
    return " ".join(p for p in parts if p) or "-"


class EpochLog(L.Callback):
    """Log a start line and one line per training epoch; time training without validation.

    A line is written once the epoch's metrics exist, after the LightningModule's own
    ``on_train_epoch_end`` has logged them: at the start of the next epoch or at the end of
    training (callbacks' ``on_train_epoch_end`` runs before the module's).
    """

    def __init__(self) -> None:
        self.train_seconds = 0.0  # all epochs, validation excluded
        self._since: float | None = None  # the clock runs while this is set
        self._in_epoch = False
        self._epoch_seconds = 0.0
        self._samples_at_start = 0
        self._batch_samples = 0  # for modules without a ``train_samples`` counter
        self._val: dict[str, float | None] = {}
        self._pending: dict[str, Any] | None = None
        self._batches_in_epoch = 0

    def _samples(self, pl_module: L.LightningModule) -> int:
        return int(getattr(pl_module, "train_samples", self._batch_samples))

    def _stop_clock(self) -> None:
        if self._since is not None:
            self._epoch_seconds += time.perf_counter() - self._since
            self._since = None

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """The start line, after any backbone freezing (so the trainable count is true)."""
        if not trainer.is_global_zero:
            return
        total = sum(p.numel() for p in pl_module.parameters())
        trainable = sum(p.numel() for p in pl_module.parameters() if p.requires_grad)
        net = getattr(pl_module, "net", pl_module)
        epochs = "unlimited" if trainer.max_epochs in (None, -1) else trainer.max_epochs
        log.info(
            "train %s: %s parameters, %s trainable; up to %s epochs of %s steps; outputs in %s",
            type(net).__name__, f"{total:,}", f"{trainable:,}", epochs,
            trainer.num_training_batches, trainer.default_root_dir,
        )  # fmt: skip

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._flush(trainer)
        self._epoch_seconds, self._val = 0.0, {}
        self._samples_at_start = self._samples(pl_module)
        self._in_epoch, self._since = True, time.perf_counter()
        self._batches_in_epoch = 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch: Any, batch_idx: int) -> None:
        self._batches_in_epoch += 1
        if isinstance(batch, (list, tuple)) and len(batch) > 1 and hasattr(batch[1], "__len__"):
            self._batch_samples += len(batch[1])

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._stop_clock()

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        metrics = trainer.callback_metrics
        self._val = {"loss": _value(metrics, "val/loss"), "acc": _value(metrics, "val/acc")}
        if self._in_epoch:  # validation inside a training epoch: back to training
            self._since = time.perf_counter()

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._stop_clock()
        self._in_epoch = False
        self.train_seconds += self._epoch_seconds
        if not self._batches_in_epoch:  # a resume from an epoch's end: nothing trained here
            return
        self._pending = {
            "epoch": trainer.current_epoch + 1,
            "seconds": self._epoch_seconds,
            "samples": self._samples(pl_module) - self._samples_at_start,
            "val": dict(self._val),
        }

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._flush(trainer)

    def _flush(self, trainer: L.Trainer) -> None:
        """Write the finished epoch's line (its train metrics are logged by now)."""
        pending, self._pending = self._pending, None
        if pending is None or not trainer.is_global_zero:
            return
        metrics = trainer.callback_metrics
        train = _loss_acc(
            _value(metrics, "train/loss_epoch", "train/loss"), _value(metrics, "train/acc")
        )
        val = pending["val"]
        val_text = _loss_acc(val.get("loss"), val.get("acc")) if val else "-"
        seconds = pending["seconds"]
        rate = f"{pending['samples'] / seconds:,.0f} samples/s" if seconds > 0 else "- samples/s"
        epochs = "" if trainer.max_epochs in (None, -1) else f"/{trainer.max_epochs}"
        log.info(
            "epoch %d%s  train %s  val %s  %.1f s  %s",
            pending["epoch"], epochs, train, val_text, seconds, rate,
        )  # fmt: skip


def summary_line(metrics: dict[str, Any]) -> str:
    """The end-of-run line: what was trained, for how long, how fast, how well, and where."""

    def num(key: str) -> str:
        value = metrics.get(key)
        return "n/a" if value is None or math.isnan(value) else f"{value:.4f}"

    rate = metrics.get("train_samples_per_second")
    return (
        f"{metrics['model']} ({metrics['params']:,} params) on {metrics['data']}: "
        f"{metrics['epochs']} epochs, {metrics['steps']} steps in {metrics['fit_seconds']:.1f} s "
        f"(training {metrics['train_seconds']:.1f} s, "
        f"{'n/a' if rate is None else f'{rate:,.0f}'} samples/s); val/acc {num('val/acc')}, "
        f"test/acc {num('test/acc')}; outputs in {metrics['output_dir']}"
    )
