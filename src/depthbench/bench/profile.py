"""Profile a short training run: where does a training step's time go?

    python -m depthbench.bench profile [--steps 300] [--out docs/results/profile.txt] [overrides]

Two runs of the same job, each with one profiler: Lightning's ``SimpleProfiler`` times every
hook of every callback and of the module (what each always-on callback costs per step), then
pyinstrument samples the whole call tree. The default job is the overhead benchmark's 20-layer
MLP (width 128) on Fashion-MNIST, one thread, no validation or test; extra arguments are config
overrides. Both reports go into one text file.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch

from depthbench import core
from depthbench.bench.harness import RESULTS_DIR, compose


def hook_report(overrides: list[str], workdir: Path) -> str:
    """Lightning's ``SimpleProfiler`` summary of one ``core.train``: mean seconds and calls of
    every hook, callbacks' hooks named ``[Callback]<state key>.<hook>``."""
    profiler = ["+trainer.profiler._target_=lightning.pytorch.profilers.SimpleProfiler",
                f"+trainer.profiler.dirpath={workdir}",
                "+trainer.profiler.filename=hooks"]  # fmt: skip
    cfg = compose([*overrides, *profiler], workdir)
    core.train(cfg)
    report = next(workdir.glob("*hooks.txt")).read_text()
    return f"{callback_cost(report, cfg.trainer.max_steps)}\n\n{report}"


def callback_cost(report: str, steps: int) -> str:
    """One line from a ``SimpleProfiler`` report: the callbacks' hooks that run every step,
    summed and per step, their once-a-fit or once-an-epoch hooks, and the training batch."""
    every_step = once = batch = 0.0
    for row in report.splitlines():
        cells = [c.strip() for c in row.split("|")]  # action, mean s, calls, total s, percent
        if len(cells) < 5:
            continue
        if cells[1].startswith("[Callback]"):
            if int(cells[3]) >= steps:
                every_step += float(cells[4])
            else:
                once += float(cells[4])
        elif cells[1] == "run_training_batch":
            batch = float(cells[4])
    return (f"Callback hooks that run every step: {every_step / steps * 1e3:.3f} ms per step; "
            f"the other callback hooks: {once * 1e3:.1f} ms in all; a training batch "
            f"(run_training_batch): {batch / steps * 1e3:.3f} ms; {steps} steps.")  # fmt: skip


def call_tree(overrides: list[str], workdir: Path) -> str:
    """pyinstrument's call tree of one ``core.train`` (0.5 ms sampling)."""
    from pyinstrument import Profiler

    cfg = compose(overrides, workdir)
    profiler = Profiler(interval=0.0005)
    profiler.start()
    core.train(cfg)
    profiler.stop()
    return profiler.output_text(unicode=False, color=False)


def main(argv: list[str]) -> str:
    """Profile ``core.train``; write both reports to ``--out`` and return them."""
    p = argparse.ArgumentParser(prog="python -m depthbench.bench profile", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
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
        hooks = hook_report(overrides, Path(tmp) / "hooks")
        tree = call_tree(overrides, Path(tmp) / "tree")
    text = (f"# {' '.join([p.prog, *argv])}\n\n## Every hook (Lightning's SimpleProfiler)\n"
            f"{hooks}\n\n## The call tree (pyinstrument)\n{tree}")  # fmt: skip
    Path(a.out).write_text(text)
    print(text)
    return text
