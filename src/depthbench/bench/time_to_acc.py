"""Time to accuracy on Fashion-MNIST on a CPU: ``depthbench train`` against scikit-learn.

Each entry is a whole process, timed from spawn to exit (imports, data loading, training,
testing, writing outputs): ``depthbench train experiment=fmnist_mlp_recipe`` (target 88% test
accuracy) and ``experiment=fmnist_cnn_recipe`` (91%, within a 120 s whole-process budget), and
scikit-learn's ``MLPClassifier`` on the same split and normalisation (``core.build_data``),
trained one epoch at a time with ``partial_fit`` until its test accuracy reaches 88%. The recipes
have a fixed schedule; the bench checks that they reach their target. Run it on an idle machine
(3 alternating runs of each by default).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from depthbench import core
from depthbench.bench.harness import RESULTS_DIR, median, save_section, time_process

EXPERIMENTS = {"fmnist_mlp_recipe": 0.88, "fmnist_cnn_recipe": 0.91}
# whole-process wall seconds each recipe must fit on an idle machine (None: no budget)
WALL_BUDGET = {"fmnist_mlp_recipe": None, "fmnist_cnn_recipe": 120.0}
SKLEARN_TARGET = 0.88
SKLEARN_WORKER = "python -m depthbench.bench.time_to_acc --sklearn-worker OUT"


def run_experiment(name: str, workdir: Path, timeout: float, threads: int | None) -> dict:
    """One ``depthbench train experiment=NAME`` process: wall seconds and its record."""
    out = workdir / name
    args = [f"experiment={name}", f"hydra.run.dir={out}", "callbacks.progress_bar.refresh_rate=0"]
    wall, _ = time_process(["-m", "depthbench", "train", *args], threads=threads, timeout=timeout)
    metrics = core.open_run(out).metrics() or {}
    budget, acc = WALL_BUDGET.get(name), metrics["test/acc"]
    return {"command": f"depthbench train experiment={name}", "wall_seconds": wall,
            "fit_seconds": metrics["fit_seconds"], "epochs": metrics["epochs"],
            "params": metrics["params"], "test_acc": acc, "target": EXPERIMENTS[name],
            "reached": acc >= EXPERIMENTS[name], "wall_budget": budget,
            "within_budget": budget is None or wall <= budget}  # fmt: skip


def sklearn_worker(out_file: str, seed: int = 42, max_epochs: int = 40) -> None:
    """In its own process: MLPClassifier epochs until test accuracy >= 88%; write the result."""
    import numpy as np
    from sklearn.neural_network import MLPClassifier

    data = core.build_data(core.compose(["data=fashion_mnist", f"seed={seed}"]))

    def arrays(split: str) -> tuple[Any, Any]:
        x, y = data.splits[split]
        return data.transform(x, False).flatten(1).numpy(), y.numpy()

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


def run_sklearn(workdir: Path, timeout: float, threads: int | None) -> dict[str, Any]:
    """The scikit-learn baseline in its own process, timed like ``depthbench train``."""
    out = workdir / "sklearn.json"
    args = ["-m", "depthbench.bench.time_to_acc", "--sklearn-worker", str(out)]
    wall, _ = time_process(args, threads=threads, timeout=timeout)
    result = json.loads(out.read_text())
    return {"command": SKLEARN_WORKER, "wall_seconds": wall, **result, "target": SKLEARN_TARGET,
            "reached": result["test_acc"] >= SKLEARN_TARGET}  # fmt: skip


def run(names: list[str], repeats: int, sklearn: bool, timeout: float, threads: int | None) -> dict:
    """Every experiment (and sklearn) ``repeats`` times, alternating; medians of wall seconds."""
    runs: dict[str, list[dict[str, Any]]] = {n: [] for n in [*names, *["sklearn_mlp"] * sklearn]}
    with tempfile.TemporaryDirectory(prefix="depthbench-time-to-acc-") as tmp:
        for r in range(repeats):
            for name in runs:
                workdir = Path(tmp) / str(r)
                one = (run_sklearn(workdir, timeout, threads) if name == "sklearn_mlp"
                       else run_experiment(name, workdir, timeout, threads))  # fmt: skip
                runs[name].append(one)
                print(f"time_to_acc {name}: {one['wall_seconds']:.1f} s, "
                      f"test acc {one['test_acc']:.4f}", flush=True)  # fmt: skip
    summary = {
        name: {
            "wall_seconds_median": median([r["wall_seconds"] for r in rs]),
            "all_reached": all(r["reached"] for r in rs),
            "all_within_budget": all(r.get("within_budget", True) for r in rs),
            "target": rs[0]["target"],
            "command": rs[0]["command"],
            "runs": rs,
        }
        for name, rs in runs.items()
    }
    return {"repeats": repeats, "threads": threads or "default", "results": summary}


def main(argv: list[str]) -> dict[str, Any] | None:
    """``python -m depthbench.bench time_to_acc [--experiments ...] [--threads N] ...``"""
    p = argparse.ArgumentParser(prog="python -m depthbench.bench time_to_acc", description=__doc__)
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
    result = run(a.experiments.split(","), a.repeats, not a.no_sklearn, a.timeout, a.threads)
    if not a.no_save:
        bench_json = RESULTS_DIR / "bench.json"
        previous = json.loads(bench_json.read_text()) if bench_json.is_file() else {}
        kept = previous.get("time_to_acc", {}).get("results", {})
        result["results"] = {**kept, **result["results"]}  # entries not re-run are kept
        save_section("time_to_acc", result, " ".join([p.prog, *argv]))
    return result


if __name__ == "__main__":  # the scikit-learn worker's own process
    main(sys.argv[1:])
