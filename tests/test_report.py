"""`depthbench report` on a real tiny multirun made here: table, CSV, figures, a failed run."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pandas as pd
import pytest
from helpers import ROOT

from depthbench.cli import main as depthbench
from depthbench.report.collect import parse_overrides


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """A 3-job multirun (depth 1, 2 and an invalid 0) plus a job folder that never finished."""
    out = tmp_path_factory.mktemp("multirun")
    cmd = [sys.executable, "train.py", "-m", "task_name=tiny", "data=digits", "model.width=8",
           "model.depth=1,2,0", "trainer.max_epochs=2", "+trainer.limit_train_batches=3",
           "+trainer.limit_val_batches=1", "+trainer.limit_test_batches=1",
           "trainer.log_every_n_steps=1", "trainer.enable_progress_bar=false", "callbacks=none",
           "diagnostics=gradflow", "diagnostics.gradflow.every_n_steps=1", "logger=csv",
           f"hydra.sweep.dir={out}", f"paths.data_dir={ROOT / 'data'}"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, timeout=300)  # job 2 fails
    assert (out / "0" / "metrics.json").exists() and (out / "1" / "gradflow.csv").exists()
    crashed = out / "3"  # a job killed before it wrote metrics.json
    shutil.copytree(out / "0" / ".hydra", crashed / ".hydra")
    overrides = crashed / ".hydra" / "overrides.yaml"
    overrides.write_text(overrides.read_text().replace("model.depth=1", "model.depth=3"))
    return out


@pytest.mark.process
def test_report_tables_csv_figures_and_failed_runs(sweep, tmp_path):
    depthbench(["report", str(sweep), "--out", str(tmp_path)])
    report = (tmp_path / "report.md").read_text()
    assert "## tiny" in report
    assert "4 runs, 2 ok, 2 failed." in report
    assert "Swept: `model.depth` = 1, 2, 0, 3." in report
    # the pivot: one row, a column per depth in numeric order, failed runs marked
    row = next(ln for ln in report.splitlines() if ln.startswith("| all |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1] == "failed" and cells[4] == "failed"  # depth 0 and 3
    # depth 1 and 2: one seed each, so an accuracy labelled n=1
    assert all(c.endswith(" (n=1)") and 0 <= float(c.split()[0]) <= 1 for c in cells[2:4])
    assert "One run per setting" in report and "every number is one run" not in report
    results = pd.read_csv(tmp_path / "results.csv")
    assert len(results) == 4
    assert results.set_index("model.depth").status.to_dict() == {
        0: "failed",
        1: "ok",
        2: "ok",
        3: "failed",
    }
    assert results["grad first/last (init)"].notna().sum() == 2
    for name in ("metrics_vs_depth.png", "gradflow_init.png", "training_curves.png"):
        assert (tmp_path / name).stat().st_size > 1000, name
        assert f"]({name})" in report


@pytest.mark.process
def test_python_m_report_refuses_an_empty_folder(tmp_path):
    done = subprocess.run([sys.executable, "-m", "depthbench.report", str(tmp_path)],
                          capture_output=True, text=True, cwd=ROOT)  # fmt: skip
    assert done.returncode == 2 and "no run folders" in done.stderr


def test_parse_overrides_keeps_sweep_keys_only():
    lines = ["model.depth=8", "+trainer.limit_train_batches=3", "experiment=x", "hydra.verbose=1",
             "experiment/arch@arch=cnn"]  # fmt: skip
    assert parse_overrides(lines) == {
        "model.depth": "8", "trainer.limit_train_batches": "3", "experiment/arch@arch": "cnn"
    }  # fmt: skip


@pytest.mark.process
def test_runs_of_several_sweeps_show_every_varying_key_and_refusals_apart(sweep, tmp_path):
    """Two sweeps, one on other data: the data column shows (the other sweep never set it);
    a refused single command (bad input, nothing trained) is counted on its own line, not run
    through the tables."""
    other = tmp_path / "runs" / "other"
    shutil.copytree(sweep / "1", other)
    overrides = other / ".hydra" / "overrides.yaml"  # data left at its default, mnist1d here
    overrides.write_text(overrides.read_text().replace("- data=digits\n", ""))
    hydra = other / ".hydra" / "hydra.yaml"
    assert "    data: digits\n" in hydra.read_text()  # Hydra's record of the chosen options
    hydra.write_text(hydra.read_text().replace("    data: digits\n", "    data: mnist1d\n"))
    refused = tmp_path / "runs" / "refused"
    shutil.copytree(sweep / "0" / ".hydra", refused / ".hydra")
    (refused / "metrics.json").write_text(
        '{"status": "failed", "error": "ConfigError: x", "output_dir": "x"}'
    )
    out = tmp_path / "report"
    depthbench(["report", str(sweep), str(tmp_path / "runs"), "--out", str(out)])
    report = (out / "report.md").read_text()
    assert "1 refused command (bad input, nothing trained) left out: `refused`." in report
    assert "5 runs, 3 ok, 2 failed." in report  # the four jobs and the mnist1d copy
    assert "`data` = digits, mnist1d" in report
    results = pd.read_csv(out / "results.csv")
    assert sorted(results["data"]) == ["digits"] * 4 + ["mnist1d"]
