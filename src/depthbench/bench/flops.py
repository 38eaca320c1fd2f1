"""Hardware efficiency: achieved training FLOP/s of a wide MLP against this CPU's matmul peak.

The peak is measured, not looked up: the best of ``--repeats`` timings of a large square fp32
``torch.mm`` with the same thread count. The model is ``DeepMLP`` (width ``--width``, ``--depth``
hidden layers, no normalisation) trained with plain SGD on random data in memory, so the step is
almost all matmuls: 2 FLOPs per multiply-add forward, twice that backward (input and weight
gradients), i.e. 6 x batch x (weights of the Linear layers) per step (Kaplan et al. 2020, eq. 2.1).
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import torch
import torch.nn.functional as F

from depthbench.bench.harness import median, save_section
from depthbench.models.deep import DeepMLP


def matmul_peak_flops(n: int = 2048, repeats: int = 10) -> dict[str, float]:
    """FLOP/s of an ``n x n`` fp32 matmul: best and median of ``repeats`` timings."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        times.append(time.perf_counter() - start)
    flop = 2 * n**3
    return {"best": flop / min(times), "median": flop / median(times), "n": n}


def linear_weights(net: torch.nn.Module) -> int:
    """Multiply-adds per example of all Linear layers (their weight count)."""
    return sum(m.weight.numel() for m in net.modules() if isinstance(m, torch.nn.Linear))


def step_seconds(
    net: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    optimizer: torch.optim.Optimizer,
    steps: int,
    warmup: int,
    autocast: bool = False,
) -> list[float]:
    """Wall seconds of each of ``steps`` training steps on one fixed batch, after ``warmup``
    untimed steps; each step synchronised on a GPU, in bf16 autocast with ``autocast``."""
    cuda = x.device.type == "cuda"
    times = []
    for i in range(warmup + steps):
        if cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=autocast):
            loss = F.cross_entropy(net(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if cuda:
            torch.cuda.synchronize()
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return times


def training_flops(width: int, depth: int, batch: int, steps: int, warmup: int) -> dict[str, Any]:
    """Median FLOP/s of SGD training steps of a wide MLP on in-memory random data."""
    torch.manual_seed(0)
    net = DeepMLP(input_shape=[width], num_classes=10, depth=depth, width=width, init="kaiming")
    x, y = torch.randn(batch, width), torch.randint(0, 10, (batch,))
    times = step_seconds(net, x, y, torch.optim.SGD(net.parameters(), lr=1e-3), steps, warmup)
    flop_per_step = 6 * batch * linear_weights(net)
    return {
        "width": width,
        "depth": depth,
        "batch": batch,
        "steps": steps,
        "flop_per_step": flop_per_step,
        "step_ms_median": median(times) * 1e3,
        "flops_median": flop_per_step / median(times),
    }


def run(width: int, depth: int, batch: int, steps: int, repeats: int, threads: int) -> dict:
    """Peak before and after training (a busy machine drifts); fraction of the better peak."""
    torch.set_num_threads(threads)
    peak_before = matmul_peak_flops(repeats=repeats)
    train = training_flops(width, depth, batch, steps, warmup=3)
    peak_after = matmul_peak_flops(repeats=repeats)
    peak = max(peak_before["best"], peak_after["best"])
    return {
        "threads": threads,
        "matmul_peak_gflops": peak / 1e9,
        "matmul_peak_median_gflops": max(peak_before["median"], peak_after["median"]) / 1e9,
        "matmul_n": peak_before["n"],
        "train": train,
        "train_gflops": train["flops_median"] / 1e9,
        "fraction_of_peak": train["flops_median"] / peak,
    }


def main(argv: list[str]) -> dict[str, Any]:
    """``python -m depthbench.bench flops [--width 2048] ...``"""
    p = argparse.ArgumentParser(prog="python -m depthbench.bench flops", description=__doc__)
    p.add_argument("--width", type=int, default=2048)
    p.add_argument("--depth", type=int, default=4)
    p.add_argument("--batch", type=int, default=512)
    p.add_argument("--steps", type=int, default=10, help="timed steps (median reported)")
    p.add_argument("--repeats", type=int, default=10, help="matmul timings for the peak")
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    p.add_argument("--no-save", action="store_true")
    a = p.parse_args(argv)
    result = run(a.width, a.depth, a.batch, a.steps, a.repeats, a.threads)
    print(f"flops: training {result['train_gflops']:.1f} GFLOP/s of a measured matmul peak "
          f"{result['matmul_peak_gflops']:.1f} = {result['fraction_of_peak']:.0%}")  # fmt: skip
    if not a.no_save:
        save_section("flops", result, " ".join([p.prog, *argv]))
    return result
