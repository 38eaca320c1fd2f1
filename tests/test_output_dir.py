"""An unwritable run folder or a (nearly) full disk: one line, exit 2, nothing written."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from helpers import compose_config, run_train

from depthbench.core import train
from depthbench.core.run_folder.output_dir import MIN_FREE_MB_ENV, check_output_dir
from depthbench.errors import ConfigError


def _one_line_exit_2(args: list[str], needle: str) -> None:
    proc = run_train([*args, "trainer.max_epochs=1"])  # the process gets os.environ
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, out[-3000:]
    assert "Traceback" not in out, out[-3000:]
    lines = [line for line in out.splitlines() if "ConfigError: " in line]
    assert len(lines) == 1 and needle in lines[0], out[-3000:]


@pytest.mark.process
def test_read_only_parent_folder(tmp_path: Path) -> None:
    read_only = tmp_path / "ro"
    read_only.mkdir()
    read_only.chmod(0o500)
    try:
        if os.geteuid() == 0 or os.access(read_only, os.W_OK):
            pytest.skip("running as root: chmod does not stop writes")
        _one_line_exit_2([f"hydra.run.dir={read_only}/run"], "cannot write the run folder")
        assert not (read_only / "run").exists()
    finally:
        read_only.chmod(0o700)


@pytest.mark.process
def test_run_folder_under_a_file(tmp_path: Path) -> None:
    """A folder that cannot be created, for root too."""
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder\n")
    _one_line_exit_2([f"hydra.run.dir={blocker}/run"], "is not a folder")
    _one_line_exit_2(["-m", f"hydra.sweep.dir={blocker}/sweep", "seed=1,2"], "hydra.sweep.dir")


@pytest.mark.process
def test_full_disk_stops_before_anything_is_written(tmp_path: Path, monkeypatch) -> None:
    run_dir = tmp_path / "run"
    monkeypatch.setenv(MIN_FREE_MB_ENV, "1e12")  # more than any disk has free
    _one_line_exit_2([f"hydra.run.dir={run_dir}"], "MB free")
    assert not run_dir.exists()


def test_train_checks_the_job_folder_in_process(tmp_path: Path, monkeypatch) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    with pytest.raises(ConfigError, match="is not a folder"):
        train(compose_config(["trainer.max_epochs=1"], blocker / "run"))
    monkeypatch.setenv(MIN_FREE_MB_ENV, "1e12")
    with pytest.raises(ConfigError, match=r"has \d+ MB free, less than"):
        check_output_dir(tmp_path / "new")
    assert not (tmp_path / "new").exists() and not list(tmp_path.glob(".depthbench-*"))
