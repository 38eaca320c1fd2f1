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


def _gpu_driver() -> str | None:
    """The NVIDIA driver version (``nvidia-smi``), or None where it cannot be read."""
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return out.strip().splitlines()[0] if out.strip() else None


def machine_record() -> dict[str, Any]:
    """CPU, core count, GPU (or None) with its memory, compute capability and driver, the
    Python/torch/Lightning/CUDA/cuDNN versions, and a one-line ``summary`` such as
    ``2-core Intel Xeon ... CPU, no GPU``."""
    import lightning
    import torch

    cuda = torch.cuda.is_available()
    gpu = torch.cuda.get_device_name(0) if cuda else None
    cores = os.cpu_count()
    cpu = _cpu_name()
    record: dict[str, Any] = {
        "cpu": cpu,
        "cpu_count": cores,
        "gpu": gpu,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": {"torch": torch.__version__, "lightning": lightning.__version__},
        "summary": f"{gpu} + {cores} CPU cores" if gpu else f"{cores}-core {cpu} CPU, no GPU",
    }
    if cuda:
        props = torch.cuda.get_device_properties(0)
        record["gpu_memory_gib"] = round(props.total_memory / 2**30, 1)
        record["gpu_capability"] = f"{props.major}.{props.minor}"
        record["driver"] = _gpu_driver()
        record["versions"]["cuda"] = torch.version.cuda
        record["versions"]["cudnn"] = torch.backends.cudnn.version()
    return record


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
