"""One verdict function per claim of the lesson: measured runs + a criterion -> a verdict.

Each function takes ``frames`` (sweep name -> one row per run, as
:func:`depthbench.report.tables.runs_frame` builds it, plus the claim's own measurements) and
``criterion`` (the thresholds written in ``conf/lesson/<claim>.yaml`` before the runs), and
returns a :class:`Verdict`: the checks that make up the criterion, each with the number it
was decided on, the measured table (mean ± std with n over seeds), and a figure to draw.

The functions are pure: no training, no files, so each one is tested on hand-made results
that should confirm the claim and on results that should not. A claim's YAML names its verdict
function by dotted path (``verdict: depthbench.lesson.verdicts.degradation``); the
demonstrations' are in ``demonstration_verdicts``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pandas as pd
import torch

from depthbench.lesson.verdict_helpers import (
    fmt_num,
    paired_check,
    row_of,
    seed_check,
    series_of,
    stats,
    table_of,
)
from depthbench.lesson.verdict_types import (
    CONFIRMED,
    NOT_CONFIRMED,
    NOT_MEASURED,
    Check,
    Figure,
    Series,
    Verdict,
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
        ok = frame[frame.status == "ok"]
        per_seed_g = {
            int(seed): per_layer_factor(g[depth].tolist(), g[metric].tolist())
            for seed, g in ok.groupby("seed")
        }
        agg = stats(frame, [depth], metric).sort_values(depth)
        g = per_layer_factor(agg[depth].tolist(), agg["mean"].tolist())
        factors[name] = g
        lo, hi = bounds
        n_seeds = frame["seed"].nunique()
        checks.append(
            seed_check(
                f"{name}: per-layer factor g >= {lo}, every seed", per_seed_g, lo, n_runs=n_seeds
            )
        )
        checks.append(
            seed_check(
                f"{name}: per-layer factor g <= {hi}, every seed",
                per_seed_g,
                hi,
                at_most=True,
                n_runs=n_seeds,
            )
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
# (depthbench.lesson.run_measures.train_eval), not the running mean of the last epoch in train mode.
TRAIN_ACC = "train acc (eval)"


def _bar(label: str, i: int, agg: pd.Series) -> Series:
    std = 0.0 if math.isnan(agg["std"]) else agg["std"]
    return Series(label, [i], [agg["mean"]], [std], [i] if agg.n_diverged else [])


def _by_seed(frame: pd.DataFrame, metric: str = TRAIN_ACC) -> dict[int, float]:
    """seed -> ``metric`` of each run (NaN for a diverged run; failed runs left out)."""
    rows = frame[frame.status.isin(["ok", "diverged"])]
    return {
        int(s): (float(m) if st == "ok" else math.nan)
        for s, m, st in zip(rows.seed, rows[metric], rows.status, strict=True)
    }


def _paired(a: Mapping[int, float], b: Mapping[int, float]) -> dict[int, float]:
    """seed -> a - b over the seeds both have."""
    return {s: a[s] - b[s] for s in a if s in b}


def fixes(frames: Mapping[str, pd.DataFrame], criterion: Mapping) -> Verdict:
    """A deep plain sigmoid net does not train; ReLU + He, skip connections, batch norm do, in
    every seed."""
    no_train, trains = criterion["no_train_max_acc"], criterion["train_min_acc"]
    checks, rows, series = [], [], []
    for i, (name, label) in enumerate(criterion["variants"].items()):
        baseline = name == criterion["baseline"]
        frame = frames[name]
        agg = stats(frame, [], TRAIN_ACC).iloc[0]
        depth = int(frame["model.depth"].iloc[0]) if "model.depth" in frame else ""
        if baseline:
            check = seed_check(
                f"{label} (depth {depth}): train acc <= {no_train} (or diverged), every seed",
                _by_seed(frame),
                no_train,
                at_most=True,
                n_runs=len(frame),
                nan_passes=True,
            )
        else:
            check = seed_check(
                f"{label} (depth {depth}): train acc >= {trains}, none diverged, every seed",
                _by_seed(frame),
                trains,
                n_runs=len(frame),
            )
        checks.append(check)
        rows.append(
            {
                "net": label,
                "depth": depth,
                "train acc (eval pass)": agg.cell,
                "test acc": stats(frame, [], "test acc").iloc[0].cell,
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
        f"the plain sigmoid net reaches train accuracy {rows[0]['train acc (eval pass)']}; "
        f"{len(trained)} of {len(checks) - 1} fixes train in every seed"
    )
    return Verdict.from_checks(checks, summary, pd.DataFrame(rows), fig)


def thousand_layers(frames: Mapping[str, pd.DataFrame], criterion: Mapping) -> Verdict:
    """A residual net of 1,000+ layers trains *and uses its depth*, in every seed: it beats its
    depth-1 twin of the same seed, deleting all its blocks costs it much of what it learned, and
    its plain twin does not train."""
    res, plain, twin = frames["residual"], frames["plain"], frames["twin"]
    depth = int(res["model.depth"].iloc[0]) if "model.depth" in res else 0
    r, p, t = _by_seed(res), _by_seed(plain), _by_seed(twin)
    if not r or not t:
        raise KeyError("no finished residual run or depth-1 twin")
    ok_runs = res[res.status == "ok"]
    cost = dict(
        zip(
            ok_runs.seed.astype(int),
            ok_runs["acc intact"] - ok_runs["acc without blocks"],
            strict=True,
        )
    )
    need_gain, need_cost = criterion["twin_margin"], criterion["lesion_min"]
    checks = [
        seed_check(
            f"residual {depth}-layer: train acc >= {criterion['train_min_acc']}, none diverged",
            r,
            criterion["train_min_acc"],
            n_runs=len(res),
        ),
        paired_check(
            f"residual {depth}-layer minus its depth-1 twin (same seed): mean >= {need_gain} "
            f"and one-sided paired t-test p < {criterion['alpha']}",
            _paired(r, t),
            need_gain,
            criterion["alpha"],
            n_runs=len(res),
        ),
        seed_check(
            f"deleting all its blocks costs it >= {need_cost} train acc",
            cost,
            need_cost,
            n_runs=len(res),
        ),
        seed_check(
            f"plain twin: train acc <= {criterion['no_train_max_acc']} (or diverged)",
            p,
            criterion["no_train_max_acc"],
            at_most=True,
            n_runs=len(plain),
            nan_passes=True,
        ),
    ]
    a_res, a_twin, a_plain = (stats(f, [], TRAIN_ACC).iloc[0] for f in (res, twin, plain))
    without = stats(res.assign(**{TRAIN_ACC: res["acc without blocks"]}), [], TRAIN_ACC).iloc[0]
    rows = [
        {"net": f"residual, {depth} layers", "train acc (eval pass)": a_res.cell},
        {"net": "the same net, all blocks deleted", "train acc (eval pass)": without.cell},
        {"net": "residual, depth-1 twin", "train acc (eval pass)": a_twin.cell},
        {"net": f"plain, {depth} layers", "train acc (eval pass)": a_plain.cell},
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
def _shortfalls(
    frame: pd.DataFrame, residual: str, deepest: int, diverged_as: float = math.nan
) -> dict[int, float]:
    """seed -> best train accuracy over the depths minus the deepest net's, for one family; a
    diverged run counts as ``diverged_as`` (NaN: the seed fails the check)."""
    depth, res = "model.depth", "model.residual"
    fam = frame[frame[res] == residual]
    per = {
        d: {
            s: (diverged_as if math.isnan(a) else a)
            for s, a in _by_seed(fam[fam[depth] == d]).items()
        }
        for d in sorted(fam[depth].unique())
    }
    seeds = set.intersection(*(set(v) for v in per.values()))
    return {s: max(v[s] for v in per.values()) - per[deepest][s] for s in sorted(seeds)}


def degradation(frames: Mapping[str, pd.DataFrame], criterion: Mapping) -> Verdict:
    """Past some depth the plain net's training accuracy falls with depth, in every seed: the
    deepest plain net is at least ``degradation_margin`` below the best plain depth of its seed;
    the residual net's shortfall from its best depth is at most ``shortfall_ratio`` of the
    plain net's of the same seed; at the deepest depth the residual net is above its plain twin
    (He et al. 2016, Fig. 6)."""
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

        # a diverged plain net did not train: it counts at chance (10 classes)
        p_short = _shortfalls(frame, "false", deepest, diverged_as=0.1)
        r_short = _shortfalls(frame, "true", deepest)
        n_seeds = frame["seed"].nunique()
        checks.append(
            seed_check(
                f"{family}: plain at depth {deepest} below the best plain depth of its seed by "
                f">= {margin}, every seed (a diverged run counts at chance, 0.1)",
                p_short,
                margin,
                n_runs=n_seeds,
            )
        )
        checks.append(
            seed_check(
                f"{family}: residual shortfall minus {ratio} x the plain shortfall (same seed) "
                "<= 0, every seed",
                {s: r_short[s] - ratio * p_short[s] for s in r_short if s in p_short},
                0.0,
                at_most=True,
                n_runs=n_seeds,
            )
        )
        pr = _by_seed(frame[(frame[depth] == deepest) & (frame[res] == "true")])
        pp = _by_seed(frame[(frame[depth] == deepest) & (frame[res] == "false")])
        above = {s: pr[s] - (0.1 if math.isnan(pp[s]) else pp[s]) for s in pr if s in pp}
        checks.append(
            Check(
                f"{family}: residual above plain at depth {deepest} in every seed",
                f"{sum(v > 0 for v in above.values())}/{len(pr)} seeds; residual minus plain "
                + ", ".join(f"{v:+.3f}" for _, v in sorted(above.items())),
                len(above) == n_seeds and all(v > 0 for v in above.values()),
            )
        )
        for kind, a in (("plain", plain), ("residual", resid)):
            runs = frame[frame[res] == ("true" if kind == "residual" else "false")]
            series.append(series_of(a, depth, kind, runs))
            series[-1].panel = "" if len(frames) == 1 else f"{family} nets"
        table = (
            plain[[depth, "cell"]]
            .rename(columns={"cell": f"{family} plain"})
            .merge(resid[[depth, "cell"]].rename(columns={"cell": f"{family} residual"}), on=depth)
        )
        tables.append(table.rename(columns={depth: f"{family} depth"}))
    table = pd.concat(tables, axis=1) if len(tables) > 1 else tables[0]
    failed = [c.requirement for c in checks if not c.passed]
    summary = "every check holds in every seed" if not failed else "fails: " + "; ".join(failed)
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
    seeds = frame["seed"].astype(int).tolist()
    probes = frame[probe_cols].to_numpy(dtype=float)  # (seeds, layers)
    worst_drop = (
        np.maximum(0.0, -np.diff(probes, axis=1).min(axis=1)) + 0.0
        if probes.shape[1] > 1
        else np.zeros(len(seeds))
    )
    total = len(frames["main"])
    checks = [
        seed_check(
            f"the net's own test acc minus the raw-input probe >= {above}, every seed",
            dict(zip(seeds, frame["test acc"] - frame["probe raw"], strict=True)),
            above,
            n_runs=total,
        ),
        seed_check(
            f"probe accuracy: last layer minus first layer >= {gain}, every seed",
            dict(zip(seeds, probes[:, -1] - probes[:, 0], strict=True)),
            gain,
            n_runs=total,
        ),
        seed_check(
            f"probe accuracy never drops by more than {drop} from one layer to the next, "
            "every seed",
            dict(zip(seeds, worst_drop, strict=True)),
            drop,
            at_most=True,
            n_runs=total,
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
def _gaps(row: pd.Series, where: str) -> np.ndarray:
    """Per layer: attention from "it" to the referent minus that to the other noun."""
    ref, other = row[f"referent ({where})"], row[f"other noun ({where})"]
    return np.asarray(ref, dtype=float) - np.asarray(other, dtype=float)


def attention(frames: Mapping[str, pd.DataFrame], criterion: Mapping) -> Verdict:
    """ "it" attends more to its referent than to the other noun, read in every layer: per seed,
    the layer with the largest gap (referent minus other noun) is where the net resolves "it";
    that gap is at least ``min_gap`` over the held-out test set and on the lesson's sentence
    (each in its own resolving layer), in every seed."""
    frame = frames["main"]
    ok = frame[frame.status == "ok"].dropna(subset=["referent (test)"])
    gap = criterion["min_gap"]
    if ok.empty:
        return Verdict.from_checks([Check("attention measured", "no ok run", None)], "no run")
    rows, per_seed_gap = [], {"test": {}, "sentence": {}}
    for _, r in ok.sort_values("seed").iterrows():
        row = {"seed": int(r.seed)}
        for where in ("test", "sentence"):
            g = _gaps(r, where)
            best = int(np.nanargmax(g))
            per_seed_gap[where][int(r.seed)] = float(g[best])
            row[f"{where}: layer"] = best + 1
            row[f"{where}: referent / other"] = (
                f"{r[f'referent ({where})'][best]:.3f} / {r[f'other noun ({where})'][best]:.3f}"
            )
            row[f"{where}: gap per layer"] = ", ".join(f"{x:+.3f}" for x in g)
        rows.append(row)
    checks = [
        seed_check(
            f"{where}: in its resolving layer, referent minus other noun >= {gap}, every seed",
            per_seed_gap[where],
            gap,
            n_runs=len(frame),
        )
        for where in ("test", "sentence")
    ]
    n_layers = len(ok.iloc[0]["referent (test)"])
    x = list(range(1, n_layers + 1))
    series = []
    for where in ("test", "sentence"):
        for role in ("referent", "other noun"):
            values = np.array([list(v) for v in ok[f"{role} ({where})"]], dtype=float)
            std = values.std(axis=0, ddof=1) if len(values) > 1 else values[0] * 0
            s = Series(role, x, values.mean(axis=0).tolist(), np.nan_to_num(std).tolist())
            s.panel = "held-out test set" if where == "test" else criterion["sentence"]
            series.append(s)
    fig = Figure(
        "layer",
        'attention from "it"',
        series,
        hlines=[],
    )
    layers = [f"{r['test: layer']}/{r['sentence: layer']}" for r in rows]
    summary = (
        f'the layer that resolves "it" (test set / sentence, by seed: {", ".join(layers)}): '
        f"test-set gap {checks[0].measured}"
    )
    return Verdict.from_checks(checks, summary, pd.DataFrame(rows), fig)


# ---- claim 8 ---------------------------------------------------------------------------------
def transfer(frames: Mapping[str, pd.DataFrame], criterion: Mapping) -> Verdict:
    """A frozen backbone used as a feature extractor with a linear head trained to convergence
    (sweep ``frozen``, computed) beats the same network trained from scratch (``scratch``) and
    the same head on the raw pixels of the same images, each by its margin, in every seed; its
    head must train (test accuracy above chance by ``head_min`` in every seed), so a control
    with a random backbone is judged on what its features give, never on a head stuck at
    chance."""
    frozen, scratch = frames["frozen"], frames["scratch"]
    ok = frozen[frozen.status == "ok"] if "status" in frozen else frozen
    if ok.empty or scratch.empty:
        raise KeyError("no finished frozen or scratch run")
    total = len(frozen)
    seeds = ok["seed"].astype(int).tolist()
    pre = dict(zip(seeds, ok["test acc"].astype(float), strict=True))
    raw = dict(zip(seeds, ok["raw test acc"].astype(float), strict=True))
    scr = _by_seed(scratch, "test acc")
    margin, raw_margin, head_min = (
        criterion["margin"],
        criterion["raw_margin"],
        criterion["head_min"],
    )
    checks = [
        seed_check(
            f"the frozen backbone's head trains: test acc >= {head_min} (chance 0.1), every seed",
            pre,
            head_min,
            n_runs=total,
        ),
        seed_check(
            f"frozen backbone + head minus the same net from scratch (same seed) >= {margin}, "
            "every seed",
            _paired(pre, scr),
            margin,
            n_runs=total,
        ),
        seed_check(
            f"frozen backbone + head minus the same head on the raw pixels >= {raw_margin}, "
            "every seed",
            _paired(pre, raw),
            raw_margin,
            n_runs=total,
        ),
    ]

    def cell(frame: pd.DataFrame, metric: str) -> str:
        return stats(frame, [], metric).iloc[0].cell

    size = int(ok["image size"].iloc[0]) if "image size" in ok else 0
    arms = [
        (f"frozen backbone ({size}x{size}) + linear head", ok, "train acc", "test acc"),
        ("same net from scratch (64x64, all layers trained)", scratch, "train acc", "test acc"),
        ("linear head on the raw 28x28 pixels", ok, "raw train acc", "raw test acc"),
    ]
    rows = [
        {
            "arm": name,
            "train acc": cell(f.assign(**{"x": f[tr]}), "x") if tr in f else "",
            "test acc": cell(f.assign(**{"x": f[te]}), "x"),
        }
        for name, f, tr, te in arms
    ]
    names = ["frozen backbone", "scratch", "raw pixels"]
    aggs = [stats(f.assign(**{"x": f[te]}), [], "x").iloc[0] for _, f, _, te in arms]
    series = [_bar(n, i, a) for i, (n, a) in enumerate(zip(names, aggs, strict=True))]
    fig = Figure(
        "", "test accuracy", series, categorical=True, xticks=names, hlines=[(0.1, "chance")]
    )
    summary = (
        f"frozen backbone + head {rows[0]['test acc']} vs scratch {rows[1]['test acc']} vs raw "
        f"pixels {rows[2]['test acc']} (test acc)"
    )
    return Verdict.from_checks(checks, summary, pd.DataFrame(rows), fig)


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
