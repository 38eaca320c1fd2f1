"""The README's recipes (add a model, a data set, an experiment), run exactly as written there.

Each fenced ``python``/``yaml`` block of a recipe starts with a comment naming its file
(``# src/depthbench/models/tiny.py``, ``# conf/model/tiny.yaml``). The test writes every block to
a temporary copy of that path: Python files into a folder appended to the sub-package's
``__path__`` (so ``depthbench.models.tiny`` imports as if the file were in the package), YAML
files into a config folder added to Hydra's search path. A recipe that no longer works, or no
longer parses, fails here.
"""

from __future__ import annotations

import importlib
import re
import sys
from pathlib import Path

import pytest
from helpers import FAST, ROOT, compose_config

from depthbench.core import train

README = ROOT / "README.md"
FILE_COMMENT = re.compile(r"^# ((?:src/depthbench|conf)/[\w/]+\.(?:py|yaml))\b")


def recipe_files(heading: str) -> dict[str, str]:
    """``{path: text}`` of the fenced python/yaml blocks under ``### {heading}`` in the README."""
    lines = README.read_text().splitlines()
    start = lines.index(f"### {heading}")  # ValueError: the README lost the recipe
    files, block, in_fence, lang = {}, [], False, ""
    for line in lines[start + 1 :]:
        if line.startswith("```"):
            if in_fence and lang in ("python", "yaml"):
                path = next((m[1] for m in map(FILE_COMMENT.match, block) if m), None)
                assert path, f"a {lang} block of '{heading}' names no file in a '# path' comment"
                files[path] = "\n".join(block) + "\n"
            in_fence, lang, block = not in_fence, line[3:].strip(), []
        elif in_fence:
            block.append(line)
        elif line.startswith(("## ", "### ")):
            break
    return files


@pytest.fixture
def install_recipe(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Install a recipe's files; return the Hydra overrides that find its configs."""
    modules: list[str] = []

    def install(heading: str) -> list[str]:
        conf = tmp_path / "recipe_conf"
        for path, text in recipe_files(heading).items():
            parts = Path(path).parts
            if parts[0] == "conf":
                target = conf.joinpath(*parts[1:])
            else:  # src/depthbench/<subpackage>/<module>.py
                package = importlib.import_module(f"depthbench.{parts[2]}")
                target = tmp_path / "recipe_src" / parts[2] / parts[3]
                monkeypatch.setattr(package, "__path__", [*package.__path__, str(target.parent)])
                modules.append(f"{package.__name__}.{Path(parts[3]).stem}")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
        importlib.invalidate_caches()
        return [f"hydra.searchpath=[file://{conf}]"]

    yield install
    for name in modules:  # the next test imports the real package, not the recipe
        sys.modules.pop(name, None)
        parent, _, child = name.rpartition(".")
        if hasattr(sys.modules[parent], child):
            delattr(sys.modules[parent], child)


def test_add_a_model_recipe_trains(install_recipe, tmp_path: Path) -> None:
    overrides = install_recipe("Add a model")
    cfg = compose_config([*overrides, "model=tiny", *FAST], tmp_path)
    metrics = train(cfg)
    assert metrics["status"] == "ok"
    assert metrics["model"] == "TinyNet"
    width = cfg.model.width  # 8x8 digits -> width -> 10 classes
    assert metrics["params"] == 64 * width + width + width * 10 + 10


def test_add_a_data_set_recipe_trains(install_recipe, tmp_path: Path) -> None:
    overrides = install_recipe("Add a data set")
    cfg = compose_config([*overrides, "data=blobs", "model=cnn", *FAST], tmp_path)
    metrics = train(cfg)
    assert metrics["status"] == "ok"
    assert metrics["data"] == "blobs"
    assert metrics["test/acc"] > 0.25  # 4 well-separated blobs: above chance after 6 steps


def test_add_an_experiment_recipe_composes_and_trains(install_recipe, tmp_path: Path) -> None:
    overrides = install_recipe("Add an experiment")
    cfg = compose_config(
        [*overrides, "experiment=skip_digits", "model.residual=true", *FAST], tmp_path
    )
    assert cfg.task_name == "skip_digits"
    assert cfg.model.depth == 16 and cfg.model.batchnorm and cfg.model.residual
    assert cfg.optimizer._target_ == "torch.optim.SGD"
    metrics = train(cfg)
    assert metrics["status"] == "ok"
