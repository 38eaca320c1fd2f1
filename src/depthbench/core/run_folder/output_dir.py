"""A run folder that cannot be written, or a disk that is (nearly) full, stops the run first.

One line and exit code 2 before anything is written, instead of a traceback from Hydra's first
``mkdir`` or a run that dies mid-epoch leaving files that look finished:

* :class:`OutputDirCheck`, a Hydra callback (``conf/hydra/default.yaml``), checks
  ``hydra.run.dir`` (``hydra.sweep.dir`` for a multirun) before Hydra creates it;
* :func:`check_output_dir` checks the job's own folder in ``run.train`` (also when ``train`` is
  called from Python), raising a :class:`~depthbench.errors.ConfigError`.

"Writable" is tested by creating and removing a file in the folder, or in its nearest existing
parent when it does not exist yet (permission bits mean nothing to root). "Full" is less than
``DEPTHBENCH_MIN_FREE_MB`` megabytes free (default 100) on the folder's disk.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from depthbench.errors import ConfigError

MIN_FREE_MB_ENV = "DEPTHBENCH_MIN_FREE_MB"
DEFAULT_MIN_FREE_MB = 100  # a few checkpoints and logs of the default job are ~1 MB


def _existing_parent(path: Path) -> Path:
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_output_dir(path: str | Path, key: str = "hydra.run.dir") -> None:
    """Raise a ConfigError when ``path`` cannot be created/written or its disk is nearly full."""
    path = Path(path)
    parent = _existing_parent(path)
    hint = f"; point {key}=DIR to a writable folder"
    if not parent.is_dir():
        raise ConfigError(f"cannot write the run folder {path}: {parent} is not a folder{hint}")
    try:
        with tempfile.NamedTemporaryFile(dir=parent, prefix=".depthbench-write-check-"):
            pass
    except OSError as e:
        raise ConfigError(
            f"cannot write the run folder {path}: {e.strerror or e} in {parent}{hint}"
        ) from e
    min_free_mb = float(os.environ.get(MIN_FREE_MB_ENV, DEFAULT_MIN_FREE_MB))
    free_mb = shutil.disk_usage(parent).free / 2**20
    if free_mb < min_free_mb:
        raise ConfigError(
            f"the disk of the run folder {path} has {free_mb:.0f} MB free, less than the "
            f"{min_free_mb:.0f} MB a run needs ({MIN_FREE_MB_ENV} sets it){hint}"
        )


def _check_or_exit(path: Any, key: str) -> None:
    try:
        check_output_dir(str(path), key)
    except ConfigError as e:  # Hydra's logging is not set up yet: straight to stderr
        print(f"ConfigError: {e}", file=sys.stderr)
        sys.exit(2)


class OutputDirCheck(Callback):
    """Hydra callback: the run (or sweep) folder is writable and its disk has room."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        _check_or_exit(config.hydra.run.dir, "hydra.run.dir")

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        _check_or_exit(config.hydra.sweep.dir, "hydra.sweep.dir")
