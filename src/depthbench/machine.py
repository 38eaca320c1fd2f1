"""Where and on what code a number was measured: the machine record and the code's commit.

``machine_record()`` is the one description of the machine that benchmarks and the lesson
write beside their figures; ``code_state()`` is the commit of the checkout the package runs
from and whether its tracked files differed from it, which every ``metrics.json`` records so
that "criteria fixed before the runs" can be checked against the repository's history.
"""

from __future__ import annotations

import functools
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

PACKAGE_DIR = Path(__file__).resolve().parent


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_record() -> dict[str, Any]:
    """CPU, core count, GPU (or None), Python/torch/Lightning versions, and a one-line
    ``summary`` such as ``2-core Intel Xeon ... CPU, no GPU``."""
    import lightning
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    cores = os.cpu_count()
    cpu = _cpu_name()
    return {
        "cpu": cpu,
        "cpu_count": cores,
        "gpu": gpu,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": {"torch": torch.__version__, "lightning": lightning.__version__},
        "summary": f"{gpu} + {cores} CPU cores" if gpu else f"{cores}-core {cpu} CPU, no GPU",
    }


@functools.lru_cache(maxsize=1)
def code_state() -> dict[str, Any]:
    """``{"commit": sha, "dirty": bool}`` of the git checkout holding this package, or
    ``{"commit": None, "dirty": None}`` for an installed wheel or a machine without git.

    Dirty means a tracked file differs from the commit (untracked files are not counted)."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(PACKAGE_DIR), *args],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    return {"commit": commit, "dirty": dirty}
