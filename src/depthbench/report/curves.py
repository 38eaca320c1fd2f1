"""The report's training-curves figure: training loss against step, per setting and seed.

The CSV logger writes the step loss every ``trainer.log_every_n_steps`` (50) steps, so a run of
fewer steps has one point or none; such a run is drawn from its per-epoch losses instead
(``train/loss_epoch``, one point per epoch), and short curves get markers so that a curve of
two points is still seen.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from depthbench.core import layout
from depthbench.plotting import integer_ticks
from depthbench.report.collect import Run
from depthbench.report.figures import (
    facet_runs,
    figure_grid,
    mark_diverged,
    mean_curve,
    runs_by_x,
    save_figure,
)
from depthbench.report.tables import setting_keys

STEP_LOSS, EPOCH_LOSS = "train/loss_step", "train/loss_epoch"
MIN_STEP_POINTS = 5  # fewer logged step losses than this: the per-epoch losses are drawn
MARKERS_BELOW = 25  # points per curve: fewer get a marker on every point


def loss_curve(metrics_csv: Path) -> tuple[pd.Series, str] | None:
    """A run's training loss indexed by step, and which column it is (``STEP_LOSS`` or
    ``EPOCH_LOSS``): the step losses when there are at least ``MIN_STEP_POINTS``, else whichever
    of the two has more points; None when the file has neither."""
    df = pd.read_csv(metrics_csv)
    found: dict[str, pd.Series] = {}
    for col in (STEP_LOSS, EPOCH_LOSS):
        if col in df and "step" in df:
            d = df[["step", col]].dropna()
            if not d.empty:
                found[col] = d.groupby("step")[col].last()
    if not found:
        return None
    if len(found.get(STEP_LOSS, ())) >= MIN_STEP_POINTS:
        return found[STEP_LOSS], STEP_LOSS
    col = max(found, key=lambda c: len(found[c]))
    return found[col], col


def curves_figure(runs: list[Run], keys: list[str], xk: str | None):
    """The figure of ``training_curves`` (not saved), or None when no run logged a loss."""
    curves: dict[Path, pd.Series] = {}
    kinds: dict[Path, str] = {}
    for run in runs:
        f = run.file(str(layout.history_path("")))
        found = loss_curve(f) if f is not None else None
        if found is not None:
            curves[run.path], kinds[run.path] = found
    if not curves:
        return None
    runs = [r for r in runs if r.path in curves]
    facets = facet_runs(runs, [k for k in setting_keys(keys) if k != xk])
    plt, fig, axes = figure_grid(len(facets))
    cmap = plt.get_cmap("viridis")
    for ax, (name, group) in zip(axes, facets.items(), strict=False):
        lines = runs_by_x(group, xk)
        for i, (tag, seeds) in enumerate(lines.items()):
            color = cmap(i / max(len(lines) - 1, 1))
            ok = [curves[r.path] for r in seeds if r.ok]
            if ok:
                mean, spread = mean_curve(ok)
                text = f"{tag} (n={len(ok)})" if len(ok) > 1 else tag
                marker = "o" if len(mean) < MARKERS_BELOW else None
                ax.plot(mean.index, mean, lw=1, color=color, label=text, marker=marker, ms=3)
                ax.fill_between(mean.index, mean - spread, mean + spread, color=color,
                                alpha=0.2, lw=0)  # fmt: skip
            for j, run in enumerate(r for r in seeds if not r.ok):
                loss = curves[run.path]
                text = "_nolegend_" if ok or j else f"{tag} ({run.status})"
                marker = "." if len(loss) < MARKERS_BELOW else None
                ax.plot(loss.index, loss, ":", lw=1, color=color, label=text, marker=marker)
                if run.diverged:
                    step = run.diverged_at_step
                    mark_diverged(ax, [loss.index[-1] if step is None else step])
        starts = [float(curves[r.path].iloc[0]) for r in group]
        top = 1.5 * max(starts)  # a diverging run must not flatten the others
        if math.isfinite(top) and top > 0:
            ax.set_ylim(bottom=0, top=top)
        per_epoch = any(kinds[r.path] == EPOCH_LOSS for r in group)
        ylabel = "training loss (mean per epoch)" if per_epoch else "training loss"
        ax.set(title=name, xlabel="step", ylabel=ylabel)
        integer_ticks(ax)
        ax.grid(alpha=0.3)
        if len(lines) <= 10:
            ax.legend(fontsize=6)
    return fig


def training_curves(runs: list[Run], keys: list[str], xk: str | None, path: Path) -> Path | None:
    """Training loss against step from each run's csv/metrics.csv, per setting, line per ``xk``.

    Each line is the mean over the seeds that finished ok, with a ± std band. Runs that did
    not are thin dotted lines of their own; a diverged one ends in a red cross at the top, at
    the step where it diverged. Short runs are drawn from their per-epoch losses
    (``loss_curve``).
    """
    fig = curves_figure(runs, keys, xk)
    return None if fig is None else save_figure(fig, path)
