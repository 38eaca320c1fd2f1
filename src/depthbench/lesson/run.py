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
import sys
import time
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

from depthbench.atomic import write_text_atomic
from depthbench.errors import ConfigError, DepthbenchError
from depthbench.lesson.claims import (
    PROFILES,
    check_functions,
    criteria_came_first,
    criteria_state,
    load_claims,
)
from depthbench.lesson.decide import decide, measure_all
from depthbench.lesson.jobs import failed_batches, gpu_count, plan_jobs, run_jobs
from depthbench.lesson.page import write_page
from depthbench.lesson.verdict_types import UNDECIDED, ClaimResult, Verdict
from depthbench.report.collect import collect_runs
from depthbench.report.writer import write_report

log = logging.getLogger("depthbench")
WALL_FILE = "wall_seconds.txt"  # per runs folder: the wall time of the lesson that ran it
# per runs folder: written when every planned process of an invocation has succeeded (a folder
# without it, or with a failed process, is unfinished: `--resume` without `--runs` continues the
# newest such folder)
DONE_FILE = "finished.txt"
LESSON_DIR = Path("outputs/lesson")  # <profile>/<time>/: the default runs folders
DEFAULT_FIRST_SEED = 100  # the pilot seeds of every claim are below it


def _wall(seconds: float, from_dir: Path | None, root: Path | None) -> str:
    """This invocation's wall time, or, decided again from a runs folder, the time of the
    lesson that ran it (kept in the folder)."""
    if from_dir is None:
        return f"{seconds / 60:.1f} min"
    kept = root / WALL_FILE if root is not None else None
    if kept is not None and kept.is_file():
        return f"{float(kept.read_text()) / 60:.1f} min (the lesson that ran these folders)"
    return "read from earlier runs"


# ---- the command -----------------------------------------------------------------------------
def parse_args(argv: list[str]) -> argparse.Namespace:
    """The arguments of ``depthbench lesson``."""
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
        help="an override for every sweep, the control's included (replaces the sweep's own "
        "value of KEY); a claim whose compared key it collapses is undecided; refused for "
        "computed claims",
    )
    return p.parse_args(argv)


def lesson(args: argparse.Namespace) -> Path:
    """Run (or read) every claim and its control and write the page; return its path."""
    if args.seeds < 1 or args.jobs < 1 or args.first_seed < 0:
        raise ConfigError("--seeds and --jobs must be >= 1, --first-seed >= 0")
    claims = load_claims([c for c in args.only.split(",") if c] or None)
    check_functions(claims)
    check_set(args.extra, claims, args.from_dir)
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
            write_text_atomic(root / WALL_FILE, f"{time.perf_counter() - start:.1f}\n")
        failed = failed_batches(root)
        if failed:  # recorded in each batch folder (failed.txt); the page says so, never done
            log.error("lesson: %d process(es) failed, first %s; --resume runs them again",
                      len(failed), failed[0])  # fmt: skip
        elif not (root / DONE_FILE).exists():  # a finished folder's files stay as they are
            write_text_atomic(root / DONE_FILE, datetime.now(timezone.utc).isoformat() + "\n")
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
    # exactly the seeds the verdicts read (--resume may add seeds to earlier ones; --from reads
    # whatever the runs used), not the seeds this invocation asked for
    seeds = sorted({s for r in results for s in r.seeds})
    control_seeds = sorted({s for r in results for s in r.control_seeds})
    commits = sorted({c for r in results for c in r.commits})
    criteria = criteria_state()
    machine = machine_record()
    header = {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "profile": args.profile,
        "seeds": seeds,  # the claims' runs; a control on shifted seeds ran on control_seeds
        "control_seeds": control_seeds,
        "machine": machine["summary"],
        "versions": machine["versions"],
        "wall": _wall(wall, args.from_dir, root),
        "wall_seconds": round(wall, 1) if args.from_dir is None else None,
        "runs": str(root) if root else str(args.from_dir),
        "commits": commits,
        # the last commit of conf/lesson/ and whether it was dirty: the criteria came first
        # when it is an ancestor of every commit the runs ran on
        "criteria": criteria,
        "criteria_first": criteria_came_first(criteria["commit"], commits)
        if not criteria["dirty"]
        else False,
    }
    argv = sys.argv[2:] if sys.argv[1:2] == ["lesson"] else sys.argv[1:]
    shown = [("TEXT" if prev == "--note" else a) for prev, a in zip(["", *argv], argv)]
    command = "depthbench lesson " + " ".join(shown)
    out = args.out or root or args.from_dir.parent
    results = [  # every run of a claim, in the report's tables and figures
        replace(r, report=write_report(collect_runs([r.runs_dir]), out / "lesson" / r.claim.name,
                                       sources=[r.runs_dir]))
        if r.runs_dir is not None and not r.claim.uses and r.runs_dir.is_dir()
        else r
        for r in results
    ]  # fmt: skip
    page = write_page(results, out, header, command.strip(), note=args.note)
    for r in results:
        log.info("lesson: %d. %s: %s", r.claim.order, r.claim.title, r.verdict.outcome)
    return page


def check_set(extra: list[str], claims: list, from_dir: Path | None) -> None:
    """Refuse a ``--set`` that could not mean what it says, before anything runs: with
    ``--from`` (nothing is trained), or for a computed claim (its rows come from the args in
    ``conf/lesson/<claim>.yaml``, not from train.py)."""
    if not extra:
        return
    if from_dir is not None:
        raise ConfigError("--set changes runs, and --from trains nothing; leave one out")
    computed = [c.name for c in claims if any(c.compute(p) for p in c.profiles)]
    if computed:
        raise ConfigError(
            f"--set applies to train.py sweeps, and {', '.join(computed)} compute their rows "
            "with the args in conf/lesson/<claim>.yaml; leave them out with --only"
        )


def unfinished(root: Path) -> bool:
    """Whether the lesson that ran in ``root`` has processes still to run: one of them failed
    (``failed.txt``, not yet set aside), or it stopped before every process ended (no
    ``finished.txt``, nor the ``wall_seconds.txt`` of a lesson from before it was written)."""
    if failed_batches(root):
        return True
    return not (root / DONE_FILE).is_file() and not (root / WALL_FILE).is_file()


def newest_unfinished(profile: str, lessons: Path = LESSON_DIR) -> Path:
    """The most recent runs folder of ``profile`` under ``lessons`` that is unfinished; a
    ConfigError in one line when there is none (``--resume`` never starts a new lesson)."""
    folders = sorted((p for p in (lessons / profile).glob("*") if p.is_dir()), reverse=True)
    found = next((p for p in folders if unfinished(p)), None)  # names are start times
    if found is None:
        raise ConfigError(
            f"--resume without --runs continues the newest unfinished lesson of --profile "
            f"{profile} in {lessons / profile}, and there is none; start one without --resume, "
            "or give its folder with --runs DIR --resume"
        )
    return found


def resume_command(argv: list[str], root: Path) -> str:
    """The ``depthbench lesson`` command that continues this one in ``root``: the same
    arguments with ``--runs ROOT --resume``."""
    import shlex

    kept, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--runs":
            skip = True
        elif arg != "--resume" and not arg.startswith("--runs="):
            kept.append(arg)
    return shlex.join(["depthbench", "lesson", *kept, "--runs", str(root), "--resume"])


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``depthbench lesson``."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    try:
        if args.from_dir is None and args.runs is None:  # named now: Ctrl+C's hint names it
            if args.resume:
                args.runs = newest_unfinished(args.profile)
                log.info("lesson: resuming %s (the newest unfinished lesson)", args.runs)
            else:
                stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d_%H-%M-%S")
                args.runs = LESSON_DIR / args.profile / stamp
        page = lesson(args)
    except DepthbenchError as e:
        print(f"depthbench lesson: {e}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:  # every finished seed batch is kept; the rest runs on --resume
        hint = (f"; finished runs are kept in {args.runs}; resume with: "
                f"{resume_command(argv, args.runs)}" if args.runs else "")  # fmt: skip
        print(f"depthbench lesson: interrupted{hint}", file=sys.stderr)
        sys.exit(130)
    print(f"wrote {page}")
