"""Attention maps of a transformer on a few test inputs: which tokens attend to which.

Uses the network's ``forward_attention(x) -> list[(B, heads, T, T)]`` (one entry per layer).
Drawn once at the end of training into ``attention.png``: for each input, the input itself and
each layer's attention matrix averaged over heads; when the first token is a class token and
the rest form a square grid of patches, also the last layer's class-token attention over the
image (the "which patches matter" picture).
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback

from depthbench.diagnostics.common import network, sample_inputs, save_figure, to_device
from depthbench.plotting import pyplot

log = logging.getLogger("depthbench")


class AttentionMaps(Callback):
    """Draw ``attention.png`` after fit for nets with ``forward_attention`` (else a log line)."""

    def __init__(self, dirpath: str | Path, num_images: int = 3) -> None:
        self.dirpath = Path(dirpath)
        self.num_images = num_images

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        net = network(pl_module)
        if not trainer.is_global_zero:
            return
        if not hasattr(net, "forward_attention"):
            log.info(
                "attention: %s has no forward_attention; no attention figure", type(net).__name__
            )
            return
        sample = sample_inputs(trainer, self.num_images)
        if sample is None:
            return
        x, y = sample
        was_training = net.training
        net.eval()
        try:
            with torch.no_grad():
                xd = to_device(x, pl_module.device)
                maps = (
                    net.forward_attention(**xd)
                    if isinstance(xd, dict)
                    else net.forward_attention(xd)
                )
        finally:
            net.train(was_training)
        maps = [m.detach().float().cpu() for m in maps]
        if isinstance(x, torch.Tensor) and maps:
            plot_attention(x.cpu(), y, maps, self.dirpath / "attention.png", trainer)


def plot_attention(
    x: torch.Tensor,
    y: torch.Tensor,
    maps: list[torch.Tensor],
    path: Path,
    trainer: L.Trainer | None = None,
) -> Path:
    """Rows: inputs; columns: the input, each layer's head-averaged (T, T) map, class-token map."""
    plt = pyplot()
    n, layers = x.shape[0], len(maps)
    tokens = maps[-1].shape[-1]
    side = math.isqrt(tokens - 1) if tokens > 1 else 0
    cls_grid = x.ndim == 4 and side * side == tokens - 1
    cols = 1 + layers + int(cls_grid)
    fig, axes = plt.subplots(n, cols, figsize=(cols * 1.8, n * 1.8), squeeze=False)
    for b in range(n):
        ax = axes[b, 0]
        inp = x[b].float()
        if inp.ndim == 3:
            ax.imshow(inp.mean(0), cmap="gray")
        else:
            ax.plot(inp.reshape(-1) if inp.ndim == 1 else inp.mean(0))
        ax.set_title(f"input (label {int(y[b])})", fontsize=7)
        for layer, m in enumerate(maps):
            a = axes[b, 1 + layer]
            a.imshow(m[b].mean(0), cmap="magma")  # (heads, T, T) -> (T, T)
            a.set_title(f"layer {layer} (query x key)", fontsize=7)
        if cls_grid:
            a = axes[b, -1]
            cls = maps[-1][b].mean(0)[0, 1:].reshape(side, side)
            a.imshow(inp.mean(0), cmap="gray")
            h, w = inp.shape[-2:]
            a.imshow(cls, cmap="jet", alpha=0.5, extent=(-0.5, w - 0.5, h - 0.5, -0.5))
            a.set_title("cls -> patches (last)", fontsize=7)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle("attention (head-averaged) per layer", fontsize=9)
    return save_figure(fig, path, trainer, "diagnostics/attention")
