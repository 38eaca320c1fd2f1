"""``make gpu-check`` (``python -m depthbench.bench gpu``): the whole GPU path in one script.

On a CUDA machine, within 8 minutes and without network, it checks and measures:

1. ``fast_dev_run`` of every registered model with ``accelerator=gpu`` (bf16-mixed,
   channels-last, GPU-resident data), and the CIFAR ResNet with ``module.compile=true``;
2. host syncs and CPU-to-GPU copies per training step (``bench.syncs``) of an augmented CNN;
3. training images/s of ResNet-20/56/110 (32x32) and ResNet-50 (224x224), bf16 channels-last;
4. the framework-over-hand-written-loop ratio per step (``bench.overhead``, both loops on
   GPU-resident data), and the data path's share of the framework's step;
5. the ``cpu_vs_gpu`` experiment's GPU column (ResNet-20, batch 32 and 128);
6. wall seconds to 94% test accuracy on Fashion-MNIST with a CIFAR ResNet-20;

with the peak GPU memory of each run, and writes ``gpu.json`` and ``gpu.md`` (``bench.pages``)
into ``--out``. Every section has a time cap (:data:`BUDGET_S`): items a section has no time
left for are recorded as skipped, training runs get the remaining time as ``trainer.max_time``,
and a section that overruns its cap is stopped by an alarm. ``--device cpu`` runs the same code
at tiny sizes (:data:`TINY`; the test suite does, into a temporary folder). Nothing downloads:
Fashion-MNIST comes from local files, everything else is synthetic.
Each section's measurement sits beside its size and its share of the 8-minute budget, read as
one script.
"""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from depthbench.bench.flops import step_seconds
from depthbench.bench.harness import RESULTS_DIR, compose, machine, median, train_run, write_results

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
# registered model -> the overrides that build it (a new registered model without an entry is
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
SKIPPED = {"status": "skipped: section time cap"}


@dataclass(frozen=True)
class Sizes:
    """How big each measurement is: ``GPU`` for the real check, ``TINY`` for ``--device cpu``."""

    accelerator: str  # trainer.accelerator
    models: tuple[str, ...] | None  # fast_dev_run: None = every registered model
    compile: bool  # also fast_dev_run the CIFAR ResNet with module.compile=true
    throughput: tuple[tuple[str, int, int], ...]  # (arch, image size, batch)
    throughput_steps: int
    overhead_models: tuple[str, ...]
    overhead_steps: int
    overhead_repeats: int
    cpu_vs_gpu_steps: int
    fmnist_train_size: int | None  # None: all 55,000
    fmnist_max_epochs: int
    eval_batches: int | None  # test batches scored per epoch and at the end (None: all)
    sync_steps: int  # training steps of the hot-path count
    cap_scale: float  # section caps x this (a CPU is slower than the GPU the caps were set for)

    @property
    def device(self) -> torch.device:
        """The torch device of the check's accelerator."""
        return torch.device("cuda" if self.accelerator == "gpu" else "cpu")


GPU = Sizes(
    accelerator="gpu", models=None, compile=True,
    throughput=(("resnet20", 32, 512), ("resnet56", 32, 512), ("resnet110", 32, 512),
                ("resnet50", 224, 256)),
    throughput_steps=20, overhead_models=("mlp20", "cnn", "resnet20"), overhead_steps=200,
    overhead_repeats=3, cpu_vs_gpu_steps=30, fmnist_train_size=None, fmnist_max_epochs=40,
    eval_batches=None, sync_steps=20, cap_scale=1.0,
)  # fmt: skip
TINY = Sizes(
    accelerator="cpu", models=("mlp", "resnet20"), compile=False,
    throughput=(("resnet20", 16, 4), ("resnet50", 32, 2)), throughput_steps=2,
    overhead_models=("mlp20",), overhead_steps=8, overhead_repeats=1, cpu_vs_gpu_steps=3,
    fmnist_train_size=512, fmnist_max_epochs=1, eval_batches=2, sync_steps=12, cap_scale=4.0,
)  # fmt: skip


def reset_peak(device: torch.device) -> None:
    """Start a new peak-memory window (CUDA only)."""
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()


def peak_mib(device: torch.device) -> float | None:
    """Peak GPU memory allocated since :func:`reset_peak`, MiB (None on a CPU)."""
    if device.type != "cuda":
        return None
    torch.cuda.synchronize()
    return round(torch.cuda.max_memory_allocated() / 2**20, 1)


# ---- the sections: (sizes, work folder, deadline in time.monotonic() seconds) -> a JSON dict -
def check_run(
    overrides: list[str], sizes: Sizes, workdir: Path, deadline: float, recorder: dict | None = None
) -> dict[str, Any]:
    """One ``run.train`` on the check's accelerator (bf16-mixed, channels-last on a GPU), with
    the time left as ``trainer.max_time``; a failure is recorded and the check goes on."""
    left = max(int(deadline - time.monotonic()), 1)
    accel = ["accelerator=gpu"] if sizes.accelerator == "gpu" else [
        "accelerator=cpu", "trainer.precision=bf16-mixed", "module.channels_last=true"]  # fmt: skip
    args = [*accel, *QUIET, *overrides, f"+trainer.max_time=00:00:{left // 60:02d}:{left % 60:02d}"]
    reset_peak(sizes.device)
    start = time.perf_counter()
    record = None
    try:
        metrics, record = train_run(args, workdir, recorder)
        status = metrics["status"]
    except Exception as e:
        metrics, status = {}, f"failed: {type(e).__name__}: {str(e).splitlines()[0][:200]}"
    keys = {"train_samples_per_second": "train_samples_per_second", "test_acc": "test/acc",
            "epochs": "epochs", "steps": "steps"}  # fmt: skip
    return {"overrides": args, "status": status,
            "wall_seconds": round(time.perf_counter() - start, 2),
            "peak_gpu_mib": peak_mib(sizes.device),
            **{k: metrics.get(m) for k, m in keys.items()}, **(record or {})}  # fmt: skip


def fast_dev_runs(sizes: Sizes, workdir: Path, deadline: float) -> dict[str, Any]:
    """``debug=fast_dev_run`` of every registered model, and of the compiled CIFAR ResNet."""
    from depthbench.models import list_models

    jobs = [(n, MODEL_RUNS.get(n)) for n in sizes.models or list_models()]
    if sizes.compile:
        jobs.append(("resnet20+compile", [*MODEL_RUNS["resnet20"], "module.compile=true"]))
    runs: dict[str, Any] = {}
    for name, overrides in jobs:
        if overrides is None:
            runs[name] = {"status": "failed: no entry in bench.gpu.MODEL_RUNS"}
        elif time.monotonic() > deadline:
            runs[name] = SKIPPED
        else:
            runs[name] = check_run(["debug=fast_dev_run", *SYNTHETIC, *overrides], sizes,
                                   workdir, deadline)  # fmt: skip
    return {"runs": runs, "all_ok": all(r["status"] == "ok" for r in runs.values())}


def hot_path_syncs(sizes: Sizes, workdir: Path, deadline: float) -> dict[str, Any]:
    """Host syncs and CPU-to-GPU copies per training step of an augmented CNN, on the device."""
    from depthbench.bench.syncs import count_per_step

    # 4,096 images: more batches in the epoch than steps counted, so no epoch end is counted
    cfg = compose([f"accelerator={sizes.accelerator}", *QUIET, "model=cnn", *SYNTHETIC,
                   "data.num_train=4096", "data.augment=true", "module.ema_decay=0.99",
                   f"trainer.max_steps={sizes.sync_steps}", "trainer.max_epochs=-1",
                   "trainer.log_every_n_steps=5", "test=false", "+trainer.limit_val_batches=0"],
                  workdir / "syncs")  # fmt: skip
    steps = count_per_step(cfg, cpu_is_device=sizes.accelerator == "cpu")
    steps = steps[1:-1]  # the first holds the set-up, the last the end of the fit
    quiet = [s for s in steps if not s["logging_step"]]
    return {
        "steps": steps,
        "syncs_between_logging_steps": sum(s["syncs"] for s in quiet),
        "copies_between_logging_steps": sum(s["copies"] for s in quiet),
    }


def throughput(sizes: Sizes, workdir: Path, deadline: float) -> dict[str, Any]:
    """Training images/s of CIFAR ResNets and torchvision's ResNet-50, bf16 + channels-last.

    A hand-written loop on synthetic data already on the device (the input pipeline is out of
    the picture); median step over ``throughput_steps`` timed steps after 5 warm-up steps.
    """
    import torchvision

    from depthbench.models import create_model, list_models

    device, out = sizes.device, {}
    for arch, size, batch in sizes.throughput:
        if time.monotonic() > deadline:
            out[f"{arch}@{size}"] = SKIPPED
            continue
        torch.manual_seed(0)
        if arch in list_models():  # depthbench's CIFAR ResNets
            net, classes = create_model(arch, input_shape=(3, size, size), num_classes=10), 10
        else:  # torchvision's ImageNet ResNets
            net, classes = getattr(torchvision.models, arch)(num_classes=1000), 1000
        net = net.to(device).to(memory_format=torch.channels_last)
        opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
        x = torch.randn(batch, 3, size, size, device=device)
        x = x.contiguous(memory_format=torch.channels_last)
        y = torch.randint(0, classes, (batch,), device=device)
        reset_peak(device)
        times = step_seconds(net, x, y, opt, sizes.throughput_steps, warmup=5, autocast=True)
        step = median(times)
        out[f"{arch}@{size}"] = {"status": "ok", "arch": arch, "image_size": size,
                                 "batch": batch, "step_ms": round(step * 1e3, 3),
                                 "images_per_second": round(batch / step, 1),
                                 "timed_steps": len(times),
                                 "peak_gpu_mib": peak_mib(device)}  # fmt: skip
    return out


def data_path_ms(overrides: list[str], sizes: Sizes, batches: int) -> float:
    """Milliseconds per batch of the framework's data path alone (index + transform)."""
    from depthbench.bench.data import forever, seconds_per_batch
    from depthbench.core.build import build_data
    from depthbench.data.loader import TensorBatchLoader

    cfg = compose(overrides, Path(tempfile.gettempdir()))
    dm = build_data(cfg)
    x, y = dm.split_on("train", sizes.device)
    loader = TensorBatchLoader(x, y, batch_size=cfg.data.batch_size, shuffle=True,
                               transform=dm.transform, device=sizes.device)  # fmt: skip
    return seconds_per_batch(forever(lambda: loader), batches, 3, sizes.device) * 1e3


def overhead(sizes: Sizes, workdir: Path, deadline: float) -> dict[str, Any]:
    """Framework / hand-written loop per step on this device (same data placement), and the
    data path's share of the framework's step."""
    from depthbench.bench import overhead as bench_overhead

    out: dict[str, Any] = {}
    for name in sizes.overhead_models:
        if time.monotonic() > deadline:
            out[name] = SKIPPED
            continue
        reset_peak(sizes.device)
        r = bench_overhead.run(
            [name],
            sizes.overhead_steps,
            max(sizes.overhead_steps // 6, 2),
            sizes.overhead_repeats,
            1,
            sizes.device.type,
        )["models"][name]
        data_ms = data_path_ms(
            ["data=fashion_mnist", *bench_overhead.MODELS[name]],
            sizes,
            batches=min(sizes.overhead_steps, 100),
        )
        mean = r["mean_ms"]
        out[name] = {"status": "ok", "framework_ms": round(mean["framework"], 3),
                     "raw_ms": round(mean["raw"], 3), "ratio": round(mean["ratio"], 4),
                     "ratio_range": [round(v, 4) for v in mean["ratio_range"]],
                     "repeats": sizes.overhead_repeats, "steps": sizes.overhead_steps,
                     "data_path_ms": round(data_ms, 3),
                     "data_path_share": round(data_ms / mean["framework"], 4),
                     "peak_gpu_mib": peak_mib(sizes.device)}  # fmt: skip
    return out


def cpu_vs_gpu(sizes: Sizes, workdir: Path, deadline: float) -> dict[str, Any]:
    """The ``cpu_vs_gpu`` experiment's runs on this accelerator (its GPU column on a GPU)."""
    out = {}
    for batch in (32, 128):
        run = ["experiment=cpu_vs_gpu", f"data.batch_size={batch}",
               f"trainer.max_steps={sizes.cpu_vs_gpu_steps}"]  # fmt: skip
        out[f"batch{batch}"] = (
            SKIPPED if time.monotonic() > deadline else check_run(run, sizes, workdir, deadline)
        )
    return out


def fmnist_to_94(sizes: Sizes, workdir: Path, deadline: float) -> dict[str, Any]:
    """Wall seconds until a CIFAR ResNet-20 reaches 94% test accuracy on Fashion-MNIST.

    The test split is scored after every epoch (EMA weights, flip test-time augmentation) by
    ``bench.timing.TargetAccuracyStop``, which stops the fit at the target; the section's time
    cap is the trainer's ``max_time``.
    """
    recipe = ["data=fashion_mnist", "model=resnet", "model.depth=20", "data.batch_size=512",
              "data.augment=true", "optimizer=sgd", "optimizer.lr=0.4", "scheduler=onecycle",
              "module.label_smoothing=0.1", "module.ema_decay=0.99", "module.tta_flip=true",
              f"trainer.max_epochs={sizes.fmnist_max_epochs}",
              "+trainer.limit_val_batches=0"]  # fmt: skip
    if sizes.fmnist_train_size:
        recipe.append(f"data.train_size={sizes.fmnist_train_size}")
    if sizes.eval_batches:
        recipe.append(f"+trainer.limit_test_batches={sizes.eval_batches}")
    stop = {"_target_": "depthbench.bench.timing.TargetAccuracyStop", "target": 0.94,
            "max_batches": sizes.eval_batches}  # fmt: skip
    return {**check_run(recipe, sizes, workdir, deadline, stop), "target": 0.94, "recipe": recipe}


SECTIONS: dict[str, Callable[[Sizes, Path, float], dict[str, Any]]] = {
    "fast_dev_run": fast_dev_runs,
    "hot_path": hot_path_syncs,
    "throughput": throughput,
    "overhead": overhead,
    "cpu_vs_gpu": cpu_vs_gpu,
    "fmnist_94": fmnist_to_94,
}


# ---- the check ------------------------------------------------------------------------------
class SectionTimeout(BaseException):
    """A section ran past its cap (plus a grace period); a BaseException, so no run swallows it."""


def budget_line() -> str:
    """The one-line time budget, e.g. ``fast_dev_run 90 + ... = 450 s of 480 s``."""
    parts = " + ".join(f"{k} {v}" for k, v in BUDGET_S.items())
    return f"time budget (s): {parts} = {sum(BUDGET_S.values())} of {TOTAL_S}"


def _alarm(signum: int, frame: Any) -> None:
    raise SectionTimeout


def run_section(name: str, sizes: Sizes, workdir: Path, grace: float) -> dict[str, Any]:
    """One section under its time cap; its result with ``seconds`` and ``status``."""
    cap = BUDGET_S[name] * sizes.cap_scale
    start = time.monotonic()
    use_alarm = hasattr(signal, "SIGALRM")
    if use_alarm:
        signal.signal(signal.SIGALRM, _alarm)
        signal.alarm(int(cap + grace))
    try:
        result = {"status": "ok", **SECTIONS[name](sizes, workdir / name, start + cap)}
    except SectionTimeout:
        result = {"status": f"timed out after {cap + grace:.0f} s"}
    except Exception as e:  # one failing section must not stop the others
        result = {"status": f"failed: {type(e).__name__}: {e}"[:400],
                  "traceback": traceback.format_exc()[-2000:]}  # fmt: skip
    finally:
        if use_alarm:
            signal.alarm(0)
    return {**result, "seconds": round(time.monotonic() - start, 1), "cap_seconds": cap}


def run(device: str, command: str, only: list[str] | None = None) -> dict[str, Any]:
    """Every section (or ``only`` those) on ``device``; the full JSON record."""
    sizes = GPU if device == "cuda" else TINY
    torch.backends.cudnn.benchmark = device == "cuda"
    record: dict[str, Any] = {"environment": {**machine(command), "device": device},
                              "budget": budget_line(), "sections": {}}  # fmt: skip
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="depthbench-gpu-check-") as tmp:
        for name in SECTIONS:
            if only and name not in only:
                continue
            print(f"gpu-check {name} (cap {BUDGET_S[name]} s) ...", flush=True)
            s = record["sections"][name] = run_section(name, sizes, Path(tmp), grace=30)
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
    if a.device == "cuda" and not torch.cuda.is_available():
        print("gpu-check: no CUDA device here; `--device cpu` runs the same code at tiny sizes",
              file=sys.stderr)  # fmt: skip
        sys.exit(2)
    out = a.out or (RESULTS_DIR if a.device == "cuda" else Path("outputs") / "gpu_check_cpu")
    print(budget_line(), flush=True)
    command = " ".join([p.prog, *argv])
    record = run(a.device, command, a.only.split(",") if a.only else None)
    path = write_results("gpu", record, out)
    print(f"gpu-check done in {record['total_seconds']} s: {path.with_suffix('.md')}, {path}")
    return record
