"""The lesson's processes: one per sweep and seed batch, planned from the claims and run in
lanes side by side (``--jobs``), each lane with its share of the cores (and its own GPU).

A sweep is one ``train.py -m`` process writing ``<runs>/<claim>[/control]/<sweep>/s<seeds>/``; a
computed sweep is one ``depthbench.lesson.compute_job`` process. A seed batch whose runs all
finished is never planned again, so ``--resume`` runs only the missing seeds.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from depthbench.errors import ConfigError
from depthbench.lesson.claims import Claim, merge_overrides

log = logging.getLogger("depthbench")
TIMES_FILE = "seconds.txt"  # per seed-batch folder: the wall time of its process
CONTROL = "control"  # <runs>/<claim>/control/<sweep>/: the control's runs


@dataclass
class Job:
    """One process: a sweep (``train.py -m``) or a computed sweep, for some seeds."""

    cmd: list[str]
    folder: Path  # <runs>/<claim>[/control]/<sweep>/s<seeds>
    claim: str


def seed_folder(seeds: list[int]) -> str:
    """``s100-101-102``: the folder of one batch of seeds."""
    return "s" + "-".join(str(s) for s in seeds)


def finished_seeds(sweep_dir: Path) -> list[int]:
    """Seeds whose batch folder under ``sweep_dir`` finished (has its time file).

    A batch folder without it is a process that never finished: refused, never overwritten.
    """
    done: list[int] = []
    if not sweep_dir.is_dir():
        return done
    for batch in sorted(p for p in sweep_dir.iterdir() if p.is_dir() and p.name.startswith("s")):
        if not (batch / TIMES_FILE).is_file():
            raise ConfigError(f"{batch} holds an unfinished sweep; move it away to run it again")
        done += [int(s) for s in batch.name[1:].split("-")]
    return done


def sweep_command(
    overrides: list[str], folder: Path, seeds: list[int], extra: list[str]
) -> list[str]:
    """The ``train.py -m`` command line of one sweep (``--set`` replaces keys, never doubles)."""
    merged = merge_overrides(overrides, [*extra, "seed=" + ",".join(str(s) for s in seeds)])
    return [
        sys.executable,
        "-m",
        "depthbench.cli",
        "train",
        "-m",
        *merged,
        f"hydra.sweep.dir={folder}",
    ]


def compute_command(spec: dict[str, Any], folder: Path, seeds: list[int]) -> list[str]:
    """The command that computes one row per seed of ``spec`` into ``folder``."""
    return [
        sys.executable,
        "-m",
        "depthbench.lesson.compute_job",
        "--name",
        spec["name"],
        "--args",
        json.dumps(spec.get("args") or {}),
        "--seeds",
        ",".join(str(s) for s in seeds),
        "--out",
        str(folder),
    ]


def plan_jobs(
    claims: list[Claim], root: Path, profile: str, seeds: list[int], extra: list[str], gpu: bool
) -> list[Job]:
    """Every process still to run: each claim's sweeps and computed rows, then its control's."""
    jobs: list[Job] = []
    for claim in claims:
        if claim.uses or (claim.needs_gpu and not gpu):
            continue
        sweeps, compute = claim.sweeps(profile), claim.compute(profile)
        control = claim.control.sweeps if claim.control else {}
        units: list[tuple[Path, list[str] | None, dict | None]] = []
        for name, overrides in sweeps.items():
            units.append((root / claim.name / name, overrides, None))
        for name, spec in compute.items():
            units.append((root / claim.name / name, None, spec))
        for name, change in control.items():
            where = root / claim.name / CONTROL / name
            if name in sweeps:
                units.append((where, merge_overrides(sweeps[name], list(change)), None))
            elif name in compute:
                spec = compute[name]
                args = {**(spec.get("args") or {}), **(change.get("args") or {})}
                units.append((where, None, {**spec, "args": args}))
            else:
                raise ConfigError(f"claim {claim.name}: control names no sweep {name!r}")
        for where, overrides, spec in units:
            missing = [s for s in seeds if s not in finished_seeds(where)]
            if not missing:
                continue
            folder = where / seed_folder(missing)
            cmd = (
                sweep_command(overrides, folder, missing, extra)
                if overrides is not None
                else compute_command(spec, folder, missing)
            )
            jobs.append(Job(cmd, folder, claim.name))
    return jobs


def gpu_count() -> int:
    """GPUs this process may use (0 without CUDA)."""
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def run_jobs(jobs: list[Job], lanes: int, gpus: int = 0) -> dict[str, float]:
    """Run the jobs, ``lanes`` at a time; each logs to ``<folder>.log``. With several GPUs each
    lane gets its own (``CUDA_VISIBLE_DEVICES``) instead of every process stacking on the
    first. Returns the seconds each claim's processes took (summed over its jobs)."""
    threads = max(1, (os.cpu_count() or 1) // lanes)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONUNBUFFERED": "1"}
    pending, running, seconds = list(jobs), [], {}
    free_lanes = list(range(lanes))
    while pending or running:
        while pending and free_lanes:
            job, lane = pending.pop(0), free_lanes.pop(0)
            job.folder.parent.mkdir(parents=True, exist_ok=True)
            logfile = open(job.folder.with_suffix(".log"), "w")  # noqa: SIM115 (closed below)
            log.info("lesson: %s", shlex.join(job.cmd[3:]))
            lane_env = dict(env)
            if gpus > 1:
                lane_env["CUDA_VISIBLE_DEVICES"] = str(lane % gpus)
            proc = subprocess.Popen(job.cmd, stdout=logfile, stderr=subprocess.STDOUT, env=lane_env)
            running.append((proc, logfile, job, time.perf_counter(), lane))
        time.sleep(0.5)
        for item in list(running):
            proc, logfile, job, start, lane = item
            if proc.poll() is None:
                continue
            logfile.close()
            running.remove(item)
            free_lanes.append(lane)
            took = time.perf_counter() - start
            seconds[job.claim] = seconds.get(job.claim, 0.0) + took
            job.folder.mkdir(parents=True, exist_ok=True)
            (job.folder / TIMES_FILE).write_text(f"{took:.1f}\n")
            log.info("lesson: %s done in %.0f s (exit %d)", job.folder, took, proc.returncode)
    return seconds


# ---- from run folders to rows ------------------------------------------------------------------
