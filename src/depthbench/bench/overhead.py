"""Framework overhead: ``depthbench.core.train`` against a hand-written loop, per training step.

Both sides do the same arithmetic: the same network, Fashion-MNIST's training split, batch
size, optimizer and scheduler (built from one config), number of steps and threads. The
framework side is ``core.train`` with the default callbacks and CSV logger, validation and test
off; the hand-written side (``harness.hand_train``) slices a split normalised once, in a new
random order every epoch. One ``harness.StepTimer`` times both. Runs alternate framework /
hand-written so that drift on a shared machine hits both alike; each pair gives a ratio of
median steps, reported as the median over the pairs with its range, beside each side's median
wait for the next batch.
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from hydra.utils import instantiate

from depthbench import core
from depthbench.bench import harness

# name -> config overrides of the benchmark networks
MODELS: dict[str, list[str]] = {
    "mlp20": ["model=mlp", "model.depth=20", "model.width=256"],
    "mlp20_w128": ["model=mlp", "model.depth=20", "model.width=128"],
    "cnn": ["model=cnn"],
}
SIDES = ("framework", "hand")


def framework(overrides: Sequence[str], steps: int, warmup: int, workdir: Path) -> dict:
    """The timer's summary of one ``core.train`` of ``steps`` training steps."""
    timer = harness.StepTimer(warmup, steps)
    run = [*overrides, f"trainer.max_steps={steps}", "trainer.max_epochs=-1",
           "+trainer.limit_val_batches=0", "test=false"]  # fmt: skip
    harness.train_run(run, workdir, [timer])
    return timer.summary()


def shuffled(
    x: torch.Tensor, y: torch.Tensor, batch_size: int, seed: int
) -> Iterator[harness.Batch]:
    """Batches of ``x``, ``y`` in a new random order every epoch, sliced by hand."""
    generator = torch.Generator().manual_seed(seed)
    while True:
        order = torch.randperm(len(y), generator=generator)
        for b in range(0, len(y), batch_size):
            yield x[order[b : b + batch_size]], y[order[b : b + batch_size]]


def hand(overrides: Sequence[str], steps: int, warmup: int) -> dict:
    """The timer's summary of the hand-written loop over the same data, network and optimizer."""
    cfg = core.compose(overrides)
    torch.manual_seed(cfg.seed)
    data = core.build_data(cfg)
    x, y = data.splits["train"]
    net = core.build_net(cfg.model, data).train()
    optimizer = instantiate(cfg.optimizer)(params=list(net.parameters()))
    make_scheduler = instantiate(cfg.scheduler) if cfg.get("scheduler") else None
    scheduler = make_scheduler(optimizer=optimizer, total_steps=steps) if make_scheduler else None
    timer = harness.StepTimer(warmup, steps)
    batches = shuffled(data.transform(x, False).contiguous(), y, cfg.data.batch_size, cfg.seed)
    harness.hand_train(net, batches, optimizer, timer, scheduler)
    return {**timer.summary(), "batch_size": cfg.data.batch_size}


def run(
    models: Sequence[str], steps: int, warmup: int, repeats: int, threads: int, extra: Sequence[str]
) -> dict[str, Any]:
    """``repeats`` alternating framework / hand-written pairs per model, with ``extra`` config
    overrides for both sides; medians and the ratios of the pairs."""
    torch.set_num_threads(threads)
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="depthbench-overhead-") as tmp:
        for name in models:
            overrides = ["data=fashion_mnist", *MODELS[name], *extra]
            pairs = []
            for _ in range(repeats):
                pairs.append({"framework": framework(overrides, steps, warmup, Path(tmp)),
                              "hand": hand(overrides, steps, warmup)})  # fmt: skip
                print(f"overhead {name}, ms per step (wait): " + ", ".join(
                    f"{k} {v['step_ms']:.2f} ({v['wait_ms']:.3f})" for k, v in pairs[-1].items()
                ), flush=True)  # fmt: skip
            ratios = [p["framework"]["step_ms"] / p["hand"]["step_ms"] for p in pairs]
            results[name] = {
                "overrides": overrides, "batch_size": pairs[0]["hand"]["batch_size"],
                "ratio": harness.median(ratios), "ratio_range": harness.spread(ratios),
                **{f"{side}_{k}": harness.median([p[side][k] for p in pairs])
                   for side in SIDES for k in ("step_ms", "wait_ms")},
                "pairs": pairs,
            }  # fmt: skip
    return {"threads": threads, "steps": steps, "warmup_steps": warmup, "repeats": repeats,
            "models": results}  # fmt: skip


def main(argv: list[str]) -> dict[str, Any]:
    """``python -m depthbench.bench overhead [--models ...] [overrides]``"""
    p = argparse.ArgumentParser(prog="python -m depthbench.bench overhead", description=__doc__)
    p.add_argument("--models", default=",".join(MODELS), help=f"of {', '.join(MODELS)}")
    p.add_argument("--steps", type=int, default=120, help="steps per run (warm-up included)")
    p.add_argument("--warmup", type=int, default=20, help="untimed first steps")
    p.add_argument("--repeats", type=int, default=5, help="framework / hand-written pairs")
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    p.add_argument("--no-save", action="store_true", help="print only")
    p.add_argument("overrides", nargs="*", help="config overrides for both sides")
    a = p.parse_args(argv)
    models = a.models.split(",")
    if unknown := [m for m in models if m not in MODELS]:
        p.error(f"unknown model(s) {', '.join(unknown)}; allowed: {', '.join(MODELS)}")
    result = run(models, a.steps, a.warmup, a.repeats, a.threads, a.overrides)
    for name, r in result["models"].items():
        lo, hi = r["ratio_range"]
        print(f"overhead {name}: framework / hand-written {r['ratio']:.3f} ({lo:.2f}-{hi:.2f})")
    if not a.no_save:
        harness.save_section("overhead", result, " ".join([p.prog, *argv]))
    return result
