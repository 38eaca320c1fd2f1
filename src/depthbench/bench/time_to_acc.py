"""Time to accuracy on Fashion-MNIST on a CPU: ``train.py`` against scikit-learn.

Each entry is a whole process, timed from spawn to exit (imports, data loading, training,
testing, writing outputs): ``python train.py experiment=fmnist_mlp_recipe`` (target 88% test
accuracy) and ``experiment=fmnist_cnn_recipe`` (91%), and scikit-learn's ``MLPClassifier`` on the
same split (the same 55,000 training images after the seeded 5,000-image validation hold-out,
the same 10,000 test images, the same normalisation), trained one epoch at a time with
``partial_fit`` until its test accuracy reaches 88% (the process then exits). The train.py runs
have a fixed schedule; the bench checks that they reach their target (and the CNN recipe its
120 s whole-process budget). Run it on an idle machine: ``python -m depthbench.bench time_to_acc``
(3 alternating runs of each by default).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from depthbench.bench.common import RESULTS_DIR, ROOT, median, save_section

EXPERIMENTS = {"fmnist_mlp_recipe": 0.88, "fmnist_cnn_recipe": 0.91}
# whole-process wall seconds each recipe must fit on an idle 2-core machine (None: no budget)
WALL_BUDGET = {"fmnist_mlp_recipe": None, "fmnist_cnn_recipe": 120.0}
SKLEARN_TARGET = 0.88
BENCH_JSON = RESULTS_DIR / "bench.json"


THREADS: int | None = None  # --threads: OMP_NUM_THREADS of every timed process (None: inherit)


def time_process(cmd: list[str], timeout: float) -> tuple[float, subprocess.CompletedProcess]:
    """Wall seconds of ``cmd`` from spawn to exit, and its result."""
    env = dict(os.environ)
    if THREADS:
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(THREADS)
        env["OPENBLAS_NUM_THREADS"] = str(THREADS)
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    return time.perf_counter() - start, proc


def run_experiment(name: str, target: float, workdir: Path, timeout: float) -> dict[str, Any]:
    """One ``python train.py experiment=NAME`` run: wall seconds and its metrics."""
    out = workdir / name
    cmd = [sys.executable, "train.py", f"experiment={name}", f"hydra.run.dir={out}",
           "callbacks.progress_bar.refresh_rate=0"]  # fmt: skip
    wall, proc = time_process(cmd, timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    metrics = json.loads((out / "metrics.json").read_text())
    return {
        "command": f"python train.py experiment={name}",
        "wall_seconds": wall,
        "fit_seconds": metrics["fit_seconds"],
        "epochs": metrics["epochs"],
        "params": metrics["params"],
        "test_acc": metrics["test/acc"],
        "target": target,
        "reached": metrics["test/acc"] >= target,
        "wall_budget": WALL_BUDGET.get(name),
        "within_budget": WALL_BUDGET.get(name) is None or wall <= WALL_BUDGET[name],
    }


def sklearn_worker(out_file: str, seed: int = 42, max_epochs: int = 40) -> None:
    """In its own process: MLPClassifier epochs until test accuracy >= 88%; write the result."""
    import numpy as np
    from sklearn.neural_network import MLPClassifier

    from depthbench.bench.common import compose
    from depthbench.build import build_data

    cfg = compose(["data=fashion_mnist", f"seed={seed}"], Path(tempfile.gettempdir()))
    dm = build_data(cfg)  # the same split and normalisation as train.py

    def arrays(split: str) -> tuple[Any, Any]:
        x, y = dm.splits[split]
        return dm.transform(x, False).flatten(1).numpy(), y.numpy()

    (x_train, y_train), (x_test, y_test) = arrays("train"), arrays("test")
    clf = MLPClassifier(hidden_layer_sizes=(512, 512), batch_size=256, learning_rate_init=1e-3,
                        alpha=1e-4, random_state=seed)  # fmt: skip
    classes, accs, start = np.arange(10), [], time.perf_counter()
    for _ in range(max_epochs):
        clf.partial_fit(x_train, y_train, classes=classes)
        accs.append(float((clf.predict(x_test) == y_test).mean()))
        if accs[-1] >= SKLEARN_TARGET:
            break
    Path(out_file).write_text(json.dumps({
        "fit_seconds": time.perf_counter() - start, "epochs": len(accs), "test_acc": accs[-1],
        "test_acc_per_epoch": accs, "model": "MLPClassifier(hidden_layer_sizes=(512, 512), "
        "batch_size=256, adam lr 1e-3)",
    }))  # fmt: skip


def run_sklearn(workdir: Path, timeout: float) -> dict[str, Any]:
    """The scikit-learn baseline in its own process, timed like train.py."""
    out = workdir / "sklearn.json"
    cmd = [sys.executable, "-m", "depthbench.bench.time_to_acc", "--sklearn-worker", str(out)]
    wall, proc = time_process(cmd, timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"sklearn worker failed:\n{proc.stderr[-3000:]}")
    result = json.loads(out.read_text())
    return {
        "command": "python -m depthbench.bench.time_to_acc --sklearn-worker OUT",
        "wall_seconds": wall,
        **result,
        "target": SKLEARN_TARGET,
        "reached": result["test_acc"] >= SKLEARN_TARGET,
    }


def run(names: list[str], repeats: int, sklearn: bool, timeout: float) -> dict[str, Any]:
    """Every experiment (and sklearn) ``repeats`` times, alternating; medians of wall seconds."""
    runs: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
    if sklearn:
        runs["sklearn_mlp"] = []
    with tempfile.TemporaryDirectory(prefix="depthbench-time-to-acc-") as tmp:
        for r in range(repeats):
            for name in names:
                runs[name].append(
                    run_experiment(name, EXPERIMENTS[name], Path(tmp) / str(r), timeout)
                )
                print(f"time_to_acc {name}: {runs[name][-1]['wall_seconds']:.1f} s, "
                      f"test acc {runs[name][-1]['test_acc']:.4f}", flush=True)  # fmt: skip
            if sklearn:
                runs["sklearn_mlp"].append(run_sklearn(Path(tmp) / str(r), timeout))
                s = runs["sklearn_mlp"][-1]
                print(f"time_to_acc sklearn: {s['wall_seconds']:.1f} s, test acc "
                      f"{s['test_acc']:.4f} after {s['epochs']} epochs", flush=True)  # fmt: skip
    summary = {}
    for name, rs in runs.items():
        summary[name] = {
            "wall_seconds_median": median([r["wall_seconds"] for r in rs]),
            "all_reached": all(r["reached"] for r in rs),
            "all_within_budget": all(r.get("within_budget", True) for r in rs),
            "target": rs[0]["target"],
            "command": rs[0]["command"],
            "runs": rs,
        }
    return {"repeats": repeats, "threads": THREADS or "default", "results": summary}


def main(argv: list[str] | None = None) -> dict[str, Any] | None:
    """``python -m depthbench.bench time_to_acc``"""
    p = argparse.ArgumentParser(prog="depthbench.bench time_to_acc", description=__doc__)
    p.add_argument("--experiments", default=",".join(EXPERIMENTS))
    p.add_argument("--repeats", type=int, default=3, help="alternating runs of each")
    p.add_argument("--no-sklearn", action="store_true")
    p.add_argument("--timeout", type=float, default=1800, help="seconds per process")
    p.add_argument("--threads", type=int, help="OMP_NUM_THREADS of the timed processes")
    p.add_argument("--sklearn-worker", metavar="OUT", help=argparse.SUPPRESS)
    p.add_argument("--no-save", action="store_true")
    a = p.parse_args(argv)
    if a.sklearn_worker:
        sklearn_worker(a.sklearn_worker)
        return None
    global THREADS
    THREADS = a.threads
    result = run(a.experiments.split(","), a.repeats, not a.no_sklearn, a.timeout)
    if not a.no_save:
        previous = (
            json.loads(BENCH_JSON.read_text()).get("time_to_acc", {})
            if BENCH_JSON.is_file()
            else {}
        )
        kept = {k: v for k, v in previous.get("results", {}).items() if k not in result["results"]}
        result["results"] = {**kept, **result["results"]}  # entries not re-run are kept
        save_section("time_to_acc", result)
    return result


if __name__ == "__main__":
    main()
