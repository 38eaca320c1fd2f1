"""The lesson's claims as written in ``conf/lesson/*.yaml``: sentence, criterion, runs, control,
and the functions that measure and judge them.

A claim is measured by **sweeps** (``train.py -m`` overrides, one process per sweep and seed
batch), by **computed** rows (a function of ``depthbench.lesson.measures_without_runs`` run once
per seed, for measurements that need no training run), or by the runs of another claim
(``uses``). Beside the criterion it declares its **negative control**: the same experiment with
the claimed cause removed by one named change, to which the claim's own verdict function is
applied; a control that passes makes the claim inconclusive. ``pilot_seeds`` are the seeds the
protocol was chosen on: the lesson never confirms a claim on them.

Every function a claim uses is named in its YAML by its full dotted path (``verdict:
depthbench.lesson.verdicts.degradation``, a measure's or a computed sweep's ``function:``), so
a reader or an IDE goes from the YAML to the code; :func:`named_function` is the one place that
turns a path into the function.
"""

from __future__ import annotations

import importlib
import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from depthbench.core import CONF_DIR, override_key, override_value
from depthbench.errors import ConfigError

LESSON_DIR = Path(CONF_DIR) / "lesson"
PROFILES = ("quick", "full")
DOTTED = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)+")  # package.module.function
FORM = "name it by its full dotted path, e.g. depthbench.lesson.verdicts.degradation"


@dataclass
class Control:
    """The claim's negative control: the one change that removes the claimed cause.

    ``sweeps``: sweep name -> overrides (a sweep) or args (a computed row) that replace the
    claim's own for the control's runs. ``replace``: no runs of its own; the claim's rows where
    ``key == value`` are dropped and the rows where ``key == with`` stand in for them (a plain
    twin judged by the residual net's criterion, for example). ``stand_in``: the control's own
    runs stand in for the claim's rows where ``key == value`` (independently seeded copies of
    the other arm, for an A/A comparison). ``seed_offset``: the control's runs use seeds shifted
    by it (never the claim's own runs), and are paired with the claim's seeds after shifting
    back. ``could_pass``: one line on why the control could have passed the claim's verdict.
    """

    change: str
    sweeps: dict[str, Any] = field(default_factory=dict)
    replace: dict[str, str] = field(default_factory=dict)
    stand_in: dict[str, str] = field(default_factory=dict)
    seed_offset: int = 0
    could_pass: str = ""


@dataclass
class Claim:
    """One claim: what the lesson says, how it is checked, and the runs that measure it."""

    name: str
    order: int
    title: str
    claim: str
    sources: str
    verdict: str  # the dotted path of its verdict function (frames, criterion) -> Verdict
    criterion: dict[str, Any]
    profiles: dict[str, dict[str, Any]]  # profile -> {"sweeps": {...}, "compute": {...}}
    control: Control | None = None
    # [{function, args, where}]: each a dotted path (run, **args) -> columns, per ok run
    measures: list[dict[str, Any]] = field(default_factory=list)
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
        """Sweep name -> ``{"function": dotted path, "args": {...}}`` of ``profile``'s computed
        rows."""
        return self._profile(profile).get("compute", {})

    def functions(self) -> dict[str, str]:
        """What each function the claim names does -> its dotted path: the verdict, every
        measure and every computed sweep's function (of each profile)."""
        named = {"verdict": self.verdict}
        for m in self.measures:
            named[f"measure {m['function']}"] = m["function"]
        for profile, spec in self.profiles.items():
            for sweep, job in (spec.get("compute") or {}).items():
                named[f"computed sweep {sweep} ({profile})"] = job["function"]
        return named

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


def _dotted(claim: str, what: str, path: Any) -> str:
    """``path`` when it has the form of a dotted path (nothing imported yet); a ConfigError
    naming the claim otherwise."""
    if not isinstance(path, str) or not DOTTED.fullmatch(path):
        raise ConfigError(f"claim {claim!r} (conf/lesson/{claim}.yaml): its {what} is "
                          f"{path!r}; {FORM}")  # fmt: skip
    return path


def _computed(claim: str, sweep: str, job: Any) -> dict[str, Any]:
    """One computed sweep's ``{function, args}``, its function's path checked."""
    job = dict(job or {})
    job["function"] = _dotted(claim, f"computed sweep {sweep}'s function", job.get("function"))
    return job


def _measure(claim: str, m: Any) -> dict[str, Any]:
    """One measure: a dotted path, or ``{function, args, where}``."""
    m = dict(m) if isinstance(m, dict) else {"function": m}
    m["function"] = _dotted(claim, "measure", m.get("function"))
    return m


def named_function(claim: str, path: str) -> Callable[..., Any]:
    """The function at ``path``, a full dotted path as the claim's YAML names it; a ConfigError
    naming the claim and the path when there is no such module or function."""
    module_name, _, name = path.rpartition(".")
    where = f"claim {claim!r} (conf/lesson/{claim}.yaml) names {path!r}"
    if not module_name:
        raise ConfigError(f"{where}, which is not a dotted path; {FORM}")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name is None or not f"{module_name}.".startswith(f"{e.name}."):
            raise  # the module exists and imports something missing: its own error says what
        raise ConfigError(f"{where}: there is no module {module_name}; {FORM}") from None
    fn = getattr(module, name, None)
    if not callable(fn):
        raise ConfigError(f"{where}: {module_name} has no function {name}; {FORM}")
    return fn


def check_functions(claims: list[Claim]) -> None:
    """Resolve every function the claims name (a ConfigError for the first that is missing),
    before anything runs."""
    for claim in claims:
        for path in claim.functions().values():
            named_function(claim.name, path)


def _profiles(name: str, raw: dict[str, Any]) -> dict[str, dict[str, Any]]:
    profiles = {}
    for p, spec in (raw.get("profiles") or {}).items():
        profiles[p] = {
            # one value per key: a later override of a key replaces an earlier one (an anchor's
            # common list, then the sweep's own value)
            "sweeps": {
                n: merge_overrides([], _flatten(o)) for n, o in (spec.get("sweeps") or {}).items()
            },
            "compute": {
                n: _computed(name, n, job) for n, job in (spec.get("compute") or {}).items()
            },
        }
    return profiles


def load_claim(path: Path) -> Claim:
    """Read one ``conf/lesson/<name>.yaml``."""
    raw = yaml.safe_load(path.read_text())
    name = path.stem
    control = raw.get("control")
    return Claim(
        name=name,
        order=int(raw["order"]),
        title=raw["title"],
        claim=" ".join(raw["claim"].split()),
        sources=raw.get("sources", ""),
        verdict=_dotted(name, "verdict", raw.get("verdict")),
        criterion=raw["criterion"],
        profiles=_profiles(name, raw),
        control=Control(
            change=" ".join(str(control["change"]).split()),
            sweeps={
                k: (_flatten(v) if isinstance(v, list) else dict(v))
                for k, v in (control.get("sweeps") or {}).items()
            },
            replace=dict(control.get("replace") or {}),
            stand_in=dict(control.get("stand_in") or {}),
            seed_offset=int(control.get("seed_offset") or 0),
            could_pass=" ".join(str(control.get("could_pass") or "").split()),
        )
        if control
        else None,
        measures=[_measure(name, m) for m in raw.get("measures") or []],
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


# ---- what a --set may not touch ----------------------------------------------------------------
def is_sweep(value: str) -> bool:
    """Whether an override's value is several values (``2,4,8``, ``range(..)``, ``choice(..)``,
    ``glob(..)``): a comma outside brackets and quotes, or one of Hydra's sweep functions."""
    if value.strip().startswith(("range(", "choice(", "glob(", "interval(", "tag(")):
        return True
    depth, quote = 0, ""
    for ch in value:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "[({":
            depth += 1
        elif ch in "])}":
            depth -= 1
        elif ch == "," and depth == 0:
            return True
    return False


def compared_keys(claim: Claim, source: Claim | None = None) -> dict[str, str]:
    """Every override key whose values the claim's verdict compares -> why, in words: a key set
    differently by two of its sweeps, changed by its control, swapped by a ``replace`` control, or
    given several values in one sweep (a multirun). Read from each profile of ``conf/lesson``
    (the reasons of every profile); ``source``: the claim whose runs this one reads (``uses``)."""
    why: dict[str, dict[str, str]] = {}  # key -> kind of reason -> the first one found

    def add(key: str, reason: str) -> None:
        why.setdefault(key, {}).setdefault(" ".join(reason.split()[:2]), reason)

    for profile in (source or claim).profiles.values():
        sweeps = {
            name: {override_key(o): override_value(o) for o in overrides}
            for name, overrides in (profile.get("sweeps") or {}).items()
        }
        for name, values in sweeps.items():
            for key, value in values.items():
                if value is not None and is_sweep(value):
                    add(key, f"takes several values in sweep {name} ({value})")
        for key in dict.fromkeys(k for values in sweeps.values() for k in values):
            seen = {n: values.get(key, "(default)") for n, values in sweeps.items()}
            if len(set(map(str, seen.values()))) > 1:
                cells = ", ".join(f"{n} {v}" for n, v in seen.items())
                add(key, f"differs between the claim's sweeps ({cells})")
    control = claim.control
    if control is not None:
        for name, change in control.sweeps.items():
            for o in change if isinstance(change, list) else []:
                add(override_key(o), f"is the control's change ({name}: {o})")
        if control.replace:
            key, value, stand_in = (str(control.replace[k]) for k in ("key", "value", "with"))
            add(key, f"the control swaps ({stand_in.lower()} in place of {value.lower()})")
    return {key: " and ".join(reasons.values()) for key, reasons in why.items()}


def collapsed_by(claim: Claim, extra: list[str], source: Claim | None = None) -> str:
    """Why ``--set extra`` leaves the claim's verdict comparing nothing ("" when it does not): an
    override of a key the verdict compares between sweeps or against the control (one value for
    every run, claim and control alike), or a single value for a key swept in a multirun."""
    why = compared_keys(claim, source)
    for o in extra:
        key = override_key(o)
        if key not in why:
            continue
        value = override_value(o)
        swept_only = all(r.startswith("takes several") for r in why[key].split(" and "))
        if swept_only and value is not None and is_sweep(value):
            continue  # still a sweep: other values, but the comparison stands
        return f"--set {o} gives every run one {key}, which {why[key]}"
    return ""


def criteria_state(lesson_dir: Path = LESSON_DIR) -> dict[str, object]:
    """The commit that last touched the criteria (``git log -1 -- conf/lesson``), its date, and
    whether ``conf/lesson/`` differs from it now (uncommitted or untracked criteria): recorded
    beside the runs' commits so that anyone can check that the criteria came first. ``None``
    fields outside a git checkout."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(lesson_dir), *args],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()  # fmt: skip

    try:
        commit, _, date = git("log", "-1", "--format=%H %cI", "--", ".").partition(" ")
        dirty = bool(git("status", "--porcelain", "--", "."))
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "date": None, "dirty": None}
    return {"commit": commit or None, "date": date or None, "dirty": dirty}


def criteria_came_first(criteria_commit: str | None, run_commits: list[str]) -> bool | None:
    """Whether the criteria's commit is an ancestor of (or is) every run's commit: the runs ran
    on code that already held these criteria. None when it cannot be told (no git, no commits)."""
    if not criteria_commit or not run_commits:
        return None
    for run_commit in run_commits:
        done = subprocess.run(
            ["git", "-C", str(LESSON_DIR), "merge-base", "--is-ancestor", criteria_commit,
             run_commit.split()[0]],
            capture_output=True, timeout=10,
        )  # fmt: skip
        if done.returncode not in (0, 1):
            return None
        if done.returncode == 1:
            return False
    return True
