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
# The train accuracy that decides: one eval-mode pass of the final weights over the training set
# (depthbench.lesson.measures.train_eval), not the running mean of the last epoch in train mode.
TRAIN_ACC = "train acc (eval)"


def _trains(frame: pd.DataFrame, threshold: float) -> tuple[bool, str, pd.Series]:
    agg = stats(frame, [], TRAIN_ACC).iloc[0]
    ok = agg.n > 0 and agg.n_diverged == 0 and agg.n_failed == 0 and agg["mean"] >= threshold
    return bool(ok), agg.cell, agg


def _does_not_train(frame: pd.DataFrame, threshold: float) -> tuple[bool, str, pd.Series]:
    agg = stats(frame, [], TRAIN_ACC).iloc[0]
    if agg.n == 0 and agg.n_diverged == 0:
        raise KeyError("no finished run of the net that should not train")
    # a diverged run did not train either; a mean at or below the threshold is chance level
    fails = agg.n == 0 or not agg["mean"] > threshold
    return bool(fails and agg.n_failed == 0), agg.cell, agg


def _bar(label: str, i: int, agg: pd.Series) -> Series:
    std = 0.0 if math.isnan(agg["std"]) else agg["std"]
    return Series(label, [i], [agg["mean"]], [std], [i] if agg.n_diverged else [])


def fixes(frames: Mapping[str, pd.DataFrame], criterion: Mapping) -> Verdict:
    """A deep plain sigmoid net does not train; ReLU + He, skip connections, batch norm do."""
    no_train, trains = criterion["no_train_max_acc"], criterion["train_min_acc"]
    checks, rows, series = [], [], []
    for i, (name, label) in enumerate(criterion["variants"].items()):
        baseline = name == criterion["baseline"]
        passed, cell, agg = (_does_not_train if baseline else _trains)(
            frames[name], no_train if baseline else trains
        )
        depth = int(frames[name]["model.depth"].iloc[0]) if "model.depth" in frames[name] else ""
        need = f"train acc <= {no_train}" if baseline else f"train acc >= {trains}, none diverged"
        checks.append(Check(f"{label} (depth {depth}): {need}", cell, passed))
        rows.append(
            {
                "net": label,
                "depth": depth,
                "train acc (eval pass)": cell,
                "test acc": stats(frames[name], [], "test acc").iloc[0].cell,
            }
        )
        series.append(_bar(label, i, agg))
    fig = Figure(
        "",
        "final train accuracy (eval pass)",
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
    """A residual net of 1,000+ layers trains *and uses its depth*: it beats its depth-1 twin,
    deleting all its blocks costs it much of what it learned, and its plain twin does not train."""
    frame, twin = frames["main"], frames["twin"]
    residual = frame["model.residual"].astype(str).str.lower()
    res, plain = frame[residual == "true"], frame[residual == "false"]
    depth = int(res["model.depth"].iloc[0]) if "model.depth" in res else 0
    ok_res, cell_res, a_res = _trains(res, criterion["train_min_acc"])
    ok_plain, cell_plain, a_plain = _does_not_train(plain, criterion["no_train_max_acc"])
    a_twin = stats(twin, [], TRAIN_ACC).iloc[0]
    if a_twin.n == 0 or a_res.n == 0:
        raise KeyError("no finished residual run or depth-1 twin")
    gain = a_res["mean"] - a_twin["mean"]
    ok_runs = res[res.status == "ok"]
    cost = (ok_runs["acc intact"] - ok_runs["acc without blocks"]).to_numpy(dtype=float)
    need_gain, need_cost = criterion["twin_margin"], criterion["lesion_min"]
    checks = [
        Check(
            f"residual {depth}-layer: train acc >= {criterion['train_min_acc']}, none diverged",
            cell_res,
            ok_res,
        ),
        Check(
            f"residual {depth}-layer beats its depth-1 twin by >= {need_gain}",
            f"{fmt_num(a_res['mean'])} vs {a_twin.cell}: {gain:+.3f}",
            bool(gain >= need_gain),
        ),
        Check(
            f"deleting all its blocks costs it >= {need_cost} train acc",
            f"{np.mean(cost):+.3f} ± {np.std(cost, ddof=1) if len(cost) > 1 else 0:.2g} "
            f"(n={len(cost)})",
            bool(len(cost) and np.mean(cost) >= need_cost),
        ),
        Check(
            f"plain twin: train acc <= {criterion['no_train_max_acc']} (or diverged)",
            cell_plain,
            ok_plain,
        ),
    ]
    without = stats(res.assign(**{TRAIN_ACC: res["acc without blocks"]}), [], TRAIN_ACC).iloc[0]
    rows = [
        {"net": f"residual, {depth} layers", "train acc (eval pass)": cell_res},
        {"net": "the same net, all blocks deleted", "train acc (eval pass)": without.cell},
        {"net": "residual, depth-1 twin", "train acc (eval pass)": a_twin.cell},
        {"net": f"plain, {depth} layers", "train acc (eval pass)": cell_plain},
    ]
    names = ["residual", "blocks deleted", "depth-1 twin", "plain"]
    series = [
        _bar(n, i, a)
        for i, (n, a) in enumerate(zip(names, (a_res, without, a_twin, a_plain), strict=True))
    ]
    fig = Figure(
        "",
        "final train accuracy (eval pass)",
        series,
        categorical=True,
        xticks=names,
        hlines=[
            (criterion["train_min_acc"], "trains"),
            (criterion["no_train_max_acc"], "does not"),
        ],
    )
    summary = (
        f"residual {depth}-layer {fmt_num(a_res['mean'])}, blocks deleted "
        f"{fmt_num(without['mean'])}, depth-1 twin {fmt_num(a_twin['mean'])}, plain "
        f"{fmt_num(a_plain['mean'])}"
    )
    return Verdict.from_checks(checks, summary, pd.DataFrame(rows), fig)


# ---- claim 4 ---------------------------------------------------------------------------------
def degradation(frames: Mapping[str, pd.DataFrame], criterion: Mapping) -> Verdict:
    """Past some depth the plain net's training accuracy falls with depth (by at least
    ``degradation_margin`` below its best depth); the residual net's shortfall from its best
    depth is at most ``shortfall_ratio`` of the plain net's; at the deepest depth the residual
    net is above its plain twin in every seed (He et al. 2016, Fig. 6)."""
    depth, res = "model.depth", "model.residual"
    margin, ratio = criterion["degradation_margin"], criterion["shortfall_ratio"]
    checks, series, tables = [], [], []
    for family, frame in frames.items():
        frame = frame.assign(**{res: frame[res].astype(str).str.lower()})
        agg = stats(frame, [res, depth], TRAIN_ACC)
        plain = agg[agg[res] == "false"].sort_values(depth)
        resid = agg[agg[res] == "true"].sort_values(depth)
        if plain.empty or resid.empty or plain[depth].nunique() < 2:
            raise KeyError(f"{family}: the sweep needs plain and residual nets at >= 2 depths")
        deepest = plain[depth].max()
        p_best, p_deep = plain["mean"].max(), row_of(plain, **{depth: deepest})["mean"]
        r_best, r_deep = resid["mean"].max(), row_of(resid, **{depth: deepest})["mean"]
        p_short, r_short = p_best - p_deep, r_best - r_deep
        checks.append(
            Check(
                f"{family}: plain at depth {deepest} below the best plain depth by >= {margin}",
                f"best {fmt_num(p_best)}, depth {deepest}: {fmt_num(p_deep)} "
                f"(shortfall {p_short:.3f})",
                bool(p_short >= margin),
            )
        )
        checks.append(
            Check(
                f"{family}: residual shortfall at depth {deepest} <= {ratio} x the plain shortfall",
                f"{r_short:.3f} vs {ratio} x {p_short:.3f} = {ratio * p_short:.3f}",
                bool(r_short <= ratio * p_short),
            )
        )
        pr = per_seed(frame[frame[depth] == deepest], res, "true", TRAIN_ACC)
        pp = per_seed(frame[frame[depth] == deepest], res, "false", TRAIN_ACC)
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
    fig = Figure("depth", "final train accuracy (eval pass)", series, logx=True)
    return Verdict.from_checks(checks, summary, table.fillna(""), fig)


# ---- claim 5 ---------------------------------------------------------------------------------
def hierarchy(frames: Mapping[str, pd.DataFrame], criterion: Mapping) -> Verdict:
    """Linear probes (Alain & Bengio 2016) at matched dimensionality read the class better
    along the depth of a trained net that is itself far above a probe on the raw input."""
    frame = frames["main"]
    frame = frame[frame.status == "ok"]
    probe_cols = [c for c in frame if c.startswith("probe ") and c.split()[1].isdigit()]
    probe_cols.sort(key=lambda c: int(c.split()[1]))
    if frame.empty or not probe_cols:
        raise KeyError("no finished run with probes")
    means = frame[probe_cols].mean()
    stds = frame[probe_cols].std(ddof=1).fillna(0.0) if len(frame) > 1 else means * 0
    gain, drop = criterion["min_gain"], criterion["max_drop"]
    raw, own = frame["probe raw"].mean(), frame["test acc"].mean()
    above = criterion["net_above_raw"]
    steps = np.diff(means.to_numpy())
    checks = [
        Check(
            f"the net's own test acc >= the raw-input probe + {above}",
            f"{own:.3f} vs {raw:.3f}",
            bool(own - raw >= above),
        ),
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
    n = len(frame)
    cells = [f"{m:.3f} ± {s:.2g} (n={n})" for m, s in zip(means, stds, strict=True)]
    table = pd.DataFrame(
        {"layer": [c.removeprefix("probe ") for c in probe_cols], "probe test acc": cells}
    )
    x = list(range(len(probe_cols)))
    series = [
        Series("probe on the layer", x, means.tolist(), stds.tolist()),
        Series("probe on the raw input", x, [raw] * len(x), [0.0] * len(x)),
    ]
    fig = Figure(
        "layer (0 = stem)",
        "linear-probe test accuracy",
        series,
        hlines=[(own, "the net's own test acc")],
    )
    summary = (
        f"probe accuracy goes from {fmt_num(means.iloc[0])} (first layer) to "
        f"{fmt_num(means.iloc[-1])} (last); raw input {fmt_num(raw)}, the net itself "
        f"{fmt_num(own)}"
    )
    return Verdict.from_checks(checks, summary, table, fig)


# ---- claim 6 ---------------------------------------------------------------------------------
def welch_greater(a: list[float], b: list[float]) -> float:
    """One-sided p-value of Welch's t-test for mean(a) > mean(b) (NaN: not computable)."""
    from scipy import stats as st

    a_, b_ = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(a_) < 2 or len(b_) < 2:
        return math.nan
    if np.allclose(a_, b_.mean()) and np.allclose(b_, b_.mean()):
        return 1.0  # identical samples: no evidence of a difference
    res = st.ttest_ind(a_, b_, equal_var=False, alternative="greater")
    return float(res.pvalue)


def depth_vs_width(frames: Mapping[str, pd.DataFrame], criterion: Mapping) -> Verdict:
    """At each parameter budget the deep net (one depth, fixed before the runs) fits its
    training set better than the one-hidden-layer net of the same budget: Welch's one-sided
    t-test over seeds below ``alpha`` and the deep net above in every seed (on data with no
    effect the rule passes at most ``alpha`` of the time)."""
    depth, params, metric = "model.depth", "model.params", criterion.get("metric", TRAIN_ACC)
    alpha = criterion["alpha"]
    deep_f, wide_f = frames["deep"], frames["shallow"]
    checks, series, rows = [], [], []
    budgets = sorted(set(deep_f[params].astype(int)) | set(wide_f[params].astype(int)))
    for b in budgets:
        d = deep_f[(deep_f[params].astype(int) == b) & (deep_f.status == "ok")]
        w = wide_f[(wide_f[params].astype(int) == b) & (wide_f.status == "ok")]
        if d.empty or w.empty:
            raise KeyError(f"no finished runs at {b:,} parameters")
        dd, ww = (
            dict(zip(d.seed, d[metric], strict=True)),
            dict(zip(w.seed, w[metric], strict=True)),
        )
        p = welch_greater(list(dd.values()), list(ww.values()))
        wins = sum(1 for s in dd if s in ww and dd[s] > ww[s])
        dep = int(d[depth].iloc[0])
        checks.append(
            Check(
                f"{b:,} params: depth {dep} fits better than depth {int(w[depth].iloc[0])} "
                f"(Welch p < {alpha}, every seed)",
                f"{fmt_num(np.mean(list(dd.values())))} vs {fmt_num(np.mean(list(ww.values())))}; "
                f"p = {fmt_num(p, 2)}; {wins}/{len(dd)} seeds",
                bool(p < alpha and wins == len(dd)),
            )
        )
        for name, f in (("deep", d), ("shallow", w)):
            a = stats(f, [], metric).iloc[0]
            rows.append(
                {
                    "params": f"{b:,}",
                    "net": f"{name} (depth {int(f[depth].iloc[0])})",
                    metric: a.cell,
                    "test acc": stats(f, [], "test acc").iloc[0].cell,
                }
            )
    for name, f in (("deep", deep_f), ("depth 1", wide_f)):
        agg = stats(f.assign(**{params: f[params].astype(int)}), [params], metric)
        series.append(series_of(agg, params, name, f))
    fig = Figure("parameters", metric, series, logx=True)
    failed = [c for c in checks if not c.passed]
    summary = f"{len(checks) - len(failed)} of {len(checks)} budgets: the deep net fits better"
    return Verdict.from_checks(checks, summary, pd.DataFrame(rows), fig)


# ---- claim 7 ---------------------------------------------------------------------------------
def attention(frames: Mapping[str, pd.DataFrame], criterion: Mapping) -> Verdict:
    """ "it" attends more to its referent than to the other noun: on the lesson's sentence and
    over the held-out test set, in every seed."""
    frame = frames["main"]
    ok = frame[frame.status == "ok"].dropna(subset=["referent (test)"])
    if ok.empty:
        return Verdict.from_checks([Check("attention measured", "no ok run", None)], "no run")
    n, total = len(ok), len(frame)
    gap = criterion.get("min_gap", 0.0)
    checks = []
    for where in ("test", "sentence"):
        ref, other = ok[f"referent ({where})"], ok[f"other noun ({where})"]
        wins = int((ref - other >= gap).sum()) if gap else int((ref > other).sum())
        checks.append(
            Check(
                f"{where}: attention to the referent exceeds that to the other noun by >= {gap},"
                " in every seed",
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
    """The frozen backbone + new head (sweep ``frozen``) beats the same net trained from
    scratch (``scratch``) and a logistic regression on the raw pixels of the same images, each
    by its margin, and beats scratch in every seed."""
    frozen, scratch = frames["frozen"], frames["scratch"]
    a_pre = stats(frozen, [], "test acc").iloc[0]
    a_scr = stats(scratch, [], "test acc").iloc[0]
    if a_pre.n == 0 or a_scr.n == 0:
        raise KeyError("no finished frozen or scratch run")
    ok = frozen[frozen.status == "ok"]
    a_raw = stats(ok.assign(**{"test acc": ok["raw linear test acc"]}), [], "test acc").iloc[0]
    pre = dict(zip(ok.seed, ok["test acc"], strict=True))
    scr = per_seed(scratch.assign(k="x"), "k", "x", "test acc")
    wins = [s for s in pre if s in scr and pre[s] > scr[s]]
    margin, raw_margin = criterion["margin"], criterion["raw_margin"]
    checks = [
        Check(
            f"frozen backbone mean test acc >= scratch + {margin}",
            f"{a_pre.cell} vs {a_scr.cell}",
            bool(a_pre["mean"] - a_scr["mean"] >= margin),
        ),
        Check(
            "frozen backbone above scratch in every seed",
            f"{len(wins)}/{len(pre)} seeds",
            bool(pre) and len(wins) == len(pre),
        ),
        Check(
            f"frozen backbone mean test acc >= raw-pixel logistic regression + {raw_margin}",
            f"{a_pre.cell} vs {a_raw.cell}",
            bool(a_pre["mean"] - a_raw["mean"] >= raw_margin),
        ),
    ]
    table = pd.DataFrame(
        [
            {"net": "frozen backbone + new head", "test acc": a_pre.cell},
            {"net": "same net from scratch", "test acc": a_scr.cell},
            {"net": "logistic regression on the raw pixels", "test acc": a_raw.cell},
        ]
    )
    names = ["frozen backbone", "scratch", "raw-pixel linear"]
    series = [
        _bar(n, i, a) for i, (n, a) in enumerate(zip(names, (a_pre, a_scr, a_raw), strict=True))
    ]
    fig = Figure("", "test accuracy", series, categorical=True, xticks=names)
    summary = f"frozen backbone {a_pre.cell} vs scratch {a_scr.cell} vs raw pixels {a_raw.cell}"
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
            missing=NOT_MEASURED,
        )
    agg = stats(frame, ["accelerator"], "samples/s")
    try:
        gpu, cpu = row_of(agg, accelerator="gpu"), row_of(agg, accelerator="cpu")
    except KeyError:
        return Verdict.from_checks(
            [Check(requirement, "no GPU runs", None)], "not measured", missing=NOT_MEASURED
        )
    if not gpu.n:
        return Verdict.from_checks(
            [Check(requirement, f"GPU runs: {gpu.cell}", None)],
            "not measured: the GPU runs did not finish",
            missing=NOT_MEASURED,
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
