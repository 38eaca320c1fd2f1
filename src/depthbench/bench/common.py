"""Shared pieces of the benchmarks: composing configs, the machine record, medians, results.

Every benchmark writes its own section of ``docs/results/bench.json`` (the other sections are
kept) and ``docs/results/bench.md`` is re-rendered from the whole JSON file.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from depthbench.machine import machine_record
from depthbench.rundir.atomic import write_text_atomic

ROOT = Path(__file__).resolve().parents[3]
RESULTS_DIR = ROOT / "docs" / "results"


def compose(overrides: Sequence[str], output_dir: Path) -> Any:
    """The train config exactly as ``python train.py <overrides>`` composes it (no Hydra run),
    from the config folder the CLI uses (``cli.find_conf_dir``)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import open_dict

    from depthbench.cli import find_conf_dir

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=find_conf_dir(), version_base="1.3"):
        cfg = hydra_compose(config_name="train", overrides=list(overrides))
    with open_dict(cfg):
        cfg.paths.output_dir = str(output_dir)
        cfg.paths.data_dir = os.environ.get("DEPTHBENCH_DATA", str(ROOT / "data"))
    return cfg


def machine(command: str = "python -m depthbench.bench") -> dict[str, Any]:
    """The machine record (``depthbench.machine``), its versions flat, with the UTC date, the
    1-minute load average (how busy the machine was) and the benchmark's command line."""
    record = machine_record()
    return {
        **{k: v for k, v in record.items() if k != "versions"},
        **record["versions"],
        "date_utc": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M"),
        "load_average_1min": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        "command": " ".join([command, *sys.argv[1:]]),
    }


def timed_train(overrides: Sequence[str], workdir: Path, **timer: Any) -> dict[str, Any]:
    """``run.train`` of the composed config in a new folder under ``workdir``, timed from the
    inside by ``bench.timing.StepTimer(**timer)``; returns the timer's record."""
    from omegaconf import open_dict

    from depthbench.run import train

    out = workdir / f"run-{time.time_ns()}"
    cfg = compose(overrides, out)
    record = out / "step_timer.json"
    with open_dict(cfg):
        cfg.callbacks.step_timer = {
            "_target_": "depthbench.bench.timing.StepTimer", "out_file": str(record), **timer
        }  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    train(cfg)
    return json.loads(record.read_text())


def median(values: Sequence[float]) -> float:
    """Median of a non-empty sequence."""
    return float(statistics.median(values))


def spread(values: Sequence[float]) -> tuple[float, float]:
    """(min, max) of a non-empty sequence: the range the median came from."""
    return float(min(values)), float(max(values))


def save_section(name: str, payload: dict[str, Any], results_dir: Path = RESULTS_DIR) -> Path:
    """Store ``payload`` as section ``name`` of bench.json and re-render bench.md."""
    from depthbench.bench.report import render

    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / "bench.json"
    data = json.loads(path.read_text()) if path.is_file() else {}
    data[name] = {"machine": machine(), **payload}
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=False) + "\n")
    write_text_atomic(results_dir / "bench.md", render(data))
    return path
