"""The report's figures, chosen by which config keys a sweep varies (Agg backend, PNG)."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import pandas as pd

from depthbench.atomic import atomic_write
from depthbench.plotting import FAMILIES, integer_ticks, pyplot, setting_family
from depthbench.report.collect import Run, setting_value
from depthbench.report.tables import OUTCOMES, aggregate_seeds, setting_keys

# The lesson's bound: sigmoid'(z) <= 1/4, so each plain sigmoid layer can scale the
# back-propagated gradient by at most 0.25 times its weight matrix's norm.
SIGMOID_BOUND = 0.25
DIVERGED_COLOR = "red"


def short(key: str) -> str:
    """``model.activation`` -> ``activation``, ``experiment/arch@arch`` -> ``arch`` (legends)."""
    return key.split("@")[0].replace("/", ".").split(".")[-1]


def label(values: dict[str, object]) -> str:
    return ", ".join(f"{short(k)}={v}" for k, v in values.items()) or "all runs"


def _numeric(values: list[object]) -> bool:
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)


def facet_runs(runs: list[Run], keys: list[str]) -> dict[str, list[Run]]:
    """Runs grouped by their values of ``keys`` (one subplot each), in sweep order."""
    groups: dict[str, list[Run]] = {}
    for run in runs:
        groups.setdefault(label({k: setting_value(run, k) for k in keys}), []).append(run)
    return groups


def figure_grid(n: int, width: float = 4.2, height: float = 3.2):
    """A figure of ``n`` subplots, three to a row: ``(pyplot, figure, axes)``."""
    plt = pyplot()
    cols = min(n, 3)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(cols * width, rows * height), squeeze=False)
    for ax in axes.flat[n:]:
        ax.axis("off")
    return plt, fig, list(axes.flat)


def save_figure(fig, path: Path) -> Path:
    """Lay out, save and close ``fig``; return ``path``."""
    plt = pyplot()
    fig.tight_layout()
    with atomic_write(path, "wb") as f:  # a reader sees the old figure or the new one
        fig.savefig(f, dpi=80, format="png")
    plt.close(fig)
    return path


def mark_diverged(
    ax,
    positions: list,
    *,
    counts: list[str] | None = None,
    color=None,
    row: int = 0,
    horizontal: bool = False,
) -> None:
    """Red crosses at the top of ``ax`` at these x ``positions`` (``horizontal``: at the right
    end, at these y positions), where runs diverged.

    A diverged run has no accuracy or loss to draw: it is an outcome, not a value. ``counts``
    (``"2/3"``) are written beside the crosses in the series' ``color``; ``row`` staggers the
    crosses of several series so none hides another. The first cross of an axis carries the
    legend entry "diverged".
    """
    if not len(positions):
        return
    at = max(0.96 - 0.05 * row, 0.5)  # axes fraction: the top of the axis, whatever its scale
    first = not any(line.get_label() == "diverged" for line in ax.get_lines())
    style = {"color": DIVERGED_COLOR, "ms": 7, "mew": 2, "clip_on": False, "zorder": 5}
    style["label"] = "diverged" if first else "_nolegend_"
    if horizontal:
        ax.plot([at] * len(positions), positions, "x", transform=ax.get_yaxis_transform(), **style)
        return
    where = ax.get_xaxis_transform()  # x in data, y in axes fraction
    ax.plot(positions, [at] * len(positions), "x", transform=where, **style)
    for x, text in zip(positions, counts or [], strict=False):
        ax.annotate(text, (x, at), xycoords=where, xytext=(5, -3), textcoords="offset points",
                    fontsize=6, color=color)  # fmt: skip


def _series(frame: pd.DataFrame, keys: list[str], xk: str) -> list[tuple[str, pd.DataFrame, str]]:
    """(legend name, that series' runs, its colour) for each setting of the keys other than
    ``xk``: the family's colour (``plotting.FAMILIES``, as in the lesson's figures) when every
    series names a family of its own, else matplotlib's colour cycle."""
    others = [k for k in setting_keys(keys) if k != xk]
    groups = frame.groupby(others, sort=False, dropna=False) if others else [((), frame)]
    out, families = [], []
    for values, d in groups:
        values = values if isinstance(values, tuple) else (values,)
        setting = dict(zip(others, values, strict=True))
        out.append((label(setting), d))
        families.append(setting_family(setting))
    if None not in families and len(set(families)) == len(families):
        colours = [FAMILIES[f] for f in families]
    else:
        cycle = pyplot().rcParams["axes.prop_cycle"].by_key()["color"]
        colours = [c for c, _ in zip(itertools.cycle(cycle), out, strict=False)]
    return [(name, d, c) for (name, d), c in zip(out, colours, strict=True)]


def _along(d: pd.DataFrame, xk: str, metric: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The seeds of one series along ``xk``: (points with a mean, points with diverged runs)."""
    agg = aggregate_seeds(d, [xk], metric)
    agg = agg[agg[xk].notna()].sort_values(xk)
    return agg[agg.n > 0], agg[agg.n_diverged > 0]


def _counts(agg: pd.DataFrame) -> list[str]:
    total = agg.n + agg.n_diverged + agg.n_failed
    return [f"{d}/{t}" for d, t in zip(agg.n_diverged, total, strict=True)]


def metrics_vs_x(frame: pd.DataFrame, keys: list[str], xk: str, path: Path) -> Path | None:
    """Error and loss against ``xk`` (depth): test solid with error bars, train dashed with bands.

    Each point is the mean over the seeds that finished ok, the bar or band their standard
    deviation; diverged runs are red crosses at the top of both panels.
    """
    drawn = frame[frame.status.isin(OUTCOMES)]
    if drawn.empty:
        return None
    plt = pyplot()
    if not _numeric(list(drawn[xk].dropna())):
        return _bars(drawn, keys, xk, path)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    panels = ((ax1, "test acc", "train acc", True), (ax2, "test loss", "train loss", False))
    for row, (name, d, c) in enumerate(_series(drawn, keys, xk)):
        for ax, test, train, as_error in panels:
            points, diverged = _along(d, xk, test)
            y = 1 - points["mean"] if as_error else points["mean"]
            ax.errorbar(points[xk], y, yerr=points["std"].fillna(0.0), fmt="-o", ms=3,
                        capsize=2, color=c, label=f"{name} (test)")  # fmt: skip
            points, _ = _along(d, xk, train)
            y = 1 - points["mean"] if as_error else points["mean"]
            spread = points["std"].fillna(0.0)
            ax.plot(points[xk], y, "--", color=c, alpha=0.7)
            ax.fill_between(points[xk], y - spread, y + spread, color=c, alpha=0.15, lw=0)
            mark_diverged(ax, list(diverged[xk]), counts=_counts(diverged), color=c, row=row)
    log_x = drawn[xk].min() > 0 and drawn[xk].max() / drawn[xk].min() >= 8
    for ax, title in ((ax1, "error (1 - accuracy)"), (ax2, "loss")):
        if log_x:
            ax.set_xscale("log", base=2)
        ax.set(xlabel=short(xk), title=f"{title}: test solid, train dashed (mean ± std)")
        ax.grid(alpha=0.3)
    ax1.legend(fontsize=7)
    return save_figure(fig, path)


def _bars(drawn: pd.DataFrame, keys: list[str], xk: str, path: Path) -> Path:
    """Non-numeric sweeps (model x data, accelerator): test accuracy and throughput per setting.

    Bars are the mean over seeds, whiskers their standard deviation; a setting with diverged
    runs carries a red cross at the right end.
    """
    plt = pyplot()
    settings = setting_keys(keys)
    acc = aggregate_seeds(drawn, settings, "test acc")
    speed = aggregate_seeds(drawn, settings, "samples/s")
    names = [
        f"{label({k: row[k] for k in settings})} (n={row.n}"
        + (f", {row.n_diverged} diverged)" if row.n_diverged else ")")
        for _, row in acc.iterrows()
    ]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 0.5 * len(names) + 1.5))
    for ax, agg in ((ax1, acc), (ax2, speed)):
        ax.barh(names, agg["mean"].fillna(0.0), xerr=agg["std"].fillna(0.0), capsize=2)
        diverged = [name for name, d in zip(names, agg.n_diverged, strict=True) if d]
        mark_diverged(ax, diverged, horizontal=True)
    ax1.set(xlabel="test accuracy", xlim=(0, 1))
    ax2.set(xlabel="training samples / s")
    for ax in (ax1, ax2):
        ax.invert_yaxis()
        ax.grid(alpha=0.3, axis="x")
    ax2.set_yticklabels([])
    if acc.n_diverged.any():
        ax1.legend(fontsize=7, loc="lower right")
    return save_figure(fig, path)


def mean_curve(curves: list[pd.Series]) -> tuple[pd.Series, pd.Series]:
    """Mean and standard deviation (0 for one curve) of curves indexed by step or layer."""
    table = pd.concat(curves, axis=1)
    return table.mean(axis=1), table.std(axis=1, ddof=1).fillna(0.0)


def runs_by_x(group: list[Run], xk: str | None) -> dict[str, list[Run]]:
    """The runs of one facet by their ``xk`` value: the seeds of each line."""
    lines: dict[str, list[Run]] = {}
    for run in group:
        lines.setdefault(f"{short(xk)}={setting_value(run, xk)}" if xk else "all", []).append(run)
    return lines


def gradflow_at_init(runs: list[Run], keys: list[str], xk: str | None, path: Path) -> Path | None:
    """Gradient norm against layer at step 0: a subplot per setting, a line per ``xk``.

    Each line is the mean over seeds with a ± std band. Measured before the first update, so
    runs that later diverged are in it too.
    """
    runs = [r for r in runs if r.file("gradflow.csv")]
    if not runs:
        return None
    facets = facet_runs(runs, [k for k in setting_keys(keys) if k != xk])
    plt, fig, axes = figure_grid(len(facets))
    cmap = plt.get_cmap("viridis")
    for ax, (name, group) in zip(axes, facets.items(), strict=False):
        lines = runs_by_x(group, xk)
        for i, (tag, seeds) in enumerate(lines.items()):
            curves = []
            for run in seeds:
                df = pd.read_csv(run.file("gradflow.csv"))
                d = df[df.step == df.step.min()]
                curves.append(d.groupby("index").grad_norm.first())
            mean, spread = mean_curve(curves)
            color = cmap(i / max(len(lines) - 1, 1))
            tag = f"{tag} (n={len(seeds)})" if len(seeds) > 1 else tag
            ax.plot(mean.index, mean.clip(lower=1e-30), color=color, lw=1, label=tag)
            if len(seeds) > 1:
                low, high = (mean - spread).clip(lower=1e-30), (mean + spread).clip(lower=1e-30)
                ax.fill_between(mean.index, low, high, color=color, alpha=0.2, lw=0)
        ax.set(yscale="log", title=name, xlabel="layer (0 = input side)", ylabel="grad norm")
        integer_ticks(ax)
        ax.grid(alpha=0.3)
        if len(lines) <= 10:
            ax.legend(fontsize=6)
    fig.suptitle("gradient norm per layer at initialisation (step 0), mean ± std", fontsize=10)
    return save_figure(fig, path)


def grad_ratio_vs_depth(frame: pd.DataFrame, keys: list[str], xk: str, path: Path) -> Path | None:
    """First/last-layer gradient ratio against depth at init (solid) and end (dotted) vs 0.25^d.

    Means over the seeds that finished ok, with their standard deviation; diverged runs are
    red crosses at the top.
    """
    col, end = "grad first/last (init)", "grad first/last (end)"
    if col not in frame or not _numeric(list(frame[xk].dropna())):
        return None
    # a ratio of exactly 0 is a float32 underflow: left out of the log plot
    measured = frame.assign(**{k: frame[k].where(frame[k] > 0) for k in (col, end)})
    ok = measured[(measured.status == "ok") & measured[col].notna()]
    if ok.empty:
        return None
    drawn = measured[(measured.status == "diverged") | measured.index.isin(ok.index)]
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    for row, (name, d, c) in enumerate(_series(drawn, keys, xk)):
        points, diverged = _along(d, xk, col)
        ax.errorbar(points[xk], points["mean"], yerr=points["std"].fillna(0.0), fmt="-o", ms=3,
                    capsize=2, color=c, label=name)  # fmt: skip
        points, _ = _along(d, xk, end)
        ax.plot(points[xk], points["mean"], ":", color=c, alpha=0.8)
        mark_diverged(ax, list(diverged[xk]), counts=_counts(diverged), color=c, row=row)
    depths = sorted(ok[xk].unique())
    ax.plot(depths, [SIGMOID_BOUND**d for d in depths], "k--", lw=1, label="0.25^depth")
    ax.set(xscale="log", yscale="log", xlabel=short(xk), ylabel="|grad first layer| / |grad last|",
           title="gradient ratio at init (solid) and end of training (dotted)")  # fmt: skip
    ax.set_xscale("log", base=2)
    ax.set_ylim(bottom=max(ax.get_ylim()[0], 1e-40))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6, ncol=2)
    return save_figure(fig, path)
