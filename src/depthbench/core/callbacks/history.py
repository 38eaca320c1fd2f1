"""``KeepHistory``: the loggers' history continues across a resume, and never lags a checkpoint.

``build.run_callbacks`` adds it to every run. With
:class:`~depthbench.core.run_folder.history.ResumableCSVLogger` (``logger=csv``) it makes a resumed
run's ``csv/metrics.csv`` equal an uninterrupted run's:

* at ``on_train_start`` (a resumed trainer's ``global_step`` is restored by then) the rows at or
  after the step the run starts from are dropped: the pre-kill run wrote them after its last
  checkpoint, and the resumed run writes them again;
* every checkpoint first flushes the loggers, so the rows a checkpoint covers are on disk before
  it is (``conf/logger/csv.yaml`` also sets ``flush_logs_every_n_steps: 1``, so a SIGKILL loses
  at most the rows of the step it hits).

The wandb run id goes into every checkpoint too (``tracking.WANDB_ID_KEY``), so a run resumed
from a checkpoint into a new folder continues the same wandb run.
"""

from __future__ import annotations

from typing import Any

import lightning as L
from lightning.pytorch.loggers import WandbLogger

from depthbench.core.run_folder.history import ResumableCSVLogger
from depthbench.core.tracking import WANDB_ID_KEY


class KeepHistory(L.Callback):
    """Continue the CSV history at the resumed step; flush the loggers before each checkpoint."""

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        for logger in trainer.loggers:
            if isinstance(logger, ResumableCSVLogger):
                logger.keep_rows_before(trainer.global_step)

    def on_save_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        for logger in trainer.loggers:
            logger.save()
            if isinstance(logger, WandbLogger) and logger.version:
                checkpoint[WANDB_ID_KEY] = str(logger.version)
