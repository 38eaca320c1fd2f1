"""One computed sweep of a claim: a row per seed from ``depthbench.lesson.computed``.

    python -m depthbench.lesson.compute_job --name NAME --args JSON --seeds 100,101 --out DIR

Writes ``DIR/seed-<k>.json`` (the row, plus ``seed``, ``status`` and ``code``: the commit it ran
on and whether the checkout was dirty, as a run's ``metrics.json`` has it) for each seed, through
the atomic writer; ``depthbench lesson`` starts it as it starts a ``train.py -m`` sweep and reads
the rows as a sweep's runs.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from pathlib import Path


def main(argv: list[str] | None = None) -> None:
    """Compute and write one row per seed; a seed that raises is written as ``failed``."""
    p = argparse.ArgumentParser(prog="python -m depthbench.lesson.compute_job")
    p.add_argument("--name", required=True)
    p.add_argument("--args", default="{}")
    p.add_argument("--seeds", required=True)
    p.add_argument("--out", type=Path, required=True)
    a = p.parse_args(sys.argv[1:] if argv is None else argv)
    from depthbench.atomic import write_text_atomic
    from depthbench.lesson.computed import COMPUTED
    from depthbench.machine import code_state

    fn = COMPUTED[a.name]
    args = json.loads(a.args)
    a.out.mkdir(parents=True, exist_ok=True)
    for seed in (int(s) for s in a.seeds.split(",")):
        start = time.perf_counter()
        try:
            row = {"seed": seed, "status": "ok", **fn(seed=seed, **args)}
        except Exception as e:
            traceback.print_exc()
            row = {"seed": seed, "status": "failed", "error": f"{type(e).__name__}: {e}"}
        row["seconds"] = round(time.perf_counter() - start, 2)
        row["code"] = code_state()
        write_text_atomic(a.out / f"seed-{seed}.json", json.dumps(row, default=float) + "\n")
        print(f"{a.name} seed {seed}: {row['status']} in {row['seconds']} s", flush=True)


if __name__ == "__main__":
    main()
