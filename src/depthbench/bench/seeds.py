"""Seeds together: whole-process time of a sweep over seeds, stacked vs apart (``make bench``).

For each model and each number of seeds n, ``python train.py -m seed=0,...,n-1 ...`` runs once
with Hydra's basic launcher (the seeds apart, one after the other in one process) and once with
``hydra/launcher=seeds_together`` (one stacked model), each a fresh process. The wall time and
the CPU time (user + system) of the whole process (imports, data, training, test, outputs) are
compared with the same command for one seed alone; on a busy machine the CPU time is the figure
to read (the wall time then mostly measures the others).
Every run folder is checked: status ok, and ``seeds_together`` recorded as n on the stacked side
(so a fallback cannot pass for a measurement).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

from depthbench import core
from depthbench.bench.harness import save_section, time_process

# name -> the overrides of one seed's run (the lesson's settings, one arm of each sweep)
MODELS = {
    "ResNet-56": ["experiment=degradation_resnet", "model.depth=56", "model.residual=true"],
    "MLP-1202": ["experiment=thousand_layers", "data=mnist1d", "data.batch_size=64",
                 "diagnostics=none", "callbacks=last", "model.residual=true"],
}  # fmt: skip
# stacks the convs of the ResNet too (the launcher runs conv nets apart on a CPU by default)
TOGETHER = ["hydra/launcher=seeds_together", "hydra.launcher.stack_convs_on_cpu=true"]


def _sweep(
    overrides: list[str], n: int, together: bool, folder: Path, threads: int
) -> tuple[float, float]:
    """Wall and CPU seconds (user + system) of one ``train.py -m`` process over seeds
    0..n-1; its runs checked."""
    seeds = "seed=" + ",".join(str(s) for s in range(n))
    args = [*overrides, seeds, *(TOGETHER if together else []), f"hydra.sweep.dir={folder}"]
    seconds, cpu = time_process(["train.py", "-m", *args], threads=threads)
    jobs = sorted(p.parent for p in folder.glob(f"*/{core.layout.METRICS_FILE}"))
    records = [core.open_run(job).metrics() or {"status": "unreadable"} for job in jobs]
    stacked = [r.get("seeds_together") for r in records]
    if len(records) != n or any(r["status"] != "ok" for r in records):
        raise RuntimeError(f"{' '.join(args)}: {len(records)} runs, not {n} finished ok")
    if together and n > 1 and stacked != [n] * n:
        raise RuntimeError(f"{' '.join(args)}: the seeds did not train together ({stacked})")
    return seconds, cpu


def run(
    seed_counts: list[int], steps: int, threads: int, workdir: Path, names: list[str]
) -> dict[str, Any]:
    """Whole-process seconds per model and number of seeds, apart and together."""
    models: dict[str, Any] = {}
    for name in names:
        base = MODELS[name]
        overrides = [*base, f"trainer.max_steps={steps}"]
        rows = []
        one = _sweep(overrides, 1, False, workdir / f"{name}-1-apart", threads)
        for n in seed_counts:
            folder = workdir / f"{name}-{n}"
            apart = one if n == 1 else _sweep(overrides, n, False, folder / "apart", threads)
            together = None if n == 1 else _sweep(overrides, n, True, folder / "together", threads)
            row: dict[str, Any] = {"seeds": n}
            for i, unit in enumerate(("s", "cpu_s")):  # wall, then CPU time
                row[f"apart_{unit}"] = round(apart[i], 1)
                row[f"together_{unit}"] = None if together is None else round(together[i], 1)
                if together is not None:
                    row[f"together_over_one_{unit}"] = round(together[i] / one[i], 2)
                    row[f"together_over_apart_{unit}"] = round(together[i] / apart[i], 2)
            rows.append(row)
            print(f"seeds: {name:<9} {n} seed(s): {json.dumps(row)}", flush=True)
        models[name] = {"command": "python train.py -m " + " ".join(overrides), "rows": rows}
    return {"steps": steps, "threads": threads, "models": models}


def main(argv: list[str]) -> dict[str, Any]:
    """``python -m depthbench.bench seeds [--seeds 1,3,5] [--steps 100] [--threads 1]
    [--models ResNet-56,MLP-1202]``"""
    p = argparse.ArgumentParser(prog="python -m depthbench.bench seeds", description=__doc__)
    p.add_argument("--seeds", default="1,3,5", help="numbers of seeds, comma-separated")
    p.add_argument("--steps", type=int, default=100, help="training steps of every run")
    p.add_argument("--threads", type=int, default=1, help="OMP_NUM_THREADS of every process")
    p.add_argument("--models", default=",".join(MODELS), help=f"of {', '.join(MODELS)}")
    p.add_argument("--no-save", action="store_true")
    a = p.parse_args(argv)
    names = a.models.split(",")
    if any(n not in MODELS for n in names):
        p.error(f"--models takes {', '.join(MODELS)}")
    counts = [int(s) for s in a.seeds.split(",")]
    with tempfile.TemporaryDirectory(prefix="depthbench-seeds-") as tmp:
        result = run(counts, a.steps, a.threads, Path(tmp), names)
    if a.no_save:
        print(json.dumps(result))
    else:
        save_section("seeds_together", result, " ".join([p.prog, *argv]))
    return result
