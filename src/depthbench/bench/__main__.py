"""``python -m depthbench.bench [SECTION|all] [options]``: the benchmarks behind ``make bench``.

``all`` (the default) runs every CPU section with its default options, and the GPU check when
CUDA is available. ``SECTION --help`` lists a section's options.
"""

from __future__ import annotations

import importlib
import sys

CPU_SECTIONS = ("startup", "peak", "overhead", "time_to_acc", "seeds")
SECTIONS = (*CPU_SECTIONS, "gpu")  # each a module of depthbench.bench with main(argv)


def main(argv: list[str]) -> None:
    """Run one section, or them all."""
    name, rest = (argv[0], argv[1:]) if argv and not argv[0].startswith("-") else ("all", argv)
    if name == "all" and rest:
        print(__doc__.strip() + f"\n\nSECTION: {', '.join(SECTIONS)}")
    elif name == "all":
        import torch

        for section in CPU_SECTIONS + ("gpu",) * torch.cuda.is_available():
            print(f"== {section}", flush=True)
            importlib.import_module(f"depthbench.bench.{section}").main([])
    elif name in SECTIONS:
        importlib.import_module(f"depthbench.bench.{name}").main(rest)
    else:
        print(f"usage: python -m depthbench.bench [{'|'.join(SECTIONS)}|all] [options]",
              file=sys.stderr)  # fmt: skip
        sys.exit(2)


if __name__ == "__main__":
    main(sys.argv[1:])
