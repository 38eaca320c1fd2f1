"""Count host syncs and CPU-to-device copies per training step (a ``TorchFunctionMode``).

A host sync is a read of a tensor's value by Python (``.item()``, ``bool()``, ``float()``,
``.tolist()``, ``.numpy()``, ``.cpu()``...): on a GPU the host waits for every queued kernel. A
device copy is ``.to(device)`` / ``.cuda()`` of a CPU tensor, a ``.copy_`` from a CPU tensor
into one on another device, or a tensor made from Python data with ``device=``. With
``cpu_is_device=True`` every such call counts on the CPU too, so code that *would* sync or copy
on a GPU is caught on a machine without one. Not counted, on purpose: reads inside
``torch.optim`` (the optimizers keep their step counter on the CPU) and Lightning's batch
transfer (``move_data_to_device``: nothing to move for a split already on the device).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import lightning as L
import torch
from omegaconf import DictConfig, open_dict
from torch.overrides import TorchFunctionMode

from depthbench import core

SYNC_METHODS = {"item", "__bool__", "__float__", "__int__", "__index__", "tolist", "numpy", "cpu"}
COPY_METHODS = {"to", "cuda", "copy_"}
FACTORIES = {"tensor", "as_tensor"}
# kind -> the code whose calls of that kind are not counted (see the module's docstring)
UNCOUNTED = {"sync": "torch/optim/", "copy": "lightning/fabric/utilities/apply_func.py"}


def _targets_device(args: tuple, kwargs: dict) -> bool:
    """Whether a ``.to``/``.cuda`` call names a device (not only a dtype or memory format)."""
    if kwargs.get("device") is not None:
        return True
    return any(isinstance(a, (torch.device, str, int)) and not isinstance(a, bool) for a in args)


def _called_from(code: str, depth: int = 5) -> bool:
    """Whether one of the innermost ``depth`` Python frames runs a file whose path holds
    ``code``."""
    frame = inspect.currentframe()
    for _ in range(depth):
        if frame is None:
            return False
        if code in frame.f_code.co_filename.replace("\\", "/"):
            return True
        frame = frame.f_back
    return False


class HostSyncCounter(TorchFunctionMode):
    """Counts ``syncs`` and ``copies`` while active; ``where`` names each one counted."""

    def __init__(self, cpu_is_device: bool = False) -> None:
        super().__init__()
        self.cpu_is_device = cpu_is_device
        self.syncs = 0
        self.copies = 0
        self.where: list[str] = []  # e.g. "sync item", "copy to"

    def __torch_function__(
        self, func: Callable, types: Any, args: tuple = (), kwargs: dict | None = None
    ) -> Any:
        kwargs = kwargs or {}
        kind = self._kind(getattr(func, "__name__", ""), args, kwargs)
        if kind is not None and not _called_from(UNCOUNTED[kind]):
            self.syncs += kind == "sync"
            self.copies += kind == "copy"
            self.where.append(f"{kind} {func.__name__}")
        return func(*args, **kwargs)

    def _kind(self, name: str, args: tuple, kwargs: dict) -> str | None:
        """``sync``, ``copy`` or None: what the call ``name(*args, **kwargs)`` is on a GPU."""
        first = args[0] if args else None
        if isinstance(first, torch.Tensor) and name in SYNC_METHODS:
            return "sync" if self.cpu_is_device or first.device.type != "cpu" else None
        if isinstance(first, torch.Tensor) and name in COPY_METHODS:
            if name == "copy_":  # into ``first``, from a tensor on another device
                src = args[1] if len(args) > 1 else None
                moves = isinstance(src, torch.Tensor) and src.device != first.device
            else:
                src, moves = first, name == "cuda" or _targets_device(args[1:], kwargs)
            from_cpu = isinstance(src, torch.Tensor) and src.device.type == "cpu"
            return "copy" if moves and from_cpu else None
        device = kwargs.get("device") if name in FACTORIES else None
        if device is not None and (self.cpu_is_device or torch.device(device).type != "cpu"):
            return "copy"
        return None


class StepSyncRecorder(L.Callback):
    """``counter``'s counts per training step, from one batch start to the next: a step holds
    what Lightning does after its batch end too (writing the logs of a logging step)."""

    def __init__(self, counter: HostSyncCounter) -> None:
        self.counter = counter
        self.steps: list[dict[str, Any]] = []  # {"step", "syncs", "copies", "logging_step"}
        self._last = (0, 0)

    def _end_step(self, trainer: L.Trainer) -> None:
        (syncs, copies), step = (self.counter.syncs, self.counter.copies), trainer.global_step
        self.steps.append({"step": step, "syncs": syncs - self._last[0],
                           "copies": copies - self._last[1],
                           "logging_step": step % trainer.log_every_n_steps == 0})  # fmt: skip
        self._last = (syncs, copies)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._last = (self.counter.syncs, self.counter.copies)

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if trainer.global_step > 0:
            self._end_step(trainer)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._end_step(trainer)


def count_per_step(cfg: DictConfig, cpu_is_device: bool = False) -> list[dict[str, Any]]:
    """Host syncs and device copies of every training step of ``core.train(cfg)``.

    The divergence guard is set to read the loss at the logging interval, as the default job
    does on a GPU, so the steps between logging steps are the ones that must have none.
    """
    with open_dict(cfg):
        guard = cfg.callbacks.get("divergence_guard")
        if guard is not None and "check_every_n_steps" in guard:
            guard.check_every_n_steps = cfg.trainer.log_every_n_steps
    counter = HostSyncCounter(cpu_is_device=cpu_is_device)
    recorder = StepSyncRecorder(counter)
    with counter:
        core.train(cfg, callbacks=[recorder])
    return recorder.steps
