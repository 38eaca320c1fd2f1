"""Find Hydra run folders and read what each run left behind: config, overrides, metrics.

A run folder is any folder with a ``.hydra/`` subfolder (single runs and the numbered jobs of
a multirun alike). Each run ends in one of three outcomes, as its ``metrics.json`` says:
``ok``; ``diverged`` (the loss or weights became non-finite); or failed (no ``metrics.json``, or
any other status), with the last error line of its log when there is one.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from depthbench.core import layout, override_key, override_value

IGNORED_OVERRIDES = ("hydra.", "hydra/", "paths.")
# the fields of the record of a command refused before training (written by depthbench before
# issue 30; a refused command's folder is now removed, ``run_folder.discard_refused``)
REFUSAL_FIELDS = {"status", "error", "output_dir"}


@dataclass
class Run:
    """One training run: where it is, which experiment, its swept values and its results."""

    path: Path
    experiment: str
    overrides: dict[str, str]
    config: dict[str, Any]
    metrics: dict[str, Any] = field(default_factory=dict)
    status: str = "failed"
    error: str = ""
    choices: dict[str, str] = field(default_factory=dict)  # config group -> option (Hydra's)

    @property
    def refused(self) -> bool:
        """A single command stopped by bad input before training: an older depthbench's
        record (status ``failed``, the error, the folder; nothing else). No result: left out of
        the tables. A sweep's failed job (its record holds the traceback) stays in: it is the
        outcome of its setting."""
        return self.status == "failed" and set(self.metrics) == REFUSAL_FIELDS

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def diverged(self) -> bool:
        return self.status == "diverged"

    @property
    def interrupted(self) -> bool:
        """Stopped by Ctrl+C or SIGTERM: neither a result nor a failure (it can be resumed)."""
        return self.status == "interrupted"

    @property
    def diverged_at_step(self) -> int | None:
        """The step at which a diverged run's loss became non-finite (None: not recorded)."""
        step = self.metrics.get("diverged_at_step") if self.diverged else None
        try:
            return None if step is None else int(step)
        except (TypeError, ValueError):
            return None

    def file(self, name: str) -> Path | None:
        """``path / name`` if the run wrote it."""
        p = self.path / name
        return p if p.exists() else None

    def metric(self, key: str) -> float:
        """A numeric metric, NaN when missing or not a number."""
        value = self.metrics.get(key)
        try:
            return float(value)
        except (TypeError, ValueError):
            return math.nan


def find_run_dirs(paths: list[Path]) -> list[Path]:
    """Every run folder under ``paths`` (a run folder itself, a multirun, or a tree of them)."""
    found: list[Path] = []
    for root in paths:
        root = Path(root)
        if not root.exists():
            raise FileNotFoundError(f"no such run or multirun folder: {root}")
        if layout.config_path(root).is_file():
            found.append(root)
            continue
        found += sorted((p.parent.parent for p in root.rglob(layout.CONFIG_FILE)
                         if p.parent.name == layout.HYDRA_DIR), key=_natural)  # fmt: skip
    return list(dict.fromkeys(found))


def _natural(path: Path) -> tuple:
    """Sort key: parents by name, then the job number numerically (2 before 10)."""
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in path.parts)


def parse_overrides(lines: list[str]) -> dict[str, str]:
    """``["model.depth=8", "+x=1", "~y"]`` -> ``{"model.depth": "8", "x": "1"}`` (sweep keys)."""
    out: dict[str, str] = {}
    for line in lines:
        key, value = override_key(line), override_value(line)
        if value is None or "=" not in line:  # a deletion (~key), or no value
            continue
        if key == "experiment" or key.startswith(IGNORED_OVERRIDES):
            continue
        out[key] = value
    return out


def _last_error(run_dir: Path) -> str:
    for log_file in sorted(run_dir.glob("*.log")):
        lines = [ln for ln in log_file.read_text(errors="replace").splitlines() if "ERROR" in ln]
        if lines:
            return lines[-1].split("] - ", 1)[-1].strip()[:200]
    return ""


def load_run(run_dir: Path) -> Run:
    """Read one run folder."""
    config = _load_yaml(layout.config_path(run_dir)) or {}
    overrides = parse_overrides(_load_yaml(layout.overrides_path(run_dir)) or [])
    run = Run(run_dir, str(config.get("task_name", run_dir.parent.name)), overrides, config)
    hydra = (_load_yaml(layout.config_path(run_dir).with_name("hydra.yaml")) or {}).get("hydra", {})
    choices = (hydra.get("runtime") or {}).get("choices") or {}
    run.choices = {str(k): str(v) for k, v in choices.items() if not str(k).startswith("hydra/")}
    metrics_file = layout.metrics_path(run_dir)
    if metrics_file.exists():
        try:
            run.metrics = json.loads(metrics_file.read_text())
        except json.JSONDecodeError as e:
            run.error = f"unreadable metrics.json: {e}"
        run.status = str(run.metrics.get("status", "failed"))
        if not run.ok and not run.error:
            run.error = str(run.metrics.get("error", ""))
    else:
        run.error = _last_error(run_dir) or "no metrics.json (crashed, killed or still running)"
    return run


def _load_yaml(path: Path) -> Any:
    # The saved configs hold unresolved interpolations (${paths...}); plain YAML keeps them as text.
    return yaml.safe_load(path.read_text()) if path.exists() else None


def collect_runs(paths: list[Path]) -> list[Run]:
    """Load every run folder found under ``paths``."""
    return [load_run(d) for d in find_run_dirs(paths)]


def config_value(run: Run, key: str) -> Any:
    """The value of a dotted key in the run's config (``model.depth``), else its override."""
    node: Any = run.config
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return run.overrides.get(key)
        node = node[part]
    return node


def setting_value(run: Run, key: str) -> str | None:
    """A run's value of an override key as text: its override, else the option of the config
    group it chose by default (``data``), else the value in its config (``model.depth``)."""
    if key in run.overrides:
        return run.overrides[key]
    if key in run.choices:
        return run.choices[key]
    value = config_value(run, key)
    return None if value is None or isinstance(value, dict) else str(value)
