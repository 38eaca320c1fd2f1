"""``depthbench lesson``: run every claim and its negative control over seeds, decide, write.

    depthbench lesson [--profile quick|full] [--seeds N] [--first-seed S] [--only CLAIM,...]
                      [--jobs J] [--runs DIR [--resume]] [--out DIR] [--from DIR|lesson.json]
                      [--set KEY=VALUE ...]

Each sweep of a claim is one ``train.py -m`` process (overrides from ``conf/lesson/<claim>.yaml``
plus ``seed=S..S+N-1``) writing into ``<runs>/<claim>/<sweep>/s<seeds>/``; a computed sweep is
one process of ``depthbench.lesson.compute_job``. The control's runs go to
``<runs>/<claim>/control/<sweep>/``. ``--jobs`` runs that many processes side by side (the
longest claims first), each with ``cores / jobs`` threads. Nothing already written is
overwritten: a claim folder that exists is refused unless ``--resume``, which keeps every
finished seed and runs only the missing ones (``--seeds 5 --resume`` adds seeds 3 and 4).
``--from`` decides from earlier runs (a runs folder) or from a page's ``lesson.json`` (which
keeps every run's deciding numbers) without training.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from depthbench.errors import ConfigError, DepthbenchError
from depthbench.lesson import verdicts
from depthbench.lesson.claims import PROFILES, Claim, load_claims, merge_overrides
from depthbench.lesson.measures import MEASURES
from depthbench.lesson.outcome import (
    CONFIRMED,
    INCONCLUSIVE,
    NOT_CONFIRMED,
    NOT_MEASURED,
    UNDECIDED,
    Verdict,
)
from depthbench.lesson.page import ClaimResult, write_page
from depthbench.report.collect import collect_runs, config_value
from depthbench.report.tables import runs_frame, swept_keys, typed
from depthbench.report.writer import write_report

log = logging.getLogger("depthbench")
TIMES_FILE = "seconds.txt"  # per seed-batch folder: the wall time of its process
MEASURES_FILE = "lesson_measures.json"  # per run folder: the claim's measurements, kept
WALL_FILE = "wall_seconds.txt"  # per runs folder: the wall time of the lesson that ran it
CONTROL = "control"
DEFAULT_FIRST_SEED = 100  # the pilot seeds of every claim are below it


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
def _measured(claim: Claim, run: Any) -> dict[str, Any]:
    """The claim's measurements of one ok run, computed once and kept in the run folder."""
    if not claim.measures or not run.ok:
        return {}
    cache = run.path / MEASURES_FILE
    kept = json.loads(cache.read_text()) if cache.is_file() else {}
    row: dict[str, Any] = {}
    for m in claim.measures:
        where = m.get("where") or {}
        if any(str(config_value(run, k)).lower() != str(v).lower() for k, v in where.items()):
            continue
        key = m["name"] + json.dumps(m.get("args") or {}, sort_keys=True)
        if key not in kept:
            kept[key] = MEASURES[m["name"]](run, **(m.get("args") or {}))
            cache.write_text(json.dumps(kept, default=float))
        row.update(kept[key])
    return row


def _measure_folder(item: tuple[Claim, Path]) -> None:
    claim, sweep_dir = item
    import torch

    torch.set_num_threads(1)
    for run in collect_runs([sweep_dir]):
        _measured(claim, run)


def measure_all(claims: list[Claim], root: Path, lanes: int) -> None:
    """Compute every claim's measurements of its runs, ``lanes`` sweep folders at a time (each
    kept in the run folder, so deciding afterwards only reads them)."""
    from concurrent.futures import ProcessPoolExecutor

    items = []
    for c in claims:
        where = root / (c.uses or c.name)
        if c.measures and where.is_dir():
            items += [(c, p.parent) for p in where.rglob(TIMES_FILE)]
    if not items:
        return
    start = time.perf_counter()
    with ProcessPoolExecutor(max_workers=lanes) as pool:
        list(pool.map(_measure_folder, items))
    log.info("lesson: measurements in %.0f s", time.perf_counter() - start)


def sweep_frame(claim: Claim, sweep_dir: Path) -> tuple[pd.DataFrame | None, float, list]:
    """One row per run (or per computed seed) of a sweep folder, its seconds, and its runs."""
    seconds = sum(float(t.read_text()) for t in sweep_dir.glob(f"*/{TIMES_FILE}"))
    rows_files = sorted(sweep_dir.glob("*/seed-*.json"))
    if rows_files:  # a computed sweep
        rows = [json.loads(p.read_text()) for p in rows_files]
        return pd.DataFrame(rows), seconds, []
    runs = collect_runs([sweep_dir])
    if not runs:
        return None, seconds, []
    frame = runs_frame(runs, swept_keys(runs))
    for key in claim.config_keys:
        frame[key] = [typed(str(config_value(r, key))) for r in runs]
    extra = [_measured(claim, r) for r in runs]
    if any(extra):
        frame = pd.concat([frame, pd.DataFrame(extra, index=frame.index)], axis=1)
    return frame, seconds, runs


def claim_frames(claim: Claim, claim_dir: Path) -> tuple[dict, dict, list, float]:
    """(sweep -> rows, control sweep -> rows, every run, seconds) of a claim's folder."""
    frames, control, runs_all, seconds = {}, {}, [], 0.0
    for where, out in ((claim_dir, frames), (claim_dir / CONTROL, control)):
        if not where.is_dir():
            continue
        for sweep in sorted(p for p in where.iterdir() if p.is_dir() and p.name != CONTROL):
            frame, took, runs = sweep_frame(claim, sweep)
            seconds += took
            runs_all += runs
            if frame is not None:
                out[sweep.name] = frame
    return frames, control, runs_all, seconds


def control_frames(claim: Claim, frames: dict, control: dict) -> dict[str, pd.DataFrame]:
    """The frames the claim's verdict reads for its control: the claim's own, with the
    control's sweeps in place of theirs, or the ``replace`` rows standing in for the others."""
    assert claim.control is not None
    out = dict(frames)
    for name in claim.control.sweeps:
        if name not in control:
            raise KeyError(f"the control's {name} runs are missing")
        out[name] = control[name]
    rep = claim.control.replace
    if rep:
        key, value, stand_in = rep["key"], str(rep["value"]).lower(), str(rep["with"]).lower()
        for name, frame in frames.items():
            if key not in frame:
                continue
            col = frame[key].astype(str).str.lower()
            twin = frame[col == stand_in].copy()
            twin[key] = frame[col == value][key].iloc[0] if (col == value).any() else value
            out[name] = pd.concat([frame[col != value], twin], ignore_index=True)
    return out


def _verdict_fn(claim: Claim):
    fn = getattr(verdicts, claim.verdict, None)
    if fn is None:
        from depthbench.lesson import demonstrations

        fn = getattr(demonstrations, claim.verdict)
    return fn


def _judge(claim: Claim, frames: dict) -> Verdict:
    """The claim's verdict function on ``frames``; missing runs make it undecided, never
    confirmed or not confirmed."""
    if not frames:
        return Verdict(UNDECIDED, "no runs")
    try:
        return _verdict_fn(claim)(frames, claim.criterion)
    except (KeyError, IndexError, ValueError) as e:
        return Verdict(UNDECIDED, f"undecided: the runs it needs are missing ({e})")


def combine(claim: Claim, own: Verdict, control: Verdict | None, seeds: list[int]) -> Verdict:
    """The claim's outcome: its own verdict, unless its control passed (or was not measured)
    or it ran on its pilot seeds: then a confirmation is inconclusive."""
    if own.outcome != CONFIRMED or claim.figure_only:
        return own
    why = ""
    if control is None or control.outcome in (UNDECIDED, NOT_MEASURED):
        why = "its negative control was not measured"
    elif control.outcome != NOT_CONFIRMED:
        why = "its negative control passes the same criterion"
    elif set(seeds) & set(claim.pilot_seeds):
        why = f"it ran on its pilot seeds {sorted(set(seeds) & set(claim.pilot_seeds))}"
    if not why:
        return own
    return Verdict(
        INCONCLUSIVE, f"{own.summary}; inconclusive: {why}", own.checks, own.table, own.figure
    )


def decide(
    claim: Claim, root: Path | None, record: dict | None = None, gpu: bool = False
) -> ClaimResult:
    """The claim's verdict and its control's, from its runs under ``root`` or from a
    ``lesson.json`` record (``record["frames"]``)."""
    if claim.needs_gpu and not gpu and record is None:
        return ClaimResult(claim, _verdict_fn(claim)({}, claim.criterion))
    source = claim.uses or claim.name
    runs: list = []
    seconds = None
    if record is not None:
        frames = {k: pd.DataFrame(v) for k, v in (record.get("frames") or {}).items()}
        control = {k: pd.DataFrame(v) for k, v in (record.get("control_frames") or {}).items()}
        seconds = record.get("seconds")
    elif root is not None and (root / source).is_dir():
        frames, control, runs, seconds = claim_frames(claim, root / source)
        if claim.uses:  # the measurements of this claim only, on the other claim's runs
            seconds = None
    else:
        return ClaimResult(claim, Verdict(UNDECIDED, "not run"))
    own = _judge(claim, frames)
    ctrl = None
    if claim.control is not None:
        try:
            ctrl = _judge(claim, control_frames(claim, frames, control))
        except (KeyError, IndexError, ValueError) as e:
            ctrl = Verdict(UNDECIDED, f"the control's runs are missing ({e})")
    seeds = sorted({int(s) for f in frames.values() if "seed" in f for s in f["seed"].dropna()})
    outcomes: dict[str, int] = {}
    bad = []
    for r in runs:
        outcomes[r.status] = outcomes.get(r.status, 0) + 1
        if not r.ok:
            where = " ".join(f"{k}={v}" for k, v in r.overrides.items())
            what = f"diverged at step {r.diverged_at_step}" if r.diverged else r.status
            bad.append(f"{what}: `{r.path.parent.name}/{r.path.name}` ({where}) {r.error[:160]}")
    if record is not None:
        outcomes, bad = record.get("outcomes") or {}, record.get("bad_runs") or []
    result = ClaimResult(
        claim,
        combine(claim, own, ctrl, seeds),
        root / source if root else None,
        outcomes,
        bad,
        seconds,
    )
    result.control = ctrl
    result.seeds = seeds
    result.frames, result.control_frames = frames, control
    result.commits = sorted({c for r in runs for c in [_commit_of(r)] if c})
    if record is not None:  # the commits the runs behind the record ran on
        result.commits = list(record.get("commits") or [])
    return result


def _wall(seconds: float, from_dir: Path | None, root: Path | None) -> str:
    """This invocation's wall time, or, decided again from a runs folder, the time of the
    lesson that ran it (kept in the folder)."""
    if from_dir is None:
        return f"{seconds / 60:.1f} min"
    kept = root / WALL_FILE if root is not None else None
    if kept is not None and kept.is_file():
        return f"{float(kept.read_text()) / 60:.1f} min (the lesson that ran these folders)"
    return "read from earlier runs"


def _commit_of(run: Any) -> str:
    code = run.metrics.get("code") or {}
    if not code.get("commit"):
        return ""
    return code["commit"][:10] + (" (dirty)" if code.get("dirty") else "")


# ---- the command -----------------------------------------------------------------------------
def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="depthbench lesson", description=__doc__.split("\n")[0])
    p.add_argument(
        "--profile",
        choices=PROFILES,
        default="quick",
        help="quick: the CPU-sized runs (default); full: the paper-sized ones",
    )
    p.add_argument("--seeds", type=int, default=3, help="seeds per setting (default 3)")
    p.add_argument(
        "--first-seed",
        type=int,
        default=DEFAULT_FIRST_SEED,
        help=f"the first seed (default {DEFAULT_FIRST_SEED}; every claim's pilot "
        "seeds lie below it, and a claim run on its pilot seeds is never confirmed)",
    )
    names = ", ".join(c.name for c in load_claims())
    p.add_argument("--only", default="", help=f"comma-separated claims (default: all): {names}")
    p.add_argument("--jobs", type=int, default=2, help="processes run side by side (default 2)")
    p.add_argument(
        "--runs",
        type=Path,
        default=None,
        help="new folder for the runs (default outputs/lesson/<profile>/<time>)",
    )
    p.add_argument(
        "--from",
        dest="from_dir",
        type=Path,
        default=None,
        help="decide from the runs in this folder, or from a lesson.json; train nothing",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="with --runs: keep every finished seed there, run only the missing ones",
    )
    p.add_argument(
        "--out", type=Path, default=None, help="where lesson.md goes (default: the runs folder)"
    )
    p.add_argument("--note", default="", help="a paragraph added under the page's header")
    p.add_argument(
        "--set",
        dest="extra",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an override for every sweep (replaces the sweep's own value of KEY)",
    )
    return p.parse_args(argv)


def lesson(args: argparse.Namespace) -> Path:
    """Run (or read) every claim and its control and write the page; return its path."""
    if args.seeds < 1 or args.jobs < 1 or args.first_seed < 0:
        raise ConfigError("--seeds and --jobs must be >= 1, --first-seed >= 0")
    claims = load_claims([c for c in args.only.split(",") if c] or None)
    from depthbench.machine import machine_record

    gpus = gpu_count()
    gpu = gpus > 0
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    start = time.perf_counter()
    records: dict[str, dict] = {}
    root: Path | None = None
    if args.from_dir is not None:
        if args.from_dir.is_file() and args.from_dir.suffix == ".json":
            page = json.loads(args.from_dir.read_text())
            records = {c["claim"]: c for c in page.get("claims", [])}
        elif args.from_dir.is_dir():
            root = args.from_dir
        else:
            raise ConfigError(f"--from {args.from_dir}: no such folder or lesson.json")
    else:
        stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d_%H-%M-%S")
        root = args.runs or Path("outputs/lesson") / args.profile / stamp
        taken = [c.name for c in claims if (root / c.name).exists()]
        if taken and not args.resume:  # runs are never overwritten; other claims may join
            raise ConfigError(
                f"--runs {root} already holds runs of {', '.join(taken)}; give a new folder, "
                f"add seeds with --resume, or read them with --from {root}"
            )
        for c in claims:
            if c.needs_gpu and not gpu:
                log.info("lesson: %s needs a GPU; not measured here", c.name)
        jobs = plan_jobs(claims, root, args.profile, seeds, args.extra, gpu)
        cost = {c.name: c.cost_s for c in claims}  # the longest claims first: the lanes end
        jobs.sort(key=lambda j: -cost[j.claim])  # together (a stable sort keeps each claim's order)
        run_jobs(jobs, args.jobs, gpus)
        measure_all(claims, root, args.jobs)
        # the wall time of the lesson that made this folder, for a page decided again --from it;
        # written once: a later --resume adds runs but never changes what is already there
        if not args.resume and not (root / WALL_FILE).exists():
            (root / WALL_FILE).write_text(f"{time.perf_counter() - start:.1f}\n")
    wall = time.perf_counter() - start
    results = []
    for c in claims:
        if records:
            if c.name not in records:
                results.append(ClaimResult(c, Verdict(UNDECIDED, "not in the lesson.json read")))
                continue
            results.append(decide(c, None, record=records[c.name], gpu=gpu))
        else:
            results.append(decide(c, root, gpu=gpu))
    if args.from_dir is not None:  # the seeds the earlier runs used, not --seeds' default
        seeds = sorted({s for r in results for s in r.seeds})
    machine = machine_record()
    header = {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "profile": args.profile,
        "seeds": seeds,
        "machine": machine["summary"],
        "versions": machine["versions"],
        "wall": _wall(wall, args.from_dir, root),
        "wall_seconds": round(wall, 1) if args.from_dir is None else None,
        "runs": str(root) if root else str(args.from_dir),
        "commits": sorted({c for r in results for c in getattr(r, "commits", [])}),
    }
    argv = sys.argv[2:] if sys.argv[1:2] == ["lesson"] else sys.argv[1:]
    shown = [("TEXT" if prev == "--note" else a) for prev, a in zip(["", *argv], argv)]
    command = "depthbench lesson " + " ".join(shown)
    out = args.out or root or args.from_dir.parent
    for r in results:  # every run of a claim, in the report's tables and figures
        if r.runs_dir is not None and not r.claim.uses and r.runs_dir.is_dir():
            r.report = write_report(
                collect_runs([r.runs_dir]), out / "lesson" / r.claim.name, sources=[r.runs_dir]
            )
    page = write_page(results, out, header, command.strip(), note=args.note)
    for r in results:
        log.info("lesson: %d. %s: %s", r.claim.order, r.claim.title, r.verdict.outcome)
    return page


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``depthbench lesson``."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        page = lesson(args)
    except DepthbenchError as e:
        print(f"depthbench lesson: {e}", file=sys.stderr)
        sys.exit(2)
    print(f"wrote {page}")
