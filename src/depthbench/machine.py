"""The one record of the machine a figure was measured on, for every page of results.

``machine()`` is a plain dict (CPU model and cores, the GPU, the Python/torch/Lightning versions,
the platform, the UTC date and the 1-minute load average, which says how busy the machine was);
``describe(record)`` is its one-line form ("2-core Intel Xeon CPU, no GPU").
"""

from __future__ import annotations

import os
import platform
from datetime import datetime, timezone
from pathlib import Path
from typing import Any


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux), else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict[str, Any]:
    """Where and with what the numbers were measured."""
    import lightning
    import torch

    return {
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "lightning": lightning.__version__,
        "platform": platform.platform(),
        "date_utc": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M"),
        "load_average_1min": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
    }


def describe(record: dict[str, Any]) -> str:
    """One line: the GPU and the cores beside it, or the CPU when there is no GPU."""
    if record.get("gpu"):
        return f"{record['gpu']} + {record['cpu_count']} CPU cores"
    return f"{record['cpu_count']}-core {record['cpu']} CPU, no GPU"
