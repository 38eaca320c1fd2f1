"""Checkpoint writing through Lightning's public extension points.

* :class:`AtomicCheckpointIO` is the Trainer's ``CheckpointIO`` plugin (``build.build_trainer``
  adds it to every run): each file is written through ``depthbench.atomic.atomic_write`` (temp
  file, fsync, rename), so a kill at any moment leaves the previous file or the new one, never
  half of one. It refuses to write weights that are not
  finite (a DivergenceError), so the last good checkpoint is never replaced by a NaN one.
* :class:`LastCheckpoint` keeps ``checkpoints/last.ckpt`` current: at every epoch end (after
  validation and the epoch's logging) and, with ``every_n_train_steps``, every n optimizer
  steps, whatever the monitored metric did. Lightning's ``ModelCheckpoint(save_last=True)``
  refreshes
  ``last.ckpt`` only at a step where a top-k checkpoint was saved, so it goes stale once the
  monitored metric plateaus; the best-by-metric file stays with ``ModelCheckpoint``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Checkpoint
from lightning.pytorch.plugins.io import TorchCheckpointIO

from depthbench.atomic import atomic_write
from depthbench.core.run_folder.layout import LAST_NAME
from depthbench.errors import DivergenceError


def nonfinite_tensors(state_dict: dict[str, Any], limit: int = 3) -> list[str]:
    """Names of (at most ``limit``) floating-point tensors holding a NaN or an infinity.

    One host sync per device when every tensor is finite (the usual case); the names are only
    looked up when something is not.
    """
    floats = {
        k: v for k, v in state_dict.items() if isinstance(v, torch.Tensor) and v.is_floating_point()
    }
    by_device: dict[torch.device, list[torch.Tensor]] = {}
    for t in floats.values():
        by_device.setdefault(t.device, []).append(t.detach())
    if all(bool(torch.stack([t.isfinite().all() for t in ts]).all()) for ts in by_device.values()):
        return []
    return [k for k, v in floats.items() if not bool(v.isfinite().all())][:limit]


class AtomicCheckpointIO(TorchCheckpointIO):
    """``TorchCheckpointIO`` that writes atomically and only finite weights.

    Remote paths (``s3://...``) go to Lightning's own writer, which cannot rename atomically.
    """

    def __init__(self) -> None:
        super().__init__()
        self._preloaded: tuple[str, dict[str, Any]] | None = None

    def preload(self, path: str | Path, checkpoint: dict[str, Any]) -> None:
        """Hand over ``checkpoint``, already read from ``path``: the next load of that path
        returns it instead of reading the file again (one read per command)."""
        self._preloaded = (os.path.abspath(path), checkpoint)

    def load_checkpoint(self, path: str | Path, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """The preloaded checkpoint of ``path`` (once), else Lightning's ``torch.load``."""
        preloaded, self._preloaded = self._preloaded, None
        if preloaded is not None and preloaded[0] == os.path.abspath(path):
            return preloaded[1]
        return super().load_checkpoint(path, *args, **kwargs)

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any | None = None
    ) -> None:
        """Write ``checkpoint`` to ``path`` (temp file, fsync, rename) if its weights are finite."""
        bad = nonfinite_tensors(checkpoint.get("state_dict", {}))
        if bad:
            name, step = os.path.basename(str(path)), checkpoint.get("global_step")
            raise DivergenceError(
                f"not saving {name} at step {step}: non-finite weights in {', '.join(bad)}; "
                "the last good checkpoint is kept"
            )
        if "://" in str(path):
            return super().save_checkpoint(checkpoint, path, storage_options)
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options: {storage_options}")
        with atomic_write(path, "wb") as f:  # readers see the old file or the new one
            torch.save(checkpoint, f)
        return None


class LastCheckpoint(Checkpoint):
    """Write ``<dirpath>/last.ckpt`` at every epoch end and, optionally, every n steps.

    ``every_n_train_steps``: also refresh it every n optimizer steps, so a SIGKILL mid-epoch
    loses fewer than n steps (null: epoch ends only). Like ``ModelCheckpoint``, nothing is
    written under ``fast_dev_run``, during the sanity check or before the first step. As a
    ``Checkpoint``, Lightning runs it after every other callback, so a step that the
    divergence guard stops is never saved.
    """

    def __init__(self, dirpath: str | Path, every_n_train_steps: int | None = None) -> None:
        if every_n_train_steps is not None and every_n_train_steps < 1:
            raise ValueError(f"every_n_train_steps must be >= 1 or null, got {every_n_train_steps}")
        self.dirpath = Path(dirpath)
        self.every_n_train_steps = every_n_train_steps
        self.last_model_path = ""  # set once written (read by the divergence message)
        self._epoch_end_saved_at = -1  # global step of the last epoch-end save

    @property
    def path(self) -> Path:
        """Where the checkpoint is written."""
        return self.dirpath / f"{LAST_NAME}.ckpt"

    def _save(self, trainer: L.Trainer) -> None:
        if (
            trainer.fast_dev_run
            or trainer.sanity_checking
            or trainer.state.fn != "fit"
            or trainer.global_step == 0
        ):
            return
        # through the strategy's CheckpointIO, rank 0 only; a full, resumable checkpoint
        trainer.save_checkpoint(self.path, weights_only=False)
        self.last_model_path = str(self.path)

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, i: int
    ) -> None:
        n = self.every_n_train_steps
        if n and trainer.global_step % n == 0:
            self._save(trainer)

    @staticmethod
    def _validates_once_per_epoch(trainer: L.Trainer) -> bool:
        # ModelCheckpoint's rule (_should_save_on_train_epoch_end): when validation runs once at
        # each epoch end, save after the epoch's own logging, so a resume neither repeats nor
        # drops the epoch-end rows; otherwise save after each validation
        return trainer.check_val_every_n_epoch == 1 and (
            trainer.val_check_interval == 1.0 or not sum(trainer.num_val_batches or [0])
        )

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if (
            trainer.state.fn == "fit"
            and not trainer.sanity_checking
            and not self._validates_once_per_epoch(trainer)
        ):
            self._save(trainer)
            self._epoch_end_saved_at = trainer.global_step

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._epoch_end_saved_at != trainer.global_step:  # no validation saved at this step
            self._save(trainer)
