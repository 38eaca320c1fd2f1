"""``python -m depthbench.bench [BENCHMARK|all] [options]``: the benchmarks behind ``make bench``.

``all`` (the default, ``make bench``) runs every CPU benchmark with its default options, plus the
GPU check when CUDA is available. ``BENCHMARK --help`` lists a benchmark's options.
"""

from __future__ import annotations

import importlib
import sys

# benchmark -> the module whose main(argv) runs it
NAMES = ("overhead", "time_to_acc", "flops", "data", "startup", "seeds", "gpu", "profile")
BENCHMARKS = {name: f"depthbench.bench.{name}" for name in NAMES}
CPU_ALL = ("startup", "flops", "overhead", "data", "time_to_acc", "seeds")


def main(argv: list[str]) -> None:
    """Run one benchmark, or them all."""
    name, rest = (argv[0], argv[1:]) if argv and not argv[0].startswith("-") else ("all", argv)
    if rest[:1] in (["-h"], ["--help"]) and name == "all":
        print(__doc__.strip() + f"\n\nBENCHMARK: {', '.join(BENCHMARKS)}")
    elif name == "all":
        import torch

        for bench in CPU_ALL + ("gpu",) * torch.cuda.is_available():
            print(f"== {bench}", flush=True)
            importlib.import_module(BENCHMARKS[bench]).main([])
    elif name in BENCHMARKS:
        importlib.import_module(BENCHMARKS[name]).main(rest)
    else:
        print(f"usage: python -m depthbench.bench [{'|'.join(BENCHMARKS)}|all] [options]",
              file=sys.stderr)  # fmt: skip
        sys.exit(2)


if __name__ == "__main__":
    main(sys.argv[1:])
