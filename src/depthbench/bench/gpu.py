"""``make gpu-check`` (``python -m depthbench.bench gpu``): the whole GPU path in one script.

On a CUDA machine, within 8 minutes and without network, it checks and measures:

1. ``fast_dev_run`` of every registered model with ``accelerator=gpu`` (bf16-mixed,
   channels-last, GPU-resident data), and the CIFAR ResNet with ``module.compile=true``;
2. host syncs and CPU-to-GPU copies per training step (``bench.syncs``) of an augmented CNN;
3. training images/s of ResNet-20/56/110 (32x32) and ResNet-50 (224x224), bf16 channels-last;
4. the framework-over-hand-written-loop ratio per step (both loops read GPU-resident data), and
   the data path's share of the framework's step;
5. the ``cpu_vs_gpu`` experiment's GPU column (ResNet-20, batch 32 and 128);
6. wall seconds to 94% test accuracy on Fashion-MNIST with a CIFAR ResNet-20;

with the peak GPU memory of each run, and writes ``gpu.json`` and ``gpu.md`` (GPU, driver,
torch/CUDA versions, commands, number of runs) into ``--out`` (default ``docs/results``).
Every section has a time cap (:data:`BUDGET_S`), so the whole fits 8 minutes on an H200: items
a section has no time left for are recorded as skipped, training runs get the remaining time as
``trainer.max_time``, and a section that overruns its cap is stopped by an alarm.
``--device cpu`` runs the same code at tiny sizes (the test suite does, into a temporary folder).
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from depthbench.bench import gpu_sections as sections
from depthbench.bench.common import RESULTS_DIR, ROOT, machine
from depthbench.bench.gpu_report import render
from depthbench.rundir.atomic import write_text_atomic

# section -> seconds it may take on an H200; the sum stays under the 8-minute budget with
# ~30 s for imports, data loading and writing the report
BUDGET_S: dict[str, int] = {
    "fast_dev_run": 90,
    "hot_path": 20,
    "throughput": 60,
    "overhead": 90,
    "cpu_vs_gpu": 40,
    "fmnist_94": 150,
}
TOTAL_S = 480
SECTIONS: dict[str, Callable[..., dict[str, Any]]] = {
    "fast_dev_run": sections.fast_dev_runs,
    "hot_path": sections.hot_path_syncs,
    "throughput": sections.throughput,
    "overhead": sections.overhead,
    "cpu_vs_gpu": sections.cpu_vs_gpu,
    "fmnist_94": sections.fmnist_to_94,
}


class SectionTimeout(BaseException):
    """A section ran past its cap (plus a grace period); a BaseException, so no run swallows it."""


def budget_line() -> str:
    """The one-line time budget, e.g. ``fast_dev_run 90 + ... = 450 s of 480 s``."""
    parts = " + ".join(f"{k} {v}" for k, v in BUDGET_S.items())
    return f"time budget (s): {parts} = {sum(BUDGET_S.values())} of {TOTAL_S}"


def environment(device: str) -> dict[str, Any]:
    """The machine record (``depthbench.machine``) with the GPU's driver, CUDA and cuDNN."""
    env: dict[str, Any] = {
        **machine(),
        "device": device,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "driver": None,
        "command": " ".join(["python -m depthbench.bench gpu", *sys.argv[2:]]),
    }
    if device == "cuda" and torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        env["gpu"] = torch.cuda.get_device_name(0)
        env["gpu_memory_gib"] = round(props.total_memory / 2**30, 1)
        env["capability"] = f"{props.major}.{props.minor}"
        try:
            env["driver"] = subprocess.run(
                ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                capture_output=True, text=True, timeout=20, check=True,
            ).stdout.strip().splitlines()[0]  # fmt: skip
        except (OSError, subprocess.SubprocessError, IndexError):
            env["driver"] = None
    return env


def _alarm(signum: int, frame: Any) -> None:
    raise SectionTimeout


def run_section(name: str, sizes: sections.Sizes, workdir: Path, grace: float) -> dict[str, Any]:
    """One section under its time cap; its result with ``seconds`` and ``status``."""
    cap = BUDGET_S[name] * sizes.cap_scale
    start = time.monotonic()
    deadline = start + cap
    use_alarm = hasattr(signal, "SIGALRM")
    if use_alarm:
        signal.signal(signal.SIGALRM, _alarm)
        signal.alarm(int(cap + grace))
    try:
        result = {"status": "ok", **SECTIONS[name](sizes, workdir / name, deadline)}
    except SectionTimeout:
        result = {"status": f"timed out after {cap + grace:.0f} s"}
    except Exception as e:  # one failing section must not stop the others
        result = {"status": f"failed: {type(e).__name__}: {e}"[:400],
                  "traceback": traceback.format_exc()[-2000:]}  # fmt: skip
    finally:
        if use_alarm:
            signal.alarm(0)
    result["seconds"] = round(time.monotonic() - start, 1)
    result["cap_seconds"] = cap
    return result


def run(device: str, only: list[str] | None = None) -> dict[str, Any]:
    """Every section (or ``only`` those) on ``device``; the full JSON record."""
    sizes = sections.GPU if device == "cuda" else sections.TINY
    torch.backends.cudnn.benchmark = device == "cuda"
    record: dict[str, Any] = {"environment": environment(device), "budget": budget_line(),
                              "sections": {}}  # fmt: skip
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="depthbench-gpu-check-") as tmp:
        for name in SECTIONS:
            if only and name not in only:
                continue
            print(f"gpu-check {name} (cap {BUDGET_S[name]} s) ...", flush=True)
            record["sections"][name] = run_section(name, sizes, Path(tmp), grace=30)
            print(f"gpu-check {name}: {record['sections'][name]['status']} in "
                  f"{record['sections'][name]['seconds']} s", flush=True)  # fmt: skip
    record["total_seconds"] = round(time.monotonic() - start, 1)
    return record


def write(record: dict[str, Any], out_dir: Path) -> tuple[Path, Path]:
    """``gpu.json`` and ``gpu.md`` in ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    js, md = out_dir / "gpu.json", out_dir / "gpu.md"
    write_text_atomic(js, json.dumps(record, indent=1, default=str) + "\n")
    write_text_atomic(md, render(record))
    return js, md


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """``python -m depthbench.bench gpu [--device cuda|cpu] [--out DIR] [--only S,...]``"""
    p = argparse.ArgumentParser(prog="depthbench.bench gpu", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--device", default="cuda", choices=("cuda", "cpu"),
                   help="cpu: the same code at tiny sizes (a dry run of the check)")  # fmt: skip
    p.add_argument("--out", type=Path, help="folder for gpu.json/gpu.md (default: docs/results "
                   "on cuda, outputs/gpu_check_cpu on cpu)")  # fmt: skip
    p.add_argument("--only", help=f"comma-separated sections of {', '.join(SECTIONS)}")
    a = p.parse_args(argv)
    if a.device == "cuda" and not torch.cuda.is_available():
        print("gpu-check: no CUDA device here; `--device cpu` runs the same code at tiny sizes",
              file=sys.stderr)  # fmt: skip
        sys.exit(2)
    out = a.out or (RESULTS_DIR if a.device == "cuda" else ROOT / "outputs" / "gpu_check_cpu")
    print(budget_line(), flush=True)
    record = run(a.device, a.only.split(",") if a.only else None)
    js, md = write(record, out)
    print(f"gpu-check done in {record['total_seconds']} s: {md}, {js}", flush=True)
    return record
