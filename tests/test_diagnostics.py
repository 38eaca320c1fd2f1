"""Diagnostics callbacks on tiny real runs: files written, values finite, the vanishing gradient."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import torch
from helpers import FAST, compose_config

from depthbench.core import train
from depthbench.diagnostics.activations import activation_stats

# FAST without the progress-bar callback (callbacks=none: no checkpoints to write)
TINY = [o for o in FAST if not o.startswith("callbacks.")]


def _train(overrides: list[str], tmp_path) -> dict:
    overrides = [*overrides, "callbacks=none", "logger=csv", "trainer.enable_progress_bar=false"]
    cfg = compose_config(overrides, tmp_path)
    return train(cfg)


def test_gradflow_and_activations_on_a_tiny_mlp(tmp_path):
    _train(["diagnostics=[gradflow,activations]", "model.depth=5", "model.width=16",
            "diagnostics.gradflow.every_n_steps=2", "diagnostics.activations.every_n_steps=3",
            *TINY], tmp_path)  # fmt: skip
    grads = pd.read_csv(tmp_path / "gradflow.csv")
    assert list(grads.columns) == ["step", "layer", "index", "grad_norm"]
    assert grads.step.min() == 0  # the gradient at initialisation, before any update
    assert sorted(grads.step.unique()) == [0, 2, 4]  # 2 epochs x 3 batches, every 2 steps
    at_init = grads[grads.step == 0].sort_values("index")
    # depth 5: the stem, then two blocks of two layers
    blocks = [f"blocks.{b}.layers.{i}" for b in range(2) for i in range(2)]
    assert at_init.layer.tolist() == ["stem.0", *blocks, "head"]
    assert at_init["index"].tolist() == list(range(6))
    assert grads.grad_norm.map(math.isfinite).all() and (grads.grad_norm > 0).all()
    assert (tmp_path / "gradflow.png").stat().st_size > 1000

    acts = pd.read_csv(tmp_path / "activations.csv")
    assert sorted(acts.step.unique()) == [0, 3]
    assert len(acts[acts.step == 0]) == 5  # one ReLU per hidden layer
    assert acts[["mean", "std", "dead"]].map(math.isfinite).all().all()
    assert acts.saturated.isna().all()  # ReLU does not saturate
    assert (tmp_path / "activations.png").exists()
    logged = pd.read_csv(tmp_path / "csv" / "metrics.csv")
    assert logged["gradflow/first_over_last"].notna().sum() == 3


def test_features_draws_filters_and_feature_maps_of_a_cnn(tmp_path):
    _train(["diagnostics=[features,attention]", "model=cnn", "model.depth=3", "model.width=4",
            *TINY], tmp_path)  # fmt: skip
    assert (tmp_path / "filters.png").stat().st_size > 1000
    assert (tmp_path / "feature_maps.png").stat().st_size > 1000
    assert not (tmp_path / "attention.png").exists()  # a CNN has no attention: skipped


def test_attention_draws_the_maps_of_a_transformer(tmp_path):
    _train(["diagnostics=attention", "model=transformer", "model.depth=2", "model.dim=16",
            "model.heads=2", "model.patch_size=2", *TINY], tmp_path)  # fmt: skip
    assert (tmp_path / "attention.png").stat().st_size > 1000


def _first_layer_grad_at_init(activation: str, init: str, tmp_path) -> float:
    _train([f"model.activation={activation}", f"model.init={init}", "model.depth=12",
            "model.width=32", "diagnostics=gradflow", "trainer.max_epochs=1",
            "+trainer.limit_train_batches=1", "+trainer.limit_val_batches=1",
            "+trainer.limit_test_batches=1"], tmp_path)  # fmt: skip
    grads = pd.read_csv(tmp_path / "gradflow.csv")
    at_init = grads[grads.step == 0].sort_values("index")
    return float(at_init.grad_norm.iloc[0] / at_init.grad_norm.iloc[-1])


def test_sigmoid_first_layer_gradient_vanishes_next_to_relu(tmp_path):
    # The lesson: sigmoid' <= 0.25, so 12 sigmoid layers shrink the gradient reaching layer 1
    # by orders of magnitude; ReLU with He init keeps it near the last layer's.
    sigmoid = _first_layer_grad_at_init("sigmoid", "xavier", tmp_path / "sigmoid")
    relu = _first_layer_grad_at_init("relu", "kaiming", tmp_path / "relu")
    assert sigmoid < 1e-3 * relu, (sigmoid, relu)


def test_activation_stats_counts_saturated_and_dead_units():
    sig = torch.nn.Sigmoid()
    y = torch.tensor([[0.01, 0.5], [0.99, 0.5]])  # 2 of 4 outputs outside [0.05, 0.95]
    assert activation_stats(sig, y)[2] == pytest.approx(0.5)
    relu = torch.nn.ReLU()
    y = torch.tensor([[0.0, 1.0, 0.0], [0.0, 2.0, 3.0]])  # unit 0 is zero for the whole batch
    _, _, saturated, dead = activation_stats(relu, y)
    assert dead == pytest.approx(1 / 3) and math.isnan(saturated)
