"""The wheel works installed: it carries the configs, the licence and ``py.typed``, and in a fresh
virtual environment ``depthbench`` imports with its version, ``python -m depthbench --help``
answers and ``depthbench train`` runs from an empty folder with nothing of the checkout on
``sys.path``.

The fresh environment has no pip and downloads nothing: a ``.pth`` line puts this environment's
site-packages (the dependencies) after its own, where the wheel is installed. A ``.pth`` file in a
folder reached that way is not run, so the checkout's editable install stays out."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
from helpers import ROOT

pytestmark = [pytest.mark.slow, pytest.mark.process]

# the files a wheel is built from (a copy: building writes build/ and *.egg-info beside them)
SOURCES = ("src", "conf", "pyproject.toml", "setup.py", "README.md", "LICENSE")


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


def test_wheel_holds_configs_licence_and_types(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    configs = {str(p.relative_to(ROOT)) for p in (ROOT / "conf").rglob("*.yaml")}
    assert {f"depthbench/{c}" for c in configs} <= names
    assert {
        "depthbench/conf/train.yaml",
        "depthbench/__init__.py",
        "depthbench/__main__.py",
    } <= names
    assert "depthbench/py.typed" in names  # PEP 561: beside the regular package's __init__.py
    (licence,) = [n for n in names if n.endswith(".dist-info/licenses/LICENSE")]
    assert "MIT License" in zipfile.ZipFile(wheel).read(licence).decode()
    assert not any(n.startswith("hydra_plugins/__init__") for n in names)  # a namespace package


@pytest.fixture(scope="module")
def fresh_env(wheel: Path, tmp_path_factory) -> Path:
    """A new virtual environment holding the wheel, seeing this environment's dependencies."""
    env = tmp_path_factory.mktemp("venv") / "fresh"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env)], check=True)
    python = env / "bin" / "python"
    purelib = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    Path(purelib, "project_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps",
         "--no-index", "--no-compile", "-q", str(wheel)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return env


def _run(env: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DEPTHBENCH", "PYTHON"))}
    return subprocess.run(
        [str(env / "bin" / args[0]), *args[1:]],
        cwd=cwd,
        env={**clean, "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_installed_wheel_has_its_version_and_module_entry(fresh_env: Path, tmp_path: Path) -> None:
    code = (
        "import importlib.metadata as m, depthbench; "
        "print(depthbench.__version__, m.version('depthbench'), depthbench.__file__)"
    )
    proc = _run(fresh_env, "python", "-c", code, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    version, dist_version, file = proc.stdout.split()
    assert version == dist_version and version[0].isdigit()
    assert file.startswith(str(fresh_env)), file  # the wheel's copy, not the checkout's
    proc = _run(fresh_env, "python", "-m", "depthbench", "--help", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: depthbench {train,eval,")
    proc = subprocess.run(  # the environment has no pip of its own: this one checks it
        [sys.executable, "-m", "pip", "--python", str(fresh_env / "bin" / "python"), "check"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_installed_wheel_trains_from_an_empty_folder(fresh_env: Path, tmp_path: Path) -> None:
    args = ["trainer.max_steps=2", "+trainer.limit_val_batches=1", "+trainer.limit_test_batches=1"]
    proc = _run(fresh_env, "depthbench", "train", *args, "logger=none", cwd=tmp_path)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "Primary config directory not found" not in out
    (metrics_file,) = (tmp_path / "outputs" / "runs" / "train").glob("*/metrics.json")
    metrics = json.loads(metrics_file.read_text())
    assert metrics["status"] == "ok" and metrics["steps"] == 2


def test_clients_import_without_the_command_line_module() -> None:
    """lesson, bench, report and tools find the configs through ``depthbench.core.conf_dir``; none
    of them imports ``depthbench.cli`` (which registers Hydra resolvers and warning filters)."""
    code = (
        "import importlib, pkgutil, sys\n"
        "for name in ('lesson', 'bench', 'report', 'tools'):\n"
        "    pkg = importlib.import_module('depthbench.' + name)\n"
        "    for m in pkgutil.iter_modules(pkg.__path__):\n"
        "        if m.name != '__main__':\n"
        "            importlib.import_module(f'depthbench.{name}.{m.name}')\n"
        "print(len(sys.modules), 'depthbench.cli' in sys.modules)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split()[-1] == "False", proc.stdout
