"""The report's figures, chosen by which config keys a sweep varies (Agg backend, PNG)."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import pandas as pd

from depthbench.report.collect import Run

# The lesson's bound: sigmoid'(z) <= 1/4, so each plain sigmoid layer can scale the
# back-propagated gradient by at most 0.25 times its weight matrix's norm.
SIGMOID_BOUND = 0.25


def pyplot():
    """matplotlib.pyplot on the Agg backend (no display; no torch import on the report path)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def short(key: str) -> str:
    """``model.activation`` -> ``activation``, ``experiment/arch@arch`` -> ``arch`` (legends)."""
    return key.split("@")[0].replace("/", ".").split(".")[-1]


def label(values: dict[str, object]) -> str:
    return ", ".join(f"{short(k)}={v}" for k, v in values.items()) or "all runs"


def _numeric(values: list[object]) -> bool:
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)


def _facets(runs: list[Run], keys: list[str]) -> dict[str, list[Run]]:
    """Runs grouped by their values of ``keys`` (one subplot each), in sweep order."""
    groups: dict[str, list[Run]] = {}
    for run in runs:
        groups.setdefault(label({k: run.overrides.get(k) for k in keys}), []).append(run)
    return groups


def _grid(n: int, width: float = 4.2, height: float = 3.2):
    plt = pyplot()
    cols = min(n, 3)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(cols * width, rows * height), squeeze=False)
    for ax in axes.flat[n:]:
        ax.axis("off")
    return plt, fig, list(axes.flat)


def _save(fig, path: Path) -> Path:
    plt = pyplot()
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def metrics_vs_x(frame: pd.DataFrame, keys: list[str], xk: str, path: Path) -> Path | None:
    """Error and loss against ``xk`` (depth), train dashed and test solid, one line per series."""
    ok = frame[frame.status == "ok"]
    if ok.empty:
        return None
    others = [k for k in keys if k != xk]
    plt = pyplot()
    if not _numeric(list(ok[xk])):
        return _bars(ok, keys, xk, path)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    colors = itertools.cycle(plt.rcParams["axes.prop_cycle"].by_key()["color"])
    groups = ok.groupby(others, sort=False) if others else [((), ok)]
    for values, d in groups:
        values = values if isinstance(values, tuple) else (values,)
        name = label(dict(zip(others, values, strict=True)))
        d = d.sort_values(xk)
        c = next(colors)
        ax1.plot(d[xk], 1 - d["test acc"], "-o", ms=3, color=c, label=f"{name} (test)")
        ax1.plot(d[xk], 1 - d["train acc"], "--", color=c, alpha=0.7)
        ax2.plot(d[xk], d["test loss"], "-o", ms=3, color=c, label=name)
        ax2.plot(d[xk], d["train loss"], "--", color=c, alpha=0.7)
    log_x = ok[xk].min() > 0 and ok[xk].max() / ok[xk].min() >= 8
    for ax, title in ((ax1, "error (1 - accuracy)"), (ax2, "loss")):
        if log_x:
            ax.set_xscale("log", base=2)
        ax.set(xlabel=short(xk), title=f"{title}: test solid, train dashed")
        ax.grid(alpha=0.3)
    ax1.legend(fontsize=7)
    return _save(fig, path)


def _bars(ok: pd.DataFrame, keys: list[str], xk: str, path: Path) -> Path:
    """Non-numeric sweeps (model x data, accelerator): test accuracy and throughput per run."""
    plt = pyplot()
    names = [label({k: row[k] for k in keys}) for _, row in ok.iterrows()]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 0.5 * len(names) + 1.5))
    ax1.barh(names, ok["test acc"])
    ax1.set(xlabel="test accuracy", xlim=(0, 1))
    ax2.barh(names, ok["samples/s"])
    ax2.set(xlabel="training samples / s")
    for ax in (ax1, ax2):
        ax.invert_yaxis()
        ax.grid(alpha=0.3, axis="x")
    ax2.set_yticklabels([])
    return _save(fig, path)


def gradflow_at_init(runs: list[Run], keys: list[str], xk: str | None, path: Path) -> Path | None:
    """Gradient norm against layer at step 0: one subplot per setting, one line per ``xk``."""
    runs = [r for r in runs if r.file("gradflow.csv")]
    if not runs:
        return None
    facet_keys = [k for k in keys if k != xk]
    facets = _facets(runs, facet_keys)
    plt, fig, axes = _grid(len(facets))
    cmap = plt.get_cmap("viridis")
    for ax, (name, group) in zip(axes, facets.items(), strict=False):
        for i, run in enumerate(group):
            df = pd.read_csv(run.file("gradflow.csv"))
            d = df[df.step == df.step.min()].sort_values("index")
            color = cmap(i / max(len(group) - 1, 1))
            tag = f"{short(xk)}={run.overrides.get(xk)}" if xk else run.path.name
            ax.plot(d["index"], d.grad_norm.clip(lower=1e-30), color=color, lw=1, label=tag)
        ax.set(yscale="log", title=name, xlabel="layer (0 = input side)", ylabel="grad norm")
        ax.grid(alpha=0.3)
        if len(group) <= 10:
            ax.legend(fontsize=6)
    fig.suptitle("gradient norm per layer at initialisation (step 0)", fontsize=10)
    return _save(fig, path)


def grad_ratio_vs_depth(frame: pd.DataFrame, keys: list[str], xk: str, path: Path) -> Path | None:
    """First/last-layer gradient ratio against depth at init (solid) and end (dotted) vs 0.25^d."""
    col = "grad first/last (init)"
    if col not in frame or not _numeric(list(frame[xk].dropna())):
        return None
    ok = frame[(frame.status == "ok") & frame[col].notna()]
    if ok.empty:
        return None
    others = [k for k in keys if k != xk]
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    colors = itertools.cycle(plt.rcParams["axes.prop_cycle"].by_key()["color"])
    groups = ok.groupby(others, sort=False) if others else [((), ok)]
    for values, d in groups:
        values = values if isinstance(values, tuple) else (values,)
        d = d.sort_values(xk)
        # a ratio of exactly 0 is a float32 underflow: left out of the log plot
        d = d.assign(**{k: d[k].where(d[k] > 0) for k in (col, "grad first/last (end)")})
        c = next(colors)
        ax.plot(
            d[xk], d[col], "-o", ms=3, color=c, label=label(dict(zip(others, values, strict=True)))
        )
        ax.plot(d[xk], d["grad first/last (end)"], ":", color=c, alpha=0.8)
    depths = sorted(ok[xk].unique())
    ax.plot(depths, [SIGMOID_BOUND**d for d in depths], "k--", lw=1, label="0.25^depth")
    ax.set(xscale="log", yscale="log", xlabel=short(xk), ylabel="|grad first layer| / |grad last|",
           title="gradient ratio at init (solid) and end of training (dotted)")  # fmt: skip
    ax.set_xscale("log", base=2)
    ax.set_ylim(bottom=max(ax.get_ylim()[0], 1e-40))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6, ncol=2)
    return _save(fig, path)


def training_curves(runs: list[Run], keys: list[str], xk: str | None, path: Path) -> Path | None:
    """Training loss against step from each run's csv/metrics.csv, per setting, line per ``xk``."""
    curves = {}
    for run in runs:
        f = run.file("csv/metrics.csv")
        if f is None:
            continue
        df = pd.read_csv(f)
        col = "train/loss_step" if "train/loss_step" in df else "train/loss_epoch"
        if col in df:
            d = df[["step", col]].dropna()
            if not d.empty:
                curves[run.path] = (d.step, d[col])
    if not curves:
        return None
    runs = [r for r in runs if r.path in curves]
    facets = _facets(runs, [k for k in keys if k != xk])
    plt, fig, axes = _grid(len(facets))
    cmap = plt.get_cmap("viridis")
    for ax, (name, group) in zip(axes, facets.items(), strict=False):
        for i, run in enumerate(group):
            steps, loss = curves[run.path]
            tag = f"{short(xk)}={run.overrides.get(xk)}" if xk else run.path.name
            ax.plot(steps, loss, lw=1, color=cmap(i / max(len(group) - 1, 1)), label=tag)
        starts = [float(curves[r.path][1].iloc[0]) for r in group]
        top = 1.5 * max(starts)  # a diverging run must not flatten the others
        if math.isfinite(top) and top > 0:
            ax.set_ylim(bottom=0, top=top)
        ax.set(title=name, xlabel="step", ylabel="training loss")
        ax.grid(alpha=0.3)
        if len(group) <= 10:
            ax.legend(fontsize=6)
    return _save(fig, path)
