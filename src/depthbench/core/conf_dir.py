"""Where depthbench's Hydra configs are: one answer for the entry points, the lesson, the bench
and the notebook. Importing it imports nothing heavy and registers nothing."""

from __future__ import annotations

import os
from pathlib import Path


def find_conf_dir() -> str:
    """``DEPTHBENCH_CONF``, else a checkout's ``conf/``, else the packaged ``depthbench/conf``."""
    if os.environ.get("DEPTHBENCH_CONF"):
        return str(Path(os.environ["DEPTHBENCH_CONF"]).expanduser().resolve())
    package = Path(__file__).resolve().parents[1]  # src/depthbench
    checkout = package.parents[1] / "conf"  # src/depthbench/core/conf_dir.py -> <repo>/conf
    if (checkout / "train.yaml").is_file() and (package.parents[1] / "pyproject.toml").is_file():
        return str(checkout)
    return str(package / "conf")  # the wheel maps <repo>/conf to depthbench.conf


CONF_DIR = find_conf_dir()
