"""Profile a short training run with pyinstrument: where does a training step's time go?

    python -m depthbench.bench profile [--steps 300] [--out docs/results/profile.txt] [overrides]

The default is the overhead benchmark's 20-layer MLP (width 128) on Fashion-MNIST, one thread,
no validation or test; extra arguments are config overrides.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch

from depthbench.bench.harness import RESULTS_DIR, compose


def main(argv: list[str]) -> str:
    """Profile ``run.train``; write the text report to ``--out`` and return it."""
    from pyinstrument import Profiler

    from depthbench.run import train

    p = argparse.ArgumentParser(prog="python -m depthbench.bench profile", description=__doc__)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=str(RESULTS_DIR / "profile.txt"))
    p.add_argument("overrides", nargs="*")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    overrides = ["data=fashion_mnist", "model=mlp", "model.depth=20", "model.width=128",
                 f"trainer.max_steps={a.steps}", "+trainer.limit_val_batches=0", "test=false",
                 "callbacks.progress_bar.refresh_rate=0", *a.overrides]  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="depthbench-profile-") as tmp:
        cfg = compose(overrides, Path(tmp))
        profiler = Profiler(interval=0.0005)
        profiler.start()
        train(cfg)
        profiler.stop()
    text = profiler.output_text(unicode=False, color=False)
    Path(a.out).write_text(f"# {' '.join([p.prog, *argv])}\n{text}")
    print(text)
    return text
