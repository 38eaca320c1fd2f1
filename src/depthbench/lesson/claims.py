"""The lesson's claims as written in ``conf/lesson/*.yaml``: sentence, criterion, sweeps."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from depthbench.cli import CONF_DIR
from depthbench.errors import ConfigError

LESSON_DIR = Path(CONF_DIR) / "lesson"
PROFILES = ("quick", "full")


@dataclass
class Claim:
    """One claim: what the lesson says, how it is checked, and the sweeps that measure it."""

    name: str
    order: int
    title: str
    claim: str
    sources: str
    verdict: str  # a function of depthbench.lesson.verdicts
    criterion: dict[str, Any]
    profiles: dict[str, dict[str, list[str]]]  # profile -> sweep name -> overrides
    measure: dict[str, Any] = field(default_factory=dict)
    config_keys: list[str] = field(default_factory=list)
    needs_gpu: bool = False

    def sweeps(self, profile: str) -> dict[str, list[str]]:
        """Sweep name -> the ``train.py -m`` overrides of ``profile``."""
        if profile not in self.profiles:
            raise ConfigError(f"claim {self.name!r} has no profile {profile!r}")
        return self.profiles[profile]


def _flatten(items: list[Any]) -> list[str]:
    """YAML anchors put lists inside lists (``[*common, key=value]``): one flat list of str."""
    out: list[str] = []
    for item in items:
        out += _flatten(item) if isinstance(item, list) else [str(item)]
    return out


def load_claim(path: Path) -> Claim:
    """Read one ``conf/lesson/<name>.yaml``."""
    raw = yaml.safe_load(path.read_text())
    profiles = {
        p: {name: _flatten(o) for name, o in spec["sweeps"].items()}
        for p, spec in raw["profiles"].items()
    }
    return Claim(
        name=path.stem,
        order=int(raw["order"]),
        title=raw["title"],
        claim=" ".join(raw["claim"].split()),
        sources=raw.get("sources", ""),
        verdict=raw["verdict"],
        criterion=raw["criterion"],
        profiles=profiles,
        measure=raw.get("measure") or {},
        config_keys=list(raw.get("config_keys") or []),
        needs_gpu=bool(raw.get("needs_gpu", False)),
    )


def load_claims(only: list[str] | None = None, lesson_dir: Path = LESSON_DIR) -> list[Claim]:
    """Every claim in order, or the ``only`` ones (unknown names: a ConfigError listing them)."""
    claims = sorted((load_claim(p) for p in lesson_dir.glob("*.yaml")), key=lambda c: c.order)
    if only:
        names = [c.name for c in claims]
        unknown = [n for n in only if n not in names]
        if unknown:
            raise ConfigError(f"unknown claim {', '.join(unknown)}; allowed: {', '.join(names)}")
        claims = [c for c in claims if c.name in only]
    return claims
