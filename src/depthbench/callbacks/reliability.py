"""Reliability callbacks: divergence stops the run, exact resume.

Checkpoints are written atomically and only with finite weights by
:class:`~depthbench.callbacks.checkpointing.AtomicCheckpointIO`.

* :class:`DivergenceGuard` stops the run with a :class:`~depthbench.errors.DivergenceError` when
  the training loss becomes NaN or infinite, naming the step and the likely causes, and keeps
  that step and the last finite loss for ``metrics.json``. Lightning runs checkpoint callbacks
  after all others, so the NaN step is never checkpointed. ``run.train`` adds one to every run
  whose callbacks have none (``callbacks=none`` included).
* :class:`ExactResume` restores the random generators and the training loader's position, so
  a resumed run (even one killed mid-epoch) equals an uninterrupted one in deterministic mode.
"""

from __future__ import annotations

import math
import os
import random
from typing import Any

import lightning as L
import torch

from depthbench.errors import DivergenceError


def nonfinite_parameters(module: torch.nn.Module, limit: int = 3) -> list[str]:
    """Names of (at most ``limit``) parameters holding a NaN or an infinity."""
    bad = []
    for name, p in module.named_parameters():
        if not bool(torch.isfinite(p.detach()).all()):
            bad.append(name)
            if len(bad) >= limit:
                break
    return bad


def _last_checkpoint(trainer: L.Trainer) -> str | None:
    for cb in trainer.checkpoint_callbacks:
        path = getattr(cb, "last_model_path", "") or getattr(cb, "best_model_path", "")
        if path and os.path.isfile(path):
            return path
    return None


def divergence_message(
    trainer: L.Trainer, pl_module: L.LightningModule, value: float, step: int | None = None
) -> str:
    """One line: where the loss diverged, the likely causes with this run's values, what's kept.

    ``step``: the global step of the non-finite loss (default: the trainer's current step).
    """
    lr = trainer.optimizers[0].param_groups[0]["lr"] if trainer.optimizers else float("nan")
    net = getattr(pl_module, "net", pl_module)
    depth, act = getattr(net, "depth", None), getattr(net, "activation", None)
    has_norm = any(isinstance(m, torch.nn.modules.batchnorm._NormBase) for m in net.modules())
    causes = [f"learning rate too high (lr={lr:.3g}: try 10x lower, warm-up or clipping)"]
    if depth is not None and not has_norm:
        causes.append(f"depth {depth} without normalisation (try model.batchnorm=true or a "
                      "residual model)")  # fmt: skip
    if act in ("sigmoid", "tanh"):
        causes.append(f"saturating {act} activations (try relu with kaiming init)")
    kept = _last_checkpoint(trainer)
    return (
        f"training loss became {value} at step {trainer.global_step if step is None else step} "
        f"(epoch {trainer.current_epoch}); likely causes: {'; '.join(causes)}; "
        f"last good checkpoint: {kept or 'none saved yet'}"
    )


class DivergenceGuard(L.Callback):
    """Stop training with a DivergenceError as soon as the training loss is NaN or infinite.

    ``check_every_n_steps=1`` (default) reads the loss every step: free on a CPU, one host
    sync per step on a GPU. A larger value keeps the first non-finite step and the last finite
    loss on the device and reads them every n steps (the checkpoint callback still never saves
    non-finite weights). At the end of training the guard also checks what a step check can
    miss: the final epoch's mean loss and the weights.

    What it saw is kept for the run's ``metrics.json``: ``diverged_at_step`` (the global step,
    as logged with ``train/loss``, of the first non-finite loss; None while training is fine)
    and ``last_finite_loss`` (None until a finite loss was seen).
    """

    def __init__(self, check_every_n_steps: int = 1) -> None:
        if check_every_n_steps < 1:
            raise ValueError(f"check_every_n_steps must be >= 1, got {check_every_n_steps}")
        self.check_every_n_steps = check_every_n_steps
        self._diverged_at: int | None = None
        self._step = 0  # the global step of the current batch (before its optimizer step)
        self._last_finite: float | torch.Tensor | None = None
        # check_every_n_steps > 1, on the device: first non-finite step (-1: none) and its loss
        self._bad_step: torch.Tensor | None = None
        self._bad_value: torch.Tensor | None = None

    @property
    def diverged_at_step(self) -> int | None:
        """The step of the first non-finite loss seen, also one not yet read from the device
        (another callback, e.g. the checkpoint's weight check, may have stopped the run first)."""
        if self._diverged_at is None and self._bad_step is not None and int(self._bad_step) >= 0:
            return int(self._bad_step)
        return self._diverged_at

    @property
    def last_finite_loss(self) -> float | None:
        """The last finite training loss seen (one host sync when it is kept on the device)."""
        value = self._last_finite
        value = float(value) if isinstance(value, torch.Tensor) else value
        return value if value is not None and math.isfinite(value) else None

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._diverged_at, self._last_finite = None, None
        self._bad_step = self._bad_value = None
        self._step = trainer.global_step

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, i: int
    ) -> None:
        self._step = trainer.global_step

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, i: int
    ) -> None:
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if not isinstance(loss, torch.Tensor):
            return
        loss = loss.detach()
        if self.check_every_n_steps == 1:
            value = float(loss)
            if math.isfinite(value):
                self._last_finite = value
                return
            self._diverge(trainer, pl_module, value, self._step)
        finite = torch.isfinite(loss)
        if self._bad_step is None or self._bad_value is None:
            self._bad_step = torch.full_like(loss, -1, dtype=torch.long)
            self._bad_value, self._last_finite = loss.clone(), torch.full_like(loss, math.nan)
        first = ~finite & (self._bad_step < 0)
        self._bad_step = torch.where(first, self._step, self._bad_step)
        self._bad_value = torch.where(first, loss, self._bad_value)
        self._last_finite = torch.where(finite, loss, self._last_finite)
        if (self._step + 1) % self.check_every_n_steps == 0:
            self._read(trainer, pl_module)

    def _read(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Raise if the device copy holds a non-finite step (one host sync)."""
        if self._bad_step is not None and self._bad_value is not None:
            step = int(self._bad_step)
            if step >= 0:
                self._diverge(trainer, pl_module, float(self._bad_value), step)

    def _diverge(
        self, trainer: L.Trainer, pl_module: L.LightningModule, value: float, step: int
    ) -> None:
        self._diverged_at = step
        raise DivergenceError(divergence_message(trainer, pl_module, value, step))

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._read(trainer, pl_module)  # the last (< n) steps since the previous read
        metrics = trainer.callback_metrics
        for key in ("train/loss_epoch", "train/loss"):
            if key in metrics and not math.isfinite(float(metrics[key])):
                # every step's loss was finite, yet not their mean (e.g. a sum overflowed)
                self._diverge(trainer, pl_module, float(metrics[key]), self._step)
        bad = nonfinite_parameters(pl_module)
        if bad:
            self._diverged_at = self._step
            kept = _last_checkpoint(trainer)
            raise DivergenceError(
                f"non-finite weights in {', '.join(bad)} at the end of training (step "
                f"{trainer.global_step}); last good checkpoint: {kept or 'none saved yet'}"
            )


class ExactResume(L.Callback):
    """Restore what a Lightning resume misses, so a resumed run equals an uninterrupted one.

    * the torch, CUDA and Python random generators (dropout masks, augmentations), saved with
      each checkpoint;
    * the train loader's position (epoch and batch, see ``TensorBatchLoader.state_dict``).
      Lightning saves it, but when ``configure_optimizers`` asks for
      ``trainer.estimated_stepping_batches`` (our schedulers do) the loader is built before the
      checkpoint is read and the saved position is never applied (lightning 2.6); it is applied
      here, at ``on_train_start``, before the first batch is drawn.
    """

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"torch": torch.get_rng_state(), "python": random.getstate()}
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        torch.set_rng_state(state_dict["torch"])
        random.setstate(state_dict["python"])
        if "cuda" in state_dict and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state_dict["cuda"])

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        fit_loop = trainer.fit_loop
        pending = getattr(fit_loop, "_combined_loader_states_to_load", None)
        loader = getattr(fit_loop, "_combined_loader", None)
        if pending and loader is not None:
            loader._load_state_dicts(pending)
            fit_loop._combined_loader_states_to_load = []
