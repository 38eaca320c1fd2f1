"""What every benchmark shares: a config trained by ``depthbench.core.train`` with measuring
callbacks, the hand-written loop it is compared with, one step timer for both, a timed process,
medians, the machine record, and the results: ``docs/results/<page>.json`` and the page rendered
from it alone (``bench.pages``); each CPU benchmark writes its own section of ``bench.json``.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from omegaconf import DictConfig

from depthbench import core
from depthbench.atomic import write_text_atomic
from depthbench.machine import machine_record

RESULTS_DIR = Path("docs") / "results"
CHECKOUT = Path(__file__).resolve().parents[3]  # the source checkout, where train.py is
Batch = tuple[torch.Tensor, torch.Tensor]


def compose(overrides: Sequence[str], output_dir: Path) -> DictConfig:
    """The config ``python train.py OVERRIDES`` runs, its outputs going to ``output_dir``."""
    return core.compose([*overrides, f"paths.output_dir={output_dir}"])


def train_run(
    overrides: Sequence[str], workdir: Path, callbacks: Sequence[L.Callback] = ()
) -> dict[str, Any]:
    """``core.train`` of the composed config in a new folder under ``workdir``, the measuring
    ``callbacks`` joining the configured ones; the run's ``metrics.json`` record."""
    return core.train(compose(overrides, workdir / f"run-{time.time_ns()}"), callbacks=callbacks)


class StepTimer(L.Callback):
    """Time training steps the same way inside ``core.train`` (as a callback) and inside
    :func:`hand_train` (which calls :meth:`step_start` and :meth:`step_end` itself).

    A step runs from the end of the step before to its own end, so it covers all the work done
    per step; its wait is the part before the step starts (getting the next batch and, in the
    framework, the loop's work between two steps). The first ``warmup`` steps (at least one) are
    not timed. With ``sync_cuda`` the GPU is waited for at the two ends of the timed steps only:
    their mean is exact, and no step in between waits for the device.
    """

    def __init__(self, warmup: int, steps: int, sync_cuda: bool = False) -> None:
        self.warmup, self.steps, self.sync_cuda = max(warmup, 1), steps, sync_cuda
        self.done = 0  # steps ended so far
        self.step_s: list[float] = []  # wall seconds of each timed step, back to back
        self.wait_s: list[float] = []  # of which before the step started
        self._start = self._end = 0.0

    def step_start(self) -> None:
        """Mark the start of a step (its batch is at hand)."""
        self._start = time.perf_counter()

    def step_end(self) -> None:
        """Mark the end of a step (its optimizer update is done)."""
        self.done += 1
        if self.sync_cuda and self.done in (self.warmup, self.steps):
            torch.cuda.synchronize()
        now = time.perf_counter()
        if self.warmup < self.done <= self.steps:
            self.step_s.append(now - self._end)
            self.wait_s.append(self._start - self._end)
        self._end = now

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        self.step_start()

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, i: int
    ) -> None:
        self.step_end()

    def summary(self) -> dict[str, float]:
        """Milliseconds per timed step: the median step, the median wait and the mean step."""
        if not self.step_s:
            raise RuntimeError(f"no step timed: {self.done} steps ran, {self.warmup} warm-up")
        ms = [s * 1e3 for s in self.step_s]
        return {"step_ms": median(ms), "wait_ms": median(self.wait_s) * 1e3,
                "mean_ms": statistics.fmean(ms), "timed_steps": len(ms)}  # fmt: skip


def hand_train(
    net: torch.nn.Module,
    batches: Iterator[Batch],
    optimizer: torch.optim.Optimizer,
    timer: StepTimer,
    scheduler: Any = None,
    bf16: bool = False,
) -> None:
    """The hand-written training loop: ``timer.steps`` steps of cross-entropy, backward,
    optimizer (and scheduler) step over ``batches``, in bf16 autocast with ``bf16``."""
    for _ in range(timer.steps):
        x, y = next(batches)
        timer.step_start()
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = F.cross_entropy(net(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        timer.step_end()


def time_process(
    args: Sequence[str],
    *,
    threads: int | None = None,
    expect: int = 0,
    timeout: float | None = None,
) -> tuple[float, float]:
    """Wall and CPU seconds (user + system) of the process ``python ARGS``, from spawn to exit,
    run in the checkout (``threads``: its OpenMP/BLAS threads). An exit code other than
    ``expect`` stops the benchmark with the process's last lines."""
    env = dict(os.environ)
    if threads:
        env |= dict.fromkeys(("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"),
                             str(threads))  # fmt: skip
    before, start = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
    proc = subprocess.run([sys.executable, *args], cwd=CHECKOUT, env=env, capture_output=True,
                          text=True, timeout=timeout)  # fmt: skip
    wall, after = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != expect:
        raise RuntimeError(
            f"python {' '.join(args)}: exit {proc.returncode}\n{proc.stderr[-2000:]}"
        )
    return wall, after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime


def median(values: Sequence[float]) -> float:
    """Median of a non-empty sequence."""
    return float(statistics.median(values))


def spread(values: Sequence[float]) -> list[float]:
    """[min, max] of a non-empty sequence: the range the median came from."""
    return [float(min(values)), float(max(values))]


def machine(command: str) -> dict[str, Any]:
    """The machine record (``depthbench.machine``), its versions flat, with the UTC date, the
    1-minute load average (how busy the machine was) and the benchmark's command line."""
    record = machine_record()
    return {
        **{k: v for k, v in record.items() if k != "versions"},
        **record["versions"],
        "date_utc": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M"),
        "load_average_1min": round(os.getloadavg()[0], 2),
        "command": command,
    }


def write_results(page: str, record: dict[str, Any], out_dir: Path) -> Path:
    """``<page>.json`` (the record) and ``<page>.md`` (rendered from it) in ``out_dir``."""
    from depthbench.bench.pages import PAGES

    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{page}.json"
    write_text_atomic(path, json.dumps(record, indent=2, default=str) + "\n")
    write_text_atomic(out_dir / f"{page}.md", PAGES[page](record))
    return path


def save_section(
    name: str, payload: dict[str, Any], command: str, out_dir: Path = RESULTS_DIR
) -> Path:
    """Store ``payload`` with the machine record as section ``name`` of ``bench.json``."""
    path = out_dir / "bench.json"
    data = json.loads(path.read_text()) if path.is_file() else {}
    data[name] = {"machine": machine(command), **payload}
    return write_results("bench", data, out_dir)
