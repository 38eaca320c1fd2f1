"""``commands.txt``: every command that ran in a run folder, one line each, appended.

Hydra writes the command's overrides to ``.hydra/overrides.yaml`` and replaces that file each
time a run is continued in its folder (``ckpt_path=auto``), so the command that started the run
would be lost. ``RunFolderClaim`` appends each command here before Hydra writes: the first time,
the folder's earlier command (the overrides Hydra saved for it) comes first. Secrets are
redacted (``run_folder.redaction``).
"""

from __future__ import annotations

import shlex
from datetime import datetime, timezone
from pathlib import Path

from depthbench.core.run_folder.layout import COMMANDS_FILE, overrides_path
from depthbench.core.run_folder.redaction import redact


def _line(when: str, script: str, overrides: list[str]) -> str:
    return f"{when}  {script} {shlex.join(redact([str(o) for o in overrides]))}".rstrip() + "\n"


def record_command(folder: Path, script: str, overrides: list[str]) -> Path:
    """Append ``script overrides`` (``script``: ``python train.py``, as typed) with the UTC
    time to ``<folder>/commands.txt``; return its path."""
    import yaml

    path = folder / COMMANDS_FILE
    lines = []
    earlier = overrides_path(folder)
    if not path.exists() and earlier.is_file():  # a folder from before this file existed
        try:
            old = yaml.safe_load(earlier.read_text()) or []
        except (OSError, yaml.YAMLError):
            old = []
        lines.append(_line("earlier", script, [str(o) for o in old]))
    now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    lines.append(_line(now, script, overrides))
    folder.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:  # one write: lines never interleave
        f.write("".join(lines))
    return path


def read_commands(folder: Path) -> list[str]:
    """The commands of ``<folder>/commands.txt``, oldest first, without their times."""
    path = folder / COMMANDS_FILE
    if not path.is_file():
        return []
    return [line.split("  ", 1)[-1] for line in path.read_text().splitlines() if line.strip()]
