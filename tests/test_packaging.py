"""The wheel works installed: it carries the configs, and ``depthbench train`` runs from an empty
folder with nothing of the source checkout on ``sys.path``."""

from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from helpers import ROOT

# the files a wheel is built from (a copy: building writes build/ and *.egg-info beside them)
SOURCES = ("src", "conf", "pyproject.toml", "setup.py", "README.md")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """``pip wheel .`` of a copy of the repository's sources (no dependencies, no isolation)."""
    work = tmp_path_factory.mktemp("wheel")
    source = work / "source"
    source.mkdir()
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(
                ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__")
            )
        else:
            shutil.copy(ROOT / name, source / name)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            ".",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(work / "dist"),
        ],
        cwd=source,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "license" not in proc.stderr.lower(), proc.stderr  # no project.license deprecation
    return next((work / "dist").glob("depthbench-*.whl"))


def test_wheel_holds_every_config(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    configs = {str(p.relative_to(ROOT)) for p in (ROOT / "conf").rglob("*.yaml")}
    assert {f"depthbench/{c}" for c in configs} <= names
    assert "depthbench/conf/train.yaml" in names and "depthbench/cli.py" in names


def test_installed_wheel_trains_from_an_empty_folder(wheel: Path, tmp_path: Path) -> None:
    target = tmp_path / "site"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--no-compile",
            "--target",
            str(target),
            str(wheel),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    empty = tmp_path / "somewhere"
    empty.mkdir()
    # -I -S: no PYTHONPATH, no user site, no .pth files (the editable install's path to the
    # checkout is one); then the installed wheel first and this environment's dependencies
    bootstrap = (
        "import sys; sys.path[:0] = sys.argv[1:3]; del sys.argv[1:3]; "
        "import depthbench.cli as cli; "
        "assert cli.__file__.startswith(sys.path[0]), cli.__file__; "
        "sys.argv[0] = 'depthbench'; cli.main()"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEPTHBENCH")}
    proc = subprocess.run(
        [
            sys.executable,
            "-I",
            "-S",
            "-c",
            bootstrap,
            str(target),
            *site.getsitepackages()[:1],
            "train",
            "trainer.max_steps=2",
            "+trainer.limit_val_batches=1",
            "+trainer.limit_test_batches=1",
            "logger=none",
        ],
        cwd=empty,
        env={**env, "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "Primary config directory not found" not in out
    (metrics_file,) = (empty / "outputs" / "runs" / "train").glob("*/metrics.json")
    metrics = json.loads(metrics_file.read_text())
    assert metrics["status"] == "ok" and metrics["steps"] == 2
