"""Measurements a claim needs beyond ``metrics.json``: linear probes per layer, first-layer edge
filters, and the attention summary of a transformer run. Each adds columns to a run's row.

* ``probes`` (Alain & Bengio 2016, "Understanding intermediate layers using linear classifier
  probes"): the trained net's output after the stem and after every block, average-pooled to
  ``pool x pool`` positions, feeds a logistic regression trained on ``train`` training images and
  scored on ``test`` test images. The same probes on a freshly initialised net of the same
  architecture tell what the layer learned from what its shape alone gives.
* ``edges``: the median, over the first layer's 3x3 filters, of the best absolute cosine with
  four oriented first-derivative (Sobel) kernels. A random filter scores about 0.5 (measured:
  medians 0.47-0.54 for 16 Gaussian filters, 3 seeds); an edge detector close to 1.
* ``attention``: the last layer's attention from "it" to its referent and to the other noun,
  over the test set and on one sentence, from the run's ``attention_summary.json``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from depthbench.report.collect import Run

# 3x3 first-derivative kernels at 0, 90, 45 and 135 degrees (|cos| ignores the sign)
EDGE_KERNELS = torch.tensor(
    [
        [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]],
        [[-1, -2, -1], [0, 0, 0], [1, 2, 1]],
        [[0, 1, 2], [-1, 0, 1], [-2, -1, 0]],
        [[-2, -1, 0], [-1, 0, 1], [0, 1, 2]],
    ],
    dtype=torch.float32,
)


def edge_score(weight: torch.Tensor) -> float:
    """Median over filters of the best |cosine| with an oriented edge kernel.

    ``weight`` is a conv weight (out, in, 3, 3); each filter is summed over its input channels
    (one channel for grey images) before the comparison.
    """
    if weight.ndim != 4 or weight.shape[-2:] != (3, 3):
        raise ValueError(f"edge_score needs 3x3 conv weights, got shape {tuple(weight.shape)}")
    filters = weight.detach().float().sum(dim=1).flatten(1)  # (out, 9)
    filters = filters / filters.norm(dim=1, keepdim=True).clamp_min(1e-12)
    kernels = EDGE_KERNELS.flatten(1)
    kernels = kernels / kernels.norm(dim=1, keepdim=True)
    return float((filters @ kernels.T).abs().max(dim=1).values.median())


def layer_features(
    net: nn.Module, x: torch.Tensor, pool: int, batch_size: int = 500
) -> list[torch.Tensor]:
    """Outputs of ``net.stem`` and of each of ``net.blocks``, pooled to (N, C * pool**k)."""
    modules = [net.stem, *net.blocks]
    outputs: list[list[torch.Tensor]] = [[] for _ in modules]

    def hook(i: int):
        def save(_m: nn.Module, _inp: Any, out: torch.Tensor) -> None:
            size = (pool,) * (out.ndim - 2)
            pooled = (
                F.adaptive_avg_pool2d(out, size)
                if out.ndim == 4
                else (F.adaptive_avg_pool1d(out, size) if out.ndim == 3 else out)
            )
            outputs[i].append(pooled.flatten(1))

        return save

    handles = [m.register_forward_hook(hook(i)) for i, m in enumerate(modules)]
    try:
        net.eval()
        with torch.no_grad():
            for start in range(0, len(x), batch_size):
                net(x[start : start + batch_size])
    finally:
        for h in handles:
            h.remove()
    return [torch.cat(o) for o in outputs]


def probe_accuracies(
    train: list[torch.Tensor], y_train: torch.Tensor, test: list[torch.Tensor], y_test: torch.Tensor
) -> list[float]:
    """Test accuracy of a logistic-regression probe per layer (standardised features)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    accs = []
    for a, b in zip(train, test, strict=True):
        # max_iter: lbfgs converges within it on 2,000 x 1,024 standardised features
        probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=1.0))
        probe.fit(a.numpy(), y_train.numpy())
        accs.append(float(probe.score(b.numpy(), y_test.numpy())))
    return accs


def probes(run: Run, pool: int = 4, train: int = 2000, test: int = 1000) -> dict[str, float]:
    """Probe accuracies per layer of the run's trained net and of a fresh one, plus the first
    layer's edge score for both: ``probe i``, ``probe init i``, ``edge score (init)``..."""
    from depthbench.build import build_data, build_net
    from depthbench.rundir.checkpoint import load_checkpoint, load_net, stored_data_spec

    ckpt = run.path / "checkpoints" / "last.ckpt"
    if not ckpt.is_file():
        return {}
    checkpoint = load_checkpoint(ckpt)  # read once: the trained net and the data spec
    net, cfg = load_net(checkpoint)
    dm = build_data(cfg)
    dm.setup("test")
    (x_tr, y_tr), (x_te, y_te) = dm.splits["train"], dm.splits["test"]
    gen = torch.Generator().manual_seed(0)
    i_tr = torch.randperm(len(y_tr), generator=gen)[:train]
    i_te = torch.randperm(len(y_te), generator=gen)[:test]
    x_tr, y_tr = dm.transform(x_tr[i_tr], train=False), y_tr[i_tr]
    x_te, y_te = dm.transform(x_te[i_te], train=False), y_te[i_te]
    torch.manual_seed(int(cfg.seed))
    fresh = build_net(cfg.model, stored_data_spec(checkpoint))
    out: dict[str, float] = {}
    for prefix, model in (("probe", net), ("probe init", fresh)):
        accs = probe_accuracies(
            layer_features(model, x_tr, pool), y_tr, layer_features(model, x_te, pool), y_te
        )
        out.update({f"{prefix} {i}": a for i, a in enumerate(accs)})
    out["edge score"] = edge_score(net.stem[0].weight)
    out["edge score (init)"] = edge_score(fresh.stem[0].weight)
    return out


def attention(run: Run, sentence: str, referent: str, other: str) -> dict[str, float]:
    """Last-layer attention from "it" to ``referent`` / ``other``: test-set mean and on
    ``sentence`` (from ``attention_summary.json``)."""
    path = run.file("attention_summary.json")
    if path is None:
        return {}
    summary = json.loads(Path(path).read_text())
    last = summary["last_layer"]
    row = {"referent (test)": last["referent"], "other noun (test)": last["other_noun"]}
    layers = summary.get("sentences", {}).get(sentence, {}).get("layers")
    if layers:
        row["referent (sentence)"] = float(layers[-1].get(referent, np.nan))
        row["other noun (sentence)"] = float(layers[-1].get(other, np.nan))
    return row


MEASURES = {"probes": probes, "attention": attention}
