"""Load: a long multirun in one process holds its memory and open files flat.

``python -m depthbench.bench load [--jobs 40]`` runs ``depthbench train -m seed=0,...,N-1`` with
Hydra's basic launcher, so every job runs in the same process: the default callbacks (best and
last checkpoints), the CSV logger, Hydra's per-job log file and the sweep records, each job a
short fit and test on digits. A Hydra callback (:class:`ResourceProbe`) records the process's
resident memory (``VmRSS``) and open file descriptors (``/proc/self/fd``) after every job; the
section reports them after job 5 and after the last job. Linux only (``/proc``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from depthbench.bench.harness import RESULTS_DIR, save_section

PROBE_FILE = "resources.jsonl"
# each job: one short epoch and a test on digits, with the default callbacks and CSV logger
JOB = ["trainer.max_epochs=1", "+trainer.limit_train_batches=5", "+trainer.limit_val_batches=2",
       "+trainer.limit_test_batches=2", "callbacks.progress_bar.refresh_rate=0"]  # fmt: skip
EARLY_JOB = 5  # the figures compare the process after this many jobs with after the last one


def process_resources() -> dict[str, float]:
    """This process's resident memory (MiB) and number of open file descriptors."""
    rss_kib = 0
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss_kib = int(line.split()[1])
    return {"rss_mib": rss_kib / 1024, "open_fds": len(os.listdir("/proc/self/fd"))}


class ResourceProbe(Callback):
    """Hydra callback: after each job, append its resources to ``<sweep dir>/resources.jsonl``."""

    def on_job_end(self, config: DictConfig, job_return: Any, **kwargs: Any) -> None:
        """Record this process's RSS and open file descriptors once the job has returned."""
        from hydra.core.hydra_config import HydraConfig

        hydra_cfg = HydraConfig.get()
        record = {"job": hydra_cfg.job.num, "pid": os.getpid(), **process_resources()}
        with open(Path(hydra_cfg.sweep.dir) / PROBE_FILE, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")


def run_sweep(jobs: int, sweep_dir: Path, timeout: float) -> list[dict[str, Any]]:
    """Run the ``jobs``-job multirun in one process; its per-job resource records."""
    cmd = [sys.executable, "-m", "depthbench", "train", "-m", f"seed=range(0,{jobs})", *JOB,
           f"hydra.sweep.dir={sweep_dir}",
           f"+hydra.callbacks.resource_probe._target_={__name__}.ResourceProbe"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    lines = (sweep_dir / PROBE_FILE).read_text().splitlines()
    records = sorted((json.loads(line) for line in lines), key=lambda r: r["job"])
    statuses = [json.loads(line)["status"] for line in (sweep_dir / "jobs.jsonl").open()]
    if len(records) != jobs or len({r["pid"] for r in records}) != 1 or set(statuses) != {"ok"}:
        raise RuntimeError(f"expected {jobs} ok jobs in one process, got {records}, {statuses}")
    return records


def summarise(records: list[dict[str, Any]]) -> dict[str, Any]:
    """RSS and open files after job ``EARLY_JOB`` (or the first) and after the last job."""
    early = records[min(EARLY_JOB, len(records)) - 1]
    last = records[-1]
    jobs_between = max(1, len(records) - min(EARLY_JOB, len(records)))
    return {
        "jobs": len(records),
        "early_job": min(EARLY_JOB, len(records)),
        "rss_mib": {"early": early["rss_mib"], "last": last["rss_mib"]},
        "open_fds": {"early": early["open_fds"], "last": last["open_fds"]},
        "rss_mib_per_job": (last["rss_mib"] - early["rss_mib"]) / jobs_between,
        "per_job": [{k: r[k] for k in ("job", "rss_mib", "open_fds")} for r in records],
    }


def main(argv: list[str]) -> None:
    """Run the load benchmark and store its ``load`` section of bench.json."""
    parser = argparse.ArgumentParser(prog="python -m depthbench.bench load", description=__doc__)
    parser.add_argument("--jobs", type=int, default=40, help="jobs in the multirun")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds for the sweep")
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="depthbench-load-") as tmp:
        summary = summarise(run_sweep(args.jobs, Path(tmp) / "sweep", args.timeout))
    summary["job_overrides"] = " ".join(JOB)
    path = save_section("load", summary, " ".join([parser.prog, *argv]), args.results_dir)
    print(f"load: {summary['jobs']} jobs, RSS {summary['rss_mib']} MiB, "
          f"open fds {summary['open_fds']}; written to {path}")  # fmt: skip
