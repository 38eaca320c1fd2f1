"""The lesson's claims as written in ``conf/lesson/*.yaml``: sentence, criterion, runs, control.

A claim is measured by **sweeps** (``train.py -m`` overrides, one process per sweep and seed
batch), by **computed** rows (a function of ``depthbench.lesson.computed`` run once per seed,
for measurements that need no training), or by the runs of another claim (``uses``). Beside the
criterion it declares its **negative control**: the same experiment with the claimed cause
removed by one named change, to which the claim's own verdict function is applied; a control
that passes makes the claim inconclusive. ``pilot_seeds`` are the seeds the protocol was chosen
on: the lesson never confirms a claim on them.
"""

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
class Control:
    """The claim's negative control: the one change that removes the claimed cause.

    ``sweeps``: sweep name -> overrides (a sweep) or args (a computed row) that replace the
    claim's own for the control's runs. ``replace``: no runs of its own; the claim's rows where
    ``key == value`` are dropped and the rows where ``key == with`` stand in for them (a plain
    twin judged by the residual net's criterion, for example).
    """

    change: str
    sweeps: dict[str, Any] = field(default_factory=dict)
    replace: dict[str, str] = field(default_factory=dict)


@dataclass
class Claim:
    """One claim: what the lesson says, how it is checked, and the runs that measure it."""

    name: str
    order: int
    title: str
    claim: str
    sources: str
    verdict: str  # a function of depthbench.lesson.verdicts or .demonstrations
    criterion: dict[str, Any]
    profiles: dict[str, dict[str, Any]]  # profile -> {"sweeps": {...}, "compute": {...}}
    control: Control | None = None
    measures: list[dict[str, Any]] = field(default_factory=list)  # [{name, args}] per ok run
    config_keys: list[str] = field(default_factory=list)
    pilot_seeds: list[int] = field(default_factory=list)
    uses: str = ""  # another claim whose runs this one reads (no runs of its own)
    needs_gpu: bool = False
    figure_only: bool = False  # a demonstration drawn, not decided
    cost_s: float = 60.0  # rough seconds of one lane per seed (claim + control): longest first

    def sweeps(self, profile: str) -> dict[str, list[str]]:
        """Sweep name -> the ``train.py -m`` overrides of ``profile``."""
        return self._profile(profile).get("sweeps", {})

    def compute(self, profile: str) -> dict[str, dict[str, Any]]:
        """Sweep name -> ``{"name": function, "args": {...}}`` of ``profile``'s computed rows."""
        return self._profile(profile).get("compute", {})

    def _profile(self, profile: str) -> dict[str, Any]:
        if self.uses:
            return {}
        if profile not in self.profiles:
            raise ConfigError(f"claim {self.name!r} has no profile {profile!r}")
        return self.profiles[profile]


def _flatten(items: list[Any]) -> list[str]:
    """YAML anchors put lists inside lists (``[*common, key=value]``): one flat list of str."""
    out: list[str] = []
    for item in items:
        out += _flatten(item) if isinstance(item, list) else [str(item)]
    return out


def override_key(override: str) -> str:
    """``model.depth`` of ``model.depth=4``, ``+model.depth=4`` or ``~model.depth``."""
    return override.split("=", 1)[0].lstrip("+~")


def merge_overrides(base: list[str], changes: list[str]) -> list[str]:
    """``base`` with each of ``changes`` replacing the override of the same key (or added):
    a control's change, or ``--set``, never leaves two values of one key on a command line."""
    out = list(base)
    for change in changes:
        key = override_key(change)
        at = [i for i, o in enumerate(out) if override_key(o) == key]
        if at:
            out[at[0]] = change
            for i in reversed(at[1:]):
                del out[i]
        else:
            out.append(change)
    return out


def _profiles(raw: dict[str, Any]) -> dict[str, dict[str, Any]]:
    profiles = {}
    for p, spec in (raw.get("profiles") or {}).items():
        profiles[p] = {
            # one value per key: a later override of a key replaces an earlier one (an anchor's
            # common list, then the sweep's own value)
            "sweeps": {
                n: merge_overrides([], _flatten(o)) for n, o in (spec.get("sweeps") or {}).items()
            },
            "compute": dict(spec.get("compute") or {}),
        }
    return profiles


def load_claim(path: Path) -> Claim:
    """Read one ``conf/lesson/<name>.yaml``."""
    raw = yaml.safe_load(path.read_text())
    control = raw.get("control")
    measures = raw.get("measures") or []
    return Claim(
        name=path.stem,
        order=int(raw["order"]),
        title=raw["title"],
        claim=" ".join(raw["claim"].split()),
        sources=raw.get("sources", ""),
        verdict=raw["verdict"],
        criterion=raw["criterion"],
        profiles=_profiles(raw),
        control=Control(
            change=" ".join(str(control["change"]).split()),
            sweeps={
                k: (_flatten(v) if isinstance(v, list) else dict(v))
                for k, v in (control.get("sweeps") or {}).items()
            },
            replace=dict(control.get("replace") or {}),
        )
        if control
        else None,
        measures=[m if isinstance(m, dict) else {"name": m} for m in measures],
        config_keys=list(raw.get("config_keys") or []),
        pilot_seeds=[int(s) for s in raw.get("pilot_seeds") or []],
        uses=str(raw.get("uses") or ""),
        needs_gpu=bool(raw.get("needs_gpu", False)),
        figure_only=bool(raw.get("figure_only", False)),
        cost_s=float(raw.get("cost_s", 60.0)),
    )


def load_claims(only: list[str] | None = None, lesson_dir: Path = LESSON_DIR) -> list[Claim]:
    """Every claim in order, or the ``only`` ones (unknown names: a ConfigError listing them).

    A claim that reads another's runs (``uses``) brings that claim along when it is asked for.
    """
    claims = sorted((load_claim(p) for p in lesson_dir.glob("*.yaml")), key=lambda c: c.order)
    if only:
        names = [c.name for c in claims]
        unknown = [n for n in only if n not in names]
        if unknown:
            raise ConfigError(f"unknown claim {', '.join(unknown)}; allowed: {', '.join(names)}")
        wanted = set(only) | {c.uses for c in claims if c.name in only and c.uses}
        claims = [c for c in claims if c.name in wanted]
    return claims
