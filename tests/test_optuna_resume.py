"""An Optuna search with sqlite storage continues after a kill with the trials already done."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
import yaml
from helpers import run_train

from depthbench.launch.sweeps import read_job_records
from hydra_plugins.depthbench_sweepers.resumable_optuna import (
    ResumableOptunaSweeper,
    study_progress,
)

# a trial in about a second: two steps of a small MLP on digits, no checkpoints or loggers
TRIAL = [
    "hparams_search=mlp_optuna",
    "hydra.sweeper.sampler.n_startup_trials=1",
    "model.width=16",
    "trainer.max_epochs=1",
    "+trainer.limit_train_batches=2",
    "+trainer.limit_val_batches=1",
    "test=false",
    "callbacks=none",
    "logger=none",
]
# the sweeper's own arguments, as Hydra passes them (n_trials and storage set per test)
SWEEPER = {"sampler": optuna.samplers.TPESampler(seed=0), "direction": "maximize",
           "study_name": "mlp_lr_depth_width", "n_jobs": 1, "max_failure_rate": 1.0,
           "search_space": None, "custom_search_space": None, "params": None}  # fmt: skip


def _search(n_trials: int, db: Path, sweep: Path):
    storage = f"hydra.sweeper.storage=sqlite:///{db}"
    proc = run_train([*TRIAL, f"hydra.sweeper.n_trials={n_trials}", storage,
                      f"hydra.sweep.dir={sweep}"])  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return optuna.load_study(study_name="mlp_lr_depth_width", storage=f"sqlite:///{db}")


@pytest.mark.process
def test_a_search_stopped_after_2_of_4_trials_continues_to_4(tmp_path: Path) -> None:
    """The first command stops after 2 trials (as a kill would); the same search asked for 4
    runs only trials 2 and 3, as jobs 2 and 3, and the stored trials 0 and 1 are untouched."""
    db = tmp_path / "optuna.db"
    first = _search(2, db, tmp_path / "first")
    done = [(t.number, t.params, t.value) for t in first.trials]
    assert len(done) == 2

    study = _search(4, db, tmp_path / "second")
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE] * 4
    assert [(t.number, t.params, t.value) for t in study.trials[:2]] == done
    assert [r["job"] for r in read_job_records(tmp_path / "second")] == [2, 3]
    assert sorted(p.name for p in (tmp_path / "second").iterdir() if p.name.isdigit()) == ["2", "3"]
    assert study.trials[2].params != study.trials[0].params  # not the first proposal again
    results = yaml.safe_load((tmp_path / "second" / "optimization_results.yaml").read_text())
    assert results["best_value"] == max(t.value for t in study.trials)

    # the same command once more: the study is complete, nothing more is run
    again = ResumableOptunaSweeper(**{**SWEEPER, "n_trials": 4, "storage": f"sqlite:///{db}"})
    assert again.sweeper.n_trials == 0
    assert ResumableOptunaSweeper(**{**SWEEPER, "n_trials": 6, "storage": f"sqlite:///{db}"}
                                  ).sweeper.n_trials == 2  # fmt: skip


def test_without_storage_it_is_hydras_optuna_sweeper() -> None:
    sweeper = ResumableOptunaSweeper(**{**SWEEPER, "n_trials": 5, "storage": None})
    assert sweeper.sweeper.n_trials == 5 and study_progress(None, "x") == (0, 0)
