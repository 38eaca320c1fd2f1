"""Runs -> one row each (swept values, status, metrics), swept keys, pivots, markdown tables.

``seed`` is a sweep axis like any other, but it is never a row or a column: runs that differ
only by their seed are one setting, and every table cell is that setting's mean ± sample
standard deviation over the runs that finished ``ok`` (``0.912 ± 0.004 (n=3)``, ``0.912 (n=1)``).
Diverged and failed runs are their own outcome, counted beside the mean and never averaged
into it (``diverged at step 37``, ``0.91 ± 0.01 (n=2), 1 diverged``).
"""

from __future__ import annotations

import contextlib
import math
from typing import Any

import pandas as pd
import yaml

from depthbench.report.collect import Run, config_value, setting_value

# metrics.json keys shown in the tables, with their column titles
METRICS = {
    "train/acc": "train acc",
    "test/acc": "test acc",
    "train/loss": "train loss",
    "test/loss": "test loss",
    "params": "params",
    "fit_seconds": "fit s",
    "train_samples_per_second": "samples/s",
}
# the swept key drawn along the x axis / table columns, by preference
X_PREFERENCE = ("depth", "train_size", "samples_per_class", "accelerator")
# the key whose values are repetitions of one setting, not settings (train.yaml's ``seed``)
SEED_KEY = "seed"
# the outcomes a run can have besides "ok" and "diverged" (anything else counts as failed)
OUTCOMES = ("ok", "diverged")


def typed(value: str | None) -> Any:
    """An override's text as YAML reads it: ``"8"`` -> 8, ``"true"`` -> True, ``"cnn"`` -> "cnn";
    a list or mapping (``"[blocks]"``) stays its text, so a setting is always a table key."""
    if value is None:
        return None
    try:
        read = yaml.safe_load(value)
    except yaml.YAMLError:
        return value
    return value if isinstance(read, (list, dict)) else read


def swept_keys(runs: list[Run]) -> list[str]:
    """Override keys that take more than one value across ``runs``, in first-seen order; a run
    without the override has its default (``setting_value``), so runs of several sweeps (one
    with ``data=mnist1d``, one without) show the key."""
    keys = dict.fromkeys(k for run in runs for k in run.overrides)
    return [k for k in keys if len({setting_value(run, k) for run in runs}) > 1]


def fixed_overrides(runs: list[Run]) -> dict[str, str]:
    """Override keys with one value shared by every run."""
    if not runs:
        return {}
    swept = set(swept_keys(runs))
    common = dict(runs[0].overrides)
    return {k: v for k, v in common.items() if k not in swept}


def setting_keys(keys: list[str]) -> list[str]:
    """``keys`` without the seed: the keys whose values make a setting (a row or a column)."""
    return [k for k in keys if k != SEED_KEY]


def x_key(keys: list[str]) -> str | None:
    """The swept key to put along the x axis / table columns (depth first), else the last."""
    keys = setting_keys(keys)
    for name in X_PREFERENCE:
        for k in keys:
            if k.split(".")[-1] == name or k == name:
                return k
    return keys[-1] if keys else None


def gradflow_summary(run: Run) -> dict[str, float]:
    """First-layer / last-layer gradient norm ratio at step 0 and at the last logged step."""
    path = run.file("gradflow.csv")
    if path is None:
        return {}
    df = pd.read_csv(path)
    if df.empty:
        return {}
    out = {}
    for label, step in (("init", df.step.min()), ("end", df.step.max())):
        d = df[df.step == step].sort_values("index")
        first, last = float(d.grad_norm.iloc[0]), float(d.grad_norm.iloc[-1])
        out[f"grad first/last ({label})"] = first / last if last > 0 else math.nan
    d0 = df[df.step == df.step.min()].sort_values("index")
    out["grad first (init)"] = float(d0.grad_norm.iloc[0])
    return out


def runs_frame(runs: list[Run], keys: list[str]) -> pd.DataFrame:
    """One row per run: experiment, job, swept values, seed, status, metrics, gradient ratios."""
    rows = []
    for run in runs:
        row: dict[str, Any] = {"experiment": run.experiment, "job": run.path.name}
        row.update({k: typed(setting_value(run, k)) for k in keys})
        seed = run.overrides.get(SEED_KEY)
        row[SEED_KEY] = typed(seed) if seed is not None else config_value(run, SEED_KEY)
        row["status"] = run.status
        row["diverged_at_step"] = run.diverged_at_step
        row.update({title: run.metric(k) for k, title in METRICS.items()})
        row.update(gradflow_summary(run))
        row["error"] = run.error
        row["run_dir"] = str(run.path)
        rows.append(row)
    frame = pd.DataFrame(rows)
    if not frame.empty:  # whole steps, blank where the run did not diverge (also in the CSV)
        frame["diverged_at_step"] = frame["diverged_at_step"].astype("Int64")
    return frame


def fmt(value: Any) -> str:
    """A table cell: 4 significant digits, thousands separators from 1,000 up to 10 million."""
    if value is None or value is pd.NA:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"  # a diverged run's loss; missing metrics are left out of the tables
        if abs(value) >= 1e7 and not math.isinf(value):
            return f"{value:.4g}"  # 1.68e+23, not a row of 24 digits
        if abs(value) >= 1000 and not math.isinf(value):
            return f"{value:,.0f}"
        return f"{value:.4g}"
    return str(value).replace("|", "\\|")


def markdown_table(df: pd.DataFrame, index: bool = False) -> str:
    """A GitHub markdown table of ``df``."""
    if index:
        df = df.reset_index()
    header = "| " + " | ".join(str(c) for c in df.columns) + " |"
    rule = "|" + "|".join("---" for _ in df.columns) + "|"
    body = ["| " + " | ".join(fmt(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join([header, rule, *body])


def _hashable(value: Any) -> Any:
    """A key value usable as a group label (a list override such as ``[8,16]`` becomes text)."""
    try:
        hash(value)
    except TypeError:
        return str(value)
    return value


def aggregate_seeds(frame: pd.DataFrame, keys: list[str], metric: str) -> pd.DataFrame:
    """One row per setting (the values of ``keys`` but the seed): ``metric`` over its seeds.

    ``frame`` has one row per run, with the ``keys``, a ``status`` column ("ok", "diverged",
    anything else is failed), ``metric`` and, optionally, ``diverged_at_step``. Returns the
    non-seed keys, then ``mean`` and ``std`` (sample standard deviation, ddof=1; NaN for n=1)
    of ``metric`` over the ok runs that have it, ``n`` (those ok runs), ``n_diverged``,
    ``n_failed`` and ``diverged_at_steps`` (the recorded steps of the diverged runs, sorted).
    Settings keep their first-seen order; a missing key value stays NaN.
    """
    keys = setting_keys(keys)
    cells = frame.copy()
    for k in keys:
        cells[k] = cells[k].map(_hashable)
    groups = cells.groupby(keys, sort=False, dropna=False) if keys else [((), cells)]
    rows = []
    for values, group in groups:
        values = values if isinstance(values, tuple) else (values,)
        status = group["status"]
        ok = pd.to_numeric(group.loc[status == "ok", metric], errors="coerce").dropna()
        steps = group.loc[status == "diverged"].get("diverged_at_step", pd.Series(dtype=float))
        rows.append(
            {
                **dict(zip(keys, values, strict=True)),
                "mean": float(ok.mean()) if len(ok) else math.nan,
                "std": float(ok.std(ddof=1)) if len(ok) > 1 else math.nan,
                "n": len(ok),
                "n_diverged": int((status == "diverged").sum()),
                "n_failed": int((~status.isin(OUTCOMES)).sum()),
                "diverged_at_steps": sorted(int(s) for s in steps.dropna()),
            }
        )
    columns = [*keys, "mean", "std", "n", "n_diverged", "n_failed", "diverged_at_steps"]
    return pd.DataFrame(rows, columns=columns)


def fmt_std(value: float) -> str:
    """A standard deviation: two significant digits (``0.0041``), whole numbers from 100 up."""
    if not math.isfinite(value):
        return fmt(value)
    return fmt(value) if abs(value) >= 100 else f"{value:.2g}"


def _diverged_text(n_diverged: int, total: int, steps: list[int]) -> str:
    if n_diverged == 1 and total == 1:
        return f"diverged at step {steps[0]}" if steps else "diverged"
    where = ""
    if steps:
        where = f", step {steps[0]}" if steps[0] == steps[-1] else f", steps {steps[0]}-{steps[-1]}"
    return f"diverged ({n_diverged}/{total}{where})"


def seed_cell(
    mean: float,
    std: float,
    n: int,
    n_diverged: int = 0,
    n_failed: int = 0,
    diverged_at_steps: list[int] | tuple[int, ...] = (),
) -> str:
    """A table cell for one setting, from one row of :func:`aggregate_seeds`.

    ``0.912 ± 0.0041 (n=3)``; ``0.912 (n=1)``; ``0.91 ± 0.01 (n=2), 1 diverged``;
    ``diverged at step 37``; ``diverged (3/3, steps 12-40)``; ``failed``; ``n/a`` (ok runs
    without this metric).
    """
    steps = sorted(diverged_at_steps)
    total = n + n_diverged + n_failed
    parts = []
    if n:
        spread = f" ± {fmt_std(std)}" if n > 1 else ""
        parts.append(f"{fmt(float(mean))}{spread} (n={n})")
    if n_diverged:
        parts.append(f"{n_diverged} diverged" if n else _diverged_text(n_diverged, total, steps))
    if n_failed:
        alone = not parts
        parts.append(("failed" if total == 1 else f"failed ({n_failed}/{total})") if alone
                     else f"{n_failed} failed")  # fmt: skip
    return ", ".join(parts) or "n/a"


def seed_cells(agg: pd.DataFrame) -> list[str]:
    """:func:`seed_cell` of every row of an :func:`aggregate_seeds` frame."""
    columns = ["mean", "std", "n", "n_diverged", "n_failed", "diverged_at_steps"]
    return [seed_cell(*row) for row in agg[columns].itertuples(index=False)]


def seeds_per_setting(frame: pd.DataFrame, keys: list[str]) -> tuple[int, int]:
    """The fewest and most runs (any outcome) that share one setting of the non-seed ``keys``."""
    agg = aggregate_seeds(frame.assign(_run=1.0), keys, "_run")
    runs = agg.n + agg.n_diverged + agg.n_failed
    return (int(runs.min()), int(runs.max())) if len(runs) else (0, 0)


def _blank_missing(table: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    table = table.copy()
    table[keys] = table[keys].astype(object).where(table[keys].notna(), "")  # keep partial rows
    return table


def pivot(frame: pd.DataFrame, keys: list[str], column: str, metric: str) -> pd.DataFrame:
    """Rows: the other swept keys; columns: ``column``'s values; cells: :func:`seed_cell`.

    The seed is neither a row nor a column: each cell aggregates the runs of one setting.
    """
    keys = setting_keys(keys)
    rows = [k for k in keys if k != column]
    cells = aggregate_seeds(frame, keys, metric)
    cells["cell"] = seed_cells(cells)
    cells = _blank_missing(cells, rows)
    if not rows:
        cells["run"] = "all"
        rows = ["run"]
    table = cells.pivot_table(
        index=rows, columns=column, values="cell", aggfunc="first", sort=False
    )
    with contextlib.suppress(TypeError):  # numeric order: 2, 4, 8, 16 rather than 16, 2, 4, 8
        table = table.reindex(columns=sorted(table.columns))
    table.columns = [f"{column}={c}" for c in table.columns]
    return table.fillna("")


def seed_summary(frame: pd.DataFrame, keys: list[str], metrics: list[str]) -> pd.DataFrame:
    """Rows: the settings of the non-seed ``keys`` (one row "all" without any); columns: metrics.

    The table of a sweep with no axis to pivot on (only seeds, or a single run).
    """
    keys = setting_keys(keys)
    table = None
    for metric in metrics:
        agg = aggregate_seeds(frame, keys, metric)
        if table is None:
            table = _blank_missing(agg[keys], keys) if keys else pd.DataFrame({"run": ["all"]})
        table[metric] = seed_cells(agg)
    return pd.DataFrame() if table is None else table
