"""Gradient flow: the gradient norm of every layer's weights, first layer to last.

The lesson's vanishing-gradient claim is about exactly this curve: back-propagation multiplies
the gradient by one Jacobian per layer, and with sigmoid (derivative <= 0.25) the product shrinks
geometrically towards the input. The first rows are written at step 0, before any update, so
the curve at initialisation is always there.
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback

from depthbench.diagnostics.common import (
    CsvAppender,
    evenly_spaced,
    log_scalars,
    network,
    save_figure,
    weight_layers,
)
from depthbench.plotting import integer_ticks, pyplot

COLUMNS = ("step", "layer", "index", "grad_norm")


class GradientFlow(Callback):
    """Write ``gradflow.csv`` (long format: step, layer, index, grad_norm) every N steps.

    ``index`` 0 is the layer nearest the input. Also logs ``gradflow/first``, ``gradflow/last``
    and ``gradflow/first_over_last`` to the active loggers and draws ``gradflow.png`` at the end.
    The norms are read in ``on_before_optimizer_step``: after backward, before clipping and the
    update, so step 0 is the gradient at initialisation.
    """

    def __init__(
        self,
        dirpath: str | Path,
        every_n_steps: int = 10,
        filename: str = "gradflow.csv",
        plot: bool = True,
    ) -> None:
        if every_n_steps < 1:
            raise ValueError(f"every_n_steps must be >= 1, got {every_n_steps}")
        self.dirpath = Path(dirpath)
        self.every_n_steps = every_n_steps
        self.csv = CsvAppender(self.dirpath / filename, COLUMNS)
        self.plot = plot
        self._layers: list[tuple[str, torch.nn.Parameter]] = []
        self._last_step = -1

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._layers = weight_layers(network(pl_module))
        self._last_step = -1
        if trainer.is_global_zero:  # a resumed run's global_step is restored by now
            self.csv.start(trainer.global_step)

    def on_before_optimizer_step(
        self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer: torch.optim.Optimizer
    ) -> None:
        step = trainer.global_step
        if step % self.every_n_steps or step == self._last_step or not trainer.is_global_zero:
            return
        self._last_step = step
        named = [(n, p.grad) for n, p in self._layers if p.grad is not None]
        if not named:
            return
        # one fused kernel for all layers, one device->host copy
        norms = torch.stack(torch._foreach_norm([g.detach() for _, g in named])).float().cpu()
        values = norms.tolist()
        self.csv.append(
            (step, name, i, f"{v:.6g}")
            for i, ((name, _), v) in enumerate(zip(named, values, strict=True))
        )
        first, last = values[0], values[-1]
        log_scalars(
            trainer,
            {
                "gradflow/first": first,
                "gradflow/last": last,
                "gradflow/first_over_last": first / last if last > 0 else float("nan"),
            },
            step,
        )

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.plot and trainer.is_global_zero and self.csv.path.exists():
            plot_gradflow(self.csv.path, self.dirpath / "gradflow.png", trainer)


def plot_gradflow(csv_path: Path, png_path: Path, trainer: L.Trainer | None = None) -> Path | None:
    """Draw gradient norm against layer (log scale) for a few steps, and first/last over time."""
    import pandas as pd

    df = pd.read_csv(csv_path)
    if df.empty:
        return None
    plt = pyplot()
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    steps = sorted(df.step.unique())
    shown = [steps[i] for i in evenly_spaced(len(steps), 6)]
    cmap = plt.get_cmap("viridis")
    for k, s in enumerate(shown):
        d = df[df.step == s].sort_values("index")
        ax.plot(d["index"], d.grad_norm.clip(lower=1e-30), marker=".", ms=3,
                color=cmap(k / max(len(shown) - 1, 1)), label=f"step {s}")  # fmt: skip
    ax.set(yscale="log", xlabel="layer index (0 = input side)", ylabel="gradient norm",
           title="gradient norm per layer")  # fmt: skip
    ax.legend(fontsize=7)
    last_index = df["index"].max()
    for idx, label in ((0, "first layer"), (last_index, "last layer")):
        d = df[df["index"] == idx].sort_values("step")
        ax2.plot(d.step, d.grad_norm.clip(lower=1e-30), label=label)
    ax2.set(yscale="log", xlabel="step", ylabel="gradient norm", title="first vs last layer")
    ax2.legend(fontsize=7)
    integer_ticks(ax)  # layers and steps are whole numbers
    integer_ticks(ax2)
    return save_figure(fig, png_path, trainer, "diagnostics/gradflow")
