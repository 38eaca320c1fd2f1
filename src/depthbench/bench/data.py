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
loop's time, and the end-to-end slowdown (noisier when other work runs), both paired per repeat.
Runs alternate between the paths so the drift of a busy machine hits all alike; medians over
``--repeats`` are reported. Results go to ``bench_data.json`` and its page ``bench_data.md``.

    python -m depthbench.bench data [--models mlp20,cnn] [--steps 60] [--repeats 3]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from hydra.utils import instantiate

from depthbench.bench.harness import (
    RESULTS_DIR,
    compose,
    load_average,
    machine,
    median,
    spread,
    write_results,
)
from depthbench.bench.overhead import MODELS
from depthbench.data.base import InMemoryDataModule


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


def seconds_per_batch(
    batches: Iterable, n_batches: int, warmup: int = 5, device: torch.device | None = None
) -> float:
    """Seconds per batch without a model, timed over ``n_batches`` after ``warmup`` batches
    (they absorb the start of DataLoader worker processes); synchronised on a GPU."""
    sync = torch.cuda.synchronize if device is not None and device.type == "cuda" else None
    it = iter(batches)
    for _ in range(warmup):
        next(it)
    if sync:
        sync()
    start = time.perf_counter()
    for _ in range(n_batches):
        next(it)
    if sync:
        sync()
    return (time.perf_counter() - start) / n_batches


def make_datamodule(loader: str, workers: int, seed: int, workdir: Path) -> InMemoryDataModule:
    """Fashion-MNIST as ``depthbench train data=fashion_mnist`` builds it, set up for fitting."""
    from depthbench.core.build import build_data

    overrides = ["data=fashion_mnist", f"data.loader={loader}", f"data.num_workers={workers}"]
    return build_data(compose([*overrides, f"seed={seed}"], workdir))


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
    with tempfile.TemporaryDirectory(prefix="depthbench-bench-data-") as tmp:
        memory = make_datamodule("memory", 0, seed, Path(tmp))
        classic = {w: make_datamodule("torchvision", w, seed, Path(tmp)) for w in workers}
        x_norm = memory.transform(memory.splits["train"][0], train=False).contiguous()
        y = memory.splits["train"][1]
        batch_size, n_train = memory.batch_size, len(y)
        steps_per_epoch = -(-n_train // batch_size)
        paths: dict[str, Callable[[], Iterable]] = {
            "raw": lambda: raw_batches(x_norm, y, batch_size, seed),
            "memory": lambda: forever(memory.train_dataloader),
            **{f"torchvision_w{w}": lambda dm=dm: forever(dm.train_dataloader)
               for w, dm in classic.items()},
        }  # fmt: skip

        # batches without a model: the pure cost of each path
        loaders_only: dict[str, list[float]] = {name: [] for name in paths}
        for _ in range(repeats):
            for name, batches in paths.items():
                seconds = seconds_per_batch(batches(), loader_batches) * steps_per_epoch
                loaders_only[name].append(seconds)
            print("epoch without model: " + ", ".join(
                f"{k} {v[-1]:.2f}s" for k, v in loaders_only.items()), flush=True)  # fmt: skip

        results: dict[str, Any] = {}
        for model in models:
            cfg = compose(["data=fashion_mnist", *MODELS[model]], Path(tmp))
            runs: dict[str, list[dict[str, float]]] = {name: [] for name in paths}
            for r in range(repeats):
                for name, batches in paths.items():
                    torch.manual_seed(seed)
                    net = instantiate(cfg.model, input_shape=list(memory.input_shape),
                                      num_classes=memory.num_classes).train()  # fmt: skip
                    runs[name].append(m := train_steps(net, batches(), steps, warmup))
                    print(f"{model} repeat {r}: {name:15s} {m['samples'] / m['seconds']:8.0f} "
                          f"samples/s, waiting {m['wait_seconds']:.3f}s", flush=True)  # fmt: skip
            results[model] = summarise(runs, steps_per_epoch, steps, MODELS[model])
    return {
        "dataset": "fashion_mnist",
        "train_examples": n_train,
        "batch_size": batch_size,
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


def main(argv: list[str]) -> dict[str, Any]:
    """Run the benchmark and write ``bench_data.json`` and ``bench_data.md``."""
    p = argparse.ArgumentParser(prog="python -m depthbench.bench data", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--models", default="mlp20,cnn", help=f"of {', '.join(MODELS)}")
    p.add_argument("--steps", type=int, default=60, help="timed training steps per run")
    p.add_argument("--warmup", type=int, default=5, help="untimed steps before timing")
    p.add_argument("--loader-batches", type=int, default=100,
                   help="batches timed per loader without a model")  # fmt: skip
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--workers", default="0,1,2", help="DataLoader num_workers to try")
    p.add_argument("--threads", type=int, default=1, help="torch threads (training process)")
    p.add_argument("--out", type=Path, default=RESULTS_DIR, help="folder for the results")
    a = p.parse_args(argv)
    models = [m for m in a.models.split(",") if m]
    unknown = [m for m in models if m not in MODELS]
    if unknown:
        p.error(f"unknown model(s) {', '.join(unknown)}; allowed: {', '.join(MODELS)}")
    load_before = load_average()
    result = run(models, a.steps, a.warmup, a.repeats, [int(w) for w in a.workers.split(",") if w],
                 a.threads, a.loader_batches)  # fmt: skip
    info = machine(" ".join([p.prog, *argv]))
    info["load_average_1min"] = [load_before, info["load_average_1min"]]  # at the start, the end
    path = write_results("bench_data", {"machine": info, **result}, a.out)
    print(f"data: written to {path} and its page")
    return result


if __name__ == "__main__":  # python -m depthbench.bench.data, as docs/performance.md names it
    main(sys.argv[1:])
