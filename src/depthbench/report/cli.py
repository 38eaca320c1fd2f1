"""``depthbench report PATH [PATH ...] [--out DIR]`` (also ``python -m depthbench.report``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from depthbench.report.collect import collect_runs
from depthbench.report.writer import outcome_counts, write_report


def main(argv: list[str] | None = None) -> None:
    """Collect the runs under the given folders and write the report; exit 2 when there are none."""
    parser = argparse.ArgumentParser(
        prog="depthbench report",
        description="Tables (report.md, results.csv) and figures from run / multirun folders.",
    )
    parser.add_argument("paths", nargs="+", type=Path,
                        help="run folders, multirun folders or trees of them")  # fmt: skip
    parser.add_argument("--out", type=Path, default=None,
                        help="output folder (default: the first PATH)")  # fmt: skip
    parser.add_argument("--note", default="",
                        help="a line under the title (the machine the runs ran on)")  # fmt: skip
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    try:
        runs = collect_runs(args.paths)
    except FileNotFoundError as e:
        print(f"depthbench report: {e}", file=sys.stderr)
        sys.exit(2)
    if not runs:
        print(
            f"depthbench report: no run folders (with .hydra/) under {args.paths}", file=sys.stderr
        )
        sys.exit(2)
    report = write_report(runs, args.out or args.paths[0], args.paths, note=args.note)
    print(f"{report}: {outcome_counts(runs)}")
