"""Measurements a claim takes of a finished training run, beyond its record: linear probes per
layer, first-layer edge filters, the attention summary of a transformer run, and passes of the
final weights over its data. Each returns columns added to the run's row; a claim's YAML names
them under ``measures:`` by dotted path (``depthbench.lesson.run_measures.train_eval``).

* ``probes`` (Alain & Bengio 2016, "Understanding intermediate layers using linear classifier
  probes"): the trained net's output after the stem and after every block, average-pooled to
  ``pool x pool`` positions, feeds a logistic regression trained on ``train`` training images and
  scored on ``test`` test images. The same probes on a freshly initialised net of the same
  architecture tell what the layer learned from what its shape alone gives.
* ``edges``: the median, over the first layer's 3x3 filters, of the best absolute cosine with
  four oriented first-derivative (Sobel) kernels: well below 1 for a random filter (the best of
  four cosines with a random direction in 9 dimensions), close to 1 for an edge detector.
* ``attention``: the last layer's attention from "it" to its referent and to the other noun,
  over the test set and on one sentence, from the run's ``attention_summary.json``;
* on the final weights (``_trained``: the run's last checkpoint, its data, eval mode):
  ``train_eval`` (one pass over the training set), ``lesion`` (Veit et al. 2016),
  ``landscape`` (Li et al. 2018), and ``raw_linear`` (the raw-pixel baseline), plus
  ``loss_curve`` from the run's logged history.

Every one reads a run folder through ``depthbench.core`` (``open_run``, ``load_checkpoint``,
``load_net``, ``build_data``) and shares one path from a run to its trained net and data.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from depthbench.core import (
    build_data,
    build_net,
    layout,
    load_checkpoint,
    load_net,
    open_run,
    stored_data_spec,
)
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
    train: list[torch.Tensor],
    y_train: torch.Tensor,
    test: list[torch.Tensor],
    y_test: torch.Tensor,
    dims: int | None = None,
) -> list[float]:
    """Test accuracy of a logistic-regression probe per layer (standardised features; with
    ``dims``, first reduced to that many principal components fitted on the training features,
    so that every layer is read through the same number of dimensions)."""
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    accs = []
    for a, b in zip(train, test, strict=True):
        steps: list[Any] = [StandardScaler()]
        if dims is not None and a.shape[1] > dims:
            steps += [PCA(n_components=dims, random_state=0), StandardScaler()]
        # max_iter: lbfgs converges within it on 2,000 x 1,024 standardised features
        probe = make_pipeline(*steps, LogisticRegression(max_iter=2000, C=1.0))
        probe.fit(a.numpy(), y_train.numpy())
        accs.append(float(probe.score(b.numpy(), y_test.numpy())))
    return accs


def probes(
    run: Run, pool: int = 4, train: int = 2000, test: int = 1000, dims: int | None = None
) -> dict[str, float]:
    """Probe accuracies per layer of the run's trained net (``probe i``), of a fresh net of
    the same architecture (``probe init i``) and on the raw input (``probe raw``); for a 2-D
    net also the first layer's edge score, trained and at initialisation."""
    ckpt = open_run(run.path).last_checkpoint
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
            layer_features(model, x_tr, pool), y_tr, layer_features(model, x_te, pool), y_te, dims
        )
        out.update({f"{prefix} {i}": a for i, a in enumerate(accs)})
    out["probe raw"] = probe_accuracies([x_tr.flatten(1)], y_tr, [x_te.flatten(1)], y_te, dims)[0]
    stem = net.stem[0].weight
    if stem.ndim == 4 and stem.shape[-2:] == (3, 3):
        out["edge score"] = edge_score(stem)
        out["edge score (init)"] = edge_score(fresh.stem[0].weight)
    return out


def attention(run: Run, sentence: str, referent: str, other: str) -> dict[str, Any]:
    """Attention from "it" to ``referent`` / ``other`` in every layer (layer 1 first): the
    test-set mean and on ``sentence`` (from ``attention_summary.json``)."""
    path = run.file(layout.ATTENTION_SUMMARY_FILE)
    if path is None:
        return {}
    summary = json.loads(Path(path).read_text())
    per_layer = summary["mean_attention_per_layer"]
    row: dict[str, Any] = {
        "referent (test)": [float(v) for v in per_layer["referent"]],
        "other noun (test)": [float(v) for v in per_layer["other_noun"]],
    }
    layers = summary.get("sentences", {}).get(sentence, {}).get("layers")
    if layers:
        row["referent (sentence)"] = [float(x.get(referent, np.nan)) for x in layers]
        row["other noun (sentence)"] = [float(x.get(other, np.nan)) for x in layers]
    return row


# ---- measures on a trained net from its last checkpoint ----------------------------------
def _trained(run: Run, split: str, examples: int | None, seed: int = 0):
    """The run's trained net (eval mode) and ``examples`` rows of its data's ``split``, as the
    net sees them at evaluation (no augmentation), or None when the run kept no checkpoint."""
    ckpt = open_run(run.path).last_checkpoint
    if not ckpt.is_file():
        return None
    net, cfg = load_net(load_checkpoint(ckpt))
    dm = build_data(cfg)
    dm.setup("fit")
    x, y = dm.splits[split]
    if examples is not None and examples < len(y):
        keep = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))[:examples]
        x, y = x[keep], y[keep]
    return net.eval(), dm.transform(x, train=False), y, cfg


@torch.no_grad()
def evaluate_net(
    net: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1000
) -> tuple[float, float]:
    """(accuracy, mean cross-entropy) of ``net`` in eval mode on ``(x, y)``."""
    correct, loss = 0, 0.0
    for i in range(0, len(y), batch_size):
        logits = net(x[i : i + batch_size]).float()
        loss += float(F.cross_entropy(logits, y[i : i + batch_size], reduction="sum"))
        correct += int((logits.argmax(1) == y[i : i + batch_size]).sum())
    return correct / len(y), loss / len(y)


def train_eval(run: Run, examples: int | None = None) -> dict[str, float]:
    """One eval-mode pass of the final weights over the training set (``examples`` rows of it,
    or all): ``train acc (eval)`` and ``train loss (eval)``. Unlike the logged train accuracy (a
    running mean over the last epoch in train mode, while the weights still move) this is the
    fit of the net that the verdict talks about."""
    got = _trained(run, "train", examples)
    if got is None:
        return {}
    net, x, y, _ = got
    acc, loss = evaluate_net(net, x, y)
    return {"train acc (eval)": acc, "train loss (eval)": loss}


def blocks_of(net: nn.Module) -> list[nn.Module]:
    """The residual-or-plain blocks of a depthbench net, input to output (DeepMLP/DeepCNN
    ``blocks``, CifarResNet ``stages``)."""
    if hasattr(net, "stages"):
        return [b for stage in net.stages for b in stage]
    return list(net.blocks)


@torch.no_grad()
def _shape_keeping(net: nn.Module, blocks: list[nn.Module], x: torch.Tensor) -> list[bool]:
    """Which blocks map their input to an output of the same shape (the ones that can be
    deleted: a block that subsamples or widens has no identity to fall back on)."""
    same: dict[int, bool] = {}
    handles = [
        b.register_forward_hook(
            lambda m, inp, out, i=i: same.__setitem__(i, inp[0].shape == out.shape)
        )
        for i, b in enumerate(blocks)
    ]
    try:
        net(x[:2])
    finally:
        for h in handles:
            h.remove()
    return [same.get(i, False) for i in range(len(blocks))]


@torch.no_grad()
def accuracy_without(
    net: nn.Module, blocks: list[nn.Module], x: torch.Tensor, y: torch.Tensor
) -> float:
    """Accuracy with ``blocks`` deleted: each returns its input (Veit et al. 2016: a residual
    block's branch removed leaves its identity path; a plain block removed leaves nothing)."""
    handles = [b.register_forward_hook(lambda m, inp, out: inp[0]) for b in blocks]
    try:
        return evaluate_net(net, x, y)[0]
    finally:
        for h in handles:
            h.remove()


def lesion(run: Run, examples: int = 2000, all_blocks: bool = False) -> dict[str, Any]:
    """Veit et al. 2016: training-set accuracy of the trained net (``examples`` rows) intact,
    and with each shape-keeping block deleted in turn (``lesion accs``, ``lesion median``) or,
    with ``all_blocks``, with every one of them deleted at once (``acc without blocks``)."""
    got = _trained(run, "train", examples)
    if got is None:
        return {}
    net, x, y, _ = got
    blocks = blocks_of(net)
    keep = [b for b, ok in zip(blocks, _shape_keeping(net, blocks, x), strict=True) if ok]
    intact = evaluate_net(net, x, y)[0]
    if all_blocks:
        return {"acc intact": intact, "acc without blocks": accuracy_without(net, keep, x, y)}
    accs = [accuracy_without(net, [b], x, y) for b in keep]
    return {"acc intact": intact, "lesion accs": accs, "lesion median": float(np.median(accs))}


def loss_curve(run: Run) -> dict[str, list[float]]:
    """The per-step training loss the run logged (``train/loss_step`` in its history)."""
    import pandas as pd

    path = open_run(run.path).history_path
    if not path.is_file():
        return {}
    frame = pd.read_csv(path)
    if "train/loss_step" not in frame:
        return {}
    rows = frame.dropna(subset=["train/loss_step"])
    return {
        "loss steps": rows["step"].astype(int).tolist(),
        "loss curve": rows["train/loss_step"].astype(float).tolist(),
    }


@torch.no_grad()
def landscape(
    run: Run, points: int = 21, span: float = 1.0, examples: int = 2000, seed: int = 0
) -> dict[str, list[float]]:
    """Li et al. 2018: training loss along one filter-normalised random direction through the
    trained weights, at ``points`` steps in [-span, span]. Each filter (each output slice of a
    weight tensor) of the direction is scaled to the norm of the same filter of the weights;
    1-D parameters (biases, batch-norm scales) get no direction, as in the paper."""
    got = _trained(run, "train", examples)
    if got is None:
        return {}
    net, x, y, _ = got
    gen = torch.Generator().manual_seed(seed)
    params = [p for p in net.parameters()]
    base = [p.detach().clone() for p in params]
    direction = []
    for p in base:
        if p.ndim <= 1:
            direction.append(torch.zeros_like(p))
            continue
        d = torch.randn(p.shape, generator=gen)
        norms_p = p.flatten(1).norm(dim=1).view(-1, *([1] * (p.ndim - 1)))
        norms_d = d.flatten(1).norm(dim=1).view(-1, *([1] * (p.ndim - 1))).clamp_min(1e-12)
        direction.append(d * norms_p / norms_d)
    alphas = torch.linspace(-span, span, points).tolist()
    losses = []
    try:
        for a in alphas:
            for p, b, d in zip(params, base, direction, strict=True):
                p.copy_(b + a * d)
            losses.append(evaluate_net(net, x, y)[1])
    finally:
        for p, b in zip(params, base, strict=True):
            p.copy_(b)
    return {"landscape alpha": alphas, "landscape loss": losses}


def raw_linear(run: Run, test: int = 2048) -> dict[str, float]:
    """The baseline a pretrained net must beat: a logistic regression on the raw pixels of the
    run's own training images (standardised), scored on the first ``test`` test images (the
    ones the run's own test reads)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    ckpt = open_run(run.path).last_checkpoint
    if not ckpt.is_file():
        return {}
    _, cfg = load_net(load_checkpoint(ckpt))
    dm = build_data(cfg)
    dm.setup("fit")
    (x_tr, y_tr), (x_te, y_te) = dm.splits["train"], dm.splits["test"]
    x_tr = dm.transform(x_tr, train=False).flatten(1).numpy()
    x_te = dm.transform(x_te[:test], train=False).flatten(1).numpy()
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=1.0))
    probe.fit(x_tr, y_tr.numpy())
    return {"raw linear test acc": float(probe.score(x_te, y_te[:test].numpy()))}
