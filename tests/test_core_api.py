"""The core's public API is what its clients use: the lesson, the bench, the report, the tools,
the notebook and the tests' helpers import ``depthbench.core`` itself, never one of its modules,
never ``depthbench.cli``, and no module of the package imports another's private name. Importing
the API stays light: no torch or Lightning until a run is built."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import ROOT

import depthbench.core as core

PACKAGE = ROOT / "src" / "depthbench"
CLIENTS = ["lesson", "bench", "report", "tools"]


def client_sources() -> dict[str, str]:
    """Every client's Python source by its path: package modules, notebook code cells, helpers."""
    sources = {
        str(p.relative_to(ROOT)): p.read_text()
        for client in CLIENTS
        for p in sorted((PACKAGE / client).rglob("*.py"))
    }
    sources["tests/helpers.py"] = (ROOT / "tests" / "helpers.py").read_text()
    sources["notebooks/outputs.py"] = (ROOT / "notebooks" / "outputs.py").read_text()
    notebook = json.loads((ROOT / "notebooks" / "lesson.ipynb").read_text())
    cells = [c for c in notebook["cells"] if c["cell_type"] == "code"]
    sources["notebooks/lesson.ipynb"] = "\n".join("".join(c["source"]) for c in cells)
    return sources


def reaches_in(source: str) -> list[str]:
    """The imports of ``source`` that climb into the core or the command line, or take another
    module's private name: ``line: module[.name]``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [a.name for a in node.names]
            if node.module.startswith(("depthbench.core.", "depthbench.cli")):
                found.append(f"{node.lineno}: {node.module}")
            elif node.module == "depthbench" and "cli" in names:
                found.append(f"{node.lineno}: depthbench.cli")
            private = [n for n in names if n.startswith("_") and n != "__version__"]
            if node.module.startswith("depthbench") and private:
                found.append(f"{node.lineno}: {node.module}.{private[0]}")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith(("depthbench.core.", "depthbench.cli")):
                    found.append(f"{node.lineno}: {alias.name}")
    return found


def test_clients_use_only_the_core_api() -> None:
    found = [f"{path}:{hit}" for path, src in client_sources().items() for hit in reaches_in(src)]
    assert not found, "import from depthbench.core itself:\n" + "\n".join(found)


def test_no_module_imports_another_modules_private_name() -> None:
    found = [
        f"{p.relative_to(PACKAGE)}:{hit}"
        for p in sorted(PACKAGE.rglob("*.py"))
        for hit in reaches_in(p.read_text())
        if hit.rsplit(".", 1)[-1].startswith("_")
        and hit.split(": ")[1].split(".")[1] != p.relative_to(PACKAGE).parts[0]  # its own package
    ]
    assert not found, "\n".join(found)


def test_the_scan_finds_what_it_refuses() -> None:
    source = (
        "from depthbench.core import compose, train\n"
        "from depthbench.core.run import train\n"
        "import depthbench.cli\n"
        "from depthbench import cli\n"
        "from depthbench.report.figures import _grid\n"
    )
    assert reaches_in(source) == [
        "2: depthbench.core.run",
        "3: depthbench.cli",
        "4: depthbench.cli",
        "5: depthbench.report.figures._grid",
    ]


def test_every_api_name_exists_and_says_what_it_is_for() -> None:
    for name in core.__all__:
        value = getattr(core, name)
        if callable(value) or isinstance(value, type):
            assert (value.__doc__ or "").strip(), f"depthbench.core.{name} has no docstring"


def test_importing_the_api_imports_neither_torch_nor_lightning() -> None:
    code = (
        "import sys, depthbench.core; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'lightning', 'hydra'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("config_name", ["train", "eval"])
def test_compose_gives_the_config_the_command_runs(config_name: str) -> None:
    cfg = core.compose(["seed=7"], config_name)
    assert cfg.seed == 7
    assert "hydra" not in cfg


def test_open_run_reads_a_trained_run(tmp_path: Path) -> None:
    from helpers import FAST, compose_config

    record = core.train(compose_config(FAST, tmp_path))
    run = core.open_run(tmp_path)
    assert run.metrics() == json.loads(run.metrics_path.read_text())
    assert run.metrics()["test/acc"] == record["test/acc"]
    assert run.history_path.is_file()
    net, config = run.load_net()
    assert sum(p.numel() for p in net.parameters()) == record["params"]
    assert config.model == compose_config(FAST, tmp_path).model


def test_the_api_page_example_runs_as_written(tmp_path: Path, monkeypatch) -> None:
    """docs/api.md's example, with its output folder under ``tmp_path``."""
    page = (ROOT / "docs" / "api.md").read_text()
    code = page.split("```python\n", 1)[1].split("```", 1)[0]
    assert '"outputs/runs/api/r16"' in code
    code = code.replace('"outputs/runs/api/r16"', repr(str(tmp_path / "r16")))
    code = code.replace(
        '"trainer.max_epochs=1"', '"trainer.max_epochs=1", "+trainer.limit_train_batches=3"'
    )
    scope: dict = {}
    exec(compile(code, "docs/api.md", "exec"), scope)  # the page's own example
    assert scope["run"].metrics()["status"] == "ok"
    assert type(scope["net"]).__name__ == "DeepMLP" and not scope["net"].training
