"""Verdict functions of the lesson's demonstrations whose numbers come from
``depthbench.lesson.computed`` (no training run): same contract as ``lesson.verdicts``.

Each function takes ``frames`` (sweep name -> one row per seed, with ``seed``, ``status`` and the
computed row's keys; list values stay lists in their cell) and ``criterion`` (the thresholds of
``conf/lesson/<claim>.yaml``) and returns a :class:`Verdict`. The functions read the measured
setting from the rows themselves (the depth, the stage curve), never from which sweep is the
claim's and which is its negative control: the lesson applies them to both.
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
    names = list(LITE0_STAGES) if n_stages == len(LITE0_STAGES) else [
        f"stage {i}" for i in range(n_stages)
    ]  # fmt: skip
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
