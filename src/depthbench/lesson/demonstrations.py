"""Verdict functions of the lesson's demonstrations whose numbers come from
``depthbench.lesson.computed`` (no training run): same contract as ``lesson.verdicts``.

Each function takes ``frames`` (sweep name -> one row per seed, with ``seed``, ``status`` and the
computed row's keys; list values stay lists in their cell) and ``criterion`` (the thresholds of
``conf/lesson/<claim>.yaml``) and returns a :class:`Verdict`. The functions read the measured
setting from the rows themselves (the depth, the stage curve), never from which sweep is the
claim's and which is its negative control: the lesson applies them to both. The file is one
unit on purpose, as ``verdicts.py``: the demonstrations' checks side by side, sharing helpers.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from depthbench.lesson.outcome import Check, Figure, Series, Verdict, fmt_num
from depthbench.report.tables import seed_cell

# EfficientNet-Lite0's probe points, in the order computed.transfer_by_layer returns them
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
    diff = float(resid.mean() - plain.mean())
    wins = int((resid > plain).sum())
    checks = [
        Check(
            f"depth {depth}: residual - plain lag-1 autocorrelation of df/dx >= {margin} "
            "(mean over seeds)",
            f"{_cell(resid)} - {_cell(plain)} = {fmt_num(diff)}",
            bool(diff >= margin),
        ),
        Check(
            f"depth {depth}: residual above plain in every seed",
            f"{wins}/{total} seeds",
            bool(wins == total and total > 0),
        ),
        Check(
            f"depth {depth}: the plain net's gradient is shattered, mean autocorrelation "
            f"<= {plain_max}",
            _cell(plain),
            bool(plain.mean() <= plain_max),
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
    if all(c in ok for c in ("x", "plain df/dx", "residual df/dx")):
        first = ok.sort_values("seed").iloc[0]
        panel = f"df/dx / std along x, depth {depth}, seed {int(first['seed'])}"
        for kind in ("plain", "residual"):
            g = [float(v) for v in first[f"{kind} df/dx"]]
            series.append(Series(f"{kind} net", list(first["x"]), g, [0.0] * len(g), panel=panel))
    fig = Figure(
        "depth (weight layers); right: input x",
        "lag-1 autocorrelation of df/dx; right: df/dx / std",
        series,
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
    wins = int((accs[:, best] > accs[:, last]).sum())
    checks = [
        Check(
            f"the best stage (mean over seeds) is neither the first ({names[first]}) nor the last "
            f"({names[last]})",
            f"{names[best]}: {_cell(accs[:, best])}",
            bool(first < best < last),
        ),
        Check(
            f"best stage - last stage >= {m_last}",
            f"{fmt_num(mean[best])} - {fmt_num(mean[last])} = {fmt_num(mean[best] - mean[last])}",
            bool(mean[best] - mean[last] >= m_last),
        ),
        Check(
            f"best stage - first stage >= {m_first}",
            f"{fmt_num(mean[best])} - {fmt_num(mean[first])} = {fmt_num(mean[best] - mean[first])}",
            bool(mean[best] - mean[first] >= m_first),
        ),
        Check(
            f"{names[best]} above {names[last]} in every seed",
            f"{wins}/{total} seeds",
            bool(wins == total and total > 0 and best != last),
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
    """From ``from_step`` on, the deepest plain net's windowed training loss (mean over seeds)
    is above the shallowest plain net's by at least ``margin`` in every window."""
    frame = next(iter(frames.values()))
    plain = _by_depth(frame, "false")
    if len(plain) < 2:
        raise KeyError("plain nets at two depths")
    window, start, margin = criterion["window"], criterion["from_step"], criterion["margin"]

    def curve(rows: pd.DataFrame) -> dict[int, float]:
        per_seed = [
            _windows(s, v, window)
            for s, v in zip(rows["loss steps"], rows["loss curve"], strict=True)
        ]
        keys = sorted(set.intersection(*(set(c) for c in per_seed)))
        return {k: float(np.mean([c[k] for c in per_seed])) for k in keys}

    shallow, deep = min(plain), max(plain)
    c_sh, c_dp = curve(plain[shallow]), curve(plain[deep])
    keys = [k for k in c_sh if k in c_dp and k >= start]
    if not keys:
        raise KeyError("no logged loss after from_step")
    gaps = [c_dp[k] - c_sh[k] for k in keys]
    checks = [
        Check(
            f"plain-{deep} loss above plain-{shallow} by >= {margin} in every {window}-step "
            f"window from step {start}",
            f"smallest gap {min(gaps):+.3f} (at step {keys[int(np.argmin(gaps))]}); "
            f"{sum(g >= margin for g in gaps)}/{len(gaps)} windows",
            bool(min(gaps) >= margin),
        )
    ]
    series = []
    for fam, label in (("false", "plain"), ("true", "residual")):
        for d, rows in sorted(_by_depth(frame, fam).items()):
            c = curve(rows)
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
    table = pd.DataFrame(
        {
            "step": keys,
            f"plain-{shallow}": [f"{c_sh[k]:.3f}" for k in keys],
            f"plain-{deep}": [f"{c_dp[k]:.3f}" for k in keys],
        }
    )
    summary = f"plain-{deep} minus plain-{shallow}: smallest gap {min(gaps):+.3f} from step {start}"
    return Verdict.from_checks(checks, summary, table, fig)


def lesion(frames: Mapping[str, pd.DataFrame], criterion: Mapping) -> Verdict:
    """Veit et al. 2016: deleting one block at a time, the median accuracy drop of the residual
    net is at most ``residual_max_drop``, of its plain twin at least ``plain_min_drop``."""
    frame = next(iter(frames.values()))
    depth = int(criterion["depth"])
    rows, drops, checks, series = [], {}, [], []
    for fam, label in (("true", "residual"), ("false", "plain")):
        at = _by_depth(frame, fam).get(depth)
        if at is None or at.empty:
            raise KeyError(f"{label} nets at depth {depth}")
        drop = (at["acc intact"] - at["lesion median"]).to_numpy(dtype=float)
        drops[label] = drop
        rows.append(
            {
                "net": f"{label}-{depth}",
                "intact": _cell(at["acc intact"]),
                "median over single-block deletions": _cell(at["lesion median"]),
                "drop": _cell(drop),
            }
        )
        accs = np.array([list(a) for a in at["lesion accs"]], dtype=float)
        mean, std = _mean_std(accs)
        series.append(Series(label, list(range(1, len(mean) + 1)), mean, std))
    r_max, p_min = criterion["residual_max_drop"], criterion["plain_min_drop"]
    checks = [
        Check(
            f"residual-{depth}: median drop <= {r_max}",
            _cell(drops["residual"]),
            bool(np.mean(drops["residual"]) <= r_max),
        ),
        Check(
            f"plain-{depth}: median drop >= {p_min}",
            _cell(drops["plain"]),
            bool(np.mean(drops["plain"]) >= p_min),
        ),
    ]
    fig = Figure(
        "deleted block (shape-keeping blocks, input to output)",
        "training accuracy with the block deleted",
        series,
    )
    summary = (
        f"median drop when one block is deleted: residual {fmt_num(np.mean(drops['residual']))}"
        f", plain {fmt_num(np.mean(drops['plain']))}"
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
