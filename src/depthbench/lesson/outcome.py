"""What a claim's check returns: the verdict, its checks, its table and its figure, plus the
helpers every verdict function uses (mean ± std over seeds, one row per setting)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from depthbench.report.tables import aggregate_seeds, seed_cell

if TYPE_CHECKING:  # claims reads its YAML; a result only names its claim
    from depthbench.lesson.claims import Claim

CONFIRMED, NOT_CONFIRMED = "confirmed", "not confirmed"
# a claim whose own verdict passes but whose negative control passes too (or was not measured,
# or that ran on its pilot seeds): the evidence cannot tell the effect from its absence
INCONCLUSIVE = "inconclusive"
# the runs the verdict needs are missing (a sweep collapsed by --set, a run that never finished)
UNDECIDED = "undecided"
NOT_MEASURED = "not measured here"  # needs hardware this machine lacks (a GPU)


@dataclass
class Check:
    """One part of a criterion: what is required, what was measured, whether it holds."""

    requirement: str
    measured: str
    passed: bool | None  # None: could not be measured


@dataclass
class Series:
    """One line of a claim's figure: mean ± std over seeds at each x, and where runs diverged."""

    label: str
    x: list[float]
    mean: list[float]
    std: list[float]
    diverged_x: list[float] = field(default_factory=list)
    panel: str = ""  # series with the same panel share one subplot
    # its colour: a family of depthbench.plotting.FAMILIES ("plain", "residual", "batchnorm",
    # "relu", "sigmoid", "pretrained", "scratch", "raw pixels", ...); None: read from the label
    family: str | None = None
    control: bool = False  # an arm of the negative control: dashed line, hatched bar


@dataclass
class Figure:
    """What to draw for a claim (``depthbench.lesson.figures`` draws it)."""

    xlabel: str
    ylabel: str
    series: list[Series]
    logx: bool = False
    logy: bool = False
    categorical: bool = False  # x values are labels (bar chart)
    xticks: list[str] = field(default_factory=list)
    hlines: list[tuple[float, str]] = field(default_factory=list)  # criterion thresholds
    title: str = ""  # the figure's title; "" : the claim's title, which the page passes
    # one y scale for every panel; None: shared unless the panels plot different quantities
    # (their own labels in panel_labels differ)
    sharey: bool | None = None
    # ticks on whole numbers only (layers, depths, blocks); None: when every x is whole
    integer_x: bool | None = None
    # panel -> (xlabel, ylabel) where a panel plots another quantity than xlabel / ylabel
    panel_labels: dict[str, tuple[str, str]] = field(default_factory=dict)


@dataclass
class Verdict:
    """The outcome of one claim."""

    outcome: str  # CONFIRMED | NOT_CONFIRMED | NOT_MEASURED
    summary: str  # one sentence: what was seen
    checks: list[Check] = field(default_factory=list)
    table: pd.DataFrame | None = None  # the measured numbers, one row per setting
    figure: Figure | None = None

    @classmethod
    def from_checks(
        cls, checks: list[Check], summary: str, table=None, figure=None, missing=UNDECIDED
    ) -> Verdict:
        """Confirmed when every check passed; ``missing`` (undecided, or not measured here for
        hardware this machine lacks) when any check could not be measured."""
        if any(c.passed is None for c in checks):
            outcome = missing
        elif all(c.passed for c in checks):
            outcome = CONFIRMED
        else:
            outcome = NOT_CONFIRMED
        return cls(outcome, summary, checks, table, figure)


# ---- helpers ---------------------------------------------------------------------------------
def stats(frame: pd.DataFrame, by: list[str], metric: str) -> pd.DataFrame:
    """Mean/std/n of ``metric`` over seeds per setting of ``by`` (diverged runs counted apart),
    with a ``cell`` column ready for a table."""
    agg = aggregate_seeds(frame, [*by, "seed"], metric)
    agg["cell"] = [
        seed_cell(r.mean, r.std, r.n, r.n_diverged, r.n_failed, r.diverged_at_steps)
        for r in agg.itertuples(index=False)
    ]
    return agg


def row_of(agg: pd.DataFrame, **where: Any) -> pd.Series:
    mask = np.ones(len(agg), dtype=bool)
    for k, v in where.items():
        mask &= agg[k].astype(str).str.lower().to_numpy() == str(v).lower()
    rows = agg[mask]
    if rows.empty:
        raise KeyError(f"no runs with {where}")
    return rows.iloc[0]


def series_of(agg: pd.DataFrame, xkey: str, label: str, frame: pd.DataFrame) -> Series:
    agg = agg.sort_values(xkey)
    div = frame.loc[frame.status == "diverged", xkey].astype(float).tolist()
    return Series(
        label,
        agg[xkey].astype(float).tolist(),
        agg["mean"].tolist(),
        agg["std"].fillna(0.0).tolist(),
        div,
    )


def fmt_num(value: float, digits: int = 3) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.{digits}g}"


def per_seed(frame: pd.DataFrame, key: str, value: Any, metric: str) -> dict[Any, float]:
    """seed -> metric of the ok runs with ``key == value`` (diverged runs: NaN)."""
    rows = frame[frame[key].astype(str).str.lower() == str(value).lower()]
    return {
        s: (float(m) if st == "ok" else math.nan)
        for s, m, st in zip(rows["seed"], rows[metric], rows["status"], strict=True)
    }


def table_of(agg: pd.DataFrame, keys: list[str], title: str) -> pd.DataFrame:
    return agg[[*keys, "cell"]].rename(columns={"cell": title})


def seed_check(
    requirement: str,
    values: Mapping[Any, float],
    threshold: float,
    *,
    at_most: bool = False,
    n_runs: int | None = None,
    nan_passes: bool = False,
) -> Check:
    """A threshold that holds in every seed, never only on the mean: ``values`` maps each seed to
    its deciding number (NaN: the run diverged). Passes when every seed is ``>= threshold`` (or
    ``<=`` with ``at_most``) and no seed is missing (``n_runs``: the runs there should be). The
    measured cell lists each seed's number, the worst seed's margin and the mean's distance from
    the threshold in seed standard deviations."""
    seeds = sorted(values)
    v = np.array([float(values[s]) for s in seeds], dtype=float)
    finite = v[np.isfinite(v)]
    sign = -1.0 if at_most else 1.0
    # a tolerance for float rounding: 0.7 - 0.68 sits on a 0.02 threshold, not below it
    ok_each = [(nan_passes if not math.isfinite(x) else sign * (x - threshold) >= -1e-9) for x in v]
    passed = bool(len(v)) and all(ok_each) and (n_runs is None or len(v) >= n_runs)
    cells = ", ".join("diverged" if not math.isfinite(x) else f"{x + 0.0:.3g}" for x in v)
    tail = ""
    if len(finite):
        worst = finite.min() if not at_most else finite.max()
        margin = sign * (worst - threshold) + 0.0
        tail = f"; worst {worst + 0.0:.3g} (margin {margin:+.3g})"
        sd = finite.std(ddof=1) if len(finite) > 1 else math.nan
        if math.isfinite(sd) and sd > 0:
            tail += f", mean {sign * (finite.mean() - threshold) / sd:+.1f} seed-sd from it"
    missing = "" if n_runs is None or len(v) >= n_runs else f"; {n_runs - len(v)} run(s) missing"
    return Check(requirement, f"per seed {cells}{tail}{missing}", passed)


def paired_check(
    requirement: str,
    diffs: Mapping[Any, float],
    margin: float,
    alpha: float,
    *,
    n_runs: int | None = None,
) -> Check:
    """A test over seeds instead of a threshold in every seed: the per-seed differences
    ``diffs`` (claim arm minus the arm it must beat, same seed) have a mean of at least
    ``margin`` and a one-sided t-test of mean > 0 gives p < ``alpha``. On results without the
    effect (differences centred on 0) the rule passes at most ``alpha`` of the time."""
    from scipy import stats as st

    seeds = sorted(diffs)
    v = np.array([float(diffs[s]) for s in seeds], dtype=float)
    finite = v[np.isfinite(v)]
    p = math.nan
    if len(finite) >= 2 and finite.std(ddof=1) > 0:
        p = float(st.ttest_1samp(finite, 0.0, alternative="greater").pvalue)
    elif len(finite) >= 2:  # every seed the same difference: certain in its sign
        p = 0.0 if finite[0] > 0 else 1.0
    mean = float(finite.mean()) if len(finite) else math.nan
    passed = (
        len(finite) == len(v)
        and (n_runs is None or len(v) >= n_runs)
        and math.isfinite(p)
        and p < alpha
        and mean >= margin - 1e-9
    )
    cells = ", ".join("diverged" if not math.isfinite(x) else f"{x + 0.0:+.3g}" for x in v)
    missing = "" if n_runs is None or len(v) >= n_runs else f"; {n_runs - len(v)} run(s) missing"
    return Check(
        requirement,
        f"per seed {cells}; mean {mean + 0.0:+.3g} (margin {mean - margin + 0.0:+.3g}), "
        f"one-sided p = {p:.2g}{missing}",
        bool(passed),
    )


@dataclass
class ClaimResult:
    """A claim with its verdict and the runs behind it."""

    claim: Claim
    verdict: Verdict
    runs_dir: Path | None = None
    outcomes: dict[str, int] = field(default_factory=dict)  # status -> number of runs
    bad_runs: list[str] = field(default_factory=list)  # "job (overrides): diverged at step N"
    seconds: float | None = None  # wall time of the claim's sweeps
    report: Path | None = None  # the full report of the claim's runs (depthbench report)
    control: Verdict | None = None  # the claim's verdict function on its negative control
    seeds: list[int] = field(default_factory=list)  # the seeds of the claim's runs
    control_seeds: list[int] = field(default_factory=list)  # its control's (shifted: their own)
    frames: dict[str, pd.DataFrame] = field(default_factory=dict)  # the deciding rows
    control_frames: dict[str, pd.DataFrame] = field(default_factory=dict)
    commits: list[str] = field(default_factory=list)  # the commits the runs ran on (dirty flag)
    sets: list[list[str]] = field(default_factory=list)  # the --set lists its processes ran with
    failed: list[str] = field(default_factory=list)  # one line per process of it that failed
    together: int = 0  # how many of its runs trained with their seeds together (seeds_together)
