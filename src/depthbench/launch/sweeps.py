"""Hydra multiruns that survive a failed job, and the sweep's summary.

Hydra's basic sweeper reads every job's return value after a batch and re-raises the first job's
exception, which ends the whole sweep (``hydra/_internal/core_plugins/basic_sweeper.py``); the
Optuna sweeper does the same once failures exceed ``max_failure_rate``. So in a multirun
``run_sweep_job`` catches a job's exception itself: the job's ``metrics.json`` says
``"status": "failed"`` with the error (or ``"diverged"`` with the step, as ``run.train`` wrote
it), a line goes to ``<sweep dir>/jobs.jsonl``, and the job returns NaN (Optuna records the trial
as failed and goes on). A single run still raises.

With a launcher that runs jobs in parallel on this machine (joblib, submitit_local) each job
first claims its own GPU (``gpu_slots``); its jobs.jsonl line names it (``gpu``).

``SweepCallback`` (a Hydra callback, ``conf/hydra/default.yaml``) checks that an optional launcher
plugin is installed before the sweep starts and writes ``<sweep dir>/summary.csv`` at its end.
"""

from __future__ import annotations

import csv
import gc
import importlib.util
import json
import logging
import math
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig

from depthbench.core.run_folder.folder_lock import RunFolderError
from depthbench.core.run_folder.metrics_file import is_rank_zero, write_metrics
from depthbench.core.run_folder.redaction import redact, redact_yaml_file
from depthbench.errors import ConfigError, error_line

log = logging.getLogger("depthbench")

JOBS_FILE = "jobs.jsonl"
# copied from a diverged job's metrics.json into its jobs.jsonl line
DIVERGED_FIELDS = ("diverged_at_step", "last_finite_loss")
SUMMARY_FILE = "summary.csv"
# launcher plugins that are optional extras: module -> how to install it
OPTIONAL_PLUGINS = {
    "hydra_plugins.hydra_submitit_launcher": "pip install 'depthbench[slurm]'",
}


def in_multirun() -> bool:
    """True inside a job of a Hydra multirun (``-m`` or ``hydra.mode=MULTIRUN``)."""
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def append_job_record(sweep_dir: Path, record: dict[str, Any]) -> None:
    """Append one JSON line to ``<sweep_dir>/jobs.jsonl`` (one ``write`` call: no interleaving)."""
    sweep_dir.mkdir(parents=True, exist_ok=True)
    line = json.dumps(redact(record), default=str) + "\n"
    with open(sweep_dir / JOBS_FILE, "a", encoding="utf-8") as f:
        f.write(line)


def run_sweep_job(train: Callable[[DictConfig], dict[str, Any]], cfg: DictConfig) -> float | None:
    """Run one multirun job; record its outcome; return ``cfg.optimized_metric`` (NaN: failed).

    A job that diverges keeps the ``metrics.json`` that ``train`` wrote (``diverged_at_step``,
    ``last_finite_loss``) and its jobs.jsonl line copies those fields; any other failure is
    written as ``failed`` with its error and traceback.
    """
    # here, not at import: Hydra imports this module (SweepCallback) for every run, a typo too
    from depthbench.core.tracking import finish_wandb
    from depthbench.launch.distributed import end_distributed_job
    from depthbench.launch.gpu_slots import claim_gpu_for_sweep_job

    hydra_cfg = HydraConfig.get()
    out_dir = Path(cfg.paths.output_dir)
    metric = cfg.get("optimized_metric")
    record: dict[str, Any] = {
        "job": hydra_cfg.job.num,
        "overrides": " ".join(hydra_cfg.overrides.task),
        "output_dir": str(out_dir),
    }
    # joblib / submitit_local: this job's own GPU, before anything initialises CUDA
    gpu = claim_gpu_for_sweep_job(str(hydra_cfg.launcher.get("_target_", "")), hydra_cfg.job.num)
    if gpu is not None:
        record["gpu"] = gpu
    if is_rank_zero():  # the sweeper saved the command line's overrides before the first job
        redact_yaml_file(Path(hydra_cfg.sweep.dir) / "multirun.yaml")
    try:
        metrics = train(cfg)
    except (KeyboardInterrupt, SystemExit) as e:  # Ctrl+C/SIGTERM: the sweep stops here
        if is_rank_zero():
            recorded = getattr(e, "depthbench_metrics", None) or {}
            status = recorded.get("status", "interrupted")
            append_job_record(Path(hydra_cfg.sweep.dir), {**record, "status": status})
            write_summary(Path(hydra_cfg.sweep.dir))  # Hydra's end-of-sweep callback won't run
        raise
    except Exception as e:  # any failure of this job; the sweep goes on
        end_distributed_job()
        finish_wandb(exit_code=1)
        error = error_line(e)
        # what train recorded of a fit that ended in error (absent: it failed before the fit)
        recorded: dict[str, Any] = getattr(e, "depthbench_metrics", None) or {}
        status = "diverged" if recorded.get("status") == "diverged" else "failed"
        log.error("job %s %s (%s); the sweep goes on", hydra_cfg.job.num, status, error)
        if is_rank_zero():
            outcome: dict[str, Any] = {"status": status, "error": error}
            if isinstance(e, RunFolderError):  # another run's folder: its files stay as they are
                pass
            elif status == "diverged":  # train's metrics.json already says so
                outcome.update({k: recorded[k] for k in DIVERGED_FIELDS})
            else:
                write_metrics(
                    out_dir, **{**recorded, **outcome, "traceback": traceback.format_exc()}
                )
            append_job_record(Path(hydra_cfg.sweep.dir), {**record, **outcome})
        return math.nan
    end_distributed_job()  # the next job (same process) starts its own DDP ranks
    # the job's trainer, model and data sit in reference cycles: free them before the next job
    # of this process instead of whenever Python's collector next looks (bench: load)
    gc.collect()
    value = metrics.get(metric) if metric else None
    if is_rank_zero():
        extra = {k: metrics.get(k) for k in ("val/acc", "test/acc", "fit_seconds")}
        append_job_record(
            Path(hydra_cfg.sweep.dir),
            {**record, "status": metrics.get("status", "ok"), "metric": metric, "value": value,
             **extra},
        )  # fmt: skip
    return value


def read_job_records(sweep_dir: str | Path) -> list[dict[str, Any]]:
    """The records of ``<sweep_dir>/jobs.jsonl``, sorted by job number; a job recorded more
    than once (a sweep continued with ``ckpt_path=auto``) by its latest record."""
    path = Path(sweep_dir) / JOBS_FILE
    if not path.is_file():
        return []
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    latest = {r.get("job", i): r for i, r in enumerate(rows)}
    return sorted(latest.values(), key=lambda r: r.get("job", 0))


def check_launcher_installed(launcher_cfg: DictConfig | None) -> None:
    """Raise a ConfigError naming the extra to install when the launcher's plugin is missing."""
    target = str((launcher_cfg or {}).get("_target_", ""))
    for module, how in OPTIONAL_PLUGINS.items():
        if target.startswith(module) and importlib.util.find_spec(module) is None:
            raise ConfigError(
                f"hydra/launcher needs the plugin {module.split('.')[-1]!r}, which is not "
                f"installed: {how}"
            )


class SweepCallback(Callback):
    """Hydra callback: launcher check at the start of a multirun, ``summary.csv`` at the end."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        check_launcher_installed(config.hydra.get("launcher"))

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        write_summary(Path(config.hydra.sweep.dir))


def write_summary(sweep_dir: Path) -> None:
    """``<sweep dir>/summary.csv``: one row per job recorded in jobs.jsonl (at the sweep's end,
    or when Ctrl+C stops it: the jobs that finished by then), and one log line counting them."""
    redact_yaml_file(sweep_dir / "multirun.yaml")
    rows = read_job_records(sweep_dir)
    if not rows:
        return
    fields = list(dict.fromkeys(k for row in rows for k in row))
    with open(sweep_dir / SUMMARY_FILE, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    counts = [
        f"{len(jobs)} {status} (jobs {', '.join(str(r['job']) for r in jobs)})"
        for status in ("failed", "diverged", "interrupted")
        if (jobs := [r for r in rows if r.get("status") == status])
    ]
    log.info(
        "sweep: %d jobs%s; summary in %s",
        len(rows),
        "".join(f", {c}" for c in counts) or ", all ok",
        sweep_dir / SUMMARY_FILE,
    )
