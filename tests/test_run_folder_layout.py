"""The names inside a run folder live in ``depthbench.core.run_folder.layout`` alone: no other
module of the package spells ``checkpoints``, ``last.ckpt`` or ``metrics.json`` as a value
(docstrings and messages aside), and the checkpoint callbacks of every ``conf/callbacks``
option write where the layout looks."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from helpers import FAST, ROOT, compose_config

from depthbench.core.run import train
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
