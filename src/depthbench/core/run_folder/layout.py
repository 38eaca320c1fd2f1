"""The names inside a run folder, in one place: every module that writes or finds a run's
checkpoint, record, history or evaluation outputs asks here. Importing it imports nothing heavy.

A run folder (``outputs/runs/train/<time>``, a multirun's job folder, an evaluation's folder)::

    checkpoints/last.ckpt      the latest weights (every epoch end and when the run stops)
    checkpoints/epoch...ckpt   the best by val/acc (Lightning's ModelCheckpoint)
    metrics.json               the run's record (``metrics_file.write_metrics`` writes it)
    csv/metrics.csv            the logged history (Lightning's CSVLogger names the file)
    predictions.csv            eval: every test example's prediction
    confusion.csv, .png        eval: the confusion matrix
    wrong_examples.png         eval: the most confidently wrong test images
    attention_summary.json     diagnostics=attention: where "it" looks, per layer
    commands.txt               every command that ran in the folder
    .hydra/config.yaml         the composed config (Hydra writes ``.hydra/``)
    .depthbench.lock           held while a process runs in the folder

The configs reach the checkpoint folder through the ``depthbench_run_folder`` resolver
(``${depthbench_run_folder:${paths.output_dir},checkpoints}``), and the CSV logger takes its
folder name from :data:`HISTORY_DIR` by default, so a change here moves every writer and reader
(``tests/test_run_folder_layout.py`` changes it and runs train, eval, predict, report and a
lesson).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from omegaconf import DictConfig
    from torch import nn

CHECKPOINTS_DIR = "checkpoints"  # the run's checkpoints: last.ckpt and the best-by-metric ones
LAST_NAME = "last"  # the final weights' checkpoint is LAST_NAME + ".ckpt"
LAST_CKPT = f"{LAST_NAME}.ckpt"
METRICS_FILE = "metrics.json"  # the run's record (run_folder.metrics_file writes it)
HISTORY_DIR = "csv"  # the CSV logger's folder
HISTORY_FILE = "metrics.csv"  # Lightning's CSVLogger's file name in HISTORY_DIR
PREDICTIONS_FILE = "predictions.csv"
CONFUSION_FILE = "confusion.csv"
CONFUSION_FIGURE = "confusion.png"
WRONG_EXAMPLES_FIGURE = "wrong_examples.png"
ATTENTION_SUMMARY_FILE = "attention_summary.json"  # diagnostics=attention on coreference data
COMMANDS_FILE = "commands.txt"
LOCK_FILE = ".depthbench.lock"
HYDRA_DIR = ".hydra"  # Hydra's output subdir (conf/hydra/default.yaml keeps Hydra's default)
CONFIG_FILE = "config.yaml"  # the composed config Hydra saves in HYDRA_DIR
OVERRIDES_FILE = "overrides.yaml"  # the command's overrides Hydra saves in HYDRA_DIR


def checkpoints_dir(run: str | Path) -> Path:
    """The folder of a run's checkpoints."""
    return Path(run) / CHECKPOINTS_DIR


def last_checkpoint(run: str | Path) -> Path:
    """A run's latest weights (written at every epoch end and when it stops)."""
    return checkpoints_dir(run) / LAST_CKPT


def metrics_path(run: str | Path) -> Path:
    """A run's ``metrics.json``."""
    return Path(run) / METRICS_FILE


def history_path(run: str | Path) -> Path:
    """A run's logged history (``csv/metrics.csv``)."""
    return Path(run) / HISTORY_DIR / HISTORY_FILE


def config_path(run: str | Path) -> Path:
    """The config Hydra saved for the run (``.hydra/config.yaml``)."""
    return Path(run) / HYDRA_DIR / CONFIG_FILE


def overrides_path(run: str | Path) -> Path:
    """The command-line overrides Hydra saved for the run (``.hydra/overrides.yaml``)."""
    return Path(run) / HYDRA_DIR / OVERRIDES_FILE


def resolve(run: str, part: str) -> str:
    """The ``depthbench_run_folder`` config resolver: ``part`` (``checkpoints``) of the run
    folder ``run``, as a string."""
    parts = {"checkpoints": checkpoints_dir}
    if part not in parts:
        raise ValueError(f"depthbench_run_folder: unknown part {part!r}; one of {sorted(parts)}")
    return str(parts[part](run))


@dataclass(frozen=True)
class RunFolder:
    """A run's output folder, read through the layout: what ``depthbench.core.open_run`` gives."""

    path: Path

    @property
    def last_checkpoint(self) -> Path:
        """The latest weights (may not exist: a run refused before training)."""
        return last_checkpoint(self.path)

    @property
    def metrics_path(self) -> Path:
        """The run's ``metrics.json``."""
        return metrics_path(self.path)

    @property
    def history_path(self) -> Path:
        """The logged history (``csv/metrics.csv``)."""
        return history_path(self.path)

    @property
    def config_path(self) -> Path:
        """The composed config Hydra saved (``.hydra/config.yaml``)."""
        return config_path(self.path)

    def metrics(self) -> dict[str, Any] | None:
        """The run's record, or None when it has none or it cannot be read."""
        try:
            record = json.loads(self.metrics_path.read_text())
        except (OSError, ValueError):
            return None
        return record if isinstance(record, dict) else None

    def config(self) -> DictConfig | None:
        """The composed config Hydra saved, or None when the folder has none."""
        from omegaconf import OmegaConf

        path = self.config_path
        return OmegaConf.load(path) if path.is_file() else None  # type: ignore[return-value]

    def load_net(self) -> tuple[nn.Module, DictConfig]:
        """The trained network of ``last.ckpt`` (in eval mode) and the run config stored with it."""
        from depthbench.core.run_folder.checkpoint import load_net

        return load_net(self.last_checkpoint)
