"""What every benchmark shares: the config as the CLI composes it, one ``run.train`` with a
measuring callback, medians, the machine record, and the results files.

Results go to ``docs/results`` under the working directory (``--out`` elsewhere), as the CLI's
run folders go to ``outputs/``: ``<page>.json`` holds the record and ``<page>.md`` is rendered
from it alone (``bench.pages``). Each CPU benchmark writes its own section of ``bench.json``
(the other sections are kept).
"""

from __future__ import annotations

import json
import os
import statistics
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from depthbench.atomic import write_text_atomic
from depthbench.machine import machine_record

RESULTS_DIR = Path("docs") / "results"


def compose(overrides: Sequence[str], output_dir: Path) -> Any:
    """The train config as ``depthbench train <overrides>`` composes it (``conf_dir.find_conf_dir``,
    ``config_check.compose_command``), its outputs going to ``output_dir``."""
    from omegaconf import open_dict

    from depthbench.core.compose import compose_command
    from depthbench.core.conf_dir import find_conf_dir

    cfg = compose_command(find_conf_dir(), "train", list(overrides))
    with open_dict(cfg):
        cfg.paths.output_dir = str(output_dir)
    return cfg


def train_run(
    overrides: Sequence[str], workdir: Path, recorder: dict[str, Any] | None = None
) -> tuple[dict[str, Any], Any]:
    """``run.train`` of the composed config in a new folder under ``workdir``.

    ``recorder`` is a callback's ``_target_`` and arguments (``bench.timing``): it joins the
    run's callbacks and writes its JSON record to the ``out_file`` given here. Returns the run's
    metrics and that record (None without a recorder).
    """
    from omegaconf import open_dict

    from depthbench.core.run import train

    out = workdir / f"run-{time.time_ns()}"
    out.mkdir(parents=True, exist_ok=True)
    cfg = compose(overrides, out)
    record = out / "bench_record.json"
    if recorder:
        with open_dict(cfg):
            cfg.callbacks.bench_record = {**recorder, "out_file": str(record)}
    metrics = train(cfg)
    return metrics, json.loads(record.read_text()) if record.is_file() else None


def timed_train(overrides: Sequence[str], workdir: Path, **timer: Any) -> dict[str, Any]:
    """The ``bench.timing.StepTimer(**timer)`` record of one ``train_run``."""
    return train_run(
        overrides, workdir, {"_target_": "depthbench.bench.timing.StepTimer", **timer}
    )[1]


def median(values: Sequence[float]) -> float:
    """Median of a non-empty sequence."""
    return float(statistics.median(values))


def spread(values: Sequence[float]) -> tuple[float, float]:
    """(min, max) of a non-empty sequence: the range the median came from."""
    return float(min(values)), float(max(values))


def load_average() -> float | None:
    """The 1-minute load average (how busy the machine was), where the OS has one."""
    return round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None


def machine(command: str) -> dict[str, Any]:
    """The machine record (``depthbench.machine``), its versions flat, with the UTC date, the
    load average and the benchmark's command line."""
    record = machine_record()
    return {
        **{k: v for k, v in record.items() if k != "versions"},
        **record["versions"],
        "date_utc": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M"),
        "load_average_1min": load_average(),
        "command": command,
    }


def write_results(page: str, record: dict[str, Any], out_dir: Path) -> Path:
    """``<page>.json`` (the record) and ``<page>.md`` (rendered from it) in ``out_dir``."""
    from depthbench.bench.pages import PAGES

    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{page}.json"
    write_text_atomic(path, json.dumps(record, indent=2, default=str) + "\n")
    write_text_atomic(out_dir / f"{page}.md", PAGES[page](record))
    return path


def save_section(
    name: str, payload: dict[str, Any], command: str, out_dir: Path = RESULTS_DIR
) -> Path:
    """Store ``payload`` with the machine record as section ``name`` of ``bench.json``."""
    path = out_dir / "bench.json"
    data = json.loads(path.read_text()) if path.is_file() else {}
    data[name] = {"machine": machine(command), **payload}
    return write_results("bench", data, out_dir)
