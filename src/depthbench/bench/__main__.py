"""``python -m depthbench.bench [BENCHMARK|all] [options]``: the benchmarks behind ``make bench``.

BENCHMARK is one of overhead, time_to_acc, flops, scaling, data, gpu, profile, load.

``all`` (the default, ``make bench``) runs every CPU benchmark, plus the GPU check when CUDA
is available (``gpu``, ``make gpu-check``: its own ``gpu.{md,json}``). Each other one writes its
section of ``docs/results/bench.json`` and re-renders ``bench.md`` (the data benchmark writes
``bench_data.{json,md}``). ``SUBCOMMAND --help`` lists its options.
"""

from __future__ import annotations

import importlib
import sys

import torch

# subcommand -> module with main(argv)
BENCHMARKS = {
    "overhead": "depthbench.bench.overhead",
    "time_to_acc": "depthbench.bench.time_to_acc",
    "flops": "depthbench.bench.flops",
    "scaling": "depthbench.bench.scaling",
    "data": "depthbench.bench.data",
    "gpu": "depthbench.bench.gpu",
    "profile": "depthbench.bench.profile",
    "load": "depthbench.bench.load",
}
CPU_ALL = ("flops", "overhead", "scaling", "data", "time_to_acc", "load")


def main(argv: list[str] | None = None) -> None:
    """Dispatch to one benchmark, or run them all."""
    argv = sys.argv[1:] if argv is None else argv
    name, rest = (argv[0], argv[1:]) if argv and not argv[0].startswith("-") else ("all", argv)
    if name == "all":  # each with its default options
        for bench in CPU_ALL:
            print(f"== {bench}", flush=True)
            importlib.import_module(BENCHMARKS[bench]).main([])
        if torch.cuda.is_available():  # the GPU check measures overhead on the GPU as well
            importlib.import_module(BENCHMARKS["gpu"]).main([])
        return
    if name not in BENCHMARKS:
        print(f"usage: python -m depthbench.bench [{'|'.join(BENCHMARKS)}|all] [options]",
              file=sys.stderr)  # fmt: skip
        sys.exit(2)
    importlib.import_module(BENCHMARKS[name]).main(list(rest))


if __name__ == "__main__":
    main()
