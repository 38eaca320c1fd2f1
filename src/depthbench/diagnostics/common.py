"""Helpers shared by the diagnostics callbacks: the network, sample inputs, figures, loggers."""

from __future__ import annotations

import csv
import logging
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch import nn

from depthbench.core.run_folder.history import keep_rows_before
from depthbench.core.tracking import log_image
from depthbench.plotting import pyplot

log = logging.getLogger("depthbench")


def network(pl_module: L.LightningModule) -> nn.Module:
    """The plain ``nn.Module`` inside the Classifier (``pl_module.net``), else the module itself."""
    return getattr(pl_module, "net", pl_module)


def weight_layers(net: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """``(layer name, weight)`` of every trainable weight matrix/kernel, input to output.

    A "layer" is any parameter with two or more dimensions (Linear, Conv, attention projections,
    embeddings); biases and normalisation scales are left out. The order is the registration
    order, which for the depthbench networks is the order of the forward pass.
    """
    layers = []
    for name, p in net.named_parameters():
        if p.ndim >= 2 and p.requires_grad:
            layers.append((name.removesuffix(".weight"), p))
    return layers


def sample_inputs(trainer: L.Trainer, n: int) -> tuple[Any, torch.Tensor] | None:
    """The first ``n`` test examples as the model sees them (normalised), or None without data."""
    dm = getattr(trainer, "datamodule", None)
    splits = getattr(dm, "splits", None)
    if splits:
        x, y = splits.get("test") or splits["val"]
        return dm.transform(x[:n], False), y[:n]
    try:
        x, y = next(iter(dm.test_dataloader()))
    except Exception:  # no test split / no datamodule: the figure is skipped
        return None
    return (x[:n] if isinstance(x, torch.Tensor) else {k: v[:n] for k, v in x.items()}), y[:n]


def to_device(x: Any, device: torch.device) -> Any:
    """Move a tensor or a dict of tensors to ``device``."""
    if isinstance(x, dict):
        return {k: v.to(device) for k, v in x.items()}
    return x.to(device)


def save_figure(fig: Any, path: Path, trainer: L.Trainer | None = None, key: str = "") -> Path:
    """Save ``fig`` as a PNG, close it, and send it to the active loggers when they take images."""
    plt = pyplot()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90, bbox_inches="tight")
    plt.close(fig)
    if trainer is not None and key:
        try:
            log_image(trainer, key, path)
        except Exception as e:  # a logger that refuses an image must not fail the run
            log.warning("could not log %s to the loggers: %s", key, e)
    return path


def log_scalars(trainer: L.Trainer, metrics: dict[str, float], step: int) -> None:
    """Send scalar metrics to every active logger at ``step``."""
    for logger in trainer.loggers:
        logger.log_metrics(metrics, step=step)


class CsvAppender:
    """Append rows to a CSV file with a ``step`` column; a resumed run continues the file."""

    def __init__(self, path: Path, columns: Sequence[str]) -> None:
        self.path, self.columns = path, list(columns)

    def start(self, step: int = 0) -> None:
        """Start writing at ``step``: keep the rows before it (a resume), drop the rest.

        Called at ``on_train_start``, when a resumed trainer's ``global_step`` is restored;
        step 0 starts the file with its header only (``history.keep_rows_before``).
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if step > 0 and self.path.is_file():
            keep_rows_before(self.path, step, header=self.columns)
            return
        with self.path.open("w", newline="") as f:
            csv.writer(f).writerow(self.columns)

    def append(self, rows: Iterable[Sequence[Any]]) -> None:
        with self.path.open("a", newline="") as f:
            csv.writer(f).writerows(rows)


def evenly_spaced(n: int, k: int) -> list[int]:
    """Up to ``k`` indices from ``range(n)``, evenly spaced, always with the first and last."""
    if n <= k:
        return list(range(n))
    return sorted({round(i * (n - 1) / (k - 1)) for i in range(k)})
