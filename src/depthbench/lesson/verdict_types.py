"""What deciding a claim gives: the outcomes, a :class:`Verdict` (its checks, table and figure),
and a :class:`ClaimResult` (a claim with its verdict, its control's and the runs behind them).

``verdict_helpers`` has the functions every verdict function uses to build one."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

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
        cls,
        checks: list[Check],
        summary: str,
        table: pd.DataFrame | None = None,
        figure: Figure | None = None,
        missing: str = UNDECIDED,
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


@dataclass(frozen=True)
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
