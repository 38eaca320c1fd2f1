"""Framework overhead: the real ``run.train`` path against a hand-written loop, per training step.

Both sides train the same network (same init seed), on the same in-memory Fashion-MNIST split,
with the same batch size, optimizer and scheduler partials (instantiated from the same config),
number of steps, threads and device. The hand-written loop is what a careful person writes: the
training set normalised once into one float tensor, a random permutation per epoch, slicing.
Both read the data from the same place: on a GPU the whole split lives in GPU memory for both
(the framework's data module keeps it there, the loop moves it there once), so neither pays a
per-batch host-to-device copy the other does not. The framework side is
``depthbench.core.run.train`` with the default callbacks and CSV logger, timed from the inside by
:class:`~depthbench.bench.timing.StepTimer`; validation and test are off (per-step cost only).

Every step is timed (end of one step to end of the next). Per run we keep the mean over the
timed window, the median step, the 10th-percentile step, and the process CPU time per step; the
median and the low percentile are the least disturbed by other work on the machine. Repeats
alternate framework / loop so drift hits both alike; ratios are paired per repeat and the median
over repeats is reported.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from hydra.utils import instantiate

from depthbench.bench.harness import compose, median, save_section, spread, timed_train

# name -> config overrides of the benchmark networks (20-layer MLPs, small CNN, ResNet-20)
MODELS: dict[str, list[str]] = {
    "mlp20": ["model=mlp", "model.depth=20", "model.width=256"],
    "mlp20_w128": ["model=mlp", "model.depth=20", "model.width=128"],
    "cnn": ["model=cnn"],
    "resnet20": ["model=resnet", "model.depth=20"],
}
STATS = ("median_ms", "p10_ms", "mean_ms", "cpu_ms")


def _stats(step_times: list[float], window_s: float, cpu_s: float, steps: int) -> dict:
    """Per-step milliseconds; without step times (asynchronous on a GPU) the window's mean."""
    t, mean_ms = np.asarray(step_times) * 1e3, window_s / steps * 1e3
    return {
        "median_ms": float(np.median(t)) if len(t) else mean_ms,
        "p10_ms": float(np.percentile(t, 10)) if len(t) else mean_ms,
        "mean_ms": mean_ms,
        "cpu_ms": cpu_s / steps * 1e3,
    }


def framework_steps(
    overrides: list[str], steps: int, warmup: int, device: str, workdir: Path
) -> dict[str, float]:
    """Per-step statistics of ``run.train`` after ``warmup`` steps (one run)."""
    cuda = device.startswith("cuda")
    run = [*overrides, f"trainer.max_steps={steps}", "trainer.max_epochs=-1",
           "+trainer.limit_val_batches=0", "test=false",
           f"trainer.accelerator={'gpu' if cuda else 'cpu'}"]  # fmt: skip
    t = timed_train(run, workdir, warmup_steps=warmup, last_step=steps, sync_cuda=cuda)
    n = t["timed_steps"]
    return _stats(
        [] if cuda else t["step_times"], t["step_seconds"] * n, t["step_cpu_seconds"] * n, n
    )


def raw_steps(overrides: list[str], steps: int, warmup: int, device: str) -> dict[str, float]:
    """Per-step statistics of a hand-written loop over the same data, model and optimizer."""
    from depthbench.core.build import build_data, build_net

    cuda = device.startswith("cuda")
    cfg = compose(overrides, Path(tempfile.gettempdir()))
    torch.manual_seed(cfg.seed)
    dm = build_data(cfg)
    x_raw, y = dm.splits["train"]
    # normalised once and kept where the framework keeps its split: on the GPU when there is one
    x, y = dm.transform(x_raw, False).contiguous().to(device), y.to(device)
    net = build_net(cfg.model, dm).to(device).train()
    optimizer = instantiate(cfg.optimizer)(params=list(net.parameters()))
    scheduler = instantiate(cfg.scheduler) if cfg.get("scheduler") else None
    scheduler = scheduler(optimizer=optimizer, total_steps=steps) if scheduler else None
    batch_size, n = cfg.data.batch_size, len(y)
    gen = torch.Generator().manual_seed(cfg.seed)
    step, start, cpu_start, last, step_times = 0, 0.0, 0.0, 0.0, []
    while step < steps:
        perm = torch.randperm(n, generator=gen).to(device)  # one copy per epoch, as the loader
        for b in range(0, n, batch_size):
            i = perm[b : b + batch_size]
            loss = F.cross_entropy(net(x[i]), y[i])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            step += 1
            if step == warmup:
                if cuda:
                    torch.cuda.synchronize()
                start, cpu_start = time.perf_counter(), time.process_time()
            now = time.perf_counter()
            if step > warmup:
                step_times.append(now - last)
            last = now
            if step == steps:
                break
    if cuda:
        torch.cuda.synchronize()
    window, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    return _stats([] if cuda else step_times, window, cpu, steps - warmup)


def run(
    models: list[str],
    steps: int,
    warmup: int,
    repeats: int,
    threads: int,
    device: str,
    extra: list[str] | None = None,
) -> dict[str, Any]:
    """Alternate framework and hand-written runs ``repeats`` times per model; medians, ratios.
    ``extra``: config overrides for both sides (e.g. ``callbacks=none logger=none``)."""
    torch.set_num_threads(threads)
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="depthbench-bench-") as tmp:
        for name in models:
            overrides = ["data=fashion_mnist", *MODELS[name], *(extra or [])]
            fw, raw = [], []
            for _ in range(repeats):
                fw.append(framework_steps(overrides, steps, warmup, device, Path(tmp)))
                raw.append(raw_steps(overrides, steps, warmup, device))
                pairs = ", ".join(f"{k} {fw[-1][k]:.2f}/{raw[-1][k]:.2f}" for k in STATS)
                print(f"overhead {name} (framework/raw): {pairs}", flush=True)
            entry: dict[str, Any] = {"overrides": overrides}
            for k in STATS:
                paired = [f[k] / r[k] for f, r in zip(fw, raw)]
                entry[k] = {"framework": median([f[k] for f in fw]),
                            "raw": median([r[k] for r in raw]),
                            "ratio": median(paired), "ratio_range": spread(paired)}  # fmt: skip
            results[name] = {**entry, "runs": {"framework": fw, "raw": raw}}
    return {"device": device, "threads": threads, "steps": steps, "warmup_steps": warmup,
            "repeats": repeats, "batch_size": 128, "models": results}  # fmt: skip


def main(argv: list[str]) -> dict[str, Any]:
    """``python -m depthbench.bench overhead [--device cuda] ...``"""
    p = argparse.ArgumentParser(prog="python -m depthbench.bench overhead", description=__doc__)
    p.add_argument("--models", default="mlp20,mlp20_w128,cnn", help=f"of {', '.join(MODELS)}")
    p.add_argument("--steps", type=int, default=200, help="steps per run (incl. warm-up)")
    p.add_argument("--warmup", type=int, default=30, help="untimed first steps")
    p.add_argument("--repeats", type=int, default=5, help="framework/raw pairs per model")
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--no-save", action="store_true", help="print only")
    p.add_argument("overrides", nargs="*", help="config overrides for both sides")
    a = p.parse_args(argv)
    result = run(a.models.split(","), a.steps, a.warmup, a.repeats, a.threads, a.device,
                 a.overrides)  # fmt: skip
    for name, r in result["models"].items():
        print(f"{name}: framework/raw " + ", ".join(f"{k} {r[k]['ratio']:.3f}" for k in STATS))
    if not a.no_save:
        save_section(f"overhead_{a.device}", result, " ".join([p.prog, *argv]))
    return result
