"""The names inside a run folder, in one place: every module that finds a run's checkpoint or
its ``metrics.json`` asks here. Importing it imports nothing heavy.

``conf/callbacks/default.yaml`` points Lightning's checkpoint callbacks at the same folder
(``${paths.output_dir}/checkpoints``); ``tests/test_run_folder_layout.py`` holds the two together.
"""

from __future__ import annotations

from pathlib import Path

CHECKPOINTS_DIR = "checkpoints"  # the run's checkpoints: last.ckpt and the best-by-metric ones
LAST_NAME = "last"  # the final weights' checkpoint is LAST_NAME + ".ckpt"
LAST_CKPT = f"{LAST_NAME}.ckpt"
METRICS_FILE = "metrics.json"  # the run's record (rundir.metrics_file writes it)


def checkpoints_dir(run: str | Path) -> Path:
    """The folder of a run's checkpoints."""
    return Path(run) / CHECKPOINTS_DIR


def last_checkpoint(run: str | Path) -> Path:
    """A run's latest weights (written at every epoch end and when it stops)."""
    return checkpoints_dir(run) / LAST_CKPT


def metrics_path(run: str | Path) -> Path:
    """A run's ``metrics.json``."""
    return Path(run) / METRICS_FILE
