"""Runs -> one row each (swept values, status, metrics), swept keys, pivots, markdown tables."""

from __future__ import annotations

import contextlib
import math
from typing import Any

import pandas as pd
import yaml

from depthbench.report.collect import Run

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


def typed(value: str | None) -> Any:
    """An override's text as YAML reads it: ``"8"`` -> 8, ``"true"`` -> True, ``"cnn"`` -> "cnn"."""
    if value is None:
        return None
    try:
        return yaml.safe_load(value)
    except yaml.YAMLError:
        return value


def swept_keys(runs: list[Run]) -> list[str]:
    """Override keys that take more than one value across ``runs``, in first-seen order."""
    keys: dict[str, set[str]] = {}
    for run in runs:
        for k, v in run.overrides.items():
            keys.setdefault(k, set()).add(v)
    return [k for k, values in keys.items() if len(values) > 1]


def fixed_overrides(runs: list[Run]) -> dict[str, str]:
    """Override keys with one value shared by every run."""
    if not runs:
        return {}
    swept = set(swept_keys(runs))
    common = dict(runs[0].overrides)
    return {k: v for k, v in common.items() if k not in swept}


def x_key(keys: list[str]) -> str | None:
    """The swept key to put along the x axis / table columns (depth first), else the last."""
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
    """One row per run: experiment, job, swept values, status, metrics, gradient ratios."""
    rows = []
    for run in runs:
        row: dict[str, Any] = {"experiment": run.experiment, "job": run.path.name}
        row.update({k: typed(run.overrides.get(k)) for k in keys})
        row["status"] = run.status
        row.update({title: run.metric(k) for k, title in METRICS.items()})
        row.update(gradflow_summary(run))
        row["error"] = run.error
        row["run_dir"] = str(run.path)
        rows.append(row)
    return pd.DataFrame(rows)


def fmt(value: Any) -> str:
    """A table cell: 4 significant digits, thousands separators from 1,000 up."""
    if isinstance(value, bool) or value is None:
        return "" if value is None else str(value).lower()
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"  # a diverged run's loss; missing metrics are left out of the tables
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


def pivot(frame: pd.DataFrame, keys: list[str], column: str, metric: str) -> pd.DataFrame:
    """Rows: the other swept keys; columns: ``column``'s values; cells: ``metric`` or 'failed'."""
    rows = [k for k in keys if k != column]
    cells = frame.copy()
    cells[rows] = cells[rows].astype(object).where(cells[rows].notna(), "")  # keep partial rows
    cells["cell"] = [
        fmt(v) if s == "ok" else s for v, s in zip(cells[metric], cells["status"], strict=True)
    ]
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
