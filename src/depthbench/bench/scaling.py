"""Scaling: seconds per training epoch against depth (1 to 1,000+ blocks) and training-set size.

Each point is a real ``run.train`` on Fashion-MNIST (no validation, no test), timed per epoch
from the inside by :class:`~depthbench.bench.timing.StepTimer`; the first epoch is a warm-up and
the median of the later ones is kept, then the median over ``--repeats`` runs. Depth uses the
residual MLP (``model=residual``, width 64) so every depth trains; size uses a 4-layer MLP.
A least-squares line ``seconds = a + b * x`` is fitted to each sweep; linear growth shows as
R^2 near 1 and a log-log slope near 1 (time doubling with the data).
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from depthbench.bench.harness import median, save_section, timed_train

DEPTHS = (1, 4, 16, 64, 256, 1024)
SIZES = (1000, 2000, 4000, 8000, 16000, 32000, 55000)
DEPTH_TRAIN_SIZE = 2048  # training images of every depth point


def linear_fit(x: list[float], y: list[float]) -> dict[str, float]:
    """Least squares ``y = a + b x``, its R^2, and the slope of log y against log x."""
    xs, ys = np.asarray(x, float), np.asarray(y, float)
    b, a = np.polyfit(xs, ys, 1)
    r2 = 1 - float(((ys - (a + b * xs)) ** 2).sum() / ((ys - ys.mean()) ** 2).sum())
    loglog = float(np.polyfit(np.log(xs), np.log(ys), 1)[0])
    return {"intercept_s": float(a), "slope_s": float(b), "r2": r2, "loglog_slope": loglog}


def sweep(
    name: str, points: list[int], overrides: Callable[[int], list[str]], epochs: int, repeats: int
) -> dict[str, Any]:
    """Median epoch seconds (epochs 2..``epochs``, then over repeats) at every point; the fit."""
    run = ["data=fashion_mnist", f"trainer.max_epochs={epochs}", "+trainer.limit_val_batches=0",
           "test=false", "callbacks.progress_bar.refresh_rate=0"]  # fmt: skip
    rows = []
    with tempfile.TemporaryDirectory(prefix="depthbench-scaling-") as tmp:
        for p in points:
            times = [median(timed_train([*run, *overrides(p)], Path(tmp))["epoch_seconds"][1:])
                     for _ in range(repeats)]  # fmt: skip
            rows.append({name: p, "epoch_seconds": median(times), "all": times})
            print(f"scaling {name}={p}: {median(times):.3f} s/epoch", flush=True)
    fit = linear_fit([r[name] for r in rows], [r["epoch_seconds"] for r in rows])
    return {"points": rows, "fit": fit}


def run(depths: list[int], sizes: list[int], epochs: int, repeats: int, threads: int) -> dict:
    """Both sweeps."""
    torch.set_num_threads(threads)

    def deep(d: int) -> list[str]:
        return ["model=residual", f"model.depth={d}", "model.width=64",
                f"data.train_size={DEPTH_TRAIN_SIZE}"]  # fmt: skip

    def sized(n: int) -> list[str]:
        return ["model=mlp", "model.depth=4", "model.width=128", f"data.train_size={n}"]

    by_depth = sweep("depth", depths, deep, epochs, repeats)
    by_size = sweep("train_size", sizes, sized, epochs, repeats)
    return {
        "threads": threads,
        "epochs_per_run": epochs,
        "repeats": repeats,
        "depth_sweep": {
            "model": "residual MLP, width 64",
            "train_size": DEPTH_TRAIN_SIZE,
            **by_depth,
        },
        "size_sweep": {"model": "MLP, depth 4, width 128", **by_size},
    }


def main(argv: list[str]) -> dict[str, Any]:
    """``python -m depthbench.bench scaling [--depths 1,4,...] [--sizes 1000,...] ...``"""
    p = argparse.ArgumentParser(prog="python -m depthbench.bench scaling", description=__doc__)
    p.add_argument("--depths", default=",".join(map(str, DEPTHS)))
    p.add_argument("--sizes", default=",".join(map(str, SIZES)))
    p.add_argument("--epochs", type=int, default=3, help="per run; the first is a warm-up")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--no-save", action="store_true")
    a = p.parse_args(argv)
    ints = [[int(v) for v in s.split(",")] for s in (a.depths, a.sizes)]
    result = run(*ints, a.epochs, a.repeats, a.threads)
    for key in ("depth_sweep", "size_sweep"):
        f = result[key]["fit"]
        print(f"{key}: R^2 {f['r2']:.4f}, log-log slope {f['loglog_slope']:.2f}")
    if not a.no_save:
        save_section("scaling", result, " ".join([p.prog, *argv]))
    return result
