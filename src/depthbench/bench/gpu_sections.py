"""The measurements of the GPU check (``bench.gpu``), one function per section.

Each function takes the check's :class:`Sizes` (GPU-sized or tiny for ``--device cpu``), a work
folder and a deadline (``time.monotonic()`` seconds), runs the real ``run.train`` path or a
hand-written loop, and returns plain JSON-able dicts. Nothing here downloads: Fashion-MNIST comes
from the Debian files (or the repo's ``data/`` folder), everything else is synthetic.

One file over 300 lines on purpose: the check's sections side by side, each read against its
share of the 8-minute budget in ``bench/gpu.py``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from depthbench.bench.common import compose, median

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
    fmnist_train_size: int | None  # null: all 55,000
    fmnist_max_epochs: int
    eval_batches: int | None  # test batches scored per epoch and at the end (None: all)
    sync_steps: int  # training steps of the hot-path count
    cap_scale: float  # section caps x this (a shared CPU is slower than the H200 they fit)


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


def _device(sizes: Sizes) -> torch.device:
    return torch.device("cuda" if sizes.accelerator == "gpu" else "cpu")


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


def _max_time(deadline: float) -> str:
    left = max(int(deadline - time.monotonic()), 1)
    return f"+trainer.max_time=00:00:{left // 60:02d}:{left % 60:02d}"


def train_run(overrides: list[str], sizes: Sizes, workdir: Path, deadline: float) -> dict:
    """One ``run.train`` on the check's accelerator (bf16-mixed, channels-last on a GPU)."""
    from depthbench.run import train

    out = workdir / f"run-{time.time_ns()}"
    device = _device(sizes)
    accel = ["accelerator=gpu"] if sizes.accelerator == "gpu" else [
        "accelerator=cpu", "trainer.precision=bf16-mixed", "module.channels_last=true"]  # fmt: skip
    args = [*accel, *QUIET, *overrides, _max_time(deadline)]
    reset_peak(device)
    start = time.perf_counter()
    try:
        metrics = train(compose(args, out))
        status = metrics["status"]
    except Exception as e:  # recorded, and the check goes on with the next run
        metrics, status = {}, f"failed: {type(e).__name__}: {str(e).splitlines()[0][:200]}"
    return {
        "overrides": args,
        "status": status,
        "wall_seconds": round(time.perf_counter() - start, 2),
        "peak_gpu_mib": peak_mib(device),
        "train_samples_per_second": metrics.get("train_samples_per_second"),
        "test_acc": metrics.get("test/acc"),
        "epochs": metrics.get("epochs"),
        "steps": metrics.get("steps"),
    }


def fast_dev_runs(sizes: Sizes, workdir: Path, deadline: float) -> dict[str, Any]:
    """``debug=fast_dev_run`` of every registered model, and of the compiled CIFAR ResNet."""
    from depthbench.models import list_models

    names = list(sizes.models or list_models())
    runs: dict[str, Any] = {}
    jobs = [(n, MODEL_RUNS.get(n)) for n in names]
    if sizes.compile:
        jobs.append(("resnet20+compile", [*MODEL_RUNS["resnet20"], "module.compile=true"]))
    for name, overrides in jobs:
        if overrides is None:
            runs[name] = {"status": "failed: no entry in bench.gpu_sections.MODEL_RUNS"}
        elif time.monotonic() > deadline:
            runs[name] = {"status": "skipped: section time cap"}
        else:
            runs[name] = train_run(["debug=fast_dev_run", *SYNTHETIC, *overrides], sizes,
                                   workdir, deadline)  # fmt: skip
    return {"runs": runs, "all_ok": all(r["status"] == "ok" for r in runs.values())}


def hot_path_syncs(sizes: Sizes, workdir: Path, deadline: float) -> dict[str, Any]:
    """Host syncs and CPU-to-GPU copies per training step of an augmented CNN, on the device."""
    from depthbench.bench.syncs import HostSyncCounter, StepSyncRecorder, per_step
    from depthbench.run import train

    counter = HostSyncCounter(cpu_is_device=sizes.accelerator == "cpu")
    recorder = StepSyncRecorder(counter)
    # 4,096 images: more batches in the epoch than steps counted, so no epoch end is counted
    cfg = compose([f"accelerator={sizes.accelerator}", *QUIET, "model=cnn", *SYNTHETIC,
                   "data.num_train=4096",
                   "data.augment=true", "module.ema_decay=0.99",
                   f"trainer.max_steps={sizes.sync_steps}",
                   "trainer.max_epochs=-1", "trainer.log_every_n_steps=5", "test=false",
                   "+trainer.limit_val_batches=0"], workdir / "syncs")  # fmt: skip
    if (
        "divergence_guard" in cfg.callbacks
        and "check_every_n_steps" in cfg.callbacks.divergence_guard
    ):
        cfg.callbacks.divergence_guard.check_every_n_steps = 5  # the logging interval
    import depthbench.run as run_module

    build = run_module.build_trainer
    run_module.build_trainer = lambda c, extra_callbacks=None: build(
        c, [*(extra_callbacks or []), recorder]
    )
    try:
        with counter:
            train(cfg)
    finally:
        run_module.build_trainer = build
    steps = per_step(recorder)[1:-1]  # the first holds the set-up, the last the end of the fit
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

    device = _device(sizes)
    out: dict[str, Any] = {}
    for arch, size, batch in sizes.throughput:
        if time.monotonic() > deadline:
            out[f"{arch}@{size}"] = {"status": "skipped: section time cap"}
            continue
        torch.manual_seed(0)
        if arch in list_models():  # depthbench's CIFAR ResNets
            net = create_model(arch, input_shape=(3, size, size), num_classes=10)
            classes = 10
        else:  # torchvision's ImageNet ResNets
            net, classes = getattr(torchvision.models, arch)(num_classes=1000), 1000
        net = net.to(device).to(memory_format=torch.channels_last)
        opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
        x = torch.randn(batch, 3, size, size, device=device).contiguous(
            memory_format=torch.channels_last
        )
        y = torch.randint(0, classes, (batch,), device=device)
        reset_peak(device)
        times = []
        for i in range(5 + sizes.throughput_steps):
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            with torch.autocast(device.type, dtype=torch.bfloat16):
                loss = F.cross_entropy(net(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if device.type == "cuda":
                torch.cuda.synchronize()
            if i >= 5:
                times.append(time.perf_counter() - start)
        step = median(times)
        out[f"{arch}@{size}"] = {"status": "ok", "arch": arch, "image_size": size,
                                 "batch": batch, "step_ms": round(step * 1e3, 3),
                                 "images_per_second": round(batch / step, 1),
                                 "timed_steps": len(times),
                                 "peak_gpu_mib": peak_mib(device)}  # fmt: skip
    return out


def data_path_ms(overrides: list[str], sizes: Sizes, batches: int) -> float:
    """Milliseconds per batch of the framework's data path alone (index + transform)."""
    from depthbench.build import build_data
    from depthbench.data.loader import TensorBatchLoader

    cfg = compose(overrides, Path("/tmp"))
    dm = build_data(cfg)
    device = _device(sizes)
    x, y = dm.split_on("train", device)
    loader = TensorBatchLoader(x, y, batch_size=cfg.data.batch_size, shuffle=True,
                               transform=dm.transform, device=device)  # fmt: skip
    it, n = iter(loader), 0
    for _ in range(3):  # warm-up
        next(it)
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _batch in it:
        n += 1
        if n == batches:
            break
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / max(n, 1) * 1e3


def overhead(sizes: Sizes, workdir: Path, deadline: float) -> dict[str, Any]:
    """Framework / hand-written loop per step on this device (same data placement), and the
    data path's share of the framework's step."""
    from depthbench.bench import overhead as bench_overhead

    device = "cuda" if sizes.accelerator == "gpu" else "cpu"
    out: dict[str, Any] = {}
    for name in sizes.overhead_models:
        if time.monotonic() > deadline:
            out[name] = {"status": "skipped: section time cap"}
            continue
        reset_peak(_device(sizes))
        r = bench_overhead.run([name], sizes.overhead_steps, max(sizes.overhead_steps // 6, 2),
                               sizes.overhead_repeats, 1, device)["models"][name]  # fmt: skip
        data_ms = data_path_ms(["data=fashion_mnist", *bench_overhead.MODELS[name]], sizes,
                               batches=min(sizes.overhead_steps, 100))  # fmt: skip
        step_ms = r["mean_ms"]["framework"]
        out[name] = {"status": "ok", "framework_ms": round(step_ms, 3),
                     "raw_ms": round(r["mean_ms"]["raw"], 3),
                     "ratio": round(r["mean_ms"]["ratio"], 4),
                     "ratio_range": [round(v, 4) for v in r["mean_ms"]["ratio_range"]],
                     "repeats": sizes.overhead_repeats, "steps": sizes.overhead_steps,
                     "data_path_ms": round(data_ms, 3),
                     "data_path_share": round(data_ms / step_ms, 4),
                     "peak_gpu_mib": peak_mib(_device(sizes))}  # fmt: skip
    return out


def cpu_vs_gpu(sizes: Sizes, workdir: Path, deadline: float) -> dict[str, Any]:
    """The ``cpu_vs_gpu`` experiment's runs on this accelerator (its GPU column on a GPU)."""
    out = {}
    for batch in (32, 128):
        if time.monotonic() > deadline:
            out[f"batch{batch}"] = {"status": "skipped: section time cap"}
            continue
        out[f"batch{batch}"] = train_run(
            ["experiment=cpu_vs_gpu", f"data.batch_size={batch}",
             f"trainer.max_steps={sizes.cpu_vs_gpu_steps}"], sizes, workdir, deadline
        )  # fmt: skip
    return out


def fmnist_to_94(sizes: Sizes, workdir: Path, deadline: float) -> dict[str, Any]:
    """Wall seconds until a CIFAR ResNet-20 reaches 94% test accuracy on Fashion-MNIST.

    The test split is scored after every epoch (EMA weights, flip TTA) by
    ``bench.timing.TargetAccuracyStop``, which stops the fit at the target; the section's
    time cap is the trainer's ``max_time``.
    """
    recipe = ["data=fashion_mnist", "model=resnet", "model.depth=20", "data.batch_size=512",
              "data.augment=true", "optimizer=sgd", "optimizer.lr=0.4", "scheduler=onecycle",
              "module.label_smoothing=0.1", "module.ema_decay=0.99", "module.tta_flip=true",
              f"trainer.max_epochs={sizes.fmnist_max_epochs}", "+trainer.limit_val_batches=0",
              "+callbacks.target_stop._target_=depthbench.bench.timing.TargetAccuracyStop",
              "+callbacks.target_stop.target=0.94"]  # fmt: skip
    if sizes.fmnist_train_size:
        recipe.append(f"data.train_size={sizes.fmnist_train_size}")
    if sizes.eval_batches:
        recipe += [f"+trainer.limit_test_batches={sizes.eval_batches}",
                   f"+callbacks.target_stop.max_batches={sizes.eval_batches}"]  # fmt: skip
    workdir.mkdir(parents=True, exist_ok=True)
    record = workdir / "target_stop.json"
    recipe.append(f"+callbacks.target_stop.out_file={record}")
    run = train_run(recipe, sizes, workdir, deadline)
    curve = json.loads(record.read_text()) if record.is_file() else {}
    return {**run, "target": 0.94, "recipe": recipe[:-1], **curve}
