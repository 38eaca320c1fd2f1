"""Verdict functions of the lesson's demonstrations, with the same contract as ``verdicts``:
the shattered gradients and the transfer by layer, whose rows come from
``depthbench.lesson.measures_without_runs`` (no training run), and the training curves, lesions
and loss landscape read on the runs of the degradation claim (``uses: degradation``).

Each function takes ``frames`` (sweep name -> one row per seed, with ``seed``, ``status`` and the
row's measured keys; list values stay lists in their cell) and ``criterion`` (the thresholds of
``conf/lesson/<claim>.yaml``) and returns a :class:`Verdict`. The functions read the measured
setting from the rows themselves (the depth, the stage curve), never from which sweep is the
claim's and which is its negative control: the lesson applies them to both.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from depthbench.lesson.verdict_helpers import fmt_num, seed_check
from depthbench.lesson.verdict_types import Check, Figure, Series, Verdict
from depthbench.report.tables import seed_cell

# EfficientNet-Lite0's probe points, in the order measures_without_runs.transfer_by_layer
# returns them
LITE0_STAGES = ("stem", *(f"stage {i}" for i in range(1, 8)), "head")


def _ok(frame: pd.DataFrame | None, columns: list[str]) -> pd.DataFrame:
    """The rows that finished ``ok`` and carry every one of ``columns``."""
    if frame is None or frame.empty or any(c not in frame for c in columns):
        return pd.DataFrame(columns=["seed", "status", *columns])
    ok = frame[frame["status"] == "ok"]
    return ok.dropna(subset=columns)


def _cell(values: np.ndarray | list[float]) -> str:
    """mean ± sample std (n) of ``values``, as every table cell of the lesson."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    return seed_cell(
        float(v.mean()) if len(v) else float("nan"),
        float(v.std(ddof=1)) if len(v) > 1 else float("nan"),
        len(v),
    )


def _mean_std(matrix: np.ndarray) -> tuple[list[float], list[float]]:
    """Column means and sample stds (0 for one seed) of a (seeds, points) array."""
    std = matrix.std(axis=0, ddof=1) if len(matrix) > 1 else np.zeros(matrix.shape[1])
    return matrix.mean(axis=0).tolist(), std.tolist()


def _not_measured(requirement: str, why: str) -> Verdict:
    return Verdict.from_checks([Check(requirement, why, None)], f"not measured: {why}")


# ---- shattered gradients (Balduzzi et al. 2017) --------------------------------------------------
def shattered_gradients(frames: Mapping[str, pd.DataFrame], criterion: Mapping) -> Verdict:
    """At the measured depth, the plain net's df/dx is shattered (lag-1 autocorrelation near 0,
    white noise) while its residual twin's stays correlated: residual minus plain at least
    ``margin`` on the mean over seeds, residual above plain in every seed, plain at most
    ``plain_max``. The figure: both curves over depth, and df/dx along x for one seed."""
    frame = frames.get("main")
    cols = ["depth", "plain autocorr", "residual autocorr"]
    ok = _ok(frame, cols)
    margin, plain_max = float(criterion["margin"]), float(criterion["plain_max"])
    if ok.empty:
        return _not_measured(f"residual - plain autocorrelation >= {margin}", "no ok run")
    total = len(frame)
    depth = int(ok["depth"].iloc[0])
    plain = ok["plain autocorr"].to_numpy(float)
    resid = ok["residual autocorr"].to_numpy(float)
    seeds = ok["seed"].astype(int).tolist()
    checks = [
        seed_check(
            f"depth {depth}: residual - plain lag-1 autocorrelation of df/dx >= {margin}, "
            "every seed",
            dict(zip(seeds, resid - plain, strict=True)),
            margin,
            n_runs=total,
        ),
        seed_check(
            f"depth {depth}: the plain net's gradient is shattered, autocorrelation "
            f"<= {plain_max}, every seed",
            dict(zip(seeds, plain, strict=True)),
            plain_max,
            at_most=True,
            n_runs=total,
        ),
    ]
    series, rows = [], []
    curve_cols = ["depths", "plain autocorr by depth", "residual autocorr by depth"]
    if all(c in ok for c in curve_cols):
        depths = [float(d) for d in ok["depths"].iloc[0]]
        curves = {
            kind: np.array([list(v) for v in ok[f"{kind} autocorr by depth"]], dtype=float)
            for kind in ("plain", "residual")
        }
        for kind, m in curves.items():
            mean, std = _mean_std(m)
            series.append(Series(f"{kind} net", depths, mean, std, panel="autocorrelation"))
        rows = [
            {
                "depth": int(d),
                "plain net": _cell(curves["plain"][:, i]),
                "residual net": _cell(curves["residual"][:, i]),
            }
            for i, d in enumerate(depths)
        ]
    if depth not in [r["depth"] for r in rows]:
        rows.append({"depth": depth, "plain net": _cell(plain), "residual net": _cell(resid)})
    table = pd.DataFrame(sorted(rows, key=lambda r: r["depth"]))
    table = table.rename(
        columns={
            "plain net": "plain: lag-1 autocorr. of df/dx",
            "residual net": "residual: lag-1 autocorr. of df/dx",
        }
    )
    panel_labels = {}
    if all(c in ok for c in ("x", "plain df/dx", "residual df/dx")):
        first = ok.sort_values("seed").iloc[0]
        panel = f"df/dx / std along x, depth {depth}, seed {int(first['seed'])}"
        panel_labels[panel] = ("input x", "df/dx / std")
        for kind in ("plain", "residual"):
            g = [float(v) for v in first[f"{kind} df/dx"]]
            series.append(Series(f"{kind} net", list(first["x"]), g, [0.0] * len(g), panel=panel))
    fig = Figure(
        "depth (weight layers)",
        "lag-1 autocorrelation of df/dx",
        series,
        panel_labels=panel_labels,
    )
    summary = (
        f"at depth {depth} the lag-1 autocorrelation of df/dx is {_cell(plain)} for the plain "
        f"net and {_cell(resid)} for its residual twin"
    )
    return Verdict.from_checks(checks, summary, table, fig)


# ---- transfer by layer (Yosinski et al. 2014) ----------------------------------------------------
def transfer_by_layer(frames: Mapping[str, pd.DataFrame], criterion: Mapping) -> Verdict:
    """Linear probes on the stages of one net peak in a middle stage: the best stage (mean over
    seeds) is neither the first nor the last, beats the last by ``margin_last`` and the first
    (the stem) by ``margin_first``, and is above the last stage in every seed."""
    frame = frames.get("main")
    ok = _ok(frame, ["probe acc"])
    m_last, m_first = float(criterion["margin_last"]), float(criterion["margin_first"])
    if ok.empty:
        return _not_measured("linear probes on every stage", "no ok run")
    total = len(frame)
    accs = np.array([list(v) for v in ok["probe acc"]], dtype=float)  # (seeds, stages)
    n_stages = accs.shape[1]
    names = (
        list(LITE0_STAGES)
        if n_stages == len(LITE0_STAGES)
        else [f"stage {i}" for i in range(n_stages)]
    )
    mean, std = _mean_std(accs)
    best = int(np.argmax(mean))
    last, first = n_stages - 1, 0
    seeds = ok["seed"].astype(int).tolist()
    checks = [
        Check(
            f"the best stage (mean over seeds) is neither the first ({names[first]}) nor the last "
            f"({names[last]})",
            f"{names[best]}: {_cell(accs[:, best])}",
            bool(first < best < last),
        ),
        seed_check(
            f"{names[best]} minus {names[last]} >= {m_last}, every seed",
            dict(zip(seeds, accs[:, best] - accs[:, last], strict=True)),
            m_last,
            n_runs=total,
        ),
        seed_check(
            f"{names[best]} minus {names[first]} >= {m_first}, every seed",
            dict(zip(seeds, accs[:, best] - accs[:, first], strict=True)),
            m_first,
            n_runs=total,
        ),
    ]
    table = pd.DataFrame(
        {"stage": names, "linear-probe test acc": [_cell(accs[:, i]) for i in range(n_stages)]}
    )
    hlines = []
    if "raw pixels" in ok:
        raw = ok["raw pixels"].to_numpy(float)
        table.loc[len(table)] = ["raw pixels (same probe)", _cell(raw)]
        hlines.append((float(raw.mean()), "raw pixels"))
    # a line, not bars from 0: the differences that decide are a few hundredths
    fig = Figure(
        f"stage (0 = {names[first]}, {last} = {names[last]})",
        "linear-probe test accuracy",
        [Series("linear probe", list(range(n_stages)), mean, std)],
        hlines=hlines,
    )
    summary = (
        f"probe accuracy peaks at {names[best]} ({_cell(accs[:, best])}); {names[first]} "
        f"{_cell(accs[:, first])}, {names[last]} {_cell(accs[:, last])}"
    )
    return Verdict.from_checks(checks, summary, table, fig)


__all__ = ["LITE0_STAGES", "shattered_gradients", "transfer_by_layer"]


# ---- on the runs of claim 4 (``uses: degradation``): curves, lesions, landscape -----------------
def _by_depth(frame: pd.DataFrame, residual: str) -> dict[int, pd.DataFrame]:
    """The ok rows of one family (``model.residual`` true/false), by depth."""
    col = frame["model.residual"].astype(str).str.lower()
    rows = frame[(col == residual) & (frame["status"] == "ok")]
    return {int(d): g for d, g in rows.groupby(rows["model.depth"].astype(int))}


def _windows(steps: list, losses: list, window: int) -> dict[int, float]:
    """Mean loss per ``window``-step window, keyed by the window's first step."""
    out: dict[int, list[float]] = {}
    for s, v in zip(steps, losses, strict=True):
        out.setdefault(int(s) // window * window, []).append(float(v))
    return {k: float(np.mean(v)) for k, v in sorted(out.items())}


def training_curves(frames: Mapping[str, pd.DataFrame], criterion: Mapping) -> Verdict:
    """From ``from_step`` on, the deepest plain net's windowed training loss is above the
    shallowest plain net's of the same seed by at least ``margin`` in every window, in every
    seed."""
    frame = next(iter(frames.values()))
    plain = _by_depth(frame, "false")
    if len(plain) < 2:
        raise KeyError("plain nets at two depths")
    window, start, margin = criterion["window"], criterion["from_step"], criterion["margin"]

    def curves(rows: pd.DataFrame) -> dict[int, dict[int, float]]:
        return {
            int(seed): _windows(s, v, window)
            for seed, s, v in zip(rows.seed, rows["loss steps"], rows["loss curve"], strict=True)
        }

    def mean_curve(per_seed: dict[int, dict[int, float]]) -> dict[int, float]:
        keys = sorted(set.intersection(*(set(c) for c in per_seed.values())))
        return {k: float(np.mean([c[k] for c in per_seed.values()])) for k in keys}

    shallow, deep = min(plain), max(plain)
    sh, dp = curves(plain[shallow]), curves(plain[deep])
    smallest: dict[int, float] = {}
    for seed in sorted(set(sh) & set(dp)):
        keys = [k for k in sh[seed] if k in dp[seed] and k >= start]
        if keys:
            smallest[seed] = min(dp[seed][k] - sh[seed][k] for k in keys)
    if not smallest:
        raise KeyError("no logged loss after from_step")
    checks = [
        seed_check(
            f"plain-{deep} loss minus plain-{shallow} loss (same seed), smallest over the "
            f"{window}-step windows from step {start}: >= {margin}, every seed",
            smallest,
            margin,
            n_runs=max(len(sh), len(dp)),
        )
    ]
    series = []
    for fam, label in (("false", "plain"), ("true", "residual")):
        for d, rows in sorted(_by_depth(frame, fam).items()):
            c = mean_curve(curves(rows))
            series.append(
                Series(
                    f"{label}-{d} (n={len(rows)})",
                    list(c),
                    list(c.values()),
                    [0.0] * len(c),
                    panel=label,
                )
            )
    fig = Figure("step", f"training loss ({window}-step windows, mean of seeds)", series)
    c_sh, c_dp = mean_curve(sh), mean_curve(dp)
    keys = [k for k in c_sh if k in c_dp and k >= start]
    table = pd.DataFrame(
        {
            "step": keys,
            f"plain-{shallow}": [f"{c_sh[k]:.3f}" for k in keys],
            f"plain-{deep}": [f"{c_dp[k]:.3f}" for k in keys],
        }
    )
    summary = (
        f"plain-{deep} minus plain-{shallow}, smallest window gap from step {start}: "
        f"{checks[0].measured}"
    )
    return Verdict.from_checks(checks, summary, table, fig)


def lesion(frames: Mapping[str, pd.DataFrame], criterion: Mapping) -> Verdict:
    """Veit et al. 2016: deleting one block at a time, the median accuracy drop over blocks of
    the residual net is at most ``residual_max_drop`` and of its plain twin at least
    ``plain_min_drop``, in every seed; the worst single block is shown, not judged."""
    frame = next(iter(frames.values()))
    depth = int(criterion["depth"])
    rows, drops, checks, series, n_runs = [], {}, [], [], {}
    for fam, label in (("true", "residual"), ("false", "plain")):
        col = frame["model.residual"].astype(str).str.lower()
        n_runs[label] = int((col[frame["model.depth"].astype(int) == depth] == fam).sum())
        at = _by_depth(frame, fam).get(depth)
        if at is None or at.empty:
            raise KeyError(f"{label} nets at depth {depth}")
        drops[label] = dict(
            zip(at.seed.astype(int), at["acc intact"] - at["lesion median"], strict=True)
        )
        accs = np.array([list(a) for a in at["lesion accs"]], dtype=float)
        per_block = at["acc intact"].to_numpy(dtype=float)[:, None] - accs  # (seeds, blocks)
        worst = int(np.argmax(per_block.mean(axis=0)))
        rows.append(
            {
                "net": f"{label}-{depth}",
                "intact": _cell(at["acc intact"]),
                "median over single-block deletions": _cell(at["lesion median"]),
                "median drop": _cell(at["acc intact"] - at["lesion median"]),
                "worst block (drop)": f"block {worst + 1}: {_cell(per_block[:, worst])}",
            }
        )
        mean, std = _mean_std(accs)
        series.append(Series(label, list(range(1, len(mean) + 1)), mean, std))
    r_max, p_min = criterion["residual_max_drop"], criterion["plain_min_drop"]
    checks = [
        seed_check(
            f"residual-{depth}: median drop over blocks <= {r_max}, every seed",
            drops["residual"],
            r_max,
            at_most=True,
            n_runs=n_runs["residual"],
        ),
        seed_check(
            f"plain-{depth}: median drop over blocks >= {p_min}, every seed",
            drops["plain"],
            p_min,
            n_runs=n_runs["plain"],
        ),
    ]
    fig = Figure(
        "deleted block (shape-keeping blocks, input to output)",
        "training accuracy with the block deleted",
        series,
    )
    summary = (
        f"median drop over blocks when one is deleted: residual "
        f"{fmt_num(np.mean(list(drops['residual'].values())))}, plain "
        f"{fmt_num(np.mean(list(drops['plain'].values())))}; worst block: "
        + "; ".join(f"{r['net']} {r['worst block (drop)']}" for r in rows)
    )
    return Verdict.from_checks(checks, summary, pd.DataFrame(rows), fig)


def landscape(frames: Mapping[str, pd.DataFrame], criterion: Mapping) -> Verdict:
    """A figure (Li et al. 2018): the loss along a filter-normalised direction, per net."""
    frame = next(iter(frames.values()))
    series, rows = [], []
    for fam, label in (("false", "plain"), ("true", "residual")):
        for d, at in sorted(_by_depth(frame, fam).items()):
            if "landscape loss" not in at:
                raise KeyError("landscape")
            losses = np.array([list(v) for v in at["landscape loss"]], dtype=float)
            alphas = list(at["landscape alpha"].iloc[0])
            mean, std = _mean_std(np.log10(losses))
            series.append(Series(f"{label}-{d}", alphas, mean, std, panel=label))
            mid = losses[:, len(alphas) // 2]
            rows.append(
                {
                    "net": f"{label}-{d}",
                    "loss at the weights": _cell(mid),
                    "loss at alpha = -1": _cell(losses[:, 0]),
                    "loss at alpha = +1": _cell(losses[:, -1]),
                }
            )
    fig = Figure("alpha (filter-normalised direction)", "log10 training loss", series)
    return Verdict("figure", "drawn, not decided", [], pd.DataFrame(rows), fig)
