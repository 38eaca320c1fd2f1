"""Activation statistics per layer: mean, std, saturated sigmoid/tanh units, dead ReLUs.

Glorot & Bengio (2010) watched exactly these numbers: sigmoid units of deep nets saturate
(output near 0 or 1, derivative near 0), and a ReLU that outputs 0 for every input passes no
gradient at all. Hooks are attached for the measured batch only, then removed.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from torch import nn

from depthbench.diagnostics.common import CsvAppender, network, save_figure
from depthbench.plotting import integer_ticks, pyplot

COLUMNS = ("step", "layer", "index", "kind", "mean", "std", "saturated", "dead")
# Saturated: |derivative| below ~10-20% of its maximum. sigmoid' = y(1-y) < 0.0475 for
# y outside [0.05, 0.95]; tanh' = 1 - y^2 < 0.0975 for |y| > 0.95.
SATURATING = {nn.Sigmoid: (0.05, 0.95), nn.Tanh: (-0.95, 0.95)}
RECTIFIERS = (nn.ReLU, nn.ReLU6)
ACTIVATION_TYPES = (nn.Sigmoid, nn.Tanh, nn.ReLU, nn.ReLU6, nn.GELU, nn.SiLU, nn.ELU,
                    nn.LeakyReLU, nn.Hardswish, nn.Mish)  # fmt: skip


def activation_stats(module: nn.Module, y: torch.Tensor) -> tuple[float, float, float, float]:
    """(mean, std, fraction saturated, fraction dead units) of one activation output.

    Saturated is NaN for non-saturating activations and dead is NaN for non-rectifiers. A unit
    (a feature, or a channel of a conv map) is dead when it outputs 0 for every example of the
    batch and every position.
    """
    y = y.detach().float()
    mean, std = y.mean().item(), y.std().item() if y.numel() > 1 else 0.0
    saturated = dead = math.nan
    for kind, (low, high) in SATURATING.items():
        if isinstance(module, kind):
            saturated = ((y < low) | (y > high)).float().mean().item()
    if isinstance(module, RECTIFIERS) and y.ndim >= 2:
        # (B, C, ...) -> per unit C: alive if any example/position is > 0
        alive = (y > 0).transpose(0, 1).reshape(y.shape[1], -1).any(dim=1)
        dead = 1.0 - alive.float().mean().item()
    return mean, std, saturated, dead


class ActivationStats(Callback):
    """Write ``activations.csv`` every N steps and draw ``activations.png`` at the end."""

    def __init__(
        self, dirpath: str | Path, every_n_steps: int = 50, filename: str = "activations.csv"
    ) -> None:
        if every_n_steps < 1:
            raise ValueError(f"every_n_steps must be >= 1, got {every_n_steps}")
        self.dirpath = Path(dirpath)
        self.every_n_steps = every_n_steps
        self.csv = CsvAppender(self.dirpath / filename, COLUMNS)
        self._handles: list[Any] = []
        self._rows: list[tuple] = []
        self._done_step = -1

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._done_step = -1
        if trainer.is_global_zero:  # a resumed run's global_step is restored by now
            self.csv.start(trainer.global_step)

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        step = trainer.global_step
        if step % self.every_n_steps or step == self._done_step or not trainer.is_global_zero:
            return
        self._done_step = step
        modules = [
            (n, m) for n, m in network(pl_module).named_modules() if isinstance(m, ACTIVATION_TYPES)
        ]
        for index, (name, module) in enumerate(modules):
            self._handles.append(module.register_forward_hook(self._hook(step, name, index)))
        if hasattr(pl_module, "eager_next_step"):  # hooks and .item() stay out of compiled code
            pl_module.eager_next_step = True

    def _hook(self, step: int, name: str, index: int):
        def hook(module: nn.Module, inputs: Any, output: torch.Tensor) -> None:
            stats = activation_stats(module, output)
            self._rows.append((step, name, index, type(module).__name__.lower(), *stats))

        return hook

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args) -> None:
        if not self._handles:
            return
        for h in self._handles:
            h.remove()
        self._handles.clear()
        self.csv.append(
            (s, n, i, k, *(f"{v:.6g}" for v in vals)) for s, n, i, k, *vals in self._rows
        )
        self._rows.clear()

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.is_global_zero and self.csv.path.exists():
            plot_activations(self.csv.path, self.dirpath / "activations.png", trainer)


def plot_activations(
    csv_path: Path, png_path: Path, trainer: L.Trainer | None = None
) -> Path | None:
    """Mean +- std, saturated and dead fractions against layer, at the first and last step.

    A panel is drawn only when the net has its kind of activation: no "saturated" panel for a
    ReLU net, no "dead" panel for a sigmoid net; the title says which panel was left out.
    """
    import pandas as pd

    df = pd.read_csv(csv_path)
    if df.empty:
        return None
    panels = [("mean", "activation mean +- std")]
    missing = []
    for column, title, kinds in (
        ("saturated", "fraction saturated", "sigmoid/tanh"),
        ("dead", "fraction dead units", "ReLU"),
    ):
        if df[column].notna().any():
            measured = sorted(df.loc[df[column].notna(), "kind"].unique())
            panels.append((column, f"{title} ({'/'.join(measured)} layers)"))
        else:
            missing.append(f"no {kinds} layer, so no '{title}' panel")
    plt = pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(4.4 * len(panels), 3.6), squeeze=False)
    axes = dict(zip((c for c, _ in panels), axes[0], strict=True))
    steps = sorted(df.step.unique())
    for s, style in zip(dict.fromkeys([steps[0], steps[-1]]), ("-", "--"), strict=False):
        d = df[df.step == s].sort_values("index")
        axes["mean"].plot(d["index"], d["mean"], style, label=f"mean, step {s}")
        axes["mean"].fill_between(d["index"], d["mean"] - d["std"], d["mean"] + d["std"],
                                  alpha=0.2)  # fmt: skip
        for column in axes.keys() - {"mean"}:
            rows = d[d[column].notna()]
            axes[column].plot(rows["index"], rows[column], style, marker=".", label=f"step {s}")
    for column, title in panels:
        ax = axes[column]
        ax.set(xlabel="layer index (0 = input side)", title=title)
        if column != "mean":
            ax.set_ylim(-0.02, 1.02)
        integer_ticks(ax)
        ax.legend(fontsize=7)
    if missing:
        fig.suptitle("; ".join(missing), fontsize=8)
    return save_figure(fig, png_path, trainer, "diagnostics/activations")
