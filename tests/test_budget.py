"""``model.params``: the solved width brings the network within a few percent of its budget."""

from __future__ import annotations

import json

import pytest
from helpers import FAST, compose_config, compose_with_hydra, sweep_jobs

from depthbench.models.budget import count_at_width, solve_width
from depthbench.models.deep import DeepCNN, DeepMLP
from depthbench.run import count_parameters, train


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


def _fake_run(root, num: int, data: str, depth: int, budget: int, acc: float | None) -> None:
    """A run folder as Hydra and run.train leave it (config, overrides, metrics.json)."""
    import yaml

    run = root / str(num)
    (run / ".hydra").mkdir(parents=True)
    model = {
        "_target_": "depthbench.models.deep.DeepMLP",
        "depth": depth,
        "params": budget,
        "residual": True,
        "batchnorm": True,
        "init": "kaiming",
        "activation": "relu",
    }
    config = {"task_name": "depth_vs_width", "seed": 0, "model": model}
    (run / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
    overrides = [
        f"experiment/depth_vs_width_data={data}",
        f"model.params={budget}",
        f"model.depth={depth}",
    ]
    (run / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    if acc is not None:  # None: a crashed run, no metrics.json
        metrics = {"status": "ok", "test/acc": acc, "params": budget + depth, "data": data}
        (run / "metrics.json").write_text(json.dumps(metrics))


def test_depth_vs_width_report(tmp_path) -> None:
    from depthbench.report.depth_vs_width import main as report_main

    accs = {(1, 1000): 0.50, (1, 4000): 0.60, (4, 1000): 0.62, (4, 4000): 0.70}
    for num, ((depth, budget), acc) in enumerate(accs.items()):
        _fake_run(tmp_path / "sweep", num, "mnist1d", depth, budget, acc)
    _fake_run(tmp_path / "sweep", 9, "mnist1d", 8, 1000, None)
    report_main([str(tmp_path / "sweep"), "--out", str(tmp_path / "report")])
    text = (tmp_path / "report" / "report.md").read_text()
    assert "5 runs, 4 ok, 1 failed" in text and "depth 8, budget 1000" in text
    # the depth-1 net's best (0.60 at 4,000) is reached by depth 4 at 1,000 parameters
    assert "test accuracy 0.6000" in text
    assert "| 4 | 1,000 | 1,004 | 0.62 | 0.7 |" in text
    assert (tmp_path / "report" / "depth_vs_width.png").stat().st_size > 1000
    rows = (tmp_path / "report" / "results.csv").read_text().splitlines()
    assert len(rows) == 6 and rows[0].startswith("data,depth,budget,params,width,test_acc")
