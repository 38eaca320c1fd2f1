"""The names inside a run folder live in ``depthbench.core.run_folder.layout`` alone: no other
module of the package spells ``checkpoints``, ``last.ckpt`` or ``metrics.json`` as a value
(docstrings and messages aside), and the checkpoint callbacks of every ``conf/callbacks``
option write where the layout looks."""

from __future__ import annotations

import ast
import csv
import json
from pathlib import Path

import pytest
from helpers import FAST, ROOT, compose_config

from depthbench.core import train
from depthbench.core.run_folder import layout

PACKAGE = ROOT / "src" / "depthbench"
# the layout, and the names runs saved before the move into depthbench.core (read, never written)
OWNERS = {"core/run_folder/layout.py", "core/run_folder/saved_names.py"}
NAMES = {layout.CHECKPOINTS_DIR, layout.LAST_CKPT, layout.METRICS_FILE}


def spelled_names(source: str) -> list[str]:
    """The run-folder names that ``source`` uses as a whole string value or as a part of a short
    path string (``"checkpoints/last.ckpt"``), docstrings left out: ``line: 'value'``."""
    tree = ast.parse(source)
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            parts = {p for p in node.value.split("/") if p}
            if id(node) not in docstrings and parts & NAMES and len(node.value) < 40:
                found.append(f"{node.lineno}: {node.value!r}")
    return found


def test_only_the_layout_module_spells_the_run_folder_names() -> None:
    found = [
        f"{path.relative_to(PACKAGE)}:{hit}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if path.relative_to(PACKAGE).as_posix() not in OWNERS
        for hit in spelled_names(path.read_text())
    ]
    assert not found, "use depthbench.core.run_folder.layout:\n" + "\n".join(found)


def test_the_scan_finds_a_spelled_name_and_skips_docstrings_and_messages() -> None:
    source = (
        '"""Reads checkpoints/last.ckpt."""\n'
        'PATH = "checkpoints/last.ckpt"\n'
        'NAME = "metrics.json"\n'
        'HINT = "give the run folder: its checkpoints/last.ckpt holds the final weights"\n'
    )
    assert spelled_names(source) == ["2: 'checkpoints/last.ckpt'", "3: 'metrics.json'"]


@pytest.mark.parametrize("callbacks", ["default", "last"])
def test_a_run_writes_where_the_layout_looks(callbacks: str, tmp_path: Path) -> None:
    fast = [o for o in FAST if "progress_bar" not in o]  # callbacks=last has no progress bar
    train(compose_config([*fast, f"callbacks={callbacks}"], tmp_path))
    assert layout.last_checkpoint(tmp_path).is_file()
    assert layout.metrics_path(tmp_path).is_file()


# every name the layout owns, changed: a process that imports this first writes another layout
MOVED_LAYOUT = """
import depthbench.core.run_folder.layout as layout
layout.CHECKPOINTS_DIR = "weights"
layout.LAST_NAME = "final"
layout.LAST_CKPT = "final.ckpt"
layout.METRICS_FILE = "record.json"
layout.HISTORY_DIR = "history"
layout.PREDICTIONS_FILE = "answers.csv"
layout.CONFUSION_FILE = "matrix.csv"
layout.COMMANDS_FILE = "typed.txt"
"""


@pytest.mark.process
@pytest.mark.slow  # five commands and a one-seed lesson of claim 1
def test_a_changed_layout_moves_every_writer_and_reader(tmp_path: Path) -> None:
    """Train, eval, predict, report and a tiny lesson, all run with the layout changed (a
    ``sitecustomize`` on ``PYTHONPATH`` edits it before anything else imports it in every process,
    the lesson's children too), find each other's files: nothing spells a name by hand."""
    import os
    import subprocess
    import sys

    import numpy as np
    from PIL import Image

    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(MOVED_LAYOUT)
    path = os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1"}

    def run(*args: str | Path) -> str:
        proc = subprocess.run([sys.executable, *map(str, args)], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=600)  # fmt: skip
        assert proc.returncode == 0, proc.stderr[-2000:]
        return proc.stdout + proc.stderr

    trained, evaluated = tmp_path / "train", tmp_path / "eval"
    fast = [o for o in FAST if "progress_bar" not in o]
    run("train.py", *fast, "callbacks.progress_bar.refresh_rate=0", f"hydra.run.dir={trained}")
    for name in ("weights/final.ckpt", "record.json", "history/metrics.csv", "typed.txt"):
        assert (trained / name).is_file(), name
    for old in ("checkpoints", "metrics.json", "csv", "commands.txt"):
        assert not (trained / old).exists(), old

    run("eval.py", f"ckpt_path={trained}", f"hydra.run.dir={evaluated}")
    for name in ("record.json", "answers.csv", "matrix.csv"):
        assert (evaluated / name).is_file(), name

    digit = tmp_path / "digit.png"
    Image.fromarray((np.eye(8) * 255).astype(np.uint8)).save(digit)
    assert "digit.png" in run("-m", "depthbench", "predict", trained, digit)

    report = run("-m", "depthbench", "report", trained, "--out", tmp_path / "report")
    assert "1 ok" in report, report
    (row,) = csv.DictReader((tmp_path / "report" / "results.csv").read_text().splitlines())
    accuracy = json.loads((trained / "record.json").read_text())["test/acc"]
    assert float(row["test acc"]) == pytest.approx(accuracy, abs=1e-4)

    out = tmp_path / "lesson"
    run("-m", "depthbench", "lesson", "--only", "vanishing_gradients", "--seeds", "1",
        "--jobs", "2", "--runs", tmp_path / "runs", "--out", out)  # fmt: skip
    (claim,) = json.loads((out / "lesson.json").read_text())["claims"]
    assert claim["verdict"] in {"confirmed", "not confirmed"}, claim["verdict"]
    assert list((tmp_path / "runs").rglob("record.json"))
    assert not list((tmp_path / "runs").rglob("metrics.json"))
