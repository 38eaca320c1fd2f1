"""``Heartbeat``: a plain progress line every N steps or every so many seconds.

With the progress bar off (a SLURM, ``nohup`` or CI log; ``build.progress_bar_wanted``) the only
other lines are per epoch, and one epoch of a large run takes many minutes: the log looks hung.
The heartbeat writes ``step 1,200/8,600 (epoch 3/20)  loss 0.4123  5,120 samples/s  ETA 4 min``
to the ``depthbench`` logger at most every ``every_seconds`` seconds (and every
``every_n_steps`` steps when set). ``build.run_callbacks`` keeps it only when the bar is off.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

import lightning as L

log = logging.getLogger("depthbench")


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


class Heartbeat(L.Callback):
    """Log ``step s/total (epoch e/E)  loss L  samples/s  ETA`` while training.

    Args:
        every_seconds: a line at most this often (seconds); ``null`` for steps only.
        every_n_steps: also a line every N optimizer steps; ``null`` for time only.
    """

    def __init__(self, every_seconds: float | None = 30.0, every_n_steps: int | None = None):
        if every_seconds is None and every_n_steps is None:
            raise ValueError("Heartbeat needs every_seconds or every_n_steps")
        self.every_seconds = every_seconds
        self.every_n_steps = every_n_steps
        self._last_time = 0.0
        self._last_step = 0
        self._last_samples = 0

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._last_time = time.perf_counter()
        self._last_step = trainer.global_step
        self._last_samples = int(getattr(pl_module, "train_samples", 0))

    def _due(self, step: int, now: float) -> bool:
        by_steps = self.every_n_steps is not None and step % self.every_n_steps == 0
        by_time = self.every_seconds is not None and now - self._last_time >= self.every_seconds
        return by_steps or by_time

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
        batch_idx: int,
    ) -> None:  # fmt: skip
        step, now = trainer.global_step, time.perf_counter()
        if not trainer.is_global_zero or step == self._last_step or not self._due(step, now):
            return
        seconds = max(now - self._last_time, 1e-9)
        samples = int(getattr(pl_module, "train_samples", 0))
        steps_per_second = (step - self._last_step) / seconds
        total = trainer.estimated_stepping_batches
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        parts = [f"step {step:,}" + (f"/{int(total):,}" if math.isfinite(total) else "")]
        if trainer.max_epochs not in (None, -1):
            parts[0] += f" (epoch {trainer.current_epoch + 1}/{trainer.max_epochs})"
        if loss is not None:
            parts.append(f"loss {float(loss):.4f}")
        if samples > self._last_samples:
            parts.append(f"{(samples - self._last_samples) / seconds:,.0f} samples/s")
        if math.isfinite(total) and steps_per_second > 0:
            parts.append(f"ETA {_duration((total - step) / steps_per_second)}")
        log.info("%s", "  ".join(parts))
        self._last_time, self._last_step, self._last_samples = now, step, samples
