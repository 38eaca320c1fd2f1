"""Count host syncs and CPU-to-device copies per training step (a ``TorchFunctionMode``).

A host sync is a read of a tensor's value by Python (``.item()``, ``bool()``, ``float()``,
``int()``, ``.tolist()``, ``.numpy()``, ``.cpu()``): on a GPU the host waits for every queued
kernel. A device copy is ``.to(device)`` / ``.cuda()`` of a CPU tensor to an explicit device, a
``.copy_`` from a CPU tensor into one on another device, or a tensor made from Python data with
``device=``: on a GPU each is one host-to-device
transfer. With ``cpu_is_device=True`` (the CPU test) every such call counts even when the
device is the CPU, so code that *would* sync or copy on a GPU is caught on a machine without
one. Value reads inside ``torch.optim`` are not counted: the optimizers keep their step counter
on the CPU on purpose (reading it costs no device sync).

:class:`StepSyncRecorder` (a Lightning callback) snapshots the counts at every training batch
start; :func:`per_step` turns the snapshots into per-step numbers; :func:`count_per_step` runs
``run.train`` with both and returns those numbers (the GPU check and ``tests/test_host_sync.py``).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import lightning as L
import torch
from torch.overrides import TorchFunctionMode

SYNC_METHODS = {"item", "__bool__", "__float__", "__int__", "__index__", "tolist", "numpy", "cpu"}
COPY_METHODS = {"to", "cuda", "copy_"}
FACTORIES = {"tensor", "as_tensor"}


def _name(func: Callable) -> str:
    return getattr(func, "__name__", "")


def _targets_device(args: tuple, kwargs: dict) -> bool:
    """Whether a ``.to``/``.cuda`` call names a device (not only a dtype or memory format)."""
    if kwargs.get("device") is not None:
        return True
    return any(isinstance(a, (torch.device, str, int)) and not isinstance(a, bool) for a in args)


def _from_optimizer() -> bool:
    frame = sys._getframe(2)  # the caller of the counted tensor method
    for _ in range(3):
        if frame is None:
            return False
        if "torch/optim/" in frame.f_code.co_filename.replace("\\", "/"):
            return True
        frame = frame.f_back
    return False


class HostSyncCounter(TorchFunctionMode):
    """Counts ``syncs`` and ``copies`` while active; ``paused`` stops counting (not the calls)."""

    def __init__(self, cpu_is_device: bool = False) -> None:
        super().__init__()
        self.cpu_is_device = cpu_is_device
        self.syncs = 0
        self.copies = 0
        self.paused = False
        self.where: list[str] = []  # what was counted, e.g. "sync item", "copy to"

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if not self.paused:
            self._count(_name(func), args, kwargs)
        return func(*args, **kwargs)

    def _count(self, name: str, args: tuple, kwargs: dict) -> None:
        first = args[0] if args else None
        if name in SYNC_METHODS and isinstance(first, torch.Tensor):
            if (self.cpu_is_device or first.device.type != "cpu") and not _from_optimizer():
                self.syncs += 1
                self.where.append(f"sync {name}")
        elif name in COPY_METHODS and isinstance(first, torch.Tensor):
            src = args[1] if name == "copy_" and len(args) > 1 else first
            names_device = name == "cuda" or name == "copy_" or _targets_device(args[1:], kwargs)
            if name == "copy_":  # in-place copies within one device are no transfer
                names_device = isinstance(src, torch.Tensor) and first.device != src.device
            if names_device and isinstance(src, torch.Tensor) and src.device.type == "cpu":
                self.copies += 1
                self.where.append(f"copy {name}")
        elif name in FACTORIES and kwargs.get("device") is not None:
            device = torch.device(kwargs["device"])
            if self.cpu_is_device or device.type != "cpu":
                self.copies += 1
                self.where.append(f"copy {name}")


class StepSyncRecorder(L.Callback):
    """Snapshots ``counter``'s totals at every training batch start (and at fit start and end).

    Lightning's own batch transfer (``LightningModule.transfer_batch_to_device``) is not
    counted: for a split already on the device it moves nothing.
    """

    def __init__(self, counter: HostSyncCounter) -> None:
        self.counter = counter
        self.snapshots: list[tuple[int, int, int]] = []  # (global_step, syncs, copies)
        self.log_every_n_steps = 1

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.log_every_n_steps = trainer.log_every_n_steps
        self.snapshots.append((0, self.counter.syncs, self.counter.copies))
        transfer = pl_module.transfer_batch_to_device

        def uncounted_transfer(*args: Any, **kwargs: Any) -> Any:
            paused, self.counter.paused = self.counter.paused, True
            try:
                return transfer(*args, **kwargs)
            finally:
                self.counter.paused = paused

        pl_module.transfer_batch_to_device = uncounted_transfer  # type: ignore[method-assign]

    # a step's window runs from one batch start to the next, so it holds what Lightning does
    # after ``on_train_batch_end`` (writing the logs of a logging step)
    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if trainer.global_step > 0:
            self.snapshots.append((trainer.global_step, self.counter.syncs, self.counter.copies))

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.snapshots.append((trainer.global_step, self.counter.syncs, self.counter.copies))


def per_step(recorder: StepSyncRecorder) -> list[dict[str, Any]]:
    """``[{"step", "syncs", "copies", "logging_step"}, ...]`` from the recorder's snapshots."""
    out = []
    for (_, s0, c0), (step, s1, c1) in zip(recorder.snapshots, recorder.snapshots[1:]):
        logging = step % recorder.log_every_n_steps == 0
        out.append({"step": step, "syncs": s1 - s0, "copies": c1 - c0, "logging_step": logging})
    return out


def count_per_step(cfg: Any, cpu_is_device: bool = False) -> list[dict[str, Any]]:
    """:func:`per_step` of ``run.train(cfg)`` with a :class:`HostSyncCounter` on and a
    :class:`StepSyncRecorder` among the trainer's callbacks.

    The divergence guard is set to read the loss at the logging interval, as the default job
    does, so the steps between logging steps are the ones that must have no sync.
    """
    from omegaconf import open_dict

    from depthbench.core import run

    with open_dict(cfg):
        guard = cfg.callbacks.get("divergence_guard")
        if guard is not None and "check_every_n_steps" in guard:
            guard.check_every_n_steps = cfg.trainer.log_every_n_steps
    counter = HostSyncCounter(cpu_is_device=cpu_is_device)
    recorder = StepSyncRecorder(counter)
    with counter:
        run.train(cfg, callbacks=[recorder])  # the recorder joins the config's callbacks
    return per_step(recorder)
