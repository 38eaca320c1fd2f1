"""The machine's reference line: the fp32 matmul peak of this CPU, measured rather than looked up,
so the absolute times on a bench page can be read against the speed of the machine behind them.

The best and the median of ``--repeats`` timings of one ``n x n`` fp32 ``torch.mm`` with
``--threads`` threads, at 2 n^3 FLOPs each.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import torch

from depthbench.bench.harness import median, save_section


def matmul_peak(n: int, repeats: int, threads: int) -> dict[str, Any]:
    """GFLOP/s of an ``n x n`` fp32 matmul: best and median of ``repeats`` timings."""
    torch.set_num_threads(threads)
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)  # warm-up
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        seconds.append(time.perf_counter() - start)
    flop = 2 * n**3
    return {"n": n, "repeats": repeats, "threads": threads,
            "best_gflops": flop / min(seconds) / 1e9,
            "median_gflops": flop / median(seconds) / 1e9}  # fmt: skip


def main(argv: list[str]) -> dict[str, Any]:
    """``python -m depthbench.bench peak [--n 2048] [--repeats 10] [--threads 1]``"""
    p = argparse.ArgumentParser(prog="python -m depthbench.bench peak", description=__doc__)
    p.add_argument("--n", type=int, default=2048, help="matrix size")
    p.add_argument("--repeats", type=int, default=10, help="timed matmuls")
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    p.add_argument("--no-save", action="store_true", help="print only")
    a = p.parse_args(argv)
    result = matmul_peak(a.n, a.repeats, a.threads)
    best, med = result["best_gflops"], result["median_gflops"]
    print(f"peak: fp32 matmul {best:.1f} GFLOP/s best, {med:.1f} median of {a.repeats}")
    if not a.no_save:
        save_section("matmul_peak", result, " ".join([p.prog, *argv]))
    return result
