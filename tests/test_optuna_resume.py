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
           "params": None}  # fmt: skip


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
    assert again.n_trials == 0
    assert ResumableOptunaSweeper(**{**SWEEPER, "n_trials": 6, "storage": f"sqlite:///{db}"}
                                  ).n_trials == 2  # fmt: skip


def test_without_storage_it_runs_n_trials() -> None:
    sweeper = ResumableOptunaSweeper(**{**SWEEPER, "n_trials": 5, "storage": None})
    assert sweeper.n_trials == 5 and study_progress(None, "x") == (0, 0)


def test_a_stored_study_refuses_other_fixed_settings() -> None:
    """The fixed (not searched) config is recorded with the study; a continuation with another
    one is named key by key, and the searched keys may differ."""
    from omegaconf import OmegaConf

    from hydra_plugins.depthbench_sweepers.resumable_optuna import (
        check_same_fixed_config,
        fixed_config,
    )

    def config(data: str, depth: int) -> dict:
        return fixed_config(OmegaConf.create({
            "hydra": {"sweeper": {"params": {"model.depth": "choice(1,2)"}}},
            "paths": {"output_dir": f"/runs/{depth}"},
            "data": {"_target_": data, "batch_size": 64}, "model": {"depth": depth},
        }))  # fmt: skip

    study = optuna.create_study()  # in memory
    assert config("digits", 2) == {"data._target_": "digits", "data.batch_size": 64}
    assert check_same_fixed_config(study, config("digits", 1)) == []  # recorded
    assert check_same_fixed_config(study, config("digits", 2)) == []  # a searched key differs
    assert check_same_fixed_config(study, config("mnist1d", 1)) == ["data._target_"]


@pytest.mark.process
@pytest.mark.slow
def test_continuing_a_study_with_other_data_is_one_line(tmp_path: Path) -> None:
    db = tmp_path / "optuna.db"
    _search(1, db, tmp_path / "first")
    storage = f"hydra.sweeper.storage=sqlite:///{db}"
    proc = run_train([*TRIAL, "hydra.sweeper.n_trials=2", storage, "data=mnist1d",
                      f"hydra.sweep.dir={tmp_path / 'second'}"])  # fmt: skip
    assert proc.returncode == 2, proc.stderr[-3000:]
    line = proc.stderr.strip().splitlines()[-1]
    assert line.startswith("ConfigError: the study 'mlp_lr_depth_width' in sqlite:///")
    assert "data._target_" in line and "hydra.sweeper.study_name=NEW_NAME" in line
    trials = optuna.load_study(study_name="mlp_lr_depth_width", storage=f"sqlite:///{db}").trials
    assert len(trials) == 1  # nothing was added to the study
