"""``model.params``: the solved width brings the network within a few percent of its budget."""

from __future__ import annotations

import json

import pytest
from helpers import FAST, compose_config, compose_with_hydra, sweep_jobs

from depthbench.core import train
from depthbench.core.build import count_parameters
from depthbench.models.budget import count_at_width, solve_width
from depthbench.models.deep import DeepCNN, DeepMLP


def _count(net) -> int:
    return sum(p.numel() for p in net.parameters())


@pytest.mark.parametrize("depth", [1, 2, 4, 8, 16])
@pytest.mark.parametrize("budget", [30_000, 100_000])
def test_mlp_hits_budget(depth: int, budget: int) -> None:
    net = DeepMLP(
        input_shape=[1, 28, 28],
        num_classes=10,
        depth=depth,
        residual=True,
        batchnorm=True,
        params=budget,
    )
    assert abs(_count(net) - budget) / budget < 0.03
    assert net.depth == depth


@pytest.mark.parametrize("depth", [2, 4, 8])
def test_cnn_hits_budget(depth: int) -> None:
    net = DeepCNN(input_shape=[1, 40], num_classes=10, depth=depth, params=50_000)
    assert abs(_count(net) - 50_000) / 50_000 < 0.05


def test_solved_width_is_the_closest() -> None:
    kwargs = dict(input_shape=[40], num_classes=10, depth=3)
    width = solve_width(DeepMLP, 20_000, **kwargs)
    best = abs(count_at_width(DeepMLP, width, **kwargs) - 20_000)
    for w in (width - 1, width + 1):
        assert abs(count_at_width(DeepMLP, w, **kwargs) - 20_000) >= best


def test_deeper_at_equal_budget_is_narrower() -> None:
    widths = [
        DeepMLP(input_shape=[40], num_classes=10, depth=d, params=50_000).width for d in (1, 4, 16)
    ]
    assert widths[0] > widths[1] > widths[2]


def test_width_kept_when_no_budget() -> None:
    assert DeepMLP(input_shape=[40], num_classes=10, depth=2, width=33).width == 33


def test_budget_must_be_positive() -> None:
    with pytest.raises(ValueError, match="params"):
        DeepMLP(input_shape=[40], num_classes=10, params=0)


def test_metrics_record_exact_count(tmp_path) -> None:
    cfg = compose_config(
        ["model.params=5000", "model.depth=3", "logger=none", "callbacks=none", *FAST[:-1]],
        tmp_path,
    )
    metrics = train(cfg)
    saved = json.loads((tmp_path / "metrics.json").read_text())
    net = DeepMLP(input_shape=[1, 8, 8], num_classes=10, depth=3, params=5000)
    assert saved["params"] == metrics["params"] == count_parameters(net)
    assert abs(saved["params"] - 5000) / 5000 < 0.05


def _sweep_jobs(experiment: str) -> list[list[str]]:
    return sweep_jobs(compose_with_hydra([f"experiment={experiment}"]))


# data x budget x depth (x seed)
@pytest.mark.parametrize(
    ("experiment", "runs"), [("depth_vs_width", 2 * 4 * 5), ("depth_vs_width_full", 2 * 5 * 6 * 3)]
)
def test_depth_vs_width_sweep_expands(experiment: str, runs: int) -> None:
    jobs = _sweep_jobs(experiment)
    assert len(jobs) == runs and len({tuple(j) for j in jobs}) == runs
    steps = {}
    for job in (jobs[0], jobs[-1]):  # Fashion-MNIST first, MNIST-1D last
        cfg = compose_config([f"experiment={experiment}", *job])
        assert cfg.task_name == experiment
        assert cfg.model.residual and cfg.model.batchnorm and cfg.model.params is not None
        assert f"model.params={cfg.model.params}" in job and f"model.depth={cfg.model.depth}" in job
        steps[cfg.data._target_.rsplit(".", 1)[-1]] = cfg.trainer.max_steps
    assert set(steps) == {"FashionMNISTDataModule", "MNIST1DDataModule"}
    if experiment == "depth_vs_width":
        assert steps == {"FashionMNISTDataModule": 400, "MNIST1DDataModule": 800}
