"""The helpers every verdict function uses: mean ± std over seeds per setting, a threshold that
must hold in every seed (``seed_check``), a paired test over seeds (``paired_check``), and the
rows, series and table cells a verdict shows."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from depthbench.lesson.verdict_types import Check, Series
from depthbench.report.tables import aggregate_seeds, seed_cell


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
    """The first row of ``agg`` whose columns equal ``where`` (case-blind); KeyError if none."""
    mask = np.ones(len(agg), dtype=bool)
    for k, v in where.items():
        mask &= agg[k].astype(str).str.lower().to_numpy() == str(v).lower()
    rows = agg[mask]
    if rows.empty:
        raise KeyError(f"no runs with {where}")
    return rows.iloc[0]


def series_of(agg: pd.DataFrame, xkey: str, label: str, frame: pd.DataFrame) -> Series:
    """A figure's line of ``agg`` (``stats``) over ``xkey``, with the runs of ``frame`` that
    diverged marked."""
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
    """``value`` to ``digits`` significant digits, "n/a" when missing or not finite."""
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.{digits}g}"


def per_seed(frame: pd.DataFrame, key: str, value: Any, metric: str) -> dict[Any, float]:
    """seed -> metric of the ok runs with ``key == value`` (diverged runs: NaN)."""
    rows = frame[frame[key].astype(str).str.lower() == str(value).lower()]
    return {
        s: (float(m) if st == "ok" else math.nan)
        for s, m, st in zip(rows["seed"], rows[metric], rows["status"], strict=True)
    }


def table_of(agg: pd.DataFrame, keys: list[str], title: str) -> pd.DataFrame:
    """The ``keys`` columns of ``agg`` and its mean ± std cells, titled ``title``."""
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
