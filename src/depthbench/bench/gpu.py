"""``make gpu-check`` (``python -m depthbench.bench gpu``): the GPU path checked in one script.

On a CUDA machine, offline: ``debug=fast_dev_run`` of every registered model with
``accelerator=gpu`` (bf16-mixed, channels-last, GPU-resident data) and of the compiled CIFAR
ResNet; the host syncs and CPU-to-GPU copies per training step of an augmented CNN with EMA
(``bench.syncs``: none between logging steps); and the training images/s and peak memory of
ResNet-20/56/110 (32x32) and ResNet-50 (224x224), the hand-written loop (``harness.hand_train``)
on a batch already on the device, timed by ``harness.StepTimer``. It writes ``gpu.json`` and
``gpu.md`` into ``--out``; a failing section does not stop the others, and runs not started
within :data:`TOTAL_S` seconds are skipped. ``--device cpu`` runs the same code at tiny sizes
(:data:`TINY`). Nothing downloads: the data are synthetic.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from depthbench.bench import harness

TOTAL_S = 480  # runs not started within this many seconds of the check's start are skipped
# registered model -> the overrides that build it (a registered model without an entry is
# reported as a failure, so the check keeps covering every model)
MODEL_RUNS: dict[str, list[str]] = {
    "mlp": ["model=mlp"],
    "cnn": ["model=cnn"],
    "resnet": ["model=resnet"],
    **{f"resnet{d}": ["model=resnet", f"model.depth={d}"] for d in (20, 32, 44, 56, 110, 1202)},
    "resnet_imagenet": ["model=resnet_imagenet", "data.shape=[3,64,64]"],
    "transformer": ["model=transformer"],
    "finetune": ["model=finetune", "model.image_size=64"],
    "efficientnet_lite0": ["model=finetune", "model.image_size=64", "model.freeze=false"],
}
SYNTHETIC = ["data=synthetic", "data.shape=[3,32,32]", "data.num_train=512", "data.num_test=128"]
QUIET = ["logger=none", "trainer.enable_progress_bar=false"]
SKIPPED = {"status": f"skipped: not started within {TOTAL_S} s"}


@dataclass(frozen=True)
class Sizes:
    """How big each measurement is: ``GPU`` for the real check, ``TINY`` for ``--device cpu``."""

    device: str  # cuda or cpu
    models: tuple[str, ...] | None  # fast_dev_run: None = every registered model
    compile: bool  # also fast_dev_run the CIFAR ResNet with module.compile=true
    throughput: tuple[tuple[str, int, int], ...]  # (arch, image size, batch)
    throughput_steps: int  # timed steps, after 5 warm-up steps
    sync_steps: int  # training steps of the host-sync count


CIFAR_512 = tuple((f"resnet{d}", 32, 512) for d in (20, 56, 110))
GPU = Sizes("cuda", None, True, (*CIFAR_512, ("resnet50", 224, 256)), 20, 20)
TINY = Sizes("cpu", ("mlp", "resnet20"), False, (("resnet20", 16, 4), ("resnet50", 32, 2)), 2, 12)
# the accelerator config of each device; bf16-mixed and channels-last on a CPU too
ACCELERATOR = {"cuda": ["accelerator=gpu"], "cpu": ["accelerator=cpu",
               "trainer.precision=bf16-mixed", "module.channels_last=true"]}  # fmt: skip


def fast_dev_runs(sizes: Sizes, workdir: Path, deadline: float) -> dict[str, Any]:
    """``fast_dev_run`` of every registered model, and of the compiled CIFAR ResNet; a failing
    run is recorded and the others go on."""
    from depthbench.models import list_models

    jobs = [(name, MODEL_RUNS.get(name)) for name in sizes.models or list_models()]
    if sizes.compile:
        jobs.append(("resnet20+compile", [*MODEL_RUNS["resnet20"], "module.compile=true"]))
    runs: dict[str, Any] = {}
    for name, overrides in jobs:
        if overrides is None:
            runs[name] = {"status": "failed: no entry in bench.gpu.MODEL_RUNS"}
            continue
        if time.monotonic() > deadline:
            runs[name] = SKIPPED
            continue
        args = [*ACCELERATOR[sizes.device], *QUIET, "debug=fast_dev_run", *SYNTHETIC, *overrides]
        start = time.perf_counter()
        try:
            status = harness.train_run(args, workdir)["status"]
        except Exception as e:
            status = f"failed: {type(e).__name__}: {(str(e).splitlines() or [''])[0][:200]}"
        runs[name] = {"overrides": args, "status": status,
                      "wall_seconds": round(time.perf_counter() - start, 2)}  # fmt: skip
    return {"runs": runs, "all_ok": all(r["status"] == "ok" for r in runs.values())}


def hot_path(sizes: Sizes, workdir: Path, deadline: float) -> dict[str, Any]:
    """Host syncs and CPU-to-device copies per training step of an augmented CNN with EMA."""
    from depthbench.bench.syncs import count_per_step

    # 4,096 images: more batches in the epoch than steps counted, so no epoch end is counted
    run = [*ACCELERATOR[sizes.device], *QUIET, "model=cnn", *SYNTHETIC, "data.num_train=4096",
           "data.augment=true", "module.ema_decay=0.99", f"trainer.max_steps={sizes.sync_steps}",
           "trainer.max_epochs=-1", "trainer.log_every_n_steps=5", "test=false",
           "+trainer.limit_val_batches=0"]  # fmt: skip
    cfg = harness.compose(run, workdir / "syncs")
    # the first step's window holds the set-up and the last one the end of the fit: left out
    steps = count_per_step(cfg, cpu_is_device=sizes.device == "cpu")[1:-1]
    quiet = [s for s in steps if not s["logging_step"]]
    return {"steps": steps, "syncs_between_logging_steps": sum(s["syncs"] for s in quiet),
            "copies_between_logging_steps": sum(s["copies"] for s in quiet)}  # fmt: skip


def throughput(sizes: Sizes, workdir: Path, deadline: float) -> dict[str, Any]:
    """Training images/s of CIFAR ResNets and torchvision's ResNet-50, bf16 + channels-last."""
    import torchvision

    from depthbench.models import create_model, list_models

    device, cuda, out = torch.device(sizes.device), sizes.device == "cuda", {}
    for arch, size, batch in sizes.throughput:
        if time.monotonic() > deadline:
            out[f"{arch}@{size}"] = SKIPPED
            continue
        torch.manual_seed(0)
        if arch in list_models():  # depthbench's CIFAR ResNets
            net, classes = create_model(arch, input_shape=(3, size, size), num_classes=10), 10
        else:  # torchvision's ImageNet ResNets
            net, classes = getattr(torchvision.models, arch)(num_classes=1000), 1000
        net = net.to(device, memory_format=torch.channels_last).train()
        optimizer = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
        x = torch.randn(batch, 3, size, size, device=device)
        x = x.contiguous(memory_format=torch.channels_last)
        y = torch.randint(0, classes, (batch,), device=device)
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        timer = harness.StepTimer(5, 5 + sizes.throughput_steps, sync_cuda=cuda)
        harness.hand_train(net, itertools.repeat((x, y)), optimizer, timer, bf16=True)
        step_ms = timer.summary()["mean_ms"]
        out[f"{arch}@{size}"] = {
            "status": "ok", "arch": arch, "image_size": size, "batch": batch,
            "step_ms": round(step_ms, 3), "images_per_second": round(batch / step_ms * 1e3, 1),
            "timed_steps": sizes.throughput_steps,
            "peak_gpu_mib": round(torch.cuda.max_memory_allocated() / 2**20) if cuda else None,
        }  # fmt: skip
    return out


SECTIONS = {"fast_dev_run": fast_dev_runs, "hot_path": hot_path, "throughput": throughput}


def run(sizes: Sizes, command: str, only: list[str] | None = None) -> dict[str, Any]:
    """Every section (or ``only`` those) at ``sizes``; the whole JSON record."""
    environment = {**harness.machine(command), "device": sizes.device}
    record: dict[str, Any] = {"environment": environment, "sections": {}}
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="depthbench-gpu-check-") as tmp:
        for name in [s for s in SECTIONS if not only or s in only]:
            print(f"gpu-check {name} ...", flush=True)
            began = time.monotonic()
            try:
                result = {"status": "ok", **SECTIONS[name](sizes, Path(tmp), start + TOTAL_S)}
            except Exception as e:  # one failing section must not stop the others
                result = {"status": f"failed: {type(e).__name__}: {e}"[:400],
                          "traceback": traceback.format_exc()[-2000:]}  # fmt: skip
            result["seconds"] = round(time.monotonic() - began, 1)
            s = record["sections"][name] = result
            print(f"gpu-check {name}: {s['status']} in {s['seconds']} s", flush=True)
    record["total_seconds"] = round(time.monotonic() - start, 1)
    return record


def main(argv: list[str]) -> dict[str, Any]:
    """``python -m depthbench.bench gpu [--device cuda|cpu] [--out DIR] [--only S,...]``"""
    p = argparse.ArgumentParser(prog="python -m depthbench.bench gpu", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--device", default="cuda", choices=("cuda", "cpu"),
                   help="cpu: the same code at tiny sizes (a dry run of the check)")  # fmt: skip
    p.add_argument("--out", type=Path, help="folder for gpu.json/gpu.md (default: docs/results "
                   "on cuda, outputs/gpu_check_cpu on cpu)")  # fmt: skip
    p.add_argument("--only", help=f"comma-separated sections of {', '.join(SECTIONS)}")
    a = p.parse_args(argv)
    only = a.only.split(",") if a.only else None
    if only and (unknown := [s for s in only if s not in SECTIONS]):
        p.error(f"unknown section(s) {', '.join(unknown)}; allowed: {', '.join(SECTIONS)}")
    if a.device == "cuda" and not torch.cuda.is_available():
        print("gpu-check: no CUDA device here; `--device cpu` runs the same code at tiny sizes",
              file=sys.stderr)  # fmt: skip
        sys.exit(2)
    dry_run_out = Path("outputs") / "gpu_check_cpu"
    out = a.out or (harness.RESULTS_DIR if a.device == "cuda" else dry_run_out)
    torch.backends.cudnn.benchmark = a.device == "cuda"
    record = run(GPU if a.device == "cuda" else TINY, " ".join([p.prog, *argv]), only)
    path = harness.write_results("gpu", record, out)
    print(f"gpu-check done in {record['total_seconds']} s: {path.with_suffix('.md')}, {path}")
    return record
