"""The benchmarks' measuring callbacks, each writing its record to ``out_file`` as JSON (read by
``bench.harness.train_run`` after ``run.train`` returns).

``StepTimer`` times training steps and epochs from the inside with two ``time.perf_counter()``
reads per step and nothing else, so the timed train path is the real one.
``TargetAccuracyStop`` scores the test split after every epoch and stops at a target accuracy.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch


class StepTimer(L.Callback):
    """Time steps after ``warmup_steps`` (end of one step to end of the next) and whole epochs.

    The step window runs from the end of step ``warmup_steps - 1`` to the end of the last step,
    so it covers everything the framework does per step: fetch, transfer, forward, backward,
    optimizer, scheduler, logging and callbacks.
    """

    def __init__(
        self,
        out_file: str,
        warmup_steps: int = 10,
        last_step: int | None = None,
        sync_cuda: bool = False,
    ) -> None:
        self.out_file = out_file
        self.warmup_steps = warmup_steps
        self.last_step = last_step  # with sync_cuda: the step at which to wait for the GPU
        self.sync_cuda = sync_cuda
        self.steps = 0
        self.window_start: float | None = None
        self.window_end: float | None = None
        self.cpu_start = self.cpu_end = 0.0  # process CPU time: robust to other work running
        self.step_times: list[float] = []  # wall seconds of each timed step
        self._last = 0.0
        self.epoch_seconds: list[float] = []
        self._epoch_start = 0.0

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._epoch_start = time.perf_counter()

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, i: int
    ) -> None:
        self.steps += 1
        if self.sync_cuda and self.steps in (self.warmup_steps, self.last_step):
            torch.cuda.synchronize()  # only at the window's ends: no sync inside the window
        now, cpu = time.perf_counter(), time.process_time()
        if self.steps == self.warmup_steps:
            self.window_start, self.cpu_start = now, cpu
        elif self.steps > self.warmup_steps:
            self.window_end, self.cpu_end = now, cpu
            self.step_times.append(now - self._last)
        self._last = now

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.epoch_seconds.append(time.perf_counter() - self._epoch_start)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        timed = self.steps - self.warmup_steps
        step_s = cpu_s = None
        if timed > 0 and self.window_start is not None and self.window_end is not None:
            step_s = (self.window_end - self.window_start) / timed
            cpu_s = (self.cpu_end - self.cpu_start) / timed
        result = {
            "step_seconds": step_s,
            "step_cpu_seconds": cpu_s,
            "timed_steps": timed,
            "step_times": self.step_times,
            "epoch_seconds": self.epoch_seconds,
        }
        Path(self.out_file).write_text(json.dumps(result))


class TargetAccuracyStop(L.Callback):
    """Score the test split after every training epoch; stop the fit once it reaches ``target``.

    For time-to-accuracy measurements: the score is the module's validation/test prediction
    (``Classifier.eval_logits``: EMA weights and flip test-time augmentation when on) under the
    trainer's precision, summed on the device and read once per epoch. ``out_file`` gets the
    seconds since the fit started, the accuracy per epoch, and when (if) the target was reached.
    ``max_batches`` scores only the first batches (tiny dry runs).
    """

    def __init__(self, target: float, out_file: str, max_batches: int | None = None) -> None:
        self.target, self.out_file, self.max_batches = target, out_file, max_batches
        self.curve: list[dict[str, float]] = []
        self.reached_at: dict[str, float] | None = None
        self._start = 0.0

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start = time.perf_counter()

    @torch.no_grad()
    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        was_training = pl_module.training
        pl_module.eval()
        correct, count = torch.zeros((), device=pl_module.device, dtype=torch.long), 0
        with trainer.precision_plugin.forward_context():
            for i, (x, y) in enumerate(trainer.datamodule.test_dataloader()):
                if self.max_batches is not None and i >= self.max_batches:
                    break
                x, y = x.to(pl_module.device), y.to(pl_module.device)  # no-ops when resident
                correct += (pl_module.eval_logits(x).argmax(-1) == y).sum()
                count += len(y)
        pl_module.train(was_training)
        acc = float(correct) / max(count, 1)  # one host read per epoch
        point = {"epoch": trainer.current_epoch + 1, "test_acc": acc,
                 "seconds": time.perf_counter() - self._start}  # fmt: skip
        self.curve.append(point)
        if acc >= self.target and self.reached_at is None:
            self.reached_at = point
            trainer.should_stop = True
        Path(self.out_file).write_text(json.dumps({
            "curve": self.curve, "reached": self.reached_at is not None,
            "seconds_to_target": None if self.reached_at is None else self.reached_at["seconds"],
        }, indent=1))  # fmt: skip
