"""What a convolutional net's layers see: first-layer filters and per-layer feature maps.

The lesson's picture of hierarchical features ("layer 1 sees edges, deeper layers see parts",
cf. Zeiler & Fergus 2014) drawn from the trained network: ``filters.png`` (the first
convolution's kernels) and ``feature_maps.png`` (a few channels of evenly spaced conv layers for
a few test inputs). Drawn once, at the end of training; nothing runs during training.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from torch import nn

from depthbench.data.spec import class_names
from depthbench.diagnostics.common import (
    evenly_spaced,
    network,
    sample_inputs,
    save_figure,
    to_device,
)
from depthbench.plotting import pyplot

log = logging.getLogger("depthbench")
CONVS = (nn.Conv1d, nn.Conv2d)


class FeatureMaps(Callback):
    """Draw ``filters.png`` and ``feature_maps.png`` after fit (conv nets only; else a log line)."""

    def __init__(
        self, dirpath: str | Path, num_images: int = 2, max_layers: int = 6, channels: int = 8
    ) -> None:
        self.dirpath = Path(dirpath)
        self.num_images, self.max_layers, self.channels = num_images, max_layers, channels

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        net = network(pl_module)
        convs = [(n, m) for n, m in net.named_modules() if isinstance(m, CONVS)]
        if not convs:
            log.info(
                "features: %s has no convolution; no filter/feature-map figure", type(net).__name__
            )
            return
        plot_filters(convs[0][1].weight, self.dirpath / "filters.png", trainer)
        sample = sample_inputs(trainer, self.num_images)
        if sample is None:
            return
        x, y = sample
        chosen = [convs[i] for i in evenly_spaced(len(convs), self.max_layers)]
        maps: dict[str, torch.Tensor] = {}
        handles = [
            m.register_forward_hook(
                lambda mod, i, out, name=n: maps.__setitem__(name, out.detach())
            )
            for n, m in chosen
        ]
        was_training = net.training
        net.eval()
        try:
            with torch.no_grad():
                x_dev = to_device(x, pl_module.device)
                net(**x_dev) if isinstance(x_dev, dict) else net(x_dev)
        finally:
            for h in handles:
                h.remove()
            net.train(was_training)
        dm = getattr(trainer, "datamodule", None)
        classes = class_names(dm) if getattr(dm, "num_classes", 0) else None
        if isinstance(x, torch.Tensor):
            plot_feature_maps(x, y, maps, self.channels, self.dirpath / "feature_maps.png",
                              trainer, classes)  # fmt: skip


def _normalise(t: torch.Tensor) -> torch.Tensor:
    t = t - t.min()
    return t / t.max().clamp_min(1e-12)


def plot_filters(weight: torch.Tensor, path: Path, trainer: L.Trainer | None = None) -> Path:
    """A grid of the first layer's kernels (2-D: images, RGB when 3 input channels; 1-D: lines)."""
    plt = pyplot()
    w = weight.detach().float().cpu()
    n = w.shape[0]
    cols = min(n, 8)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.1, rows * 1.1), squeeze=False)
    for k, ax in enumerate(axes.flat):
        ax.axis("off")
        if k >= n:
            continue
        if w.ndim == 4:  # (out, in, kh, kw)
            img = _normalise(w[k])
            ax.imshow(img.permute(1, 2, 0) if img.shape[0] == 3 else img.mean(0), cmap="gray")
        else:  # (out, in, k)
            ax.plot(w[k].mean(0))
    fig.suptitle(f"first-layer filters ({tuple(w.shape)})", fontsize=9)
    return save_figure(fig, path, trainer, "diagnostics/filters")


def plot_feature_maps(
    x: torch.Tensor,
    y: torch.Tensor,
    maps: dict[str, torch.Tensor],
    channels: int,
    path: Path,
    trainer: L.Trainer | None = None,
    classes: Sequence[str] | None = None,
) -> Path:
    """Rows: input then each hooked layer; columns: ``channels`` channels, for each input.

    Each input is titled with its class name (``classes[label]``; the label without names).
    """
    plt = pyplot()
    n_img = x.shape[0]
    rows = 1 + len(maps)
    fig, axes = plt.subplots(
        rows, n_img * channels, figsize=(n_img * channels * 0.9, rows * 1.0), squeeze=False
    )
    for ax in axes.flat:
        ax.axis("off")
    for b in range(n_img):
        c0 = b * channels
        inp = x[b].float().cpu()
        if inp.ndim == 3:
            axes[0, c0].imshow(_normalise(inp).permute(1, 2, 0) if inp.shape[0] == 3
                               else inp.mean(0), cmap="gray")  # fmt: skip
        else:
            axes[0, c0].plot(inp.mean(0))
        label = int(y[b])
        name = classes[label] if classes and label < len(classes) else f"label {label}"
        axes[0, c0].set_title(f"input: {name}", fontsize=7, loc="left")
        for r, (name, fm) in enumerate(maps.items(), start=1):
            f = fm[b].float().cpu()
            for c in range(min(channels, f.shape[0])):
                ax = axes[r, c0 + c]
                ax.imshow(f[c] if f.ndim == 3 else f[c : c + 1].expand(4, -1), cmap="viridis",
                          aspect="auto")  # fmt: skip
                if c == 0:
                    ax.set_title(name, fontsize=6, loc="left")
    fig.suptitle("feature maps: first channels of each layer (rows), per input", fontsize=9)
    return save_figure(fig, path, trainer, "diagnostics/feature_maps")
