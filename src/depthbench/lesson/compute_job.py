"""One computed sweep of a claim: a row per seed from a function that needs no training run.

    python -m depthbench.lesson.compute_job --claim CLAIM --function DOTTED.PATH --args JSON
                                            --seeds 100,101 --out DIR

Writes ``DIR/seed-<k>.json`` (the row, plus ``seed``, ``status`` and ``code``: the commit it ran
on and whether the checkout was dirty, as a run's record has it) for each seed, through the
atomic writer; ``depthbench lesson`` starts it as it starts a ``train.py -m`` sweep and reads the
rows as a sweep's runs. A seed that raises is written as ``failed`` and the process exits 1
after the other seeds, so the lesson records the batch as failed and runs it again on
``--resume``, never reading it as done.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from pathlib import Path


def main(argv: list[str] | None = None) -> None:
    """Compute and write one row per seed; exit 1 when a seed raised (its row says so)."""
    p = argparse.ArgumentParser(prog="python -m depthbench.lesson.compute_job")
    p.add_argument("--claim", required=True, help="the claim whose sweep this is")
    p.add_argument("--function", required=True, help="its dotted path (the claim's YAML)")
    p.add_argument("--args", default="{}")
    p.add_argument("--seeds", required=True)
    p.add_argument("--out", type=Path, required=True)
    a = p.parse_args(sys.argv[1:] if argv is None else argv)
    from depthbench.atomic import write_text_atomic
    from depthbench.errors import ConfigError
    from depthbench.lesson.claims import named_function
    from depthbench.machine import code_state

    try:
        fn = named_function(a.claim, a.function)
    except ConfigError as e:  # one line in the job's log, and exit 1: the batch failed
        sys.exit(str(e))
    args = json.loads(a.args)
    a.out.mkdir(parents=True, exist_ok=True)
    failed = []
    for seed in (int(s) for s in a.seeds.split(",")):
        start = time.perf_counter()
        try:
            row = {"seed": seed, "status": "ok", **fn(seed=seed, **args)}
        except Exception as e:
            traceback.print_exc()
            row = {"seed": seed, "status": "failed", "error": f"{type(e).__name__}: {e}"}
            failed.append(seed)
        row["seconds"] = round(time.perf_counter() - start, 2)
        row["code"] = code_state()
        write_text_atomic(a.out / f"seed-{seed}.json", json.dumps(row, default=float) + "\n")
        print(f"{a.function} seed {seed}: {row['status']} in {row['seconds']} s", flush=True)
    if failed:
        sys.exit(f"{a.claim}: seeds {', '.join(map(str, failed))} failed (tracebacks above)")


if __name__ == "__main__":
    main()
