"""``depthbench lesson``: run every claim's sweeps over seeds, decide each verdict, write the page.

    depthbench lesson [--profile quick|full] [--seeds N] [--only CLAIM,...] [--jobs J]
                      [--runs DIR [--resume]] [--out DIR] [--from DIR] [--set KEY=VALUE ...]

Each sweep of a claim is one ``train.py -m`` process (overrides from ``conf/lesson/<claim>.yaml``
plus ``seed=0..N-1``) writing into ``<runs>/<claim>/<sweep>/``; ``--jobs`` runs that many
processes side by side, each with ``cores / jobs`` threads. ``--from DIR`` decides the verdicts
from the runs already in ``DIR`` without training. Nothing already written is overwritten: a
claim whose folder already exists under ``--runs`` is refused (other claims may be added to it);
with ``--resume`` its finished sweeps are kept and only the missing ones run.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import shlex
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from depthbench.errors import ConfigError, DepthbenchError
from depthbench.lesson import verdicts
from depthbench.lesson.claims import PROFILES, Claim, load_claims
from depthbench.lesson.measures import MEASURES
from depthbench.lesson.page import ClaimResult, write_page
from depthbench.report.collect import collect_runs, config_value
from depthbench.report.tables import runs_frame, swept_keys, typed
from depthbench.report.writer import write_report

log = logging.getLogger("depthbench")
TIMES_FILE = "seconds.txt"  # per sweep folder: the wall time of its process


def sweep_command(overrides: list[str], sweep_dir: Path, seeds: int, extra: list[str]) -> list[str]:
    """The ``train.py -m`` command line of one sweep."""
    seed = "seed=" + ",".join(str(s) for s in range(seeds))
    return [
        sys.executable,
        "-m",
        "depthbench.cli",
        "train",
        "-m",
        *overrides,
        seed,
        *extra,
        f"hydra.sweep.dir={sweep_dir}",
    ]


def run_sweeps(jobs: list[tuple[list[str], Path]], lanes: int) -> None:
    """Run the sweep commands, ``lanes`` at a time; each logs to ``<sweep_dir>.log``."""
    threads = max(1, (os.cpu_count() or 1) // lanes)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONUNBUFFERED": "1"}
    pending, running = list(jobs), []
    while pending or running:
        while pending and len(running) < lanes:
            cmd, sweep_dir = pending.pop(0)
            sweep_dir.parent.mkdir(parents=True, exist_ok=True)
            logfile = open(sweep_dir.with_suffix(".log"), "w")  # noqa: SIM115 (closed below)
            log.info("lesson: %s", shlex.join(cmd[3:]))
            proc = subprocess.Popen(cmd, stdout=logfile, stderr=subprocess.STDOUT, env=env)
            running.append((proc, logfile, sweep_dir, time.perf_counter()))
        time.sleep(0.5)
        for item in list(running):
            proc, logfile, sweep_dir, start = item
            if proc.poll() is None:
                continue
            logfile.close()
            running.remove(item)
            seconds = time.perf_counter() - start
            sweep_dir.mkdir(parents=True, exist_ok=True)
            (sweep_dir / TIMES_FILE).write_text(f"{seconds:.1f}\n")
            log.info("lesson: %s done in %.0f s (exit %d)", sweep_dir, seconds, proc.returncode)


def claim_frames(claim: Claim, claim_dir: Path) -> tuple[dict[str, pd.DataFrame], list, float]:
    """Sweep name -> one row per run (swept keys, seed, status, metrics, measurements)."""
    frames, runs_all, seconds = {}, [], 0.0
    for sweep in sorted(p for p in claim_dir.iterdir() if p.is_dir()):
        runs = collect_runs([sweep])
        if not runs:
            continue
        runs_all += runs
        times = sweep / TIMES_FILE
        seconds += float(times.read_text()) if times.is_file() else 0.0
        frame = runs_frame(runs, swept_keys(runs))
        for key in claim.config_keys:
            frame[key] = [typed(str(config_value(r, key))) for r in runs]
        measure = claim.measure.get("name")
        if measure:
            rows = [
                MEASURES[measure](r, **(claim.measure.get("args") or {})) if r.ok else {}
                for r in runs
            ]
            frame = pd.concat([frame, pd.DataFrame(rows, index=frame.index)], axis=1)
        frames[sweep.name] = frame
    return frames, runs_all, seconds


def decide(claim: Claim, claim_dir: Path | None) -> ClaimResult:
    """The claim's verdict from the runs in ``claim_dir`` (none: not measured here)."""
    fn = getattr(verdicts, claim.verdict)
    if claim_dir is None or not claim_dir.is_dir():
        verdict = (
            fn({}, claim.criterion)
            if claim.needs_gpu
            else verdicts.Verdict(verdicts.NOT_MEASURED, "not run")
        )
        return ClaimResult(claim, verdict)
    frames, runs, seconds = claim_frames(claim, claim_dir)
    outcomes: dict[str, int] = {}
    bad = []
    for r in runs:
        outcomes[r.status] = outcomes.get(r.status, 0) + 1
        if not r.ok:
            where = " ".join(f"{k}={v}" for k, v in r.overrides.items())
            what = f"diverged at step {r.diverged_at_step}" if r.diverged else r.status
            bad.append(f"{what}: `{r.path.parent.name}/{r.path.name}` ({where}) {r.error[:160]}")
    try:
        verdict = fn(frames, claim.criterion)
    except (KeyError, IndexError, ValueError) as e:  # runs missing: say so, decide nothing
        verdict = verdicts.Verdict(verdicts.NOT_MEASURED, f"could not be decided ({e})")
    return ClaimResult(claim, verdict, claim_dir, outcomes, bad, seconds or None)


def _machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        import torch

        if torch.cuda.is_available():
            return f"{torch.cuda.get_device_name(0)} + {os.cpu_count()} CPU cores"
    except ImportError:
        pass
    return f"{os.cpu_count()}-core {cpu} CPU, no GPU"


def _versions() -> dict[str, str]:
    import lightning
    import torch

    return {"torch": torch.__version__, "lightning": lightning.__version__}


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="depthbench lesson", description=__doc__.split("\n")[0])
    p.add_argument(
        "--profile",
        choices=PROFILES,
        default="quick",
        help="quick: the CPU-sized runs (default); full: the paper-sized ones",
    )
    p.add_argument("--seeds", type=int, default=3, help="seeds per setting (default 3)")
    p.add_argument("--only", default="", help="comma-separated claims (default: all)")
    p.add_argument("--jobs", type=int, default=2, help="sweeps run side by side (default 2)")
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
        help="decide from the runs in this folder; train nothing",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="with --runs: keep the sweeps that finished there, run the others",
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
        help="an override added to every sweep (e.g. trainer.max_steps=2)",
    )
    return p.parse_args(argv)


def lesson(args: argparse.Namespace) -> Path:
    """Run (or read) every claim's sweeps and write the page; return its path."""
    if args.seeds < 1 or args.jobs < 1:
        raise ConfigError("--seeds and --jobs must be >= 1")
    claims = load_claims([c for c in args.only.split(",") if c] or None)
    import torch

    has_gpu = torch.cuda.is_available()
    start = time.perf_counter()
    if args.from_dir is not None:
        root = args.from_dir
        if not root.is_dir():
            raise ConfigError(f"--from {root}: no such folder")
    else:
        stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d_%H-%M-%S")
        root = args.runs or Path("outputs/lesson") / args.profile / stamp
        taken = [c.name for c in claims if (root / c.name).exists()]
        if taken and not args.resume:  # runs are never overwritten; other claims may join
            raise ConfigError(
                f"--runs {root} already holds runs of {', '.join(taken)}; give a new folder, "
                f"or read them with --from {root}"
            )
        jobs = []
        for claim in claims:
            if claim.needs_gpu and not has_gpu:
                log.info("lesson: %s needs a GPU; not measured here", claim.name)
                continue
            for sweep, overrides in claim.sweeps(args.profile).items():
                sweep_dir = root / claim.name / sweep
                if (sweep_dir / TIMES_FILE).is_file():  # --resume: a finished sweep is kept
                    log.info("lesson: %s finished before; kept", sweep_dir)
                    continue
                if sweep_dir.exists():
                    raise ConfigError(f"{sweep_dir} holds an unfinished sweep; move it away "
                                      "to run it again")  # fmt: skip
                cmd = sweep_command(overrides, sweep_dir, args.seeds, args.extra)
                jobs.append((cmd, sweep_dir))
        run_sweeps(jobs, args.jobs)
    wall = time.perf_counter() - start
    results = [decide(c, root / c.name if (root / c.name).is_dir() else None) for c in claims]
    header = {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "profile": args.profile,
        "seeds": args.seeds,
        "machine": _machine(),
        **_versions(),
        "wall": f"{wall / 60:.1f} min" if args.from_dir is None else "read from earlier runs",
        "runs": str(root),
    }
    argv = sys.argv[2:] if sys.argv[1:2] == ["lesson"] else sys.argv[1:]
    shown = [("TEXT" if prev == "--note" else a) for prev, a in zip(["", *argv], argv)]
    command = "depthbench lesson " + " ".join(shown)
    out = args.out or root
    for r in results:  # every run of a claim, in the report's tables and figures
        if r.runs_dir is not None:
            r.report = write_report(collect_runs([r.runs_dir]), out / "lesson" / r.claim.name,
                                    sources=[r.runs_dir])  # fmt: skip
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
