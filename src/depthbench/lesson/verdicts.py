"""One verdict function per claim of the lesson: measured runs + a criterion -> a verdict.

Each function takes ``frames`` (sweep name -> one row per run, as
:func:`depthbench.report.tables.runs_frame` builds it, plus the claim's own measurements) and
``criterion`` (the thresholds written in ``conf/lesson/<claim>.yaml`` before the runs), and
returns a :class:`Verdict`: the checks that make up the criterion, each with the number it
was decided on, the measured table (mean ± std with n over seeds), and a figure to draw.

The functions are pure: no training, no files, so each one is tested on hand-made results
that should confirm the claim and on results that should not. The file is one unit on purpose:
nine claims' checks side by side, each a few dozen lines, read and compared together.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pandas as pd
import torch

from depthbench.lesson.outcome import (
    CONFIRMED,
    NOT_CONFIRMED,
    NOT_MEASURED,
    Check,
    Figure,
    Series,
    Verdict,
    fmt_num,
    per_seed,
    row_of,
    series_of,
    stats,
    table_of,
)


# ---- claim 1 ---------------------------------------------------------------------------------
def max_sigmoid_derivative() -> float:
    """max of sigmoid'(x) over a fine grid of [-10, 10], by autograd (the analytic value is 1/4
    at x = 0)."""
    x = torch.linspace(-10, 10, 200_001, requires_grad=True)
    torch.sigmoid(x).sum().backward()
    return float(x.grad.max())


def per_layer_factor(depths: list[float], ratios: list[float]) -> float:
    """g in ratio ~ c * g**depth: exp of the least-squares slope of log(ratio) over depth."""
    d = np.asarray(depths, dtype=float)
    r = np.asarray(ratios, dtype=float)
    ok = np.isfinite(r) & (r > 0)
    if ok.sum() < 2:
        return math.nan
    slope = np.polyfit(d[ok], np.log(r[ok]), 1)[0]
    return float(math.exp(slope))


def vanishing_gradients(frames: Mapping[str, pd.DataFrame], criterion: Mapping) -> Verdict:
    """Sigmoid' <= 0.25 and a sigmoid net's first/last gradient ratio shrinks like g**depth
    with g near 0.25; ReLU + He keeps g near 1."""
    metric, depth = "grad first/last (init)", "model.depth"
    checks, series, tables = [], [], []
    top = max_sigmoid_derivative()
    checks.append(Check("max sigmoid'(x) = 0.25", f"{top:.6f}", abs(top - 0.25) < 1e-6))
    factors = {}
    for name, bounds in (
        ("sigmoid", criterion["sigmoid_factor"]),
        ("relu", criterion["relu_factor"]),
    ):
        frame = frames[name]
        agg = stats(frame, [depth], metric).sort_values(depth)
        g = per_layer_factor(agg[depth].tolist(), agg["mean"].tolist())
        factors[name] = g
        lo, hi = bounds
        checks.append(
            Check(f"{name}: per-layer factor g in [{lo}, {hi}]", fmt_num(g), bool(lo <= g <= hi))
        )
        series.append(series_of(agg, depth, f"{name} (g = {fmt_num(g)})", frame))
        tables.append(table_of(agg, [depth], f"{name}: first/last gradient at init"))
    table = tables[0].merge(tables[1], on=depth, how="outer")
    summary = (
        f"the first/last-layer gradient ratio at initialisation shrinks by g = "
        f"{fmt_num(factors['sigmoid'])} per layer with sigmoid (0.25 bound: max sigmoid' = "
        f"{top:.4f}) and g = {fmt_num(factors['relu'])} with ReLU + He"
    )
    fig = Figure(
        "depth (hidden layers)",
        "first / last layer gradient norm at init",
        series,
        logy=True,
        logx=True,
    )
    return Verdict.from_checks(checks, summary, table, fig)


# ---- claims 2 and 3: does a net of a given depth train? ----------------------------------------
def _trains(frame: pd.DataFrame, threshold: float) -> tuple[bool, str, pd.Series]:
    agg = stats(frame, [], "train acc").iloc[0]
    ok = agg.n > 0 and agg.n_diverged == 0 and agg.n_failed == 0 and agg["mean"] >= threshold
    return bool(ok), agg.cell, agg


def _does_not_train(frame: pd.DataFrame, threshold: float) -> tuple[bool, str, pd.Series]:
    agg = stats(frame, [], "train acc").iloc[0]
    # a diverged run did not train either; a mean at or below the threshold is chance level
    fails = agg.n == 0 or not agg["mean"] > threshold
    return bool(fails and agg.n_failed == 0), agg.cell, agg


def fixes(frames: Mapping[str, pd.DataFrame], criterion: Mapping) -> Verdict:
    """A deep plain sigmoid net does not train; ReLU + He, skip connections, batch norm do."""
    no_train, trains = criterion["no_train_max_acc"], criterion["train_min_acc"]
    checks, rows, series = [], [], []
    for i, (name, label) in enumerate(criterion["variants"].items()):
        baseline = name == criterion["baseline"]
        passed, cell, agg = (_does_not_train if baseline else _trains)(
            frames[name], no_train if baseline else trains
        )
        need = f"train acc <= {no_train}" if baseline else f"train acc >= {trains}, none diverged"
        checks.append(Check(f"{label}: {need}", cell, passed))
        rows.append(
            {
                "net": label,
                "train acc": cell,
                "test acc": stats(frames[name], [], "test acc").iloc[0].cell,
            }
        )
        std = 0.0 if math.isnan(agg["std"]) else agg["std"]
        series.append(Series(label, [i], [agg["mean"]], [std], [i] if agg.n_diverged else []))
    fig = Figure(
        "",
        "final train accuracy",
        series,
        categorical=True,
        xticks=list(criterion["variants"].values()),
        hlines=[(trains, "trains"), (no_train, "does not train")],
    )
    trained = [c for c in checks[1:] if c.passed]
    summary = (
        f"the plain sigmoid net reaches train accuracy {checks[0].measured}; "
        f"{len(trained)} of {len(checks) - 1} fixes train"
    )
    return Verdict.from_checks(checks, summary, pd.DataFrame(rows), fig)


def thousand_layers(frames: Mapping[str, pd.DataFrame], criterion: Mapping) -> Verdict:
    """A residual net of 1,000+ layers trains; its plain twin does not."""
    frame = frames["main"]
    depth = int(frame["model.depth"].iloc[0])
    res = frame[frame["model.residual"].astype(str).str.lower() == "true"]
    plain = frame[frame["model.residual"].astype(str).str.lower() == "false"]
    ok_res, cell_res, a_res = _trains(res, criterion["train_min_acc"])
    ok_plain, cell_plain, a_plain = _does_not_train(plain, criterion["no_train_max_acc"])
    checks = [
        Check(
            f"residual {depth}-layer: train acc >= {criterion['train_min_acc']}, none diverged",
            cell_res,
            ok_res,
        ),
        Check(
            f"plain twin: train acc <= {criterion['no_train_max_acc']} (or diverged)",
            cell_plain,
            ok_plain,
        ),
    ]
    rows = [
        {
            "net": "residual",
            "train acc": cell_res,
            "test acc": stats(res, [], "test acc").iloc[0].cell,
        },
        {
            "net": "plain",
            "train acc": cell_plain,
            "test acc": stats(plain, [], "test acc").iloc[0].cell,
        },
    ]
    series = [
        Series(
            n,
            [i],
            [a["mean"]],
            [0.0 if math.isnan(a["std"]) else a["std"]],
            [i] if a.n_diverged else [],
        )
        for i, (n, a) in enumerate((("residual", a_res), ("plain", a_plain)))
    ]
    fig = Figure(
        "",
        "final train accuracy",
        series,
        categorical=True,
        xticks=["residual", "plain"],
        hlines=[
            (criterion["train_min_acc"], "trains"),
            (criterion["no_train_max_acc"], "does not"),
        ],
    )
    summary = f"residual: train accuracy {cell_res}; plain: {cell_plain}"
    return Verdict.from_checks(checks, summary, pd.DataFrame(rows), fig)


# ---- claim 4 ---------------------------------------------------------------------------------
def degradation(frames: Mapping[str, pd.DataFrame], criterion: Mapping) -> Verdict:
    """Past some depth the plain net's training accuracy falls with depth, the residual net's
    does not, and the residual net is at least as good at every depth (He et al. 2016)."""
    depth, res = "model.depth", "model.residual"
    margin, tol = criterion["degradation_margin"], criterion["tolerance"]
    checks, series, tables = [], [], []
    for family, frame in frames.items():
        frame = frame.assign(**{res: frame[res].astype(str).str.lower()})
        agg = stats(frame, [res, depth], "train acc")
        plain = agg[agg[res] == "false"].sort_values(depth)
        resid = agg[agg[res] == "true"].sort_values(depth)
        deepest = plain[depth].max()
        p_best, p_deep = plain["mean"].max(), row_of(plain, **{depth: deepest})["mean"]
        r_best, r_deep = resid["mean"].max(), row_of(resid, **{depth: deepest})["mean"]
        checks.append(
            Check(
                f"{family}: plain train acc at depth {deepest} below the plain best by >= {margin}",
                f"best {fmt_num(p_best)}, depth {deepest}: {fmt_num(p_deep)}",
                bool(p_best - p_deep >= margin),
            )
        )
        checks.append(
            Check(
                f"{family}: residual train acc at depth {deepest} within {tol} of its best",
                f"best {fmt_num(r_best)}, depth {deepest}: {fmt_num(r_deep)}",
                bool(r_best - r_deep <= tol),
            )
        )
        worse = [
            int(d)
            for d in plain[depth]
            if not row_of(resid, **{depth: d})["mean"] >= row_of(plain, **{depth: d})["mean"] - tol
        ]
        checks.append(
            Check(
                f"{family}: residual >= plain - {tol} at every depth",
                "holds at every depth" if not worse else f"fails at depth {worse}",
                not worse,
            )
        )
        pr = per_seed(frame[frame[depth] == deepest], res, "true", "train acc")
        pp = per_seed(frame[frame[depth] == deepest], res, "false", "train acc")
        wins = [s for s in pr if s in pp and (pr[s] > pp[s] or math.isnan(pp[s]))]
        checks.append(
            Check(
                f"{family}: residual above plain at depth {deepest} in every seed",
                f"{len(wins)}/{len(pr)} seeds",
                bool(pr) and len(wins) == len(pr),
            )
        )
        for kind, a in (("plain", plain), ("residual", resid)):
            runs = frame[frame[res] == ("true" if kind == "residual" else "false")]
            series.append(series_of(a, depth, kind, runs))
            series[-1].panel = family
        table = (
            plain[[depth, "cell"]]
            .rename(columns={"cell": f"{family} plain"})
            .merge(resid[[depth, "cell"]].rename(columns={"cell": f"{family} residual"}), on=depth)
        )
        tables.append(table.rename(columns={depth: f"{family} depth"}))
    table = pd.concat(tables, axis=1) if len(tables) > 1 else tables[0]
    failed = [c.requirement for c in checks if not c.passed]
    summary = "every check holds" if not failed else "fails: " + "; ".join(failed)
    fig = Figure("depth", "final train accuracy", series, logx=True)
    return Verdict.from_checks(checks, summary, table.fillna(""), fig)


# ---- claim 5 ---------------------------------------------------------------------------------
def hierarchy(frames: Mapping[str, pd.DataFrame], criterion: Mapping) -> Verdict:
    """Linear probes get more accurate with depth; first-layer filters are edge detectors."""
    frame = frames["main"]
    frame = frame[frame.status == "ok"]
    probe_cols = [c for c in frame if c.startswith("probe ") and c.split()[1].isdigit()]
    probe_cols.sort(key=lambda c: int(c.split()[1]))
    if frame.empty or not probe_cols:
        return Verdict.from_checks(
            [Check("linear probes on every layer", "no ok run", None)], "no run finished"
        )
    means = frame[probe_cols].mean()
    stds = frame[probe_cols].std(ddof=1).fillna(0.0) if len(frame) > 1 else means * 0
    gain, drop = criterion["min_gain"], criterion["max_drop"]
    steps = np.diff(means.to_numpy())
    checks = [
        Check(
            f"probe accuracy: last layer - first layer >= {gain}",
            f"{means.iloc[-1]:.3f} - {means.iloc[0]:.3f} = {means.iloc[-1] - means.iloc[0]:.3f}",
            bool(means.iloc[-1] - means.iloc[0] >= gain),
        ),
        Check(
            f"probe accuracy never drops by more than {drop} from one layer to the next",
            f"largest drop {fmt_num(max(0.0, -steps.min()) if len(steps) else 0.0)}",
            bool(len(steps) == 0 or -steps.min() <= drop),
        ),
    ]
    if "probe init 0" in frame:
        init = frame[[c.replace("probe ", "probe init ") for c in probe_cols]].mean().to_numpy()
        added = means.to_numpy() - init
        need = criterion["min_training_gain"]
        checks.append(
            Check(
                f"training adds >= {need} to the last layer's probe, more than to the first's",
                f"first layer {added[0]:+.3f}, last layer {added[-1]:+.3f}",
                bool(added[-1] >= need and added[-1] > added[0]),
            )
        )
    edge, edge0 = frame["edge score"], frame["edge score (init)"]
    e_min, e_gain = criterion["edge_min"], criterion["edge_gain"]
    checks.append(
        Check(
            f"first-layer filters: median best abs. cosine with an edge kernel >= {e_min} and "
            f">= the same net at initialisation + {e_gain}",
            f"trained {edge.mean():.3f} ± {edge.std(ddof=1):.2g}, at init {edge0.mean():.3f}",
            bool(edge.mean() >= e_min and edge.mean() >= edge0.mean() + e_gain),
        )
    )
    n = len(frame)
    cells = [f"{m:.3f} ± {s:.2g} (n={n})" for m, s in zip(means, stds, strict=True)]
    table = pd.DataFrame(
        {"layer": [c.removeprefix("probe ") for c in probe_cols], "probe test acc": cells}
    )
    if "probe init 0" in frame:
        init_cols = [c.replace("probe ", "probe init ") for c in probe_cols]
        table["same probe, net at init"] = [f"{frame[c].mean():.3f}" for c in init_cols]
    x = list(range(len(probe_cols)))
    series = [Series("trained net", x, means.tolist(), stds.tolist())]
    if "probe init 0" in frame:
        series.append(
            Series(
                "same net at initialisation", x, frame[init_cols].mean().tolist(), [0.0] * len(x)
            )
        )
    fig = Figure("layer (0 = stem)", "linear-probe test accuracy", series)
    summary = (
        f"probe accuracy goes from {fmt_num(means.iloc[0])} (first layer) to "
        f"{fmt_num(means.iloc[-1])} (last); edge score {fmt_num(edge.mean())} vs "
        f"{fmt_num(edge0.mean())} at init"
    )
    return Verdict.from_checks(checks, summary, table, fig)


# ---- claim 6 ---------------------------------------------------------------------------------
def depth_vs_width(frames: Mapping[str, pd.DataFrame], criterion: Mapping) -> Verdict:
    """At equal parameter budgets deeper nets beat one hidden layer, and a deep net at the
    smallest budget matches a one-hidden-layer net at the largest."""
    depth, params = "model.depth", "model.params"
    checks, series, tables = [], [], []
    for data, frame in frames.items():
        agg = stats(frame, [params, depth], "test acc")
        budgets = sorted(agg[params].astype(int).unique())
        for b in budgets:
            at = agg[agg[params].astype(int) == b]
            shallow = row_of(at, **{depth: 1})
            deep = at[at[depth].astype(int) >= 2].sort_values("mean").iloc[-1]
            spread = np.nanmax([shallow["std"], deep["std"], 0.0])
            checks.append(
                Check(
                    f"{data}, {b:,} params: best deep net beats depth 1 by more than the seed std",
                    f"depth {int(deep[depth])}: {fmt_num(deep['mean'])} vs depth 1: "
                    f"{fmt_num(shallow['mean'])} (std {fmt_num(spread, 2)})",
                    bool(deep["mean"] - shallow["mean"] > spread),
                )
            )
        small = agg[agg[params].astype(int) == budgets[0]]
        big = agg[agg[params].astype(int) == budgets[-1]]
        deep_small = small[small[depth].astype(int) >= 2]["mean"].max()
        shallow_big = row_of(big, **{depth: 1})["mean"]
        checks.append(
            Check(
                f"{data}: best deep net at {budgets[0]:,} params >= depth 1 at {budgets[-1]:,}",
                f"{fmt_num(deep_small)} vs {fmt_num(shallow_big)}",
                bool(deep_small >= shallow_big),
            )
        )
        for b in budgets:
            at = agg[agg[params].astype(int) == b]
            series.append(series_of(at, depth, f"{b:,} params", frame[frame[params] == b]))
            series[-1].panel = data
        t = agg.pivot_table(index=params, columns=depth, values="cell", aggfunc="first")
        t.columns = [f"depth {c}" for c in t.columns]
        tables.append(t.reset_index().assign(data=data))
    fig = Figure(
        "depth (hidden layers) at a fixed parameter budget", "test accuracy", series, logx=True
    )
    failed = [c for c in checks if not c.passed]
    summary = f"{len(checks) - len(failed)} of {len(checks)} checks hold"
    table = pd.concat(tables, ignore_index=True)
    return Verdict.from_checks(checks, summary, table[["data", *table.columns[:-1]]], fig)


# ---- claim 7 ---------------------------------------------------------------------------------
def attention(frames: Mapping[str, pd.DataFrame], criterion: Mapping) -> Verdict:
    """ "it" attends more to its referent than to the other noun: on the lesson's sentence and
    over the held-out test set, in every seed."""
    frame = frames["main"]
    ok = frame[frame.status == "ok"].dropna(subset=["referent (test)"])
    if ok.empty:
        return Verdict.from_checks([Check("attention measured", "no ok run", None)], "no run")
    n, total = len(ok), len(frame)
    checks = []
    for where in ("test", "sentence"):
        ref, other = ok[f"referent ({where})"], ok[f"other noun ({where})"]
        wins = int((ref > other).sum())
        checks.append(
            Check(
                f"{where}: attention to the referent > to the other noun, in every seed",
                f"referent {ref.mean():.3f} ± {ref.std(ddof=1):.2g}, other noun "
                f"{other.mean():.3f} ± {other.std(ddof=1):.2g}; {wins}/{total} seeds",
                wins == total,
            )
        )
    rows = []
    for where, label in (("test", "held-out test set (mean)"), ("sentence", criterion["sentence"])):
        ref, other = ok[f"referent ({where})"], ok[f"other noun ({where})"]
        rows.append(
            {
                "where": label,
                "referent": f"{ref.mean():.3f} ± {ref.std(ddof=1):.2g} (n={n})",
                "other noun": f"{other.mean():.3f} ± {other.std(ddof=1):.2g} (n={n})",
            }
        )
    series = [
        Series(
            role,
            [0, 1],
            [ok[f"{role} (test)"].mean(), ok[f"{role} (sentence)"].mean()],
            [ok[f"{role} (test)"].std(ddof=1), ok[f"{role} (sentence)"].std(ddof=1)],
        )
        for role in ("referent", "other noun")
    ]
    fig = Figure(
        "",
        'attention from "it" (last layer)',
        series,
        categorical=True,
        xticks=["test set", "lesson sentence"],
    )
    summary = checks[0].measured.split(";")[0] + " on the test set"
    return Verdict.from_checks(checks, summary, pd.DataFrame(rows), fig)


# ---- claim 8 ---------------------------------------------------------------------------------
def transfer(frames: Mapping[str, pd.DataFrame], criterion: Mapping) -> Verdict:
    """A frozen pretrained backbone + new head beats the same net from scratch."""
    frame = frames["main"]
    key = "model.freeze"
    pre = per_seed(frame, key, "true", "test acc")
    scratch = per_seed(frame, key, "false", "test acc")
    agg = stats(frame.assign(**{key: frame[key].astype(str).str.lower()}), [key], "test acc")
    a_pre, a_scr = row_of(agg, **{key: "true"}), row_of(agg, **{key: "false"})
    wins = [s for s in pre if s in scratch and pre[s] > scratch[s]]
    margin = criterion["margin"]
    checks = [
        Check(
            f"pretrained mean test acc >= scratch + {margin}",
            f"{a_pre.cell} vs {a_scr.cell}",
            bool(a_pre["mean"] - a_scr["mean"] >= margin),
        ),
        Check(
            "pretrained above scratch in every seed",
            f"{len(wins)}/{len(pre)} seeds",
            bool(pre) and len(wins) == len(pre),
        ),
    ]
    table = pd.DataFrame(
        [
            {"net": "frozen pretrained backbone + new head", "test acc": a_pre.cell},
            {"net": "same net from scratch", "test acc": a_scr.cell},
        ]
    )
    series = [
        Series(n, [i], [a["mean"]], [0.0 if math.isnan(a["std"]) else a["std"]])
        for i, (n, a) in enumerate((("pretrained", a_pre), ("scratch", a_scr)))
    ]
    fig = Figure("", "test accuracy", series, categorical=True, xticks=["pretrained", "scratch"])
    summary = f"pretrained {a_pre.cell} vs scratch {a_scr.cell}"
    return Verdict.from_checks(checks, summary, table, fig)


# ---- claim 9 ---------------------------------------------------------------------------------
def gpu_speed(frames: Mapping[str, pd.DataFrame], criterion: Mapping) -> Verdict:
    """A GPU trains much faster than a CPU (samples/s ratio at the same batch size)."""
    frame = frames.get("main")
    need = criterion["min_speedup"]
    requirement = f"GPU samples/s >= {need} x CPU samples/s"
    if frame is None or frame.empty or "accelerator" not in frame:
        return Verdict.from_checks(
            [Check(requirement, "no GPU on this machine", None)],
            "not measured: this machine has no GPU",
        )
    agg = stats(frame, ["accelerator"], "samples/s")
    try:
        gpu, cpu = row_of(agg, accelerator="gpu"), row_of(agg, accelerator="cpu")
    except KeyError:
        return Verdict.from_checks([Check(requirement, "no GPU runs", None)], "not measured")
    if not gpu.n:
        return Verdict.from_checks(
            [Check(requirement, f"GPU runs: {gpu.cell}", None)],
            "not measured: the GPU runs did not finish",
        )
    ratio = gpu["mean"] / cpu["mean"]
    checks = [
        Check(requirement, f"{fmt_num(ratio)} x ({gpu.cell} vs {cpu.cell})", bool(ratio >= need))
    ]
    return Verdict.from_checks(
        checks, f"GPU / CPU = {fmt_num(ratio)}x", agg[["accelerator", "cell"]]
    )


__all__ = [
    "CONFIRMED",
    "NOT_CONFIRMED",
    "NOT_MEASURED",
    "Check",
    "Figure",
    "Series",
    "Verdict",
    "attention",
    "degradation",
    "depth_vs_width",
    "fixes",
    "gpu_speed",
    "hierarchy",
    "thousand_layers",
    "transfer",
    "vanishing_gradients",
]
