"""Resume by intent: ``ckpt_path=auto`` in a fresh timestamped folder continues the newest
interrupted run of the same config (the composed config without ``hydra.*``, ``paths.*`` and
``ckpt_path``), and an interrupted run prints the exact command that continues it.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from depthbench.core.overrides import override_key
from depthbench.core.run_folder.folder_lock import in_use
from depthbench.core.run_folder.layout import RunFolder, config_path, last_checkpoint
from depthbench.core.run_folder.saved_names import current_names


def read_record(folder: Path) -> dict[str, Any] | None:
    """The folder's ``metrics.json`` (``{}`` when unreadable: treated as results, never
    overwritten), or None when it has none."""
    run = RunFolder(folder)
    return (run.metrics() or {}) if run.metrics_path.is_file() else None


# keys that may differ between a run and its continuation (``ckpt_path=auto`` finds the run)
NOT_THE_CONFIG = ("hydra", "paths", "ckpt_path")


def _flat(node: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a.b": value}`` of a nested container (lists stay values)."""
    if not isinstance(node, Mapping):
        return {prefix.rstrip("."): node}
    out: dict[str, Any] = {}
    for key, value in node.items():
        out.update(_flat(value, f"{prefix}{key}."))
    return out


def comparable(config: DictConfig | Mapping[str, Any]) -> dict[str, Any]:
    """A run's config as flat ``key: value`` without ``hydra.*``, ``paths.*``, ``ckpt_path``
    (unresolved, so interpolations of the run folder compare equal)."""
    container = (
        OmegaConf.to_container(config, resolve=False)
        if isinstance(config, DictConfig)
        else dict(config)
    )
    assert isinstance(container, dict)
    return {
        k: v
        for k, v in _flat(current_names(container)).items()
        if k.split(".")[0] not in NOT_THE_CONFIG
    }


def differing_keys(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[str]:
    """The keys of two ``comparable`` configs whose values differ, sorted."""
    return sorted(k for k in set(a) | set(b) if a.get(k, "<unset>") != b.get(k, "<unset>"))


def interrupted_runs(parent: Path) -> list[Path]:
    """The folders under ``parent`` of runs that stopped before finishing (interrupted, or
    killed: a last.ckpt and no metrics.json), not in use, newest checkpoint first."""
    found = []
    for folder in parent.iterdir() if parent.is_dir() else ():
        last = last_checkpoint(folder)
        record = read_record(folder)
        stopped = record is None or record.get("status") == "interrupted"
        if last.is_file() and stopped and not in_use(folder):
            found.append((last.stat().st_mtime, folder))
    return [folder for _, folder in sorted(found, reverse=True)]


def find_run_to_continue(config: DictConfig, parent: Path) -> tuple[Path | None, str]:
    """The newest interrupted run under ``parent`` whose config is this one's (but for
    ``NOT_THE_CONFIG``), and the line that says what ``ckpt_path=auto`` does."""
    wanted = comparable(config)
    nearest: tuple[int, Path, list[str]] | None = None
    for folder in interrupted_runs(parent):
        try:
            saved = comparable(OmegaConf.load(config_path(folder)))
        except Exception:  # no (readable) config: not comparable
            continue
        differ = differing_keys(saved, wanted)
        if not differ:
            return folder, f"ckpt_path=auto: continuing the interrupted run in {folder}"
        if nearest is None or len(differ) < nearest[0]:
            nearest = (len(differ), folder, differ)
    line = f"ckpt_path=auto: no interrupted run of this config under {parent}; starting fresh"
    if nearest is not None:
        _, folder, differ = nearest
        shown = ", ".join(differ[:5]) + (f" and {len(differ) - 5} more" if len(differ) > 5 else "")
        line += f" (the nearest, {folder}, differs in {shown})"
    return None, line


def resume_command(out_dir: Path) -> str:
    """The command that continues this run in ``out_dir``: the command line as given, with
    ``hydra.run.dir`` and ``ckpt_path=auto`` in place of any it had. A job of a multirun is
    continued with its whole sweep: the sweep's command line with ``hydra.sweep.dir`` and
    ``ckpt_path=auto`` (its finished jobs are kept, the others continue or start)."""
    import shlex

    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    program = Path(sys.argv[0]).name if sys.argv else "train.py"
    program = f"python {program}" if program.endswith(".py") else program
    if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
        drop = ("hydra.sweep.dir", "ckpt_path")
        kept = [a for a in sys.argv[1:] if override_key(a) not in drop]
        words = [*kept, f"hydra.sweep.dir={HydraConfig.get().sweep.dir}", "ckpt_path=auto"]
        return " ".join([program, *(shlex.quote(w) for w in words)])
    given = list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []
    kept = [o for o in given if override_key(o) not in ("hydra.run.dir", "ckpt_path")]
    words = [*kept, f"hydra.run.dir={out_dir}", "ckpt_path=auto"]
    return " ".join([program, *(shlex.quote(w) for w in words)])
