"""Data-path benchmark: the in-memory pipeline against torchvision's DataLoader and a raw loop.

On Fashion-MNIST, three ways of feeding the same training loop (same network, init seed,
optimizer, batch size, threads):

- ``raw``: what a careful person writes by hand, the training split normalised once into one
  float tensor, a random permutation per epoch, ``x[idx]``: the floor for any data path;
- ``memory``: ``data.loader=memory``, depthbench's ``TensorBatchLoader`` over the uint8 split,
  converting and normalising each whole batch as tensor ops;
- ``torchvision (w)``: ``data.loader=torchvision``, a PIL image per example, ``ToTensor`` +
  ``Normalize``, a ``DataLoader`` with ``w`` worker processes (the best of ``--workers`` is
  reported).

For each, training samples/s, the seconds spent waiting for the next batch (per epoch, scaled
from the timed steps) and, on its own, the time one epoch of batches takes without a model. The
data path's overhead against ``raw``: the extra time waiting for batches, as a share of the raw
loop's time, and the end-to-end slowdown (noisier on a shared machine), both paired per repeat.
Runs alternate between the paths so the drift of a shared machine hits all alike; medians over
``--repeats`` are reported. Results go to ``docs/results/bench_data.{json,md}``.

    python -m depthbench.bench.data [--models mlp20,cnn] [--steps 60] [--repeats 3]

One file over 300 lines on purpose: one benchmark read top to bottom (the three data paths, the
timed loop, the summary and its Markdown report), like the other ``bench/`` modules.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from hydra.utils import instantiate

from depthbench.bench.common import RESULTS_DIR, compose, machine, median, spread
from depthbench.bench.report import table
from depthbench.data.base import InMemoryDataModule
from depthbench.data.fashion_mnist import FashionMNISTDataModule
from depthbench.rundir.atomic import write_text_atomic

# the two benchmark networks: a 20-layer MLP and a small CNN (the model=cnn default)
MODELS: dict[str, list[str]] = {
    "mlp20": ["model=mlp", "model.depth=20", "model.width=256"],
    "cnn": ["model=cnn"],
}
BATCH_SIZE = 128  # conf/data/fashion_mnist.yaml
VAL_SIZE = 5000


def _data_root() -> Path:
    return Path(os.environ.get("DEPTHBENCH_DATA", RESULTS_DIR.parents[1] / "data"))


def raw_batches(x: torch.Tensor, y: torch.Tensor, batch_size: int, seed: int) -> Iterable:
    """The hand-written loop's batches: preloaded normalised floats, a permutation per epoch."""
    epoch = 0
    while True:
        perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed + epoch))
        for b in range(0, len(y), batch_size):
            i = perm[b : b + batch_size]
            yield x[i], y[i]
        epoch += 1


def forever(make_loader: Callable[[], Iterable]) -> Iterable:
    """Batches of a loader, epoch after epoch (one loader object, as Lightning uses it)."""
    loader = make_loader()
    while True:
        yield from loader


def train_steps(
    net: torch.nn.Module, batches: Iterable, steps: int, warmup: int, lr: float = 1e-3
) -> dict[str, float]:
    """Train ``warmup + steps`` steps; time the last ``steps`` and the waits for their batches."""
    optimizer = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=0.01)
    it = iter(batches)
    wait = samples = 0.0
    start = 0.0
    for step in range(warmup + steps):
        if step == warmup:
            start, wait, samples = time.perf_counter(), 0.0, 0.0
        t0 = time.perf_counter()
        x, y = next(it)
        wait += time.perf_counter() - t0
        loss = F.cross_entropy(net(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        samples += len(y)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "wait_seconds": wait, "samples": samples}


def loader_seconds_per_epoch(batches: Iterable, n_batches: int, per_epoch: int, warmup: int = 5):
    """Seconds per epoch of batches without a model, timed over ``n_batches`` after ``warmup``.

    The warm-up batches absorb the start of DataLoader worker processes.
    """
    it = iter(batches)
    for _ in range(warmup):
        next(it)
    start = time.perf_counter()
    for _ in range(n_batches):
        next(it)
    return (time.perf_counter() - start) * per_epoch / n_batches


def make_datamodule(loader: str, workers: int, seed: int) -> InMemoryDataModule:
    dm = FashionMNISTDataModule(root=_data_root(), batch_size=BATCH_SIZE, val_size=VAL_SIZE,
                                loader=loader, num_workers=workers, seed=seed)  # fmt: skip
    dm.prepare_data()
    dm.setup("fit")
    return dm


def run(
    models: Sequence[str],
    steps: int,
    warmup: int,
    repeats: int,
    workers: Sequence[int],
    threads: int,
    loader_batches: int = 100,
    seed: int = 0,
) -> dict[str, Any]:
    """All measurements; medians over ``repeats`` alternating runs per model and path."""
    torch.set_num_threads(threads)
    memory = make_datamodule("memory", 0, seed)
    classic = {w: make_datamodule("torchvision", w, seed) for w in workers}
    x_norm = memory.transform(memory.splits["train"][0], train=False).contiguous()
    y = memory.splits["train"][1]
    n_train = len(y)
    steps_per_epoch = -(-n_train // BATCH_SIZE)

    paths: dict[str, Callable[[], Iterable]] = {
        "raw": lambda: raw_batches(x_norm, y, BATCH_SIZE, seed),
        "memory": lambda: forever(memory.train_dataloader),
    }
    for w, dm in classic.items():
        paths[f"torchvision_w{w}"] = lambda dm=dm: forever(dm.train_dataloader)

    # batches without a model: the pure cost of each path
    loaders_only: dict[str, list[float]] = {name: [] for name in paths}
    for _ in range(repeats):
        for name, batches in paths.items():
            loaders_only[name].append(
                loader_seconds_per_epoch(batches(), loader_batches, steps_per_epoch)
            )
        print("epoch without model: " + ", ".join(
            f"{k} {v[-1]:.2f}s" for k, v in loaders_only.items()), flush=True)  # fmt: skip

    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="depthbench-bench-data-") as tmp:
        for model in models:
            cfg = compose(["data=fashion_mnist", *MODELS[model]], Path(tmp))
            runs: dict[str, list[dict[str, float]]] = {name: [] for name in paths}
            for r in range(repeats):
                for name, batches in paths.items():
                    torch.manual_seed(seed)
                    net = instantiate(cfg.model, input_shape=list(memory.input_shape),
                                      num_classes=memory.num_classes).train()  # fmt: skip
                    runs[name].append(train_steps(net, batches(), steps, warmup))
                    m = runs[name][-1]
                    print(f"{model} repeat {r}: {name:15s} {m['samples'] / m['seconds']:8.0f} "
                          f"samples/s, waiting {m['wait_seconds']:.3f}s", flush=True)  # fmt: skip
            results[model] = summarise(runs, steps_per_epoch, steps, MODELS[model])
    return {
        "dataset": "fashion_mnist",
        "train_examples": n_train,
        "batch_size": BATCH_SIZE,
        "steps": steps,
        "warmup_steps": warmup,
        "repeats": repeats,
        "threads": threads,
        "workers": list(workers),
        "loader_batches": loader_batches,
        "epoch_without_model_seconds": {k: median(v) for k, v in loaders_only.items()},
        "epoch_without_model_all": {k: [round(s, 3) for s in v] for k, v in loaders_only.items()},
        "models": results,
    }


def summarise(
    runs: dict[str, list[dict[str, float]]], steps_per_epoch: int, steps: int, overrides: list[str]
) -> dict[str, Any]:
    """Medians per path; the best torchvision worker count; overhead against the raw loop."""
    out: dict[str, Any] = {"overrides": overrides, "paths": {}}
    for name, ms in runs.items():
        rates = [m["samples"] / m["seconds"] for m in ms]
        waits = [m["wait_seconds"] * steps_per_epoch / steps for m in ms]
        out["paths"][name] = {
            "samples_per_second": median(rates),
            "samples_per_second_range": spread(rates),
            "wait_seconds_per_epoch": median(waits),
            "wait_share": median([m["wait_seconds"] / m["seconds"] for m in ms]),
        }
    p = out["paths"]
    classic = [k for k in p if k.startswith("torchvision")]
    best = max(classic, key=lambda k: p[k]["samples_per_second"]) if classic else None
    out["best_torchvision"] = best
    # paired per repeat (raw and memory ran back to back), then the median over repeats
    raw_runs, mem_runs = runs["raw"], runs["memory"]
    slowdown = [(r["samples"] / r["seconds"]) / (m["samples"] / m["seconds"]) - 1
                for r, m in zip(raw_runs, mem_runs)]  # fmt: skip
    added_wait = [(m["wait_seconds"] - r["wait_seconds"]) / r["seconds"]
                  for r, m in zip(raw_runs, mem_runs)]  # fmt: skip
    out["memory_overhead_vs_raw"] = median(slowdown)
    out["memory_overhead_vs_raw_range"] = spread(slowdown)
    out["memory_added_wait_vs_raw"] = median(added_wait)
    out["memory_added_wait_vs_raw_range"] = spread(added_wait)
    if best:
        out["memory_speedup_vs_torchvision"] = (
            p["memory"]["samples_per_second"] / p[best]["samples_per_second"]
        )
    return out


def render(result: dict[str, Any], info: dict[str, Any]) -> str:
    """The markdown report: one table per model and the epoch-without-model table."""
    lines = [
        "# Data path benchmark (Fashion-MNIST)",
        "",
        f"Command: `{info['command']}`  ",
        f"Machine: {info['cpu']} ({info['cpu_count']} cores), GPU: {info['gpu'] or 'none'}; "
        f"torch {info['torch']}, Python "
        f"{info['python']}; {info['date_utc']} UTC; 1-minute load average "
        f"{info['load_average_1min'][0]} at the start, "
        f"{info['load_average_1min'][1]} at the end.  ",
        f"{result['train_examples']:,} training examples, batch {result['batch_size']}, "
        f"{result['threads']} torch thread(s) in the training process; {result['steps']} timed "
        f"steps after {result['warmup_steps']} warm-up steps; medians of {result['repeats']} "
        "alternating repeats (range in brackets). Wait/epoch = time blocked on the next batch, "
        "scaled to one epoch.",
        "",
    ]
    for model, r in result["models"].items():
        lines += [
            f"## {model} (`{' '.join(r['overrides'])}`)",
            "",
        ]
        raw = r["paths"]["raw"]["samples_per_second"]
        rows = []
        for name, p in r["paths"].items():
            lo, hi = p["samples_per_second_range"]
            mark = " (best workers)" if name == r["best_torchvision"] else ""
            speed = f"{p['samples_per_second']:,.0f} [{lo:,.0f}-{hi:,.0f}]"
            wait = f"{p['wait_seconds_per_epoch']:.2f}"
            rows.append([f"{name}{mark}", speed, f"{p['samples_per_second'] / raw:.3f}", wait,
                         f"{100 * p['wait_share']:.1f}%"])  # fmt: skip
        lines += [
            *table(["data path", "samples/s", "vs raw", "wait/epoch (s)", "wait share"], rows),
            "",
            "Memory path against the raw loop (goal: adds < 3%): waiting for batches adds "
            f"{100 * r['memory_added_wait_vs_raw']:+.2f}% "
            f"[{100 * r['memory_added_wait_vs_raw_range'][0]:+.2f}, "
            f"{100 * r['memory_added_wait_vs_raw_range'][1]:+.2f}] of the raw loop's time; "
            f"end-to-end slowdown {100 * r['memory_overhead_vs_raw']:+.1f}% "
            f"[{100 * r['memory_overhead_vs_raw_range'][0]:+.1f}, "
            f"{100 * r['memory_overhead_vs_raw_range'][1]:+.1f}] (paired medians; the end-to-end "
            "figure carries the noise of other work on the machine). Memory path vs the best "
            f"torchvision DataLoader ({r['best_torchvision']}): "
            f"{r.get('memory_speedup_vs_torchvision', 0):.2f}x the samples/s.",
            "",
        ]
    every = result["epoch_without_model_all"]
    lines += [
        "## One epoch of batches without a model",
        "",
        f"Timed over {result['loader_batches']} batches after 5 warm-up batches, scaled to the "
        f"{-(-result['train_examples'] // result['batch_size'])} batches of an epoch.",
        "",
        *table(["data path", "seconds (median)", "all runs"],
               [[name, f"{s:.2f}", ", ".join(f"{v:.2f}" for v in every[name])]
                for name, s in result["epoch_without_model_seconds"].items()]),
    ]  # fmt: skip
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and write ``bench_data.json`` and ``bench_data.md``."""
    parser = argparse.ArgumentParser(
        prog="python -m depthbench.bench.data",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--models", default="mlp20,cnn", help=f"of {', '.join(MODELS)}")
    parser.add_argument("--steps", type=int, default=60, help="timed training steps per run")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps before timing")
    parser.add_argument("--loader-batches", type=int, default=100,
                        help="batches timed per loader without a model")  # fmt: skip
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", default="0,1,2", help="DataLoader num_workers to try")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (training process)")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help="folder for the results")
    args = parser.parse_args(argv)
    models = [m for m in args.models.split(",") if m]
    unknown = [m for m in models if m not in MODELS]
    if unknown:
        parser.error(f"unknown model(s) {', '.join(unknown)}; allowed: {', '.join(MODELS)}")
    workers = [int(w) for w in args.workers.split(",") if w]
    load_before = os.getloadavg()[0]
    result = run(models, args.steps, args.warmup, args.repeats, workers, args.threads,
                 args.loader_batches)  # fmt: skip
    info = machine()
    info["command"] = " ".join(["python -m depthbench.bench.data", *(argv or sys.argv[1:])])
    info["load_average_1min"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
    args.out.mkdir(parents=True, exist_ok=True)
    payload = {"machine": info, **result}
    write_text_atomic(args.out / "bench_data.json", json.dumps(payload, indent=2) + "\n")
    write_text_atomic(args.out / "bench_data.md", render(result, info))
    print(render(result, info))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
