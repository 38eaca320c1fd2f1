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
from pathlib import Path
from typing import Any

import numpy as np
import torch

from depthbench.bench.common import median, save_section, timed_train

DEPTHS = (1, 4, 16, 64, 256, 1024)
SIZES = (1000, 2000, 4000, 8000, 16000, 32000, 55000)


def epoch_seconds(overrides: list[str], epochs: int, workdir: Path) -> float:
    """Median seconds of epochs 2..``epochs`` of ``run.train`` with ``overrides``."""
    run = [
        "data=fashion_mnist",
        *overrides,
        f"trainer.max_epochs={epochs}",
        "+trainer.limit_val_batches=0",
        "test=false",
        "callbacks.progress_bar.refresh_rate=0",
    ]
    return median(timed_train(run, workdir)["epoch_seconds"][1:])  # fmt: skip


def linear_fit(x: list[float], y: list[float]) -> dict[str, float]:
    """Least squares ``y = a + b x``, its R^2, and the slope of log y against log x."""
    xs, ys = np.asarray(x, float), np.asarray(y, float)
    b, a = np.polyfit(xs, ys, 1)
    residual = ys - (a + b * xs)
    r2 = 1 - float((residual**2).sum() / ((ys - ys.mean()) ** 2).sum())
    loglog = float(np.polyfit(np.log(xs), np.log(ys), 1)[0])
    return {"intercept_s": float(a), "slope_s": float(b), "r2": r2, "loglog_slope": loglog}


def sweep(name: str, points: list[int], make: Any, epochs: int, repeats: int) -> dict[str, Any]:
    """Median epoch seconds at every point, and the linear fit."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="depthbench-scaling-") as tmp:
        for p in points:
            times = [epoch_seconds(make(p), epochs, Path(tmp)) for _ in range(repeats)]
            rows.append({name: p, "epoch_seconds": median(times), "all": times})
            print(f"scaling {name}={p}: {median(times):.3f} s/epoch", flush=True)
    fit = linear_fit([r[name] for r in rows], [r["epoch_seconds"] for r in rows])
    return {"points": rows, "fit": fit}


def run(depths: list[int], sizes: list[int], epochs: int, repeats: int, threads: int) -> dict:
    """Both sweeps."""
    torch.set_num_threads(threads)
    depth_train_size = 2048
    by_depth = sweep(
        "depth",
        depths,
        lambda d: [
            "model=residual",
            f"model.depth={d}",
            "model.width=64",
            f"data.train_size={depth_train_size}",
        ],
        epochs,
        repeats,
    )
    by_size = sweep(
        "train_size",
        sizes,
        lambda n: ["model=mlp", "model.depth=4", "model.width=128", f"data.train_size={n}"],
        epochs,
        repeats,
    )
    return {
        "threads": threads,
        "epochs_per_run": epochs,
        "repeats": repeats,
        "depth_sweep": {
            "model": "residual MLP, width 64",
            "train_size": depth_train_size,
            **by_depth,
        },
        "size_sweep": {"model": "MLP, depth 4, width 128", **by_size},
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """``python -m depthbench.bench scaling``"""
    p = argparse.ArgumentParser(prog="depthbench.bench scaling", description=__doc__)
    p.add_argument("--depths", default=",".join(map(str, DEPTHS)))
    p.add_argument("--sizes", default=",".join(map(str, SIZES)))
    p.add_argument("--epochs", type=int, default=3, help="per run; the first is a warm-up")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--no-save", action="store_true")
    a = p.parse_args(argv)
    ints = lambda s: [int(v) for v in s.split(",")]  # noqa: E731
    result = run(ints(a.depths), ints(a.sizes), a.epochs, a.repeats, a.threads)
    for key in ("depth_sweep", "size_sweep"):
        f = result[key]["fit"]
        print(f"{key}: R^2 {f['r2']:.4f}, log-log slope {f['loglog_slope']:.2f}")
    if not a.no_save:
        save_section("scaling", result)
    return result
