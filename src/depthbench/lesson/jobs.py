"""The lesson's processes: one per sweep and seed batch, planned from the claims and run in
lanes side by side (``--jobs``), each lane with its share of the cores (and its own GPU).

A sweep is one ``train.py -m`` process writing ``<runs>/<claim>[/control]/<sweep>/s<seeds>/``; a
computed sweep is one ``depthbench.lesson.compute_job`` process. A seed batch whose process
exited 0 gets its time file and is never planned again, so ``--resume`` runs only the missing
seeds; one whose process failed (or was interrupted) gets ``failed.txt`` instead, and the next
plan sets it aside under ``<runs>/failed/`` and runs its seeds again. Every file written here
goes through the atomic writer.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from depthbench.atomic import write_text_atomic
from depthbench.errors import ConfigError
from depthbench.lesson.claims import Claim, merge_overrides

log = logging.getLogger("depthbench")
TIMES_FILE = "seconds.txt"  # per seed-batch folder: the wall time of its process (exit 0 only)
FAILED_FILE = "failed.txt"  # per seed-batch folder whose process failed: its exit code
SET_FILE = "lesson_set.json"  # per seed-batch folder: the --set overrides its process ran with
FAILED_DIR = "failed"  # <runs>/failed/<claim>/...: failed batches set aside by a later plan
CONTROL = "control"  # <runs>/<claim>/control/<sweep>/: the control's runs


@dataclass
class Job:
    """One process: a sweep (``train.py -m``) or a computed sweep, for some seeds."""

    cmd: list[str]
    folder: Path  # <runs>/<claim>[/control]/<sweep>/s<seeds>
    claim: str
    extra: list[str] = field(default_factory=list)  # the --set overrides it runs with


def seed_folder(seeds: list[int]) -> str:
    """``s100-101-102``: the folder of one batch of seeds."""
    return "s" + "-".join(str(s) for s in seeds)


def batch_folders(sweep_dir: Path) -> list[Path]:
    """The seed-batch folders (``s100-101``) of one sweep folder."""
    if not sweep_dir.is_dir():
        return []
    return sorted(p for p in sweep_dir.iterdir() if p.is_dir() and p.name.startswith("s"))


def finished_seeds(sweep_dir: Path) -> list[int]:
    """Seeds whose batch folder under ``sweep_dir`` finished (its process exited 0: time file).

    A batch folder whose process failed (``failed.txt``) is not counted: ``set_aside_failed``
    moves it away before its seeds run again. One with neither file is a process that never
    ended (killed, or still running): refused, never overwritten.
    """
    done: list[int] = []
    for batch in batch_folders(sweep_dir):
        if (batch / TIMES_FILE).is_file():
            done += [int(s) for s in batch.name[1:].split("-")]
        elif not (batch / FAILED_FILE).is_file():
            raise ConfigError(f"{batch} holds an unfinished sweep; move it away to run it again")
    return done


def failed_batches(root: Path) -> list[Path]:
    """The seed-batch folders under the runs folder ``root`` whose process failed and that no
    plan has set aside yet (under ``<root>/failed/``): what ``--resume`` runs again."""
    return sorted(
        marker.parent
        for marker in root.rglob(FAILED_FILE)
        if not (marker.parent / TIMES_FILE).is_file()
        and marker.relative_to(root).parts[0] != FAILED_DIR
    )


def set_aside_failed(sweep_dir: Path, root: Path) -> list[Path]:
    """Move every failed batch folder of ``sweep_dir`` to ``<root>/failed/`` (same relative
    path; ``-2``, ``-3`` when taken), so that its seeds run again and nothing is overwritten.
    Returns the new places."""
    moved = []
    for batch in batch_folders(sweep_dir):
        if (batch / TIMES_FILE).is_file() or not (batch / FAILED_FILE).is_file():
            continue
        to = root / FAILED_DIR / batch.relative_to(root)
        n = 1
        while to.exists() or to.with_suffix(".log").exists():
            n += 1
            to = root / FAILED_DIR / batch.relative_to(root).with_name(f"{batch.name}-{n}")
        to.parent.mkdir(parents=True, exist_ok=True)
        batch.rename(to)
        log_file = batch.with_suffix(".log")
        if log_file.is_file():
            log_file.rename(to.with_suffix(".log"))
        log.info("lesson: %s failed before; set aside as %s, its seeds run again", batch, to)
        moved.append(to)
    return moved


def sweep_command(
    overrides: list[str], folder: Path, seeds: list[int], extra: list[str]
) -> list[str]:
    """The ``depthbench train -m`` command line of one sweep (``--set`` replaces keys, never
    doubles), run as ``python -m depthbench`` with this interpreter.

    The sweep's seeds train together, one stacked model per setting (``hydra/launcher=
    seeds_together``), where they can; each run's record then says ``"seeds_together": N``;
    ``--set hydra/launcher=basic`` trains them apart."""
    launcher = ["hydra/launcher=seeds_together"]
    merged = merge_overrides(
        [*launcher, *overrides], [*extra, "seed=" + ",".join(str(s) for s in seeds)]
    )
    return [
        sys.executable,
        "-m",
        "depthbench",
        "train",
        "-m",
        *merged,
        f"hydra.sweep.dir={folder}",
    ]


def compute_command(claim: str, spec: dict[str, Any], folder: Path, seeds: list[int]) -> list[str]:
    """The command that computes one row per seed of ``spec`` (``claim``'s) into ``folder``."""
    return [
        sys.executable,
        "-m",
        "depthbench.lesson.compute_job",
        "--claim",
        claim,
        "--function",
        spec["function"],
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
        offset = claim.control.seed_offset if claim.control else 0
        units: list[tuple[Path, list[str] | None, dict | None, int]] = []
        for name, overrides in sweeps.items():
            units.append((root / claim.name / name, overrides, None, 0))
        for name, spec in compute.items():
            units.append((root / claim.name / name, None, spec, 0))
        for name, change in control.items():
            where = root / claim.name / CONTROL / name
            if name in sweeps:
                units.append((where, merge_overrides(sweeps[name], list(change)), None, offset))
            elif name in compute:
                spec = compute[name]
                args = {**(spec.get("args") or {}), **(change.get("args") or {})}
                units.append((where, None, {**spec, "args": args}, offset))
            else:
                raise ConfigError(f"claim {claim.name}: control names no sweep {name!r}")
        for where, overrides, spec, shift in units:
            set_aside_failed(where, root)
            done = finished_seeds(where)
            missing = [s + shift for s in seeds if s + shift not in done]
            if not missing:
                continue
            folder = where / seed_folder(missing)
            cmd = (
                sweep_command(overrides, folder, missing, extra)
                if overrides is not None
                else compute_command(claim.name, spec, folder, missing)
            )
            jobs.append(Job(cmd, folder, claim.name, list(extra) if overrides is not None else []))
    return jobs


def gpu_count() -> int:
    """GPUs this process may use (0 without CUDA)."""
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def run_jobs(jobs: list[Job], lanes: int, gpus: int = 0) -> dict[str, float]:
    """Run the jobs, ``lanes`` at a time; each logs to ``<folder>.log``. With several GPUs each
    lane gets its own (``CUDA_VISIBLE_DEVICES``) instead of every process stacking on the
    first. A job is marked finished (its time file) only when its process exits 0; otherwise
    (a failure, or Ctrl+C while it runs) it gets ``failed.txt`` with its exit code. Returns the
    seconds each claim's processes took (summed over its jobs)."""
    threads = max(1, (os.cpu_count() or 1) // lanes)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONUNBUFFERED": "1"}
    pending, running, seconds = list(jobs), [], {}
    free_lanes = list(range(lanes))
    try:
        _run_lanes(pending, running, free_lanes, env, gpus, seconds)
    except BaseException:  # Ctrl+C: every process still running is waited for and marked failed
        for proc, logfile, job, start, _ in running:
            try:
                code = proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                code = proc.wait()
            logfile.close()
            mark_job(job, code, time.perf_counter() - start)
        raise
    return seconds


def mark_job(job: Job, code: int, took: float) -> None:
    """Record how the job's process ended in its folder: the time file (exit 0: finished) or
    ``failed.txt`` (anything else), and the ``--set`` it ran with."""
    write_text_atomic(job.folder / SET_FILE, json.dumps({"set": job.extra}) + "\n")
    if code == 0:
        write_text_atomic(job.folder / TIMES_FILE, f"{took:.1f}\n")
        log.info("lesson: %s done in %.0f s", job.folder, took)
    else:
        write_text_atomic(job.folder / FAILED_FILE, f"exit {code} after {took:.1f} s\n")
        log.error(
            "lesson: %s failed (exit %d, log %s); --resume runs it again",
            job.folder, code, job.folder.with_suffix(".log"),
        )  # fmt: skip


def _run_lanes(
    pending: list[Job], running: list, free_lanes: list[int], env: dict, gpus: int, seconds: dict
) -> None:
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
            mark_job(job, proc.returncode, took)


# ---- from run folders to rows ------------------------------------------------------------------
