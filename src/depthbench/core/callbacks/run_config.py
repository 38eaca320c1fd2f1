"""The run's resolved config, carried by every checkpoint and sent to every logger.

- ``ConfigInCheckpoint`` stores the config and the data spec in each checkpoint, so ``eval.py``
  and the fine-tuner rebuild the network without the run folder (``checkpoint.load_net``).
- ``LogResolvedConfig`` logs the resolved, redacted config to the loggers.

``build.run_callbacks`` adds both to every run.
"""

from __future__ import annotations

from typing import Any

import lightning as L

# the checkpoint keys this callback writes, defined beside their reader (light to import)
from depthbench.core.run_folder.checkpoint import CONFIG_KEY, DATA_SPEC_KEY
from depthbench.core.run_folder.redaction import redact
from depthbench.data.spec import data_spec


class ConfigInCheckpoint(L.Callback):
    """Store the resolved run config in each checkpoint and keep its hyper-parameters plain."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config

    def on_save_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        checkpoint[CONFIG_KEY] = self.config
        dm = getattr(trainer, "datamodule", None)
        if dm is not None and getattr(dm, "input_shape", None):
            checkpoint[DATA_SPEC_KEY] = data_spec(dm)
        hparams = checkpoint.get("hyper_parameters")
        if hparams:  # optimizer/scheduler partials -> their config, so weights_only can load it
            checkpoint["hyper_parameters"] = {
                k: self.config.get(k) if callable(v) else v for k, v in dict(hparams).items()
            }


class LogResolvedConfig(L.Callback):
    """Log the run's resolved (and redacted) config to every logger when training/testing starts.

    Lightning logs the module's hyper-parameters at the start of every stage (fit, test), with
    the optimizer and scheduler partials as null; logging the config right after, at
    ``on_train_start`` and ``on_test_start``, puts their real config back.
    """

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = redact(config)

    def _log(self, trainer: L.Trainer) -> None:
        for logger in trainer.loggers:
            logger.log_hyperparams(self.config)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._log(trainer)

    def on_test_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._log(trainer)
