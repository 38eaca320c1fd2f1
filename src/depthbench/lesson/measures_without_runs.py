"""Measurements a claim takes without a training run (no ``train.py``): one row per seed.

Each function ``fn(seed, **args)`` returns one row of numbers (lists for per-layer or per-depth
curves). A claim's YAML names it as a computed sweep's ``function:`` (dotted path);
``depthbench.lesson.compute_job`` runs it, one process per sweep and seed batch, and the claim's
verdict function reads the rows as a sweep's runs.

* ``shattered_gradients`` (Balduzzi et al. 2017, "The Shattered Gradients Problem", ICML): the
  derivative df/dx of a fully connected ReLU net with batch norm and a 1-D input, at
  initialisation, along 256 evenly spaced points of [-2, 2], for a plain net and its residual
  twin; the lag-1 autocorrelation of that sequence is about 1 for a smooth ("brown-noise")
  gradient and about 0 for a shattered ("white-noise") one.
* ``transfer_by_layer`` (Yosinski et al. 2014, "How transferable are features in deep neural
  networks?"): linear-probe accuracy on Fashion-MNIST of every stage of the ImageNet-pretrained
  EfficientNet-Lite0 (or the same net at initialisation), each stage's output reduced to the
  same number of dimensions.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

Row = dict[str, float | list[float]]


# ---- shattered gradients -----------------------------------------------------------------------
def lag1_autocorrelation(g: Sequence[float] | np.ndarray) -> float:
    """Pearson correlation of ``g[:-1]`` with ``g[1:]`` (each centred on its own mean).

    About 1 for a smooth sequence (brown noise), about 0 for white noise (its standard error is
    about 1/sqrt(len(g)), 0.06 for 256 points).
    """
    g = np.asarray(g, dtype=np.float64)
    a, b = g[:-1] - g[:-1].mean(), g[1:] - g[1:].mean()
    denom = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / denom) if denom > 0 else float("nan")


def input_gradient(net: nn.Module, x: torch.Tensor) -> np.ndarray:
    """df/dx at every row of ``x`` (N, 1), f = output unit 0, batch-norm statistics over ``x``.

    One forward pass in training mode computes every batch norm's mean and variance over the N
    points (momentum ``None`` makes the running statistics exactly those of this one batch); the
    derivative is then taken in eval mode with those statistics held fixed, so each point's
    derivative is that of one function f evaluated at it, not mixed with the other points' through
    the batch statistics.
    """
    for m in net.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None  # cumulative average: after one batch, that batch's statistics
    net.train()
    with torch.no_grad():
        net(x)
    net.eval()
    x = x.detach().clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(net(x)[:, 0].sum(), x)
    return grad[:, 0].double().numpy()


def shattered_net(depth: int, width: int, residual: bool) -> nn.Module:
    """depthbench's own ``DeepMLP`` as Balduzzi et al. analyse it: 1-D input, ReLU, He init,
    batch norm in the pre-activation order (each layer computes ``W relu(BN(h))``; residual:
    ``h + W2 relu(BN(W1 relu(BN(h))))``, identity skip). The scalar output is unit 0 of the
    2-unit head (``DeepMLP`` needs at least two classes)."""
    from depthbench.models.deep import DeepMLP

    return DeepMLP(
        input_shape=(1,),
        num_classes=2,
        depth=depth,
        width=width,
        residual=residual,
        batchnorm=True,
        init="he",
        activation="relu",
        preactivation=True,
    )


def shattered_gradients(
    seed: int,
    depth: int = 50,
    depths: Sequence[int] = (1, 2, 4, 8, 16, 32, 50, 100),
    width: int = 200,
    points: int = 256,
    span: float = 2.0,
) -> Row:
    """Lag-1 autocorrelation of df/dx over ``points`` inputs in [-span, span], plain vs residual.

    Returns ``depth``, ``plain autocorr`` and ``residual autocorr`` at ``depth`` (what the verdict
    decides on), the same two curves over ``depths`` (the figure), and at ``depth`` the inputs
    ``x`` and both nets' df/dx divided by its standard deviation (the figure's second panel).
    Each net is built after ``torch.manual_seed(seed)``, so plain and residual nets of one depth
    start from the same random stream.
    """
    x = torch.linspace(-span, span, points).unsqueeze(1)
    row: Row = {"depth": float(depth)}
    curves: dict[str, list[float]] = {"plain": [], "residual": []}
    for d in sorted({*depths, depth}):
        for kind in ("plain", "residual"):
            torch.manual_seed(seed)
            g = input_gradient(shattered_net(d, width, kind == "residual"), x)
            r = lag1_autocorrelation(g)
            if d in depths:
                curves[kind].append(r)
            if d == depth:
                row[f"{kind} autocorr"] = r
                row[f"{kind} df/dx"] = (g / (g.std() or 1.0)).tolist()
    row["depths"] = [float(d) for d in depths]
    row["plain autocorr by depth"] = curves["plain"]
    row["residual autocorr by depth"] = curves["residual"]
    row["x"] = x[:, 0].tolist()
    return row


# ---- transfer by layer -------------------------------------------------------------------------
def lite0_stage_outputs(net: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """EfficientNet-Lite0's stem, its seven stages (the output of each stage's last block) and
    its head (1x1 conv to 1,280 channels), in that order: 9 feature maps (B, C, H', W')."""
    from depthbench.models.efficientnet_lite import STAGES

    outs = []
    h = net.act(net._bn0(net._conv_stem(x)))
    outs.append(h)
    k = 0
    for repeats, *_ in STAGES:
        for _ in range(repeats):
            h = net._blocks[k](h)
            k += 1
        outs.append(h)
    outs.append(net.act(net._bn1(net._conv_head(h))))
    return outs


def stage_features(
    net: nn.Module, images: torch.Tensor, pool: int, batch_size: int = 250
) -> list[torch.Tensor]:
    """Each stage's output average-pooled to ``pool x pool`` positions and flattened:
    a list of 9 tensors (N, C_stage * pool**2), net in eval mode."""
    net.eval()
    chunks: list[list[torch.Tensor]] = []
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            outs = lite0_stage_outputs(net, images[start : start + batch_size])
            chunks.append([F.adaptive_avg_pool2d(o, pool).flatten(1) for o in outs])
    return [torch.cat(parts) for parts in zip(*chunks, strict=True)]


def reduce_dims(train: torch.Tensor, test: torch.Tensor, dims: int) -> tuple[np.ndarray, ...]:
    """Project both onto the top ``dims`` principal components of ``train`` (fit on train only),
    so every stage's probe sees the same number of dimensions; fewer when the stage has fewer."""
    a = train.double()
    mean = a.mean(0, keepdim=True)
    k = min(dims, *a.shape)
    # randomised SVD (Halko et al. 2011): the top k directions of a 2,000 x 5,120 matrix in a
    # fraction of a full SVD's time; 4 power iterations bring the probe accuracies to a full
    # SVD's (compared on a pilot seed, every stage)
    _, _, v = torch.svd_lowrank(a - mean, q=min(k + 16, *a.shape), niter=4)
    basis = v[:, :k]  # (D, k)
    return ((a - mean) @ basis).numpy(), ((test.double() - mean) @ basis).numpy()


def probe_accuracy(a: np.ndarray, y_a: np.ndarray, b: np.ndarray, y_b: np.ndarray) -> float:
    """Test accuracy of a logistic-regression probe on standardised features, as
    ``run_measures.probe_accuracies`` trains it."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=1.0))
    probe.fit(a, y_a)
    return float(probe.score(b, y_b))


def lite0_input(images: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 grey images (N, 1, 28, 28) -> EfficientNet-Lite0's input (N, 3, size, size), as
    ``models.finetune.FineTuner.preprocess`` makes it: [0, 1], grey -> RGB, bilinear resize,
    normalised with Lite's mean and std."""
    from depthbench.models.efficientnet_lite import LITE_MEAN, LITE_STD

    x = images.float().div(255).expand(-1, 3, -1, -1)
    x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    mean = torch.tensor(LITE_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(LITE_STD).view(1, 3, 1, 1)
    return (x - mean) / std


def transfer_by_layer(
    seed: int,
    pretrained: bool = True,
    train: int = 2000,
    test: int = 1000,
    image_size: int = 64,
    pool: int = 2,
    dims: int = 64,
    root: str | None = None,
) -> Row:
    """Linear-probe test accuracy on Fashion-MNIST per stage of EfficientNet-Lite0.

    ``seed`` draws ``train`` training and ``test`` test images (and, with ``pretrained=False``,
    the initial weights). Each of the 9 stage outputs (stem, stages 1-7, head) is average-pooled to
    ``pool x pool`` positions, then projected onto its top ``dims`` principal components (fit on
    the probe's training images), so every probe has the same input dimension. Returns
    ``probe acc`` (9 values, stem first) and ``raw pixels`` (the same probe on the 28x28 pixels,
    reduced the same way).
    """
    from depthbench.data.fashion_mnist import FashionMNISTDataModule
    from depthbench.models.backbones import load_state_dict_file
    from depthbench.models.efficientnet_lite import EfficientNetLite0, lite0_weights_path

    dm = FashionMNISTDataModule(root=root or os.environ.get("DEPTHBENCH_DATA", "data"), seed=0)
    dm.setup("test")
    (x_tr, y_tr), (x_te, y_te) = dm.splits["train"], dm.splits["test"]
    gen = torch.Generator().manual_seed(seed)
    i_tr = torch.randperm(len(y_tr), generator=gen)[:train]
    i_te = torch.randperm(len(y_te), generator=gen)[:test]
    x_tr, y_tr, x_te, y_te = x_tr[i_tr], y_tr[i_tr].numpy(), x_te[i_te], y_te[i_te].numpy()

    torch.manual_seed(seed)
    net = EfficientNetLite0(input_shape=[3, image_size, image_size], num_classes=1000)
    if pretrained:
        net.load_state_dict(load_state_dict_file(lite0_weights_path()))
    feats_tr = stage_features(net, lite0_input(x_tr, image_size), pool)
    feats_te = stage_features(net, lite0_input(x_te, image_size), pool)
    accs = [
        probe_accuracy(*_with_labels(reduce_dims(a, b, dims), y_tr, y_te))
        for a, b in zip(feats_tr, feats_te, strict=True)
    ]
    raw = reduce_dims(x_tr.flatten(1).float() / 255, x_te.flatten(1).float() / 255, dims)
    return {
        "probe acc": accs,
        "raw pixels": probe_accuracy(*_with_labels(raw, y_tr, y_te)),
        "pretrained": float(bool(pretrained)),
    }


def lite0_pooled_features(
    net: nn.Module, images: torch.Tensor, batch_size: int = 100
) -> np.ndarray:
    """EfficientNet-Lite0's pooled features (N, 1,280), as its classifier head reads them
    (``forward_features``); net in eval mode, no gradients."""
    net.eval()
    with torch.no_grad():
        out = [
            net.forward_features(images[i : i + batch_size])
            for i in range(0, len(images), batch_size)
        ]
    return torch.cat(out).numpy()


def head_accuracies(
    a: np.ndarray, y_a: np.ndarray, b: np.ndarray, y_b: np.ndarray
) -> tuple[float, float]:
    """(train, test) accuracy of a linear head on standardised features, trained to convergence:
    multinomial logistic regression with an L2 penalty (C = 1), lbfgs to 5,000 iterations."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    head = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000, C=1.0))
    head.fit(a, y_a)
    return float(head.score(a, y_a)), float(head.score(b, y_b))


def transfer_head(
    seed: int,
    pretrained: bool = True,
    train: int = 300,
    test: int = 1000,
    image_size: int = 128,
    root: str | None = None,
) -> Row:
    """A frozen EfficientNet-Lite0 as a feature extractor, and a linear head on its features.

    ``seed`` draws a class-balanced set of ``train`` Fashion-MNIST training images, ``test`` test
    images and (``pretrained=False``) the backbone's initial weights. The backbone computes each
    image's pooled features once, at ``image_size`` pixels; a linear head
    (:func:`head_accuracies`) is trained on the training features to convergence. The same head
    on the raw 28x28 pixels of the same images is the baseline every arm shares.
    """
    from depthbench.data.fashion_mnist import FashionMNISTDataModule
    from depthbench.data.stats import balanced_subset
    from depthbench.models.backbones import load_state_dict_file
    from depthbench.models.efficientnet_lite import EfficientNetLite0, lite0_weights_path

    dm = FashionMNISTDataModule(root=root or os.environ.get("DEPTHBENCH_DATA", "data"), seed=0)
    dm.setup("test")
    (x_tr, y_tr), (x_te, y_te) = dm.splits["train"], dm.splits["test"]
    gen = torch.Generator().manual_seed(seed)
    i_tr = balanced_subset(y_tr, train, gen)
    i_te = torch.randperm(len(y_te), generator=gen)[:test]
    x_tr, y_tr, x_te, y_te = x_tr[i_tr], y_tr[i_tr].numpy(), x_te[i_te], y_te[i_te].numpy()

    torch.manual_seed(seed)
    net = EfficientNetLite0(input_shape=[3, image_size, image_size], num_classes=1000)
    if pretrained:
        net.load_state_dict(load_state_dict_file(lite0_weights_path()))
    f_tr = lite0_pooled_features(net, lite0_input(x_tr, image_size))
    f_te = lite0_pooled_features(net, lite0_input(x_te, image_size))
    train_acc, test_acc = head_accuracies(f_tr, y_tr, f_te, y_te)
    raw_train, raw_test = head_accuracies(
        x_tr.flatten(1).float().numpy() / 255, y_tr, x_te.flatten(1).float().numpy() / 255, y_te
    )
    return {
        "train acc": train_acc,
        "test acc": test_acc,
        "raw train acc": raw_train,
        "raw test acc": raw_test,
        "pretrained": float(bool(pretrained)),
        "image size": float(image_size),
    }


def _with_labels(
    pair: tuple[np.ndarray, ...], y_a: np.ndarray, y_b: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    return pair[0], y_a, pair[1], y_b
