"""Multiruns: a failing job is recorded and the others finish; Optuna search; launcher configs."""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from helpers import ROOT, compose_config, compose_with_hydra, run_train

from depthbench.errors import ConfigError
from depthbench.launch.sweeps import check_launcher_installed, read_job_records
from depthbench.report.collect import collect_runs
from depthbench.report.writer import write_report

TINY = [
    "model.width=32",
    "trainer.max_epochs=1",
    "+trainer.limit_train_batches=3",
    "+trainer.limit_val_batches=1",
    "+trainer.limit_test_batches=1",
    "callbacks.progress_bar.refresh_rate=0",
]


@pytest.mark.process
def test_multirun_failed_job_is_recorded_and_the_others_finish(tmp_path: Path) -> None:
    """Three jobs, the middle one invalid (depth 0): jobs 0 and 2 train, job 1 is recorded as
    failed in its metrics.json, jobs.jsonl and summary.csv, and the sweep exits 0."""
    sweep = tmp_path / "sweep"
    secret = "+notes.api_key=sk-sweep-secret-77"  # must land nowhere in the sweep folder
    proc = run_train(["-m", "model.depth=1,0,2", *TINY, secret, f"hydra.sweep.dir={sweep}"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    for path in sweep.rglob("*"):
        assert not path.is_file() or b"sk-sweep-secret-77" not in path.read_bytes(), path
    records = read_job_records(sweep)
    assert [r["job"] for r in records] == [0, 1, 2]
    assert [r["status"] for r in records] == ["ok", "failed", "ok"]
    failed = json.loads((sweep / "1" / "metrics.json").read_text())
    assert failed["status"] == "failed" and "depth" in failed["error"]
    assert "depth" in records[1]["error"]
    for job in (0, 2):
        metrics = json.loads((sweep / str(job) / "metrics.json").read_text())
        assert metrics["status"] == "ok"
        assert records[job]["value"] == pytest.approx(metrics["val/acc"])  # optimized_metric
    with open(sweep / "summary.csv") as f:
        rows = list(csv.DictReader(f))
    assert [row["status"] for row in rows] == ["ok", "failed", "ok"]
    assert "1 failed" in proc.stdout + proc.stderr


@pytest.mark.process
def test_multirun_diverged_job_is_recorded_as_diverged_and_the_sweep_goes_on(
    tmp_path: Path,
) -> None:
    """Two jobs of an experiment that drops the callbacks group, the second with lr 1e4: it is
    "diverged" (with its step and last finite loss) in metrics.json, jobs.jsonl and summary.csv;
    the first is ok; the sweep exits 0."""
    sweep = tmp_path / "sweep"
    proc = run_train(
        ["-m", "experiment=vanishing_gradients", "hydra.sweeper.params={}", "model.depth=4",
         "model.activation=relu", "model.init=kaiming", "optimizer.lr=0.01,1e4",
         "trainer.max_steps=8", "diagnostics=none", f"hydra.sweep.dir={sweep}"]
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = read_job_records(sweep)
    assert [r["status"] for r in records] == ["ok", "diverged"]
    diverged = json.loads((sweep / "1" / "metrics.json").read_text())
    assert diverged["status"] == "diverged" and isinstance(diverged["diverged_at_step"], int)
    assert isinstance(diverged["last_finite_loss"], float) and "at step" in diverged["error"]
    assert "traceback" not in diverged  # the same record as a single run's
    for key in ("diverged_at_step", "last_finite_loss"):
        assert records[1][key] == diverged[key]
    assert json.loads((sweep / "0" / "metrics.json").read_text())["status"] == "ok"
    with open(sweep / "summary.csv") as f:
        assert [row["status"] for row in csv.DictReader(f)] == ["ok", "diverged"]
    assert "1 diverged (jobs 1)" in proc.stdout + proc.stderr
    # the sweep's report shows the diverged job as diverged, with its step, not as an accuracy
    report = write_report(collect_runs([sweep]), tmp_path / "report").read_text()
    assert f"diverged at step {diverged['diverged_at_step']}" in report


@pytest.mark.process
@pytest.mark.slow  # six short jobs in one process
@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="reads /proc (Linux)")
def test_a_multirun_in_one_process_holds_its_open_files_and_memory_flat(tmp_path: Path) -> None:
    """Hydra's basic launcher runs every job in one process, each with the default callbacks
    (best and last checkpoints), the CSV logger, Hydra's job log and the sweep records: after
    job 2 and after job 6 the process has the same open files, and its memory grows by less than
    5 MiB a job (a leaked trainer, data module or logger per job is more than that)."""
    sweep = tmp_path / "sweep"
    probe = "+hydra.callbacks.resource_probe._target_=helpers.ResourceProbe"
    proc = run_train(
        ["-m", "data=digits", "seed=range(0,6)", *TINY, f"hydra.sweep.dir={sweep}", probe]
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = (sweep / "resources.jsonl").read_text().splitlines()
    records = sorted((json.loads(line) for line in lines), key=lambda r: r["job"])
    assert [r["job"] for r in records] == list(range(6))
    assert len({r["pid"] for r in records}) == 1
    statuses = [json.loads(line)["status"] for line in (sweep / "jobs.jsonl").open()]
    assert statuses == ["ok"] * 6
    early, last = records[1], records[-1]
    assert last["open_fds"] == early["open_fds"], records
    assert (last["rss_mib"] - early["rss_mib"]) / 4 < 5, records


@pytest.mark.process
@pytest.mark.slow
@pytest.mark.parametrize("launcher", ["joblib", "submitit_local"])
def test_parallel_launchers_record_a_failed_job(launcher: str, tmp_path: Path) -> None:
    """The same failing-job sweep with jobs in other processes (joblib workers, submitit)."""
    sweep = tmp_path / launcher
    extra = ["hydra.launcher.n_jobs=2"] if launcher == "joblib" else []
    proc = run_train(["-m", f"hydra/launcher={launcher}", *extra, "model.depth=1,0", *TINY,
                      f"hydra.sweep.dir={sweep}"])  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert [r["status"] for r in read_job_records(sweep)] == ["ok", "failed"]
    assert (sweep / "summary.csv").is_file()


@pytest.mark.process
def test_optuna_search_three_trials_returns_best_value(tmp_path: Path) -> None:
    sweep = tmp_path / "optuna"
    proc = run_train(
        [
            "hparams_search=mlp_optuna",
            "hydra.sweeper.n_trials=3",
            "hydra.sweeper.sampler.n_startup_trials=2",
            *TINY,
            f"hydra.sweep.dir={sweep}",
        ]
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    records = read_job_records(sweep)
    assert len(records) == 3 and all(r["status"] == "ok" for r in records)
    values = [r["value"] for r in records]
    assert all(isinstance(v, float) and not math.isnan(v) for v in values)
    assert results["best_value"] == pytest.approx(max(values))  # direction: maximize
    # model.width=32 on the command line fixes it: Optuna searches the other two
    assert set(results["best_params"]) == {"optimizer.lr", "model.depth"}
    best = records[values.index(max(values))]
    for key, value in results["best_params"].items():
        assert f"{key}={value}" in best["overrides"]


def test_hparams_search_config_composes(tmp_path: Path) -> None:
    cfg = compose_with_hydra(["hparams_search=mlp_optuna"])
    sweeper = cfg.hydra.sweeper
    assert "optuna" in sweeper._target_.lower() and sweeper.direction == "maximize"
    assert sweeper.sampler.seed == cfg.seed and cfg.optimized_metric == "val/acc"
    assert set(sweeper.params) == {"optimizer.lr", "model.depth", "model.width"}
    assert compose_config([], tmp_path).optimized_metric == "val/acc"


SCHEMA_WARNING = r"ignore:\s*'hydra/launcher/submitit_\w+' is validated against"


@pytest.mark.filterwarnings(SCHEMA_WARNING)
@pytest.mark.parametrize("launcher", ["submitit_slurm", "submitit_local", "joblib"])
def test_launcher_configs_compose(launcher: str) -> None:
    cfg = compose_with_hydra([f"hydra/launcher={launcher}", "hydra.launcher.timeout_min=30"]
                              if launcher != "joblib" else ["hydra/launcher=joblib"])  # fmt: skip
    target = cfg.hydra.launcher._target_
    if launcher == "submitit_slurm":
        assert target.endswith("SlurmLauncher")
        assert {"partition", "gpus_per_node", "tasks_per_node", "nodes"} <= set(cfg.hydra.launcher)
        assert cfg.hydra.launcher.timeout_min == 30
    elif launcher == "submitit_local":
        assert target.endswith("LocalLauncher")
    else:
        assert target.endswith("JoblibLauncher")
    check_launcher_installed(cfg.hydra.launcher)  # the plugins are installed with [dev]


@pytest.mark.filterwarnings(SCHEMA_WARNING)
def test_missing_launcher_plugin_says_which_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if "submitit" in name else real(name, *a),
    )
    cfg = compose_with_hydra(["hydra/launcher=submitit_slurm"])
    with pytest.raises(ConfigError, match=r"pip install 'depthbench\[slurm\]'"):
        check_launcher_installed(cfg.hydra.launcher)


def test_wandb_group_is_the_sweep_folder(tmp_path: Path) -> None:
    from hydra.core.hydra_config import HydraConfig

    from depthbench.core.tracking import sweep_group

    sweep_dir = f"hydra.sweep.dir={tmp_path}/2026-01-01_10-00-00"
    try:
        for mode, expected in (("MULTIRUN", "2026-01-01_10-00-00"), ("RUN", None)):
            HydraConfig.instance().set_config(compose_with_hydra([sweep_dir, f"hydra.mode={mode}"]))
            assert sweep_group() == expected
    finally:
        HydraConfig.instance().cfg = None


@pytest.mark.process
def test_two_sweeps_started_together_get_their_own_folders(tmp_path: Path) -> None:
    """The sweep folder carries microseconds, like the run folder: two sweeps launched in the
    same second never share a folder (nor the wandb group named after it)."""
    cmd = [sys.executable, "train.py", "-m", "seed=1", "trainer.max_steps=1", "test=false",
           f"paths.log_dir={tmp_path}", "callbacks=none", "logger=none"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL) for _ in range(2)]  # fmt: skip
    assert [p.wait(timeout=300) for p in procs] == [0, 0]
    sweeps = sorted((tmp_path / "multiruns" / "train").iterdir())
    assert len(sweeps) == 2, sweeps
    assert all((s / "0" / "metrics.json").is_file() for s in sweeps)
