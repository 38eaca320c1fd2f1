"""`depthbench report` over seeds, on hand-made run folders: mean ± std (n), diverged runs."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import yaml

from depthbench.cli import main as depthbench
from depthbench.report.collect import collect_runs
from depthbench.report.figures import metrics_vs_x
from depthbench.report.tables import aggregate_seeds, pivot, runs_frame, seed_cell, swept_keys


def _run(root, job, depth, seed, metrics):
    """A Hydra run folder as a multirun job leaves it (``metrics=None``: killed before the end)."""
    run = root / str(job)
    (run / ".hydra").mkdir(parents=True)
    config = {"task_name": "seeds", "seed": seed, "model": {"depth": depth}}
    (run / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
    overrides = [f"model.depth={depth}", f"seed={seed}"]
    (run / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    if metrics is not None:
        (run / "metrics.json").write_text(json.dumps(metrics))


def _ok(acc, loss=0.5):
    return {"status": "ok", "test/acc": acc, "train/acc": acc, "train/loss": loss,
            "test/loss": loss}  # fmt: skip


def _diverged(step=None):
    out = {"status": "diverged", "last_finite_loss": 2.31, "error": "training loss became nan"}
    return out if step is None else {**out, "diverged_at_step": step}


# depth -> one metrics.json per seed (seeds 0, 1, 2, ...)
SWEEP = {
    2: [_ok(0.91), _ok(0.92), _ok(0.94)],  # three ok seeds
    4: [_ok(0.80)],  # one seed
    8: [_ok(0.70), _ok(0.74), _diverged(55)],  # mixed
    16: [_diverged(12), _diverged(40), _diverged(25)],  # all diverged
    32: [_diverged(37)],  # one diverged run
    128: [_diverged()],  # diverged with no step recorded
    256: [None, _ok(0.5)],  # a crashed seed beside an ok one
}


@pytest.fixture
def sweep(tmp_path):
    root = tmp_path / "multirun"
    job = 0
    for depth, seeds in SWEEP.items():
        for seed, metrics in enumerate(seeds):
            _run(root, job, depth, seed, metrics)
            job += 1
    return root


@pytest.fixture
def frame(sweep):
    runs = collect_runs([sweep])
    return runs_frame(runs, swept_keys(runs))


def _cells(frame, metric="test acc"):
    table = pivot(frame, ["model.depth", "seed"], "model.depth", metric)
    return {int(c.split("=")[1]): v for c, v in table.iloc[0].items()}


def test_aggregate_seeds_matches_numpy(frame):
    agg = aggregate_seeds(frame, ["model.depth", "seed"], "test acc").set_index("model.depth")
    assert list(agg.columns) == ["mean", "std", "n", "n_diverged", "n_failed", "diverged_at_steps"]
    assert agg.loc[2, "mean"] == pytest.approx(np.mean([0.91, 0.92, 0.94]))
    assert agg.loc[2, "std"] == pytest.approx(np.std([0.91, 0.92, 0.94], ddof=1))
    assert agg.loc[2, "n"] == 3 and agg.loc[2, "n_diverged"] == 0
    assert agg.loc[4, "n"] == 1 and math.isnan(agg.loc[4, "std"])
    assert agg.loc[8, "mean"] == pytest.approx(0.72) and agg.loc[8, "n"] == 2
    assert agg.loc[8, "std"] == pytest.approx(np.std([0.70, 0.74], ddof=1))
    assert agg.loc[8, "n_diverged"] == 1 and agg.loc[8, "diverged_at_steps"] == [55]
    assert agg.loc[16, "n"] == 0 and math.isnan(agg.loc[16, "mean"])
    assert agg.loc[16, "diverged_at_steps"] == [12, 25, 40]
    assert (agg.loc[256, "n"], agg.loc[256, "n_failed"]) == (1, 1)


def test_cells_label_n_diverged_and_failed(frame):
    cells = _cells(frame)
    mean, std = np.mean([0.91, 0.92, 0.94]), np.std([0.91, 0.92, 0.94], ddof=1)
    assert cells[2] == f"{mean:.4g} ± {std:.2g} (n=3)"
    assert cells[4] == "0.8 (n=1)"
    assert cells[8] == f"0.72 ± {np.std([0.70, 0.74], ddof=1):.2g} (n=2), 1 diverged"
    assert cells[16] == "diverged (3/3, steps 12-40)"
    assert cells[32] == "diverged at step 37"
    assert cells[128] == "diverged"
    assert cells[256] == "0.5 (n=1), 1 failed"


def test_seed_cell_texts():
    assert seed_cell(0.912, 0.0041, 3) == "0.912 ± 0.0041 (n=3)"
    assert seed_cell(math.nan, math.nan, 0, n_failed=1) == "failed"
    assert seed_cell(math.nan, math.nan, 0, n_failed=2) == "failed (2/2)"
    assert seed_cell(math.nan, math.nan, 0, 2, 1, [9, 9]) == "diverged (2/3, step 9), 1 failed"
    assert seed_cell(math.nan, math.nan, 0) == "n/a"


def test_figure_marks_diverged_runs(frame, tmp_path):
    assert (frame.status == "diverged").sum() == 6
    path = metrics_vs_x(frame, ["model.depth"], "model.depth", tmp_path / "m.png")
    assert path is not None and path.stat().st_size > 1000
    only_diverged = frame[frame["model.depth"].isin([16, 32])]
    path = metrics_vs_x(only_diverged, ["model.depth"], "model.depth", tmp_path / "d.png")
    assert path is not None and path.stat().st_size > 1000


def test_non_numeric_sweep_draws_bars_with_diverged_runs(frame, tmp_path):
    frame = frame.assign(arch=frame["model.depth"].map(lambda d: f"net{d}"))
    path = metrics_vs_x(frame, ["arch"], "arch", tmp_path / "bars.png")
    assert path is not None and path.stat().st_size > 1000


def test_report_over_seeds(sweep, tmp_path):
    depthbench(["report", str(sweep), "--out", str(tmp_path)])
    report = (tmp_path / "report.md").read_text()
    assert "one seed" not in report and "every number is one run" not in report
    assert "14 runs, 7 ok, 6 diverged, 1 failed." in report
    assert "1-3 runs per setting (`seed` = 0, 1, 2)" in report
    row = next(ln for ln in report.splitlines() if ln.startswith("| all |"))
    assert "diverged (3/3, steps 12-40)" in row and "diverged at step 37" in row
    assert "- **diverged at step 37**: `10`" in report
    results = pd.read_csv(tmp_path / "results.csv")
    assert len(results) == 14 and results.diverged_at_step.dropna().astype(int).tolist() == [
        55, 12, 40, 25, 37
    ]  # fmt: skip
    assert (tmp_path / "metrics_vs_depth.png").stat().st_size > 1000


def test_report_with_only_seeds_swept(tmp_path):
    for seed, acc in enumerate([0.5, 0.6, 0.7]):
        _run(tmp_path / "multirun", seed, 4, seed, _ok(acc))
    depthbench(["report", str(tmp_path / "multirun"), "--out", str(tmp_path / "out")])
    report = (tmp_path / "out" / "report.md").read_text()
    row = next(ln for ln in report.splitlines() if ln.startswith("| all |"))
    assert f"0.6 ± {np.std([0.5, 0.6, 0.7], ddof=1):.2g} (n=3)" in row
