"""Reliability callbacks: divergence stops the run, exact resume.

Checkpoints are written atomically and only with finite weights by
:class:`~depthbench.core.callbacks.checkpointing.AtomicCheckpointIO`.

* :class:`DivergenceGuard` stops the run with a :class:`~depthbench.errors.DivergenceError` when
  the training loss becomes NaN or infinite (on any process: every rank stops at the same step),
  naming the step and the likely causes, and keeps that step and the last finite loss for
  ``metrics.json``. Lightning runs checkpoint callbacks
  after all others, so the NaN step is never checkpointed. ``build.run_callbacks`` adds one to
  every run whose callbacks have none (``callbacks=none`` included).
* :class:`ExactResume` restores each process's random generators and the training loader's
  position, so a resumed run (even one killed mid-epoch) equals an uninterrupted one in
  deterministic mode.
"""

from __future__ import annotations

import math
import os
import random
import sys
from typing import Any

import lightning as L
import torch

from depthbench.core.callbacks.checkpointing import nonfinite_tensors
from depthbench.errors import DivergenceError


def nonfinite_parameters(module: torch.nn.Module, limit: int = 3) -> list[str]:
    """Names of (at most ``limit``) parameters holding a NaN or an infinity (one host sync)."""
    return nonfinite_tensors(dict(module.named_parameters()), limit)


def _last_checkpoint(trainer: L.Trainer) -> str | None:
    for cb in trainer.checkpoint_callbacks:
        path = getattr(cb, "last_model_path", "") or getattr(cb, "best_model_path", "")
        if path and os.path.isfile(path):
            return path
    return None


def divergence_message(
    trainer: L.Trainer,
    pl_module: L.LightningModule,
    value: float,
    step: int | None = None,
    rank: int | None = None,
) -> str:
    """One line: where the loss diverged, the likely causes with this run's values, what's kept.

    ``step``: the global step of the non-finite loss (default: the trainer's current step);
    ``rank``: the process that saw it, named when the run has more than one.
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
    where = f" on rank {rank}" if rank is not None and trainer.world_size > 1 else ""
    return (
        f"training loss became {value} at step {trainer.global_step if step is None else step}"
        f"{where} (epoch {trainer.current_epoch}); likely causes: {'; '.join(causes)}; "
        f"last good checkpoint: {kept or 'none saved yet'}"
    )


_NO_STEP = 2**62  # "no non-finite loss yet", larger than any encoded step
_KINDS = (math.nan, math.inf, -math.inf)  # the non-finite value, encoded as its index


class DivergenceGuard(L.Callback):
    """Stop training with a DivergenceError as soon as the training loss is NaN or infinite.

    Every step, the first non-finite step and the last finite loss are kept on the device (no
    host sync). Every ``check_every_n_steps`` steps they are read with one host sync, after a
    minimum over all processes: a NaN on any rank stops every rank at the same step, so no rank
    is left waiting in a collective. A single process on a CPU that checks every step reads the
    loss as a Python float instead (no sync to save there; a dozen small tensor ops less a step).
    ``check_every_n_steps=None`` (default): every step on a CPU, every
    ``trainer.log_every_n_steps`` steps on an accelerator. The recorded step is always that
    of the first non-finite loss (on any rank); with n > 1 training stops at the next check. At
    the end of training the guard also checks what a step check can miss: the final epoch's
    mean loss and the weights (again decided over all processes).

    What it saw is kept for the run's ``metrics.json``: ``diverged_at_step`` (the global step,
    as logged with ``train/loss``, of the first non-finite loss; None while training is fine)
    and ``last_finite_loss`` (this process's; None until a finite loss was seen).
    """

    def __init__(self, check_every_n_steps: int | None = None) -> None:
        if check_every_n_steps is not None and check_every_n_steps < 1:
            raise ValueError(f"check_every_n_steps must be >= 1 or null, got {check_every_n_steps}")
        self.check_every_n_steps = check_every_n_steps
        self._every = check_every_n_steps or 1  # resolved at on_train_start
        self._diverged_at: int | None = None
        self._step = 0  # the global step of the current batch (before its optimizer step)
        # on the device: first non-finite step (_NO_STEP: none), its loss, the last finite loss
        self._bad_step: torch.Tensor | None = None
        self._bad_value: torch.Tensor | None = None
        self._last_finite: torch.Tensor | None = None
        # a single CPU process: the same three as Python values, read every step
        self._on_host = False
        self._host_bad: tuple[int, float] | None = None
        self._host_last_finite: float | None = None

    @property
    def diverged_at_step(self) -> int | None:
        """The step of the first non-finite loss seen, also one not yet read from the device
        (another callback, e.g. the checkpoint's weight check, may have stopped the run first)."""
        if self._diverged_at is None and self._host_bad is not None:
            return self._host_bad[0]
        if self._diverged_at is None and self._bad_step is not None:
            step = int(self._bad_step)
            return None if step == _NO_STEP else step
        return self._diverged_at

    @property
    def last_finite_loss(self) -> float | None:
        """The last finite training loss seen by this process (one host sync)."""
        if self._on_host:
            return self._host_last_finite
        value = None if self._last_finite is None else float(self._last_finite)
        return value if value is not None and math.isfinite(value) else None

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._diverged_at = None
        self._bad_step = self._bad_value = self._last_finite = None
        self._host_bad = self._host_last_finite = None
        self._step = trainer.global_step
        on_cpu = trainer.strategy.root_device.type == "cpu"
        self._every = self.check_every_n_steps or (1 if on_cpu else trainer.log_every_n_steps)
        # reading every step costs nothing more where the guard checks every step anyway
        self._on_host = on_cpu and trainer.world_size == 1 and self._every == 1

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, i: int
    ) -> None:
        self._step = trainer.global_step

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, i: int
    ) -> None:
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if isinstance(loss, torch.Tensor):
            self._record(loss.detach().float())
        if (self._step + 1) % self._every == 0:  # the same steps on every rank
            self._check(trainer, pl_module)

    def _record(self, loss: torch.Tensor) -> None:
        if self._on_host:
            value = float(loss)
            if math.isfinite(value):
                self._host_last_finite = value
            elif self._host_bad is None:
                self._host_bad = (self._step, value)
            return
        if self._bad_step is None or self._bad_value is None or self._last_finite is None:
            self._bad_step = torch.full((), _NO_STEP, dtype=torch.long, device=loss.device)
            self._bad_value, self._last_finite = loss.clone(), torch.full_like(loss, math.nan)
        finite = torch.isfinite(loss)
        first = ~finite & (self._bad_step == _NO_STEP)
        self._bad_step = torch.where(first, self._step, self._bad_step)
        self._bad_value = torch.where(first, loss, self._bad_value)
        self._last_finite = torch.where(finite, loss, self._last_finite)

    def _check(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Raise on every rank if any rank holds a non-finite step (one reduction, one sync)."""
        if self._on_host:
            if self._host_bad is not None:
                self._diverge(trainer, pl_module, self._host_bad[1], self._host_bad[0])
            return
        world, rank = trainer.world_size, trainer.global_rank
        if self._bad_step is None or self._bad_value is None:
            key = torch.full((), _NO_STEP, dtype=torch.long, device=pl_module.device)
        else:  # (step, kind of value, rank) in one integer, so one minimum finds all three
            v = self._bad_value
            kind = torch.where(torch.isnan(v), 0, torch.where(v > 0, 1, 2))
            encoded = (self._bad_step * len(_KINDS) + kind) * world + rank
            key = torch.where(self._bad_step == _NO_STEP, _NO_STEP, encoded)
        key = int(trainer.strategy.reduce(key, reduce_op="min"))
        if key != _NO_STEP:
            step, kind, bad_rank = key // (world * 3), key // world % 3, key % world
            self._diverge(trainer, pl_module, _KINDS[kind], step, bad_rank)

    def _diverge(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        value: float,
        step: int,
        rank: int | None = None,
    ) -> None:
        self._diverged_at = step
        raise DivergenceError(divergence_message(trainer, pl_module, value, step, rank))

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._check(trainer, pl_module)  # the last (< n) steps since the previous check
        metrics = trainer.callback_metrics  # epoch means, synced over ranks (sync_dist)
        bad_mean = [(k, float(metrics[k])) for k in ("train/loss_epoch", "train/loss")
                    if k in metrics and not math.isfinite(float(metrics[k]))]  # fmt: skip
        bad = nonfinite_parameters(pl_module)
        if not trainer.strategy.reduce_boolean_decision(bool(bad_mean or bad), all=False):
            return
        if bad_mean:  # every step's loss was finite, yet not their mean (e.g. a sum overflowed)
            self._diverge(trainer, pl_module, bad_mean[0][1], self._step)
        self._diverged_at = self._step
        kept = _last_checkpoint(trainer)
        where = f" {', '.join(bad)}" if bad else " the weights of another rank"
        raise DivergenceError(
            f"non-finite weights in{where} at the end of training (step "
            f"{trainer.global_step}); last good checkpoint: {kept or 'none saved yet'}"
        )


class ExactResume(L.Callback):
    """Restore what a Lightning resume misses, so a resumed run equals an uninterrupted one.

    * the torch, CUDA and Python random generators (dropout masks, augmentations) of every
      process, saved with each checkpoint as a list indexed by global rank; the CUDA state is
      that of the process's current device only, so a resume on fewer GPUs works and each rank
      gets back its own state. A rank the checkpoint has no state for (more processes now)
      keeps its seeded generators; CUDA state is skipped on a machine without CUDA;
    * the train loader's position (epoch and batch, see ``TensorBatchLoader.state_dict``).
      Lightning saves it, but when ``configure_optimizers`` asks for
      ``trainer.estimated_stepping_batches`` (our schedulers do) the loader is built before the
      checkpoint is read and the saved position is never applied (lightning 2.6); it is applied
      here, at ``on_train_start``, before the first batch is drawn; from a checkpoint saved at
      an epoch's end the next epoch starts from its first batch.
    """

    def __init__(self) -> None:
        self._rank = 0

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self._rank = trainer.global_rank  # load_state_dict gets no trainer

    @staticmethod
    def _own_state() -> dict[str, Any]:
        state: dict[str, Any] = {"torch": torch.get_rng_state(), "python": random.getstate()}
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            state["cuda"] = torch.cuda.get_rng_state()  # the current device's
        return state

    def state_dict(self) -> dict[str, Any]:
        """``{"ranks": [state of rank 0, rank 1, ...]}``; a collective under DDP (Lightning
        builds the checkpoint on every rank, so every rank is here at the same time)."""
        own = self._own_state()
        dist = torch.distributed
        if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
            return {"ranks": [own]}
        gathered: list[Any] = [None] * dist.get_world_size()
        dist.all_gather_object(gathered, own)
        return {"ranks": gathered}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        ranks = state_dict.get("ranks", [state_dict])  # an older file: one process's state
        if self._rank >= len(ranks):
            return
        state = ranks[self._rank]
        torch.set_rng_state(state["torch"])
        random.setstate(state["python"])
        cuda = state.get("cuda")
        if isinstance(cuda, (list, tuple)):  # an older file: every visible device's state
            index = torch.cuda.current_device() if torch.cuda.is_available() else len(cuda)
            cuda = cuda[index] if index < len(cuda) else None
        if cuda is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state(cuda)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        fit_loop = trainer.fit_loop
        pending = getattr(fit_loop, "_combined_loader_states_to_load", None)
        loader = getattr(fit_loop, "_combined_loader", None)
        if pending and loader is not None:
            if not fit_loop.restarted_mid_epoch:
                # saved at an epoch's end, also one cut short by limit_train_batches (the loader
                # then has batches left): the resumed run starts the next epoch from its start
                pending = [{**s, "batches": sys.maxsize} if "batches" in s else s for s in pending]
            loader._load_state_dicts(pending)
            fit_loop._combined_loader_states_to_load = []
